"""From a model's layers to what runs them: its stages, each a compiled :class:`Plan` of a
run of library layers (their descriptors, read through a :class:`CompileContext`, with
residual links resolved) or one Python layer alone."""
from fastmlp._plan import Plan


def compile_stages(model):
    """``[("core", Plan) | ("python", layer), ...]``: consecutive layers that describe
    themselves to the core (on a compiled backend) grouped into one plan each."""
    ctx = CompileContext(model)
    stages, run = [], []

    def flush():
        if run:
            stages.append(("core", Plan(link_residuals(run), model.params, model.grads,
                                        model.buffers if model.buffers.size else None,
                                        model.state)))
            run.clear()

    for layer in model.layers:
        descs = layer.core_descs(ctx) if model.ops.compiled else None
        if descs is None:
            flush()
            stages.append(("python", layer))
        else:
            run.extend(descs)
    flush()
    return stages


class CompileContext:
    """What a layer needs to describe itself to the core: where its parameters and buffers
    live, and its RNG stream (its index in the model)."""

    def __init__(self, model):
        self.model = model
        self._index = {id(layer): i for i, layer in enumerate(model.flat_layers)}
        self._offsets = {}
        for p in model.param_info + model.buffer_info:
            self._offsets.setdefault(p["layer"], {})[p["name"]] = p["offset"]

    def index(self, layer):
        return self._index[id(layer)]

    def offsets(self, layer):
        return self._offsets.get(self.index(layer), {})


def link_residuals(descs):
    """Resolve the residual markers of a run of descriptors into absolute links."""
    out, stack = [], []
    for d in descs:
        d = dict(d)
        if d.pop("_res_begin", False):
            stack.append(len(out))
        elif d.pop("_res_end", False):
            begin = stack.pop()
            d["link"] = begin
            out[begin]["link"] = len(out)
        out.append(d)
    return out
