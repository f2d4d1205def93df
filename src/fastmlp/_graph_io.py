"""Save and load graph models (``fm.save`` / ``fm.load``, kind "graph_model").

The config is the Sequential's (``fastmlp._model_config.model_config``: the layers, in order of
first call, dtype, seed, RNG key and counter, backend, arena sizes, frozen layers) plus the
topology: ``inputs`` (``{"name", "width"}`` each), ``calls`` in topological order
(``{"layer": index into layers}`` or ``{"merge": "Add" | "Subtract" | "Multiply" |
"Concatenate"}``, with ``inputs``: tensor numbers, and ``name``), ``outputs`` (tensor
numbers), ``output_names``, and ``single_input`` / ``single_output`` (the model was given
one tensor, not a list: ``forward`` takes and returns arrays). Tensor k < n_inputs is input k; tensor n_inputs + j is the
output of call j. Arrays: ``params`` and ``buffers``.

Loading checks everything against the file before allocating the arena: layer types come
from the registry (a user layer must be registered with ``fastmlp.io.register``), merges
from a fixed table, every call reads tensors made before it, widths match, and the arena
sizes the layers declare equal the arrays' lengths.
"""
import math

from fastmlp._model_config import model_config
from fastmlp._serial import MAX_LAYERS, check_int, check_keys, take_array as _take
from fastmlp.layers._tree import layers_from_config
from fastmlp.layers.merge import Add, Concatenate, Multiply, Subtract

MERGES = {cls.__name__: cls for cls in (Add, Subtract, Multiply, Concatenate)}
_KEYS = ("layers", "dtype", "inputs", "calls", "outputs", "output_names", "single_input",
         "single_output")
_OPTIONAL = ("seed", "rng_seed", "rng_step", "backend", "n_params", "n_buffers", "frozen")


def pack_graph(model):
    """``(config, arrays)`` of a graph Model; the arrays are its live arenas."""
    number = {id(t): k for k, t in enumerate(model.inputs)}
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    calls = []
    for call in model.calls:
        number[id(call.output)] = len(number)
        op = call.op
        entry = ({"layer": index[id(op)]} if id(op) in index else {"merge": type(op).__name__})
        entry.update(inputs=[number[id(x)] for x in call.inputs], name=call.output.name)
        calls.append(entry)
    config = model_config(model)
    config.update(inputs=[{"name": n, "width": t.width}
                          for n, t in zip(model.input_names, model.inputs)],
                  calls=calls, outputs=[number[id(t)] for t in model.outputs],
                  output_names=list(model.output_names), single_input=model._single_in,
                  single_output=model._single_out)
    return config, {"params": model.params, "buffers": model.buffers}


def unpack_graph(cls, config, arrays):
    """The Model of :func:`pack_graph` (ValueError on anything that does not fit)."""
    from fastmlp._symbolic import Input
    check_keys(config, _KEYS, _OPTIONAL, "graph model config")
    dtype = config["dtype"]
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r:.40}")
    top, flat = layers_from_config(config["layers"])
    tensors = [Input(check_int(_get(e, "width", "inputs"), "an input width", 1, 2**31 - 1),
                        name=_name(e.get("name"))) for e in _list(config, "inputs")]
    for j, entry in enumerate(_list(config, "calls")):
        tensors.append(_call(entry, j, tensors, top))
    outs = [tensors[check_int(k, "an output", 0, len(tensors) - 1)]
            for k in _list(config, "outputs")]
    names = _list(config, "output_names")
    if len(names) != len(outs) or not all(isinstance(n, str) and n for n in names):
        raise ValueError("'output_names' must hold one non-empty string per output")
    params = _take(arrays, "params", dtype)
    buffers = _take(arrays, "buffers", dtype)
    need = [sum(math.prod(shape) for layer in flat for _, shape, _ in getattr(layer, specs)())
            for specs in ("param_specs", "buffer_specs")]
    if need != [params.shape[0], buffers.shape[0]]:
        raise ValueError(f"the layers need {need[0]} parameters and {need[1]} buffer values, "
                         f"the file holds {params.shape[0]} and {buffers.shape[0]}")
    if arrays:
        raise ValueError(f"unexpected arrays in the file: {sorted(arrays)[:10]}")
    ins = tensors[:len(config["inputs"])]
    single_in, single_out = config["single_input"], config["single_output"]
    if single_in not in (True, False) or single_out not in (True, False) or \
            (single_in and len(ins) != 1) or (single_out and len(outs) != 1):
        raise ValueError("'single_input' and 'single_output' must be booleans, true only "
                         "for one input / output")
    model = cls(ins[0] if single_in else ins, outs[0] if single_out else outs, dtype=dtype,
                seed=config.get("seed"), backend=config.get("backend", "core"))
    model.output_names = list(names)            # as saved (a dict's keys included)
    if len(model.flat_layers) != len(flat):
        raise ValueError("some layers of the config are never called")
    model.rng_seed = check_int(config.get("rng_seed", model.rng_seed), "rng_seed")
    model.rng_step = check_int(config.get("rng_step", 0), "rng_step")
    for i in _list(config, "frozen", []):
        model.flat_layers[check_int(i, "a frozen layer index", 0, len(flat) - 1)].trainable = \
            False
    model.params[...] = params
    model.buffers[...] = buffers
    return model


def _list(config, key, default=None):
    value = config.get(key, default)
    if not isinstance(value, list) or len(value) > MAX_LAYERS:
        raise ValueError(f"{key!r} must be a list (of at most {MAX_LAYERS} entries)")
    return value


def _get(entry, key, what):
    if not isinstance(entry, dict) or key not in entry:
        raise ValueError(f"each entry of {what!r} must be an object with {key!r}")
    return entry[key]


def _name(name):
    if name is not None and not (isinstance(name, str) and 0 < len(name) <= 200):
        raise ValueError(f"a tensor name must be null or a short string, got {name!r:.40}")
    return name


def _call(entry, j, tensors, top):
    """The output tensor of call ``j`` (its inputs among the tensors made before it)."""
    ins = _get(entry, "inputs", "calls")
    if not isinstance(ins, list) or not ins:
        raise ValueError(f"calls[{j}]: 'inputs' must be a non-empty list")
    xs = [tensors[check_int(k, f"calls[{j}] input", 0, len(tensors) - 1)] for k in ins]
    name = _name(entry.get("name"))
    try:
        if "layer" in entry:
            if len(xs) != 1:
                raise ValueError("a layer takes one input")
            return top[check_int(entry["layer"], "a layer index", 0, len(top) - 1)](xs[0],
                                                                                  name=name)
        merge = MERGES.get(_get(entry, "merge", "calls"))
        if merge is None:
            raise ValueError(f"unknown merge {entry['merge']!r:.40}")
        return merge()(xs, name=name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"calls[{j}]: {exc}") from None
