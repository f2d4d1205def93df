"""PyTorch interop: a Sequential as the state dict of the matching ``torch.nn.Sequential``,
and (when torch imports) as a real torch module, both ways.

Module layout (the keys of the state dict): each layer is one torch module at its position
in ``layers``, except a Dense with a fused activation, which is two (``Linear``, then the
activation), and a Residual or a Chain (a nested Sequential), which is one module holding
its layers as a nested ``nn.Sequential`` (keys ``"<i>.<j>.weight"``), whose output is
``x + f(x)`` for a Residual (:func:`torch_residual` is its class). Parameters and buffers:

=============  ==========================================================================
Dense          ``weight`` (Wᵀ, shape (n_out, n_in)), ``bias``
PReLU          ``weight`` (the slopes)
BatchNorm      ``weight``, ``bias`` (when affine), ``running_mean``, ``running_var``,
               ``num_batches_tracked`` (torch's counter: written as 0, ignored on reading)
LayerNorm      ``weight``, ``bias`` (when affine)
=============  ==========================================================================

Parameter-free layers (activations, Softmax, Dropout) hold a position only.
"""
from typing import Any, Dict, List, Optional

import numpy as np

from fastmlp import layers as L
from fastmlp.layers import (Activation, BatchNorm, Chain, Dense, Dropout, LayerNorm, PReLU,
                            Residual, Softmax)
from fastmlp.layers.activations import ACTIVATION_LAYERS, ELU, GELU, LeakyReLU
from fastmlp.sequential import Sequential

__all__ = ["to_torch_state_dict", "from_torch_state_dict", "to_torch", "from_torch",
           "torch_residual"]

#: fastmlp activation name -> (torch.nn class name, constructor keywords from the layer)
_TORCH_ACTIVATIONS = {
    "identity": ("Identity", lambda a: {}), "sigmoid": ("Sigmoid", lambda a: {}),
    "tanh": ("Tanh", lambda a: {}), "relu": ("ReLU", lambda a: {}),
    "leaky_relu": ("LeakyReLU", lambda a: {"negative_slope": a.alpha}),
    "elu": ("ELU", lambda a: {"alpha": a.alpha}), "softplus": ("Softplus", lambda a: {}),
    "hard_tanh": ("Hardtanh", lambda a: {}), "silu": ("SiLU", lambda a: {}),
    "gelu": ("GELU", lambda a: {"approximate": getattr(a, "approximate", "none")}),
}


# --- the layout ---------------------------------------------------------------------------

def _layout(layers, prefix="", where="layers"):
    """``[(key prefix, layer, where)]`` in torch module order, Residuals opened (their
    children follow them with the prefix ``"<i>."``)."""
    out, index = [], 0
    for i, layer in enumerate(layers):
        here = f"{where}[{i}]"
        tied = isinstance(layer, Dense) and layer.tied_to is not None
        known = (Dense, Activation, Softmax, Dropout, PReLU, BatchNorm, LayerNorm, Chain)
        if tied or not isinstance(layer, known):
            raise ValueError(f"{here} ({layer!r}) has no counterpart in the PyTorch interop: "
                             "Dense (untied), PReLU, BatchNorm, LayerNorm, Residual, Chain "
                             "and parameter-free layers are supported")
        out.append((f"{prefix}{index}", layer, here))
        if isinstance(layer, Chain):
            out += _layout(layer.layers, f"{prefix}{index}.", f"{here}.layers")
        fused = isinstance(layer, Dense) and layer.activation.name != "identity"
        index += 2 if fused else 1
    return out


def _entries(layers):
    """``{key: (layer, attribute or None, transposed, torch shape)}`` of the state dict."""
    out = {}
    for key, layer, _ in _layout(layers):
        names = []
        if isinstance(layer, Dense):
            out[f"{key}.weight"] = (layer, "W", True, (layer.n_out, layer.n_in))
            names = ["b"] if layer.bias else []
        elif isinstance(layer, PReLU):
            names = ["weight"]
        elif isinstance(layer, (BatchNorm, LayerNorm)):
            names = ["weight", "bias"] if layer.affine else []
            if isinstance(layer, BatchNorm):
                names += ["running_mean", "running_var"]
        for name in names:
            torch_name = "bias" if name == "b" else name
            size = layer.num_parameters if isinstance(layer, PReLU) else layer.n_out
            out[f"{key}.{torch_name}"] = (layer, name, False, (size,))
        if isinstance(layer, BatchNorm):
            out[f"{key}.num_batches_tracked"] = (layer, None, False, ())
    return out


# --- state dicts --------------------------------------------------------------------------

