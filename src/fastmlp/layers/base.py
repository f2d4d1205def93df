"""The Layer protocol shared by library layers and layers users write in NumPy."""
from typing import Any, List, Optional

import numpy as np

from fastmlp._serial import Context, constructor_config
from fastmlp._symbolic import apply_layer
from fastmlp._typing import BufferSpec, Config, ParamSpec

#: How many times any layer's ``trainable`` was set: a training loop computes the frozen
#: ranges of its model again only after it changed (fastmlp._freeze.FrozenRanges).
_TRAINABLE_SETS = [0]


class Layer:
    """Base class of every layer: a map from (batch, n_in) to (batch, n_out).

    A layer written by a user subclasses this and implements :meth:`forward` and
    :meth:`backward` in NumPy; it may declare trainable parameters in :meth:`param_specs`,
    which the model then places in its arena and exposes as attributes (``self.<name>``
    and its gradient ``self.d<name>``, both views). Library layers also describe
    themselves to the compiled core through :meth:`core_desc`; a model made only of
    such layers runs forward and backward in one call without the GIL.
    """

    #: name of the activation this layer applies, used by init="auto" of the layer before
    activation_name = None
    #: the config key holding the configs of the layers a container holds (None: not one)
    children_key = None

    @property
    def trainable(self) -> bool:
        """False freezes the layer (and a container's children): fit, the fused step and
        ``optimizer.step`` leave its parameters as they are (Keras' ``trainable``)."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value is not True and value is not False:
            raise TypeError(f"trainable must be True or False, got {value!r}")
        self._trainable = value
        _TRAINABLE_SETS[0] += 1

    def __init__(self) -> None:
        self.n_in = None
        self.n_out = None
        self._model = None
        self._cache = None

    def __call__(self, x: Any, name: Optional[str] = None) -> Any:
        """Apply the layer to a symbolic tensor (the functional API: ``fm.Input``, then
        ``fm.Model``); returns the output tensor. Calling one layer on two tensors shares
        its parameters. ``name`` names the output (e.g. a model output's name)."""
        return apply_layer(self, x, name)

    # -- shapes and parameters -------------------------------------------------------------
    def build(self, n_in: int) -> int:
        """Fix the layer's sizes for an input width ``n_in``; return the output width.

        The default keeps the width (elementwise layers). Raise ValueError on a mismatch.
        """
        if self.n_in is not None and self.n_in != n_in:
            raise ValueError(f"{self!r} expects {self.n_in} inputs, got {n_in}")
        self.n_in = self.n_out = n_in
        return n_in

    def param_specs(self) -> List[ParamSpec]:
        """List of ``(name, shape, role)`` of trainable parameters; role is "weight",
        "bias" or "other" (regularizers exempt biases by role)."""
        return []

    def init_params(self, rng: np.random.Generator,
                    next_activation: Optional[str] = None) -> None:
        """Initialize the parameter views in place (called once, by the model)."""

    def buffer_specs(self) -> List[BufferSpec]:
        """List of ``(name, shape, initial value)`` of non-trainable state (running
        statistics), kept in the model's ``buffers`` arena."""
        return []

    def children(self) -> List["Layer"]:
        """Layers contained in this one (``Residual``); the model owns their parameters."""
        return []

    def bind_shared(self) -> None:
        """Called once every layer of the model has its views: take views of another
        layer's parameters (tied weights)."""

    def core_desc(self, ctx: Any) -> Optional[Config]:
        """The compiled-core descriptor of this layer (a dict of ``LayerDesc`` fields);
        None for layers that run in Python. ``ctx.offsets(self)`` maps each parameter and
        buffer name to its offset, ``ctx.index(self)`` is the layer's index in the model."""
        return None

    def core_descs(self, ctx: Any) -> Optional[List[Config]]:
        """The list of descriptors this layer compiles to (one, or a bracket of several for
        containers), or None when it must run in Python."""
        desc = self.core_desc(ctx)
        if desc is None:
            return None
        desc.setdefault("stream", ctx.index(self))
        return [desc]

    def get_config(self) -> Config:
        """The constructor arguments as JSON values: ``type(self)(**config)`` rebuilds the
        layer (used by ``fastmlp.save``). The default reads each argument back from the
        attribute of the same name; override when they differ."""
        return constructor_config(self)

    @classmethod
    def from_config(cls, config: Config, context: Context) -> "Layer":
        """The layer described by ``config`` (from :meth:`get_config`): by default
        ``cls(**config)`` with plain JSON arguments. ``context`` (a
        ``fastmlp._serial.Context``) resolves what the config refers to: nested objects,
        the contained layers of a container (``children_key``), tied layers by index.
        ValueError naming the layer when the config is invalid."""
        return context.build(cls, context.kwargs(cls, config))

    # -- computation (NumPy path) --------------------------------------------------------
    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """Return the layer's output for X (batch, n_in); keep what backward needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(X, training)")

    def backward(self, dY: np.ndarray) -> np.ndarray:
        """Given dL/dY for the last forward, add parameter gradients into ``self.d<name>``
        and return dL/dX."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward(dY)")

    def _need_cache(self):
        if self._cache is None:
            raise ValueError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    # -- pickling ----------------------------------------------------------------------------
    def __getstate__(self):
        """The layer's attributes without its views into a model's arenas (the model puts
        them back when it is unpickled) and without the forward cache."""
        state = dict(self.__dict__)
        state["_cache"] = None
        if self._model is not None:
            for name, _, _ in self.param_specs():
                state.pop(name, None)
                state.pop("d" + name, None)
            for name, _, _ in self.buffer_specs():
                state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        model = state.get("_model")
        if model is not None:           # a layer copied alone: its model may wait for it
            model._finish_unpickling()

    # -- display ---------------------------------------------------------------------------
    def n_params(self) -> int:
        return int(sum(np.prod(shape, dtype=np.int64) for _, shape, _ in self.param_specs()))

    def __repr__(self):
        return f"{type(self).__name__}()"
