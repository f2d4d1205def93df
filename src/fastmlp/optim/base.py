"""The optimizer base class: state buffers over the flat parameter arena, one kernel per step.

A concrete optimizer only declares its hyperparameters (torch.optim names and defaults), its
state buffers and its :class:`KernelSpec` (the family code of the fused loop, the core kernel,
its NumPy twin and the kernel's hyperparameter names); the base class does binding,
allocation, validation, dispatch to the core or NumPy reference kernels, and
(de)serialization.
"""
import math
import numbers
import weakref
from typing import Any, Dict, NamedTuple, Tuple

import numpy as np

from fastmlp._codes import OptFamily
from fastmlp._aligned import aligned, aligned_full
from fastmlp._freeze import FrozenParams
from fastmlp._ops import ops_of
from fastmlp._typing import Arena

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# --- validation helpers (messages follow torch.optim) --------------------------------------

def as_real(value, name):
    """``value`` as a Python float; TypeError for anything that is not a real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    return float(value)


def check_lr(lr):
    """A finite learning rate >= 0 (NaN and inf refused)."""
    lr = as_real(lr, "lr")
    if not (0.0 <= lr < math.inf):
        raise ValueError(f"Invalid learning rate: {lr}")
    return lr


def check_nonneg(value, name):
    """A finite real >= 0; ``Invalid <name> value: <value>`` otherwise."""
    value = as_real(value, name)
    if not (0.0 <= value < math.inf):
        raise ValueError(f"Invalid {name} value: {value}")
    return value


def check_unit(value, name):
    """A real in [0, 1]."""
    value = as_real(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Invalid {name} value: {value}")
    return value


def check_flag(value, name):
    if value not in (True, False):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def model_arrays(model):
    """(params, grads) of ``model`` after checking the arena contract; ValueError otherwise."""
    try:
        params, grads = model.params, model.grads
    except AttributeError:
        raise TypeError(f"model must have .params and .grads arrays, got "
                        f"{type(model).__name__}") from None
    for name, a in (("params", params), ("grads", grads)):
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype not in _FLOATS:
            raise ValueError(f"model.{name} must be a 1-D float32 or float64 ndarray, got "
                             f"{getattr(a, 'dtype', type(a).__name__)} with shape "
                             f"{getattr(a, 'shape', None)}")
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"model.{name} must be C-contiguous and writeable")
    if params.shape != grads.shape or params.dtype != grads.dtype:
        raise ValueError(f"model.params ({params.dtype}, {params.shape}) and model.grads "
                         f"({grads.dtype}, {grads.shape}) must have the same dtype and length")
    return params, grads


def _plain(value):
    """0-d arrays to Python scalars and 1-D arrays to tuples (state dicts read back from
    ``np.savez`` or JSON); anything else unchanged."""
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else tuple(value.tolist())
    return tuple(value) if isinstance(value, list) else value


class KernelSpec(NamedTuple):
    """The kernel an optimizer class runs, declared explicitly on the class.

    Attributes
    ----------
    family : OptFamily
        The code the fused training loop (``fastmlp._train``) dispatches on.
    op : str
        The name of the kernel on the backend's ops object (``model.ops``: the compiled
        ``fastmlp._ops.CoreOps`` or its twin ``fastmlp.reference.ops.NumpyOps``, which
        both declare it): ``kernel(params, grads, *states, step, **hyper)``.
    hyper : tuple of str
        The kernel's keyword hyperparameters, as :meth:`Optimizer._kwargs` returns them
        (by default the optimizer's attributes of these names).
    """
    family: OptFamily
    op: str
    hyper: Tuple[str, ...]


#: How an optimizer trains, as its class declares it (:attr:`BaseOptimizer.strategy`).
MINI_BATCH, FULL_BATCH = "mini_batch", "full_batch"
STRATEGIES = (MINI_BATCH, FULL_BATCH)


class BaseOptimizer:
    """What every optimizer is to the Trainer: one class attribute says how it trains.

    Attributes
    ----------
    strategy : {"mini_batch", "full_batch"}
        ``"mini_batch"`` (:class:`Optimizer`): the Trainer's epochs take batches of rows and
        call ``step(model)`` after each backward (or run its kernel in the fused loop).
        ``"full_batch"`` (:class:`~fastmlp.optim.fullbatch.FullBatchSolver`): the Trainer
        hands the objective of all training rows to ``run(model, objective, max_iter,
        on_iteration)``, one solver iteration per epoch. The Trainer picks its loop from
        this attribute, never from the class hierarchy.
    """

    strategy = MINI_BATCH


def _weak(model):
    try:
        return weakref.ref(model)
    except TypeError:           # objects without __weakref__: keep a strong reference
        return lambda: model


class Optimizer(BaseOptimizer):
    """Base class of the first-order optimizers.

    Subclasses set ``kernel`` (a :class:`KernelSpec`), ``_slots`` (the state buffers in the
    kernel's argument order) and implement ``_validate``, and ``_active`` and ``_kwargs`` when
    the defaults do not fit. A subclass without a kernel (``kernel = None``) must override
    ``_update`` (the Python step); it then always trains through the Python step, never the
    fused loop.

    The optimizer binds to the first model it steps (or :meth:`bind`); its state buffers are
    1-D arrays of the arena's length and dtype, allocated once. The model's ``ops`` (its
    backend: the compiled kernels, the default, or their NumPy twins) runs the kernel.
    ``lr`` may be changed at any time (schedules do); the other hyperparameters are fixed at
    construction (:meth:`load_state_dict` may replace them all).
    """

    kernel = None
    _slots = ()
    _initial = {}

    def __init__(self, lr: float, **hyper: Any):
        object.__setattr__(self, "_hyper", {})
        self.lr = lr
        self._hyper.update(self._validate(**hyper))
        self.reset()

    # -- hyperparameters ----------------------------------------------------------------------
    @classmethod
    def _validate(cls, **hyper):
        """Return the hyperparameters (other than lr) validated and normalized."""
        raise NotImplementedError

    def _active(self, slot):
        """Whether state buffer ``slot`` is used with the current hyperparameters."""
        return True

    def _kwargs(self):
        """Keyword arguments of the kernel for the current hyperparameters: by default the
        attributes named by ``kernel.hyper``. Runs at every fused run (each epoch, each
        progress chunk): hyperparameters are read from their dict directly, not through
        ``__getattr__`` (~1 us an attribute on a Zen 1 core, after a failed normal lookup)."""
        hyper = self._hyper
        return {name: hyper[name] if name in hyper else getattr(self, name)
                for name in self._spec().hyper}

    @classmethod
    def _spec(cls):
        """The class's :class:`KernelSpec`; TypeError naming the class when it has none."""
        if cls.kernel is None:
            raise TypeError(f"{cls.__name__} declares no kernel (kernel = KernelSpec(...)) and "
                            "does not override Optimizer._update: it has no update rule")
        return cls.kernel

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        object.__setattr__(self, "_lr", check_lr(value))

    @property
    def hyperparameters(self) -> Dict[str, Any]:
        """All hyperparameters, ``lr`` first, as the constructor takes them."""
        return {"lr": self._lr, **self._hyper}

    def __getattr__(self, name):
        hyper = self.__dict__.get("_hyper", {})
        if name in hyper:
            return hyper[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in self.__dict__.get("_hyper", {}):
            raise AttributeError(f"{name} is fixed at construction; create a new optimizer "
                                 "(only lr may change during training)")
        object.__setattr__(self, name, value)

    def __getstate__(self):
        """Pickle without the (weak) model reference: a copy binds to the next model it
        steps, provided its arena matches the state buffers."""
        return {**self.__dict__, "_model": None}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"

    # -- binding and state ----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the state buffers, the step count and the bound model."""
        self.state = {}
        #: the step count's one home: a one-element buffer the fused loop advances in place
        self._step = np.zeros(1, dtype=np.intp)
        self._model = None
        self._n, self._dtype = None, None

    @property
    def step_count(self) -> int:
        """Updates taken so far (the next one is step ``step_count + 1``), by
        :meth:`step` or by the fused training loop, which counts them in place."""
        return int(self._step[0])

    @step_count.setter
    def step_count(self, value: int) -> None:
        self._step[0] = value

    def bind(self, model: Arena) -> Tuple[np.ndarray, np.ndarray]:
        """Bind to ``model`` and allocate the state buffers; returns (params, grads)."""
        params, grads = model_arrays(model)
        if self._model is not None:
            if self._model() is not model:
                raise ValueError("this optimizer is bound to another model; call reset() or "
                                 "create a new optimizer")
            if params.shape[0] != self._n or params.dtype != self._dtype:
                raise ValueError(f"the model's arena changed from {self._n} {self._dtype} to "
                                 f"{params.shape[0]} {params.dtype} values since the "
                                 "optimizer was bound")
        else:
            for name, buf in self.state.items():     # state loaded before binding
                if buf.shape != params.shape or buf.dtype != params.dtype:
                    raise ValueError(f"state[{name!r}] ({buf.dtype}, {buf.shape[0]} values) "
                                     f"does not match the model's arena ({params.dtype}, "
                                     f"{params.shape[0]} values)")
                self.state[name] = aligned(buf)       # as the arena: see fastmlp._aligned
            self._model = _weak(model)
            self._n, self._dtype = params.shape[0], params.dtype
        for name in self._slots:
            if self._active(name) and name not in self.state:
                self.state[name] = aligned_full(self._n, self._dtype, self._initial.get(name, 0.0))
        return params, grads

    def step(self, model: Arena) -> None:
        """Apply one update to ``model.params`` from ``model.grads`` (in place)."""
        params, grads = self.bind(model)
        held = FrozenParams(model) if getattr(model, "flat_layers", None) else None
        self._update(model, params, grads)
        if held:
            held.restore()                    # frozen layers (layer.trainable = False)
        self.step_count += 1

    def _update(self, model, params, grads):
        """Step ``step_count + 1`` of the class's kernel, the one of the model's ops (the
        core's, or its NumPy twin for ``backend="numpy"``), on the bound arrays, in place."""
        spec = self._spec()
        buffers = [self.state.get(name) if self._active(name) else None
                   for name in self._slots]
        kernel = getattr(ops_of(model), spec.op)
        kernel(params, grads, *buffers, self.step_count + 1, **self._kwargs())

    # -- the fused trainer's side (fastmlp._train.Runner) ------------------------------------------
    @property
    def _fused_binding(self):
        """The fused loop's binding function (:meth:`_bind_fused`); absent (AttributeError,
        so ``hasattr`` is False) when the class's step is not its kernel's, which the
        training loop then runs through the Python step (see :meth:`_runs_kernel`)."""
        if not type(self)._runs_kernel():
            raise AttributeError(f"{type(self).__name__} has no kernel for the fused loop")
        return self._bind_fused

    @classmethod
    def _runs_kernel(cls):
        """Whether ``cls.kernel`` is its step: it has one, declared by a class at least as
        derived as the one defining ``_update`` (a subclass that overrides ``_update`` of a
        class with a kernel gets its own step; it may declare ``kernel`` again to opt in)."""
        if cls.kernel is None:
            return False
        declares = next(c for c in cls.__mro__ if "kernel" in vars(c))
        steps = next(c for c in cls.__mro__ if "_update" in vars(c))
        return issubclass(declares, steps)

    def _bind_fused(self, model):
        """Bind to ``model`` and return ``(family code, kernel hyperparameters, state
        buffers in kernel order (None when unused), step count)`` for the fused loop, which
        then takes steps ``step_count + 1, ...`` itself, counting each in the step count
        it was given: the optimizer's own one-element buffer, not a copy."""
        self.bind(model)
        states = tuple(self.state[name] if self._active(name) else None
                       for name in self._slots)
        return int(self._spec().family), self._kwargs(), states, self._step

    # -- serialization --------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """A plain dict: ``type``, ``step``, ``hyper`` (dict of scalars) and ``state``
        (dict of 1-D arrays, copies)."""
        return {"type": type(self).__name__, "step": self.step_count,
                "hyper": dict(self.hyperparameters),
                "state": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, d: Dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; ValueError on any mismatch (nothing is changed)."""
        _check_keys(d, {"type", "step", "hyper", "state"}, "state dict")
        if _plain(d["type"]) != type(self).__name__:
            raise ValueError(f"state dict is for {d['type']!r}, not {type(self).__name__!r}")
        step = _plain(d["step"])
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral) \
                or step < 0:
            raise ValueError(f"state dict 'step' must be an integer >= 0, got {step!r}")
        if not isinstance(d["hyper"], dict):
            raise ValueError("state dict 'hyper' must be a dict")
        _check_keys(d["hyper"], set(self.hyperparameters), "state dict 'hyper'")
        other = type(self)(**{k: _plain(v) for k, v in d["hyper"].items()})
        state = self._check_state(d["state"], other, int(step))
        self._hyper, self._lr = other._hyper, other._lr
        self.state, self.step_count = state, int(step)

    def _check_state(self, state, other, step):
        if not isinstance(state, dict):
            raise ValueError("state dict 'state' must be a dict")
        expected = {name for name in self._slots if other._active(name)}
        if state or step > 0:
            _check_keys(state, expected, "state dict 'state'")
        out, first = {}, None
        for name in sorted(state):
            a = state[name]
            if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype not in _FLOATS:
                raise ValueError(f"state[{name!r}] must be a 1-D float32 or float64 array")
            first = first or (a.shape, a.dtype)
            if (a.shape, a.dtype) != first:
                raise ValueError("state buffers must all have one length and dtype")
            if self._n is not None and (a.shape[0] != self._n or a.dtype != self._dtype):
                raise ValueError(f"state[{name!r}] ({a.dtype}, {a.shape[0]} values) does not "
                                 f"match the bound arena ({self._dtype}, {self._n} values)")
            out[name] = np.array(a, order="C", copy=True)
        return out


def _check_keys(d, expected, what):
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a dict, got {type(d).__name__}")
    missing, extra = expected - set(d), set(d) - expected
    if missing or extra:
        raise ValueError(f"{what}: missing keys {sorted(missing)}, unexpected keys "
                         f"{sorted(extra)}")