def to_torch_state_dict(model: Sequential) -> Dict[str, np.ndarray]:
    """The model's parameters and buffers keyed as the state dict of the matching
    ``torch.nn.Sequential`` (NumPy arrays, copies; see the module docstring)."""
    out = {}
    for key, (layer, attr, transposed, _) in _entries(model.layers).items():
        if attr is None:
            out[key] = np.array(0, dtype=np.int64)
            continue
        value = getattr(layer, attr)
        out[key] = np.array(value.T if transposed else value, order="C", copy=True)
    return out


def _as_array(value):
    if hasattr(value, "detach"):                   # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def from_torch_state_dict(cls: type, state: Dict[str, Any], layers: List[Any],
                          dtype: Optional[str] = None, seed: Optional[int] = None,
                          backend: str = "core") -> Sequential:
    """A ``cls`` (Sequential) of ``layers`` with the weights of a torch state dict (NumPy
    arrays or tensors; see :meth:`Sequential.from_torch_state_dict`)."""
    layers = list(layers)
    entries = _entries(layers)
    if not hasattr(state, "keys"):
        raise TypeError(f"state must be a dict (a torch state_dict), got {type(state).__name__}")
    missing = {k for k, e in entries.items() if e[1] is not None} - set(state)
    extra = set(state) - set(entries)
    if missing or extra:
        raise ValueError(f"the state dict does not match the layers: missing keys "
                         f"{sorted(missing)}, unexpected keys {sorted(map(str, extra))}")
    arrays = {}
    for key, (_, attr, _, shape) in entries.items():
        if attr is None:
            continue
        a = _as_array(state[key])
        if a.dtype.kind not in "iuf" or a.shape != shape:
            raise ValueError(f"state[{key!r}] must be a real array of shape {shape}, got "
                             f"{a.dtype} with shape {a.shape}")
        arrays[key] = a
    if dtype is None:
        floats = [a.dtype for a in arrays.values() if a.dtype.kind == "f"]
        dtype = "float64" if floats and all(d == np.float64 for d in floats) else "float32"
    model = cls(layers, dtype=dtype, seed=seed, backend=backend)
    for key, a in arrays.items():
        layer, attr, transposed, _ = entries[key]
        getattr(layer, attr)[...] = a.T if transposed else a
    return model


# --- real torch modules -------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("this needs PyTorch: pip install torch") from None
    return torch


_RESIDUAL = []


def torch_residual():
    """The torch module class of a fastmlp Residual: an ``nn.Sequential`` whose output is
    ``x + f(x)`` (built on first use; needs torch)."""
    if not _RESIDUAL:
        nn = _torch().nn

        class TorchResidual(nn.Sequential):
            """``x + f(x)``, f the modules in order (fastmlp's Residual)."""

            def forward(self, x):
                return x + super().forward(x)

        TorchResidual.__module__, TorchResidual.__qualname__ = __name__, "TorchResidual"
        _RESIDUAL.append(TorchResidual)
    return _RESIDUAL[0]


def __getattr__(name):                   # unpickling a torch module that holds one
    if name == "TorchResidual":
        return torch_residual()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _module(layer, where):
    """The torch module(s) of one fastmlp layer."""
    nn = _torch().nn
    if isinstance(layer, Dense):
        mods = [nn.Linear(layer.n_in, layer.n_out, bias=layer.bias)]
        return mods + (_module(layer.activation, where)
                       if layer.activation.name != "identity" else [])
    if isinstance(layer, Activation):
        if layer.name not in _TORCH_ACTIVATIONS:
            raise ValueError(f"{where} ({layer!r}) has no torch module")
        name, kwargs = _TORCH_ACTIVATIONS[layer.name]
        return [getattr(nn, name)(**kwargs(layer))]
    if isinstance(layer, Chain):
        cls = torch_residual() if isinstance(layer, Residual) else nn.Sequential
        return [cls(*[m for i, inner in enumerate(layer.layers)
                      for m in _module(inner, f"{where}.layers[{i}]")])]
    simple = {PReLU: lambda: nn.PReLU(layer.num_parameters),
              Softmax: lambda: nn.Softmax(dim=1), Dropout: lambda: nn.Dropout(layer.p),
              BatchNorm: lambda: nn.BatchNorm1d(layer.n_out, eps=layer.eps,
                                                momentum=layer.momentum, affine=layer.affine),
              LayerNorm: lambda: nn.LayerNorm(layer.n_out, eps=layer.eps,
                                              elementwise_affine=layer.affine)}
    return [simple[type(layer)]()]


