"""A graph model as a PyTorch module (``fm.to_torch(model)`` for a ``fm.Model``).

The module (class :func:`torch_graph`, built on first use) holds one ``nn.Sequential`` per
layer of the model, in ``model.layers`` order, under ``layers``: the modules
``fastmlp.interop`` makes for that layer, so its state dict keys are
``"layers.<i>.<key>"`` with ``<key>`` as ``to_torch_state_dict`` of a Sequential holding
that layer alone. Its ``forward(*inputs)`` runs the calls in the model's order (merges as
``+``, ``-``, ``*`` left to right and ``torch.cat``) and returns one tensor or a tuple.
"""
from types import SimpleNamespace

import numpy as np

from fastmlp.interop import _layout, _module, _torch, to_torch_state_dict

_GRAPH = []


def torch_graph():
    """The torch module class of a fastmlp graph model (needs torch)."""
    if not _GRAPH:
        torch = _torch()

        class TorchGraph(torch.nn.Module):
            """Layers (``layers``) called as ``calls`` says: ``(kind, layer index or merge
            name, input tensor numbers)``; tensor k < n_inputs is input k."""

            def __init__(self, layers, calls, n_inputs, outputs, single):
                super().__init__()
                self.layers = torch.nn.ModuleList(layers)
                self.calls, self.n_inputs = calls, n_inputs
                self.outputs, self.single = outputs, single

            def forward(self, *inputs):
                if len(inputs) != self.n_inputs:
                    raise ValueError(f"expected {self.n_inputs} inputs, got {len(inputs)}")
                vals = list(inputs)
                for kind, arg, ins in self.calls:
                    xs = [vals[k] for k in ins]
                    vals.append(self.layers[arg](xs[0]) if kind == "layer" else _merge(arg, xs))
                outs = tuple(vals[k] for k in self.outputs)
                return outs[0] if self.single else outs

        TorchGraph.__module__, TorchGraph.__qualname__ = __name__, "TorchGraph"
        _GRAPH.append(TorchGraph)
    return _GRAPH[0]


def __getattr__(name):                   # unpickling a TorchGraph
    if name == "TorchGraph":
        return torch_graph()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _merge(name, xs):
    if name == "Concatenate":
        return _torch().cat(xs, dim=1)
    y = xs[0]
    for x in xs[1:]:
        y = y + x if name == "Add" else (y - x if name == "Subtract" else y * x)
    return y


def graph_to_torch(model):
    """The TorchGraph of ``model`` with its weights and running statistics (its dtype, in
    its mode). ValueError naming a layer without a torch counterpart."""
    torch = _torch()
    nn = torch.nn
    for i, layer in enumerate(model.layers):
        _layout([layer], where=f"layers[{i}]")                 # names an unsupported layer
    layers = [nn.Sequential(*_module(layer, f"layers[{i}]"))
              for i, layer in enumerate(model.layers)]
    number = {id(t): k for k, t in enumerate(model.inputs)}
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    calls = []
    for call in model.calls:
        ins = [number[id(x)] for x in call.inputs]
        op = call.op
        calls.append(("layer", index[id(op)], ins) if id(op) in index
                     else ("merge", type(op).__name__, ins))
        number[id(call.output)] = len(number)
    net = torch_graph()(layers, calls, len(model.inputs),
                        [number[id(t)] for t in model.outputs], model._single_out)
    net = net.to(torch.float64 if model.dtype == np.float64 else torch.float32)
    state = {f"layers.{i}.{key}": torch.from_numpy(np.ascontiguousarray(value))
             for i, layer in enumerate(model.layers)
             for key, value in to_torch_state_dict(SimpleNamespace(layers=[layer])).items()}
    net.load_state_dict(state, strict=True)
    return net.train(model.training)
