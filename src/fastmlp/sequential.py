"""Sequential: a stack of layers over one contiguous parameter arena."""
import threading

import numpy as np

from fastmlp._plan import Plan
from fastmlp._validation import as_float_matrix, check_dtype
from fastmlp.layers.base import Layer

BACKENDS = ("core", "numpy")


class Sequential:
    """A feedforward network: layers applied in order, parameters in one arena.

    Parameters
    ----------
    layers : list of Layer
        The first layer must fix the input width (e.g. ``Dense`` or ``Maxout``).
    dtype : {"float32", "float64"}
        Dtype of the parameters, of the computation and of the outputs.
    seed : int or None
        Seed of the weight initialization (numpy ``default_rng``).
    backend : {"core", "numpy"}
        "core" runs every run of consecutive library layers as one compiled call without
        the GIL; "numpy" runs every layer through its NumPy reference (the oracle and the
        baseline). Layers written in Python always run in Python.

    Attributes
    ----------
    params, grads : ndarray
        All trainable parameters, and their gradients, as single 1-D contiguous arrays;
        every layer parameter (``layer.W``, ``layer.b``, ...) is a view into ``params`` and
        its gradient (``layer.dW``, ...) a view into ``grads``.
    param_info : list of dict
        For each parameter: layer index, name, role ("weight", "bias", "other"), offset
        into the arena and shape.
    """

    def __init__(self, layers, dtype="float32", seed=None, backend="core"):
        layers = list(layers) if not isinstance(layers, Layer) else [layers]
        if not layers:
            raise ValueError("layers must hold at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fastmlp Layer, got {type(layer).__name__}")
            if layer._model is not None:
                raise ValueError(f"layers[{i}] ({layer!r}) already belongs to another model")
        self.layers = layers
        self.dtype = np.dtype(check_dtype(dtype))
        self.seed = seed
        self._build_shapes()
        self._build_arena()
        self._last_batch = None
        self.backend = backend
        self._train_lock = threading.Lock()

    # -- construction ------------------------------------------------------------------------
    def _build_shapes(self):
        width = self.layers[0].n_in
        if width is None:
            raise ValueError(f"the first layer ({self.layers[0]!r}) must fix the input width; "
                             "start with Dense or Maxout")
        self.n_in = width
        for i, layer in enumerate(self.layers):
            try:
                width = layer.build(width)
            except ValueError as exc:
                raise ValueError(f"layers[{i}]: {exc}") from None
        self.n_out = width

    def _build_arena(self):
        info, offset = [], 0
        for i, layer in enumerate(self.layers):
            for name, shape, role in layer.param_specs():
                size = int(np.prod(shape, dtype=np.int64))
                info.append(dict(layer=i, name=name, role=role, offset=offset, shape=tuple(shape)))
                offset += size
        self.param_info = info
        self.params = np.zeros(offset, dtype=self.dtype)
        self.grads = np.zeros(offset, dtype=self.dtype)
        for p in info:
            layer = self.layers[p["layer"]]
            sl = slice(p["offset"], p["offset"] + int(np.prod(p["shape"], dtype=np.int64)))
            setattr(layer, p["name"], self.params[sl].reshape(p["shape"]))
            setattr(layer, "d" + p["name"], self.grads[sl].reshape(p["shape"]))
        rng = np.random.default_rng(self.seed)
        for i, layer in enumerate(self.layers):
            nxt = self.layers[i + 1].activation_name if i + 1 < len(self.layers) else None
            layer.init_params(rng, nxt)
            layer._model = self

    @property
    def n_params(self):
        return self.params.shape[0]

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, value):
        if value not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {value!r}")
        self._backend = value
        self._stages = self._compile_stages()
        self._last_batch = None

    def _compile_stages(self):
        """Group consecutive library layers into compiled plans; Python layers stand alone."""
        offsets = {}
        for p in self.param_info:
            offsets.setdefault(p["layer"], {})[p["name"]] = p["offset"]
        stages, run = [], []

        def flush():
            if run:
                descs = [d for _, d in run]
                stages.append(("core", Plan(descs, self.params, self.grads)))
                run.clear()

        for i, layer in enumerate(self.layers):
            desc = layer.core_desc(offsets.get(i, {})) if self._backend == "core" else None
            if desc is None:
                flush()
                stages.append(("python", layer))
            else:
                run.append((i, desc))
        flush()
        return stages

    # -- computation -------------------------------------------------------------------------
    def forward(self, X, training=False):
        """Outputs for X (n_samples, n_in); caches what :meth:`backward` needs.

        X may be any numeric array-like; it is converted to a C-contiguous array of the
        model's dtype (never modified). NaN or infinity in X raise ValueError.
        """
        out = as_float_matrix(X, self.dtype, "X", self.n_in)
        self._last_batch = None
        for kind, stage in self._stages:
            if kind == "core":
                out = stage.forward(out)
            else:
                out = self._python_forward(stage, out, training)
        self._last_batch = out.shape[0]
        return out

    def _python_forward(self, layer, X, training):
        out = np.ascontiguousarray(layer.forward(X, training=training), dtype=self.dtype)
        if out.shape != (X.shape[0], layer.n_out):
            raise ValueError(f"{layer!r}.forward returned shape {out.shape}, expected "
                             f"{(X.shape[0], layer.n_out)}")
        return out

    def backward(self, grad_out):
        """Backpropagate dL/d(output) of the last forward; returns dL/dX.

        Parameter gradients are *added* into ``grads`` (call :meth:`zero_grad` between
        steps, as in PyTorch).
        """
        if self._last_batch is None:
            raise ValueError("backward called before forward: call forward(X) first")
        g = as_float_matrix(grad_out, self.dtype, "grad_out", self.n_out)
        if g.shape[0] != self._last_batch:
            raise ValueError(f"grad_out has {g.shape[0]} rows but the last forward had "
                             f"{self._last_batch}")
        for kind, stage in reversed(self._stages):
            if kind == "core":
                g = stage.backward(g)
            else:
                g = np.ascontiguousarray(stage.backward(g), dtype=self.dtype)
                if g.shape != (self._last_batch, stage.n_in):
                    raise ValueError(f"{stage!r}.backward returned shape {g.shape}, expected "
                                     f"{(self._last_batch, stage.n_in)}")
        return g

    def get_weights(self):
        """A copy of the model's state (the parameter arena), for :meth:`set_weights`."""
        return self.params.copy()

    def set_weights(self, weights):
        """Put back a state taken by :meth:`get_weights` (copied into the arena)."""
        w = np.asarray(weights)
        if w.shape != self.params.shape:
            raise ValueError(f"weights must have shape {self.params.shape}, got {w.shape}")
        self.params[...] = w

    @property
    def is_fused(self):
        """True when the whole model runs as one compiled plan (the fast training path)."""
        return len(self._stages) == 1 and self._stages[0][0] == "core"

    def zero_grad(self):
        """Set every parameter gradient to 0 (one pass over the arena)."""
        self.grads.fill(0)

    def predict(self, X):
        """Network outputs in evaluation mode (no dropout, running statistics)."""
        return self.forward(X, training=False)

    __call__ = forward

    # -- container protocol and display ----------------------------------------------------
    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def named_parameters(self):
        """List of ``(name, view)``, names like ``"0.W"`` (layer index, parameter)."""
        return [(f"{p['layer']}.{p['name']}", getattr(self.layers[p["layer"]], p["name"]))
                for p in self.param_info]

    def __repr__(self):
        rows = [f"Sequential(dtype={self.dtype.name}, backend={self._backend!r}, "
                f"n_params={self.n_params:,})"]
        width = max(len(repr(layer)) for layer in self.layers)
        for i, layer in enumerate(self.layers):
            rows.append(f"  ({i}) {layer!r:<{width}}  params: {layer.n_params():>12,}")
        return "\n".join(rows)
