"""Sequential: a stack of layers over one contiguous parameter arena."""
import numbers
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fastmlp import _model_config
from fastmlp._aligned import aligned, aligned_full
from fastmlp._ops import Ops, get_ops
from fastmlp._nesting import adopt_nested, layer_list
from fastmlp._plan import Plan, TrainingState
from fastmlp._serial import register_kind
from fastmlp._stages import compile_stages
from fastmlp._typing import Config, Seed
from fastmlp._validation import (as_float_matrix, check_dtype, check_positive_int, contiguous,
                                 matrix_ready)
from fastmlp.layers.base import Layer

#: Rows per compiled call in predict (bounds the workspace, not the result).
PREDICT_CHUNK = 1024


@register_kind("sequential")
class Sequential:
    """A feedforward network: layers applied in order, parameters in one arena.

    Parameters
    ----------
    *layers : Layer, or one list of Layer
        ``Sequential([l1, l2])`` (Keras) or ``Sequential(l1, l2)`` (torch's
        ``nn.Sequential``). The first layer must fix the input width (e.g. ``Dense``).
        A Sequential among them is nested, as a :class:`~fastmlp.layers.Chain` of its
        layers: they move into this model with their weights (use this model from then on;
        the inner one keeps a copy of its arena).
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
    state : TrainingState
        The RNG key and counter (``rng_seed``, ``rng_step``) the compiled plans read.
    """

    def __init__(self, *layers: Union[Layer, List[Layer]], dtype: DTypeLike = "float32",
                 seed: Seed = None, backend: str = "core"):
        layers, adopted = adopt_nested(layer_list(layers))
        if not layers:
            raise ValueError("layers must hold at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fastmlp Layer, got {type(layer).__name__}")
        self.layers = layers
        self.flat_layers = _flatten(layers)
        for layer in self.flat_layers:
            if layer._model is not None:
                raise ValueError(f"{layer!r} already belongs to another model")
        if len(set(map(id, self.flat_layers))) != len(self.flat_layers):
            raise ValueError("a layer object appears twice in layers; to share weights use "
                             "Dense(..., tied_to=other)")
        self.dtype = np.dtype(check_dtype(dtype))
        self.seed = seed
        #: the RNG key and counter of dropout and noise, shared with the compiled plans
        self.state = TrainingState(rng_key(seed))
        self._build_shapes()
        self._build_arena()
        adopted.restore()                  # the weights of nested models, not fresh ones
        self._last_batch = None
        self._local = threading.local()
        self._python_lock = threading.Lock()
        self.backend = backend
        self._train_lock = threading.Lock()
        #: the mode of ``model(X)`` (torch's ``Module.training``): True after construction
        self.training = True

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
        """Place every parameter in ``params`` (gradients in ``grads``) and every buffer in
        ``buffers``; give the layers their views; initialize them in order."""
        self._allocate_arena()
        _init_sequence(self.layers, np.random.default_rng(self.seed))

    def _allocate_arena(self):
        """The arenas of ``flat_layers`` (parameters at 0, buffers at their initial values)
        and the layers' views into them."""
        info, buf_info, offset, boff = [], [], 0, 0
        for i, layer in enumerate(self.flat_layers):
            for name, shape, role in layer.param_specs():
                info.append(dict(layer=i, name=name, role=role, offset=offset, shape=tuple(shape)))
                offset += _size(shape)
            for name, shape, value in layer.buffer_specs():
                buf_info.append(dict(layer=i, name=name, offset=boff, shape=tuple(shape),
                                     value=value))
                boff += _size(shape)
        self.param_info, self.buffer_info = info, buf_info
        self.params = aligned_full(offset, self.dtype)      # cache-line aligned: see _aligned
        self.grads = aligned_full(offset, self.dtype)
        self.buffers = np.zeros(boff, dtype=self.dtype)
        for b in buf_info:
            self.buffers[b["offset"]:b["offset"] + _size(b["shape"])] = \
                np.broadcast_to(b["value"], b["shape"]).reshape(-1)
        self._bind_views()

    def _bind_views(self):
        """Give every layer its views of ``params``, ``grads`` and ``buffers`` (the arenas
        aligned first: an unpickled copy comes back at NumPy's alignment)."""
        self.params, self.grads = aligned(self.params), aligned(self.grads)
        for p in self.param_info:
            layer = self.flat_layers[p["layer"]]
            sl = slice(p["offset"], p["offset"] + _size(p["shape"]))
            setattr(layer, p["name"], self.params[sl].reshape(p["shape"]))
            setattr(layer, "d" + p["name"], self.grads[sl].reshape(p["shape"]))
        for b in self.buffer_info:
            view = self.buffers[b["offset"]:b["offset"] + _size(b["shape"])].reshape(b["shape"])
            setattr(self.flat_layers[b["layer"]], b["name"], view)
        for layer in self.flat_layers:
            layer._model = self
        for layer in self.flat_layers:
            layer.bind_shared()

    # -- pickling and copy.deepcopy: exact, through the arenas -------------------------------
    _TRANSIENT = ("_local", "_python_lock", "_train_lock", "_stages", "_last_batch", "_ops")

    def __getstate__(self):
        """Everything but the locks, the per-thread plans and the compiled stages (rebuilt
        on unpickling); the layers travel without their views, which are rebound."""
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()
        self._python_lock, self._train_lock = threading.Lock(), threading.Lock()
        self._last_batch = None
        self._unpickling = True
        self._finish_unpickling()

    def _finish_unpickling(self):
        """Bind the views and compile, once every layer has its state back (a layer copied
        alone brings its model along, and gets its own state after the model's)."""
        if not self.__dict__.get("_unpickling") or \
                not all("n_in" in layer.__dict__ for layer in self.flat_layers):
            return
        del self._unpickling
        self._bind_views()
        self.backend = self._backend             # compiles the stages

    @property
    def n_params(self) -> int:
        return self.params.shape[0]

    @property
    def rng_step(self) -> int:
        """Training forward passes so far: the counter of the dropout/noise RNG (held in
        :attr:`state`, which the compiled plans and the fused loop read and advance)."""
        return self.state.rng_step

    @rng_step.setter
    def rng_step(self, value: int) -> None:
        self.state.rng_step = int(value)

    @property
    def rng_seed(self) -> int:
        """The key of the dropout/noise RNG (in :attr:`state`: no recompiling)."""
        return self.state.seed

    @rng_seed.setter
    def rng_seed(self, value: int) -> None:
        self.state.seed = int(value)

    @property
    def ops(self) -> Ops:
        """The backend as an object (``CoreOps`` or ``NumpyOps``, chosen by
        :attr:`backend`): the kernels optimizers, penalties and clipping run here."""
        return self._ops

    @property
    def plan(self) -> Optional[Plan]:
        """The compiled plan that runs the whole model (what the fused training loop
        steps), or None when the model is not one compiled stage (:attr:`is_fused`)."""
        return self._stages[0][1] if self.is_fused else None

    @property
    def backend(self) -> str:
        """The name of :attr:`ops`; setting it chooses the ops and recompiles."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._ops = get_ops(value)
        self._backend = value
        self._stages = self._compile_stages()
        self._stages_version = getattr(self, "_stages_version", 0) + 1
        self._last_batch = None

    def _compile_stages(self):
        """Group consecutive library layers into compiled plans; Python layers stand alone
        (:func:`fastmlp._stages.compile_stages`)."""
        return compile_stages(self)

    def get_weights(self) -> np.ndarray:
        """A copy of the model's state (parameters, then buffers such as running
        statistics), for :meth:`set_weights`."""
        return np.concatenate([self.params, self.buffers])

    def set_weights(self, weights: ArrayLike) -> None:
        """Put back a state taken by :meth:`get_weights` (copied into the arena)."""
        w = np.asarray(weights)
        n = self.params.shape[0] + self.buffers.shape[0]
        if w.shape != (n,):
            raise ValueError(f"weights must have shape ({n},), got {w.shape}")
        self.params[...] = w[:self.params.shape[0]]
        self.buffers[...] = w[self.params.shape[0]:]

    # -- configuration, save/load and interop (fastmlp._model_config, fastmlp.interop) -------
    def get_config(self) -> Config:
        """The architecture as JSON data: layer configs, dtype, seed, the dropout RNG key
        and counter, backend. :meth:`from_config` rebuilds the model (fresh weights)."""
        return _model_config.model_config(self)

    @classmethod
    def from_config(cls, config: Config,
                    custom_objects: Optional[Dict[str, Any]] = None) -> "Sequential":
        """A new model from :meth:`get_config` (same seed: same initial weights).
        ``custom_objects``: ``{name: class}`` for user layers. ValueError on a bad config."""
        return _model_config.model_from_config(cls, config, custom_objects)

    def __fastmlp_save__(self) -> Tuple[Config, Dict[str, np.ndarray]]:
        """``(config, arrays)`` for ``fastmlp.io.save``: :meth:`get_config` and the live
        arenas ``params`` and ``buffers`` (not copies)."""
        return _model_config.pack_model(self)

    @classmethod
    def __fastmlp_load__(cls, config: Config, arrays: Dict[str, np.ndarray],
                         custom_objects: Optional[Dict[str, Any]] = None) -> "Sequential":
        """The model :meth:`__fastmlp_save__` described, its arenas filled from ``arrays``
        (which it consumes). ValueError when they do not describe a valid model."""
        return _model_config.unpack_model(cls, config, arrays, custom_objects)

    def to_torch_state_dict(self) -> Dict[str, np.ndarray]:
        """Parameters and buffers as the ``state_dict`` of the matching
        ``torch.nn.Sequential`` (NumPy arrays): ``"<i>.weight"`` is Wᵀ of shape (n_out,
        n_in), ``"<i>.bias"`` b; PReLU, BatchNorm (running statistics included) and
        LayerNorm as torch names them; a Residual's layers under ``"<i>.<j>."``. ``i`` is
        the module's position in the torch Sequential: the layer's position in ``layers``,
        where a Dense with a fused activation counts as two modules (Linear, then the
        activation). See :mod:`fastmlp.interop` (ValueError naming an unsupported layer)."""
        from fastmlp.interop import to_torch_state_dict
        return to_torch_state_dict(self)

    @classmethod
    def from_torch_state_dict(cls, state: Dict[str, Any], layers: List[Layer],
                              dtype: Optional[DTypeLike] = None, seed: Seed = None,
                              backend: str = "core") -> "Sequential":
        """A model of ``layers`` (in torch module order, as :meth:`to_torch_state_dict`
        numbers them) with the weights of a torch state dict (NumPy arrays or tensors),
        transposed into the arena. ``dtype`` defaults to float64 when every weight is
        float64, else float32."""
        from fastmlp.interop import from_torch_state_dict
        return from_torch_state_dict(cls, state, layers, dtype, seed, backend)

    @property
    def is_fused(self) -> bool:
        """True when the whole model runs as one compiled plan (the fast training path)."""
        return len(self._stages) == 1 and self._stages[0][0] == "core"

    # -- computation -------------------------------------------------------------------------
    def forward(self, X: ArrayLike, training: bool = False) -> np.ndarray:
        """Outputs for X (n_samples, n_in); caches what :meth:`backward` needs.

        X may be any numeric array-like; it is converted to a C-contiguous array of the
        model's dtype (never modified). NaN or infinity in X raise ValueError.
        """
        out = as_float_matrix(X, self.dtype, "X", self.n_in, ops=self.ops)
        self._last_batch = None
        if training:
            self.state.rng_step += 1       # every stage reads it: one step per forward
        for kind, stage in self._stages:
            if kind == "core":
                out = stage.forward(out, training)
            else:
                out = self._python_forward(stage, out, training)
        self._last_batch = out.shape[0]
        return out

    def _python_forward(self, layer, X, training):
        out = contiguous(layer.forward(X, training=training), self.dtype)
        if out.shape != (X.shape[0], layer.n_out):
            raise ValueError(f"{layer!r}.forward returned shape {out.shape}, expected "
                             f"{(X.shape[0], layer.n_out)}")
        return out

    def backward(self, grad_out: ArrayLike) -> np.ndarray:
        """Backpropagate dL/d(output) of the last forward; returns dL/dX.

        Parameter gradients are *added* into ``grads`` (call :meth:`zero_grad` between
        steps, as in PyTorch).
        """
        if self._last_batch is None:
            raise ValueError("backward called before forward: call forward(X) first")
        g = as_float_matrix(grad_out, self.dtype, "grad_out", self.n_out, ops=self.ops)
        if g.shape[0] != self._last_batch:
            raise ValueError(f"grad_out has {g.shape[0]} rows but the last forward had "
                             f"{self._last_batch}")
        for kind, stage in reversed(self._stages):
            if kind == "core":
                g = stage.backward(g)
            else:
                g = contiguous(stage.backward(g), self.dtype)
                if g.shape != (self._last_batch, stage.n_in):
                    raise ValueError(f"{stage!r}.backward returned shape {g.shape}, expected "
                                     f"{(self._last_batch, stage.n_in)}")
        return g

    def zero_grad(self) -> None:
        """Set every parameter gradient to 0 (one pass over the arena)."""
        self.grads.fill(0)

    def predict(self, X: ArrayLike, batch_size: int = PREDICT_CHUNK) -> np.ndarray:
        """Network outputs in evaluation mode (no dropout, running statistics).

        Thread-safe: each thread runs its own compiled plans (workspaces), without the GIL,
        so concurrent predictions on one model run in parallel and equal serial ones; it
        does not disturb the caches of :meth:`forward`. Rows are processed ``batch_size``
        at a time, which bounds the workspace. No rows give an empty (0, n_out) array.
        """
        # an array ready as it is is checked for NaN and inf by the core as it reads it
        unchecked = self.ops.compiled and matrix_ready(X, self.dtype, self.n_in, False)
        if not unchecked:
            X = as_float_matrix(X, self.dtype, "X", self.n_in, allow_empty=True,
                                ops=self.ops)             # converts, or says what is wrong
        if type(batch_size) is not int or not 1 <= batch_size < 2**31:
            batch_size = check_positive_int(batch_size, "batch_size")
        if X.shape[0] == 0:
            return np.empty((0, self.n_out), dtype=self.dtype)
        stages = self._thread_stages()
        if len(stages) == 1 and stages[0][0] == "core":     # one GIL-free call for it all
            return stages[0][1].predict(X, batch_size, unchecked)
        if unchecked and not self.ops.array_is_finite(X):
            raise ValueError("X contains NaN or infinity")
        out = np.empty((X.shape[0], self.n_out), dtype=self.dtype)
        for start in range(0, X.shape[0], batch_size):
            h = X[start:start + batch_size]
            for kind, stage in stages:
                if kind == "core":
                    h = stage.forward(h, False)
                else:      # Python layers keep their cache on the layer: one thread at a time
                    with self._python_lock:
                        h = self._python_forward(stage, h, False)
            out[start:start + batch_size] = h
        return out

    def _thread_stages(self):
        """This thread's copy of the compiled stages (built on first use)."""
        local = self._local
        if getattr(local, "version", None) != self._stages_version:
            local.stages = self._compile_stages()
            local.version = self._stages_version
        return local.stages

    def __call__(self, X):
        """``model(X)``: :meth:`forward` in the model's mode, as a torch module: training
        (dropout and noise on, BatchNorm on batch statistics, its running statistics
        updated) after construction or :meth:`train`, evaluation after :meth:`eval`.
        :meth:`forward` takes the mode explicitly; :meth:`predict` always evaluates."""
        return self.forward(X, training=self.training)

    def train(self, mode: bool = True) -> "Sequential":
        """Set the mode of ``model(X)``: training (``mode=True``) or evaluation; returns the
        model (torch's ``Module.train``). The Trainer and ``predict`` do not depend on it."""
        if mode not in (True, False):
            raise TypeError(f"train(mode) takes True or False, got {mode!r}")
        self.training = bool(mode)
        return self

    def eval(self) -> "Sequential":
        """Evaluation mode for ``model(X)`` (``train(False)``); returns the model."""
        return self.train(False)

    # -- container protocol and display ----------------------------------------------------
    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def named_parameters(self) -> List[Tuple[str, np.ndarray]]:
        """List of ``(name, view)``, in arena order. A name is the layer's path, then the
        parameter: ``"0.W"`` for ``model[0].W``, ``"1.0.b"`` for the first layer inside
        the container ``model[1]`` (a Residual or a nested Sequential), as torch names
        its modules."""
        paths = _layer_paths(self.layers)
        return [(f"{paths[id(layer)]}.{p['name']}", getattr(layer, p["name"]))
                for p in self.param_info
                for layer in (self.flat_layers[p["layer"]],)]

    def parameters(self) -> List[np.ndarray]:
        """List of the parameter views (``layer.W``, ``layer.b``, ...), in arena order, as
        ``torch.nn.Module.parameters()``; ``model.params`` is the same values as one array."""
        return [view for _, view in self.named_parameters()]

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        """Print the layers as Keras' ``model.summary()``: each layer, its output shape and
        its parameter count, then the totals. ``print_fn`` receives each line."""
        rows = [(f"({i}) {layer!r}", f"(None, {layer.n_out})", f"{layer.n_params():,}")
                for i, layer in enumerate(self.layers)]
        head = ("Layer", "Output shape", "Param #")
        widths = [max(len(r[c]) for r in rows + [head]) for c in range(3)]
        rule = "-" * (sum(widths) + 4)
        lines = [f"Sequential (dtype={self.dtype.name}, backend={self._backend!r})", rule,
                 f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]:>{widths[2]}}",
                 rule]
        lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
        lines += [rule, f"Total params: {self.n_params:,}",
                  f"Non-trainable buffers: {self.buffers.shape[0]:,}", rule]
        for line in lines:
            print_fn(line)

    def __repr__(self):
        rows = [f"Sequential(dtype={self.dtype.name}, backend={self._backend!r}, "
                f"n_params={self.n_params:,})"]
        width = max(len(repr(layer)) for layer in self.layers)
        for i, layer in enumerate(self.layers):
            rows.append(f"  ({i}) {layer!r:<{width}}  params: {layer.n_params():>12,}")
        return "\n".join(rows)


def rng_key(seed):
    """The key of a model's counter-based RNG: ``seed``, or a fresh random one for None.
    ValueError unless seed is None or an integer in [0, 2**63)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not 0 <= seed < 2**63):
        raise ValueError(f"seed must be None or an integer in [0, 2**63), got {seed!r}")
    return int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**63)


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _flatten(layers):
    """Every layer, containers before their children (depth first)."""
    out = []
    for layer in layers:
        out.append(layer)
        out.extend(_flatten(layer.children()))
    return out


def _layer_paths(layers, prefix=""):
    """``{id(layer): "i.j..."}``: each layer's position, through containers."""
    out = {}
    for i, layer in enumerate(layers):
        out[id(layer)] = f"{prefix}{i}"
        out.update(_layer_paths(layer.children(), f"{prefix}{i}."))
    return out


def _init_sequence(layers, rng):
    """Initialize in order; each layer learns which activation follows it (init="auto")."""
    for i, layer in enumerate(layers):
        nxt = layers[i + 1].activation_name if i + 1 < len(layers) else None
        layer.init_params(rng, nxt)
        _init_sequence(layer.children(), rng)