def to_torch(model: Sequential) -> Any:
    """A ``torch.nn.Sequential`` computing what ``model`` computes, with its weights and
    running statistics (of its dtype, in the model's mode: ``train()`` or ``eval()``). A
    graph ``Model`` gives a module whose ``forward(*inputs)`` returns its outputs
    (``fastmlp._graph_torch``).

    Raises ValueError naming a layer without a torch counterpart (ArcTan, Step, Maxout,
    GaussianNoise, a tied Dense, user layers); ImportError without torch.
    """
    if getattr(model, "is_graph", False):                 # a graph Model: fastmlp._graph_torch
        from fastmlp._graph_torch import graph_to_torch
        return graph_to_torch(model)
    torch = _torch()
    _layout(model.layers)                                  # names an unsupported layer
    mods = [m for i, layer in enumerate(model.layers) for m in _module(layer, f"layers[{i}]")]
    net = torch.nn.Sequential(*mods).to(torch.float64 if model.dtype == np.float64
                                        else torch.float32)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                         for k, v in to_torch_state_dict(model).items()}, strict=True)
    return net.train(model.training)


def _layer(mod, where):
    """The fastmlp layer of one torch module; ValueError naming it when there is none."""
    nn = _torch().nn
    kind = type(mod).__name__
    if isinstance(mod, nn.Linear):
        return L.Dense(mod.in_features, mod.out_features, bias=mod.bias is not None)
    if isinstance(mod, nn.Sequential):          # fastmlp's Residual, or a nested Sequential
        cls = L.Residual if isinstance(mod, torch_residual()) else L.Chain
        return cls(*[_layer(m, f"{where}[{i}]") for i, m in enumerate(mod)])
    if isinstance(mod, nn.BatchNorm1d) and mod.track_running_stats and mod.momentum is not None:
        return L.BatchNorm(mod.num_features, momentum=mod.momentum, eps=mod.eps,
                           affine=mod.affine)
    if isinstance(mod, nn.LayerNorm) and len(mod.normalized_shape) == 1 and \
            getattr(mod, "bias", True) is not None:
        return L.LayerNorm(mod.normalized_shape[0], eps=mod.eps,
                           elementwise_affine=mod.elementwise_affine)
    if isinstance(mod, nn.PReLU):
        return L.PReLU(mod.num_parameters)
    if isinstance(mod, nn.Dropout):
        return L.Dropout(mod.p)
    if isinstance(mod, nn.Softmax) and mod.dim in (1, -1):
        return L.Softmax()
    layer = _activation_layer(mod, nn)
    if layer is None:
        raise ValueError(f"{where} ({mod!r}) has no fastmlp counterpart; supported: Linear, "
                         f"the activations {sorted(n for n, _ in _TORCH_ACTIVATIONS.values())}"
                         f", PReLU, Softmax(dim=1), Dropout, BatchNorm1d (running "
                         f"statistics, a momentum), LayerNorm(n) and {kind!r} is not one")
    return layer


def _activation_layer(mod, nn):
    """The fastmlp activation layer of a torch activation module (default arguments of
    torch's, fastmlp's forms only), or None."""
    by_torch = {name: act for act, (name, _) in _TORCH_ACTIVATIONS.items()}
    act = by_torch.get(type(mod).__name__)
    if act is None or type(mod) is not getattr(nn, type(mod).__name__):
        return None
    if act == "leaky_relu":
        return LeakyReLU(mod.negative_slope)
    if act == "elu":
        return ELU(mod.alpha)
    if act == "gelu":
        return GELU(approximate=mod.approximate)
    if act == "softplus" and (mod.beta != 1 or mod.threshold != 20):
        return None
    if act == "hard_tanh" and (mod.min_val, mod.max_val) != (-1.0, 1.0):
        return None
    return ACTIVATION_LAYERS[act]()


def from_torch(module: Any, dtype: Optional[str] = None, seed: Optional[int] = None,
               backend: str = "core") -> Sequential:
    """A Sequential computing what the ``torch.nn.Sequential`` ``module`` computes, with
    its weights and running statistics (one fastmlp layer per torch module: a Linear and
    the activation after it stay two layers). ``dtype`` defaults to the module's (float64
    when all its weights are, else float32); the mode follows ``module.training``.

    Raises ValueError naming a module without a fastmlp counterpart; TypeError when
    ``module`` is not an ``nn.Sequential``.
    """
    nn = _torch().nn
    if not isinstance(module, nn.Sequential) or isinstance(module, torch_residual()):
        raise TypeError(f"module must be a torch.nn.Sequential, got {type(module).__name__}")
    layers = [_layer(m, f"module[{i}]") for i, m in enumerate(module)]
    model = from_torch_state_dict(Sequential, module.state_dict(), layers, dtype, seed,
                                  backend)
    return model.train(module.training)
