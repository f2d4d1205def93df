"""Fully connected layers: Dense (with a fused activation) and Maxout."""
from typing import Any, List, Optional, Union

import numpy as np

from fastmlp import init as initializers
from fastmlp._codes import LayerFlag, LayerKind
from fastmlp._serial import Context, register, to_config
from fastmlp._typing import Config, ParamSpec
from fastmlp._validation import check_positive_int
from fastmlp.layers.activations import Activation, activation_from_name
from fastmlp.layers.base import Layer
from fastmlp.reference import layers as ref_layers
from fastmlp.regularizers import Constraint, Penalty


@register
class Dense(Layer):
    """Fully connected layer: ``Z = X W + b``, ``A = activation(Z)``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths. ``W`` has shape (n_in, n_out), ``b`` shape (n_out,).
    activation : str, Activation or None
        Applied to Z inside the same kernel pass ("relu", "tanh", ... or None for identity).
    init : str
        Weight initializer (see :mod:`fastmlp.init`); "auto" is He for the ReLU family,
        Glorot otherwise. Biases start at 0.
    bias : bool
        Whether the layer has the bias ``b``.
    regularizer : Penalty or None
        A penalty on this layer's weights only (e.g. ``L2Penalty(1e-4)``), added to the
        loss by the Trainer.
    constraint : Constraint or None
        Applied to ``W`` after every update (e.g. ``MaxNorm(3.0)``).
    tied_to : Dense or None
        Share that layer's weight matrix instead of owning one (parameter tying); its
        gradient receives the contributions of both uses. With ``transpose=True`` this
        layer uses its transpose, as the decoder of a tied autoencoder:
        ``Dense(256, 784, tied_to=encoder, transpose=True)`` for ``encoder = Dense(784, 256)``.

    Notes
    -----
    Backward, from dA: ``dZ = dA ⊙ f'(Z)``, ``dW += Xᵀ dZ``, ``db += Σ_rows dZ``,
    ``dX = dZ Wᵀ``. ``W``, ``b``, ``dW``, ``db`` are views into the model's arena.
    """

    def __init__(self, n_in: int, n_out: int, activation: Union[str, Activation, None] = None,
                 init: str = "auto", bias: bool = True, regularizer: Optional[Penalty] = None,
                 constraint: Optional[Constraint] = None, tied_to: Optional["Dense"] = None,
                 transpose: bool = False):
        super().__init__()
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.activation = activation_from_name(activation)
        if getattr(self.activation, "approximate", "none") != "none":
            raise ValueError(f"Dense cannot fuse {self.activation!r} (the core has no kernel "
                             "for it): put it after the Dense as a layer of its own")
        self.init = initializers.check_init(init)
        self.bias = bool(bias)
        if regularizer is not None and not callable(getattr(regularizer, "_ranges", None)):
            raise TypeError(f"regularizer must be a fastmlp penalty, got {regularizer!r}")
        if constraint is not None and not callable(getattr(constraint, "_range", None)):
            raise TypeError(f"constraint must be a fastmlp constraint, got {constraint!r}")
        self.regularizer, self.constraint = regularizer, constraint
        self.tied_to, self.transpose = tied_to, bool(transpose)
        if tied_to is not None:
            if not isinstance(tied_to, Dense) or tied_to.tied_to is not None:
                raise ValueError(f"tied_to must be a Dense layer that owns its weights, got "
                                 f"{tied_to!r}")
            want = (n_out, n_in) if transpose else (n_in, n_out)
            have = (tied_to.n_in, tied_to.n_out)
            if want != have:
                raise ValueError(f"tied_to={tied_to!r} has weights of shape {have}; this layer "
                                 f"needs {want}" + (" (transposed)" if transpose else ""))
        elif transpose:
            raise ValueError("transpose=True needs tied_to")
        if tied_to is not None and constraint is not None:
            raise ValueError("a tied layer cannot have its own constraint: set it on the layer "
                             "that owns the weights (tied_to)")
        if tied_to is not None and regularizer is not None:
            raise ValueError("a tied layer cannot have its own regularizer (it owns no weight "
                             "matrix): set it on the layer that owns the weights (tied_to)")

    @property
    def activation_name(self) -> str:
        return self.activation.name

    def get_config(self) -> Config:
        """Constructor arguments as JSON: nested objects as their configs, ``tied_to`` as
        the index of that layer in the model's ``flat_layers``."""
        return dict(n_in=self.n_in, n_out=self.n_out, activation=to_config(self.activation),
                    init=self.init, bias=self.bias,
                    regularizer=None if self.regularizer is None else to_config(self.regularizer),
                    constraint=None if self.constraint is None else to_config(self.constraint),
                    tied_to=None if self.tied_to is None else _layer_index(self.tied_to),
                    transpose=self.transpose)

    @classmethod
    def from_config(cls, config: Config, context: Context) -> "Layer":
        """As :meth:`Layer.from_config`, with the nested activation, regularizer and
        constraint configs rebuilt and ``tied_to`` resolved to the layer of that index."""
        nested = {"activation": Activation, "regularizer": Penalty, "constraint": Constraint}
        kwargs = context.kwargs(cls, config, skip=(*nested, "tied_to"))
        for key, base in nested.items():
            value = config.get(key)
            if isinstance(value, dict):
                kwargs[key] = context.nested(value, base, key)
            elif value is not None and not (key == "activation" and isinstance(value, str)):
                raise ValueError(f"{context.where}: {key} must be a config object or null")
            elif key in config:
                kwargs[key] = value
        tied = config.get("tied_to")
        if tied is not None:
            target = context.reference(tied, "tied_to")
            if not isinstance(target, Dense):
                raise ValueError(f"{context.where}: tied_to={tied} is not a Dense layer")
            kwargs["tied_to"] = target
        return context.build(cls, kwargs)

    def build(self, n_in: int) -> int:
        if n_in != self.n_in:
            raise ValueError(f"{self!r} expects {self.n_in} inputs but receives {n_in}")
        return self.n_out

    def param_specs(self) -> List[ParamSpec]:
        specs = [] if self.tied_to is not None else [("W", (self.n_in, self.n_out), "weight")]
        if self.bias:
            specs.append(("b", (self.n_out,), "bias"))
        return specs

    def bind_shared(self) -> None:
        if self.tied_to is not None:
            if self.tied_to._model is not self._model:
                raise ValueError(f"tied_to={self.tied_to!r} must belong to the same model")
            src = self.tied_to
            self.W, self.dW = (src.W.T, src.dW.T) if self.transpose else (src.W, src.dW)

    def init_params(self, rng: np.random.Generator,
                    next_activation: Optional[str] = None) -> None:
        if self.tied_to is None:
            act = self.activation.name if self.activation.name != "identity" else next_activation
            scheme = initializers.resolve(self.init, act)
            initializers.initialize(scheme, self.W, self.n_in, self.n_out, rng)
        if self.bias:
            self.b[...] = 0

    def core_desc(self, ctx: Any) -> Optional[Config]:
        owner = self.tied_to if self.tied_to is not None else self
        return dict(kind=LayerKind.K_DENSE, act=self.activation.code,
                    alpha=self.activation.alpha, n_in=self.n_in, n_out=self.n_out,
                    w_off=ctx.offsets(owner)["W"], b_off=ctx.offsets(self).get("b", -1),
                    flags=LayerFlag.F_TRANS_W if self.transpose else 0)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        Z, A = ref_layers.dense_forward(X, self.W, self.b if self.bias else None,
                                        self.activation.code, self.activation.alpha)
        self._cache = (X, Z, A)
        return A

    def backward(self, dY: np.ndarray) -> np.ndarray:
        X, Z, A = self._need_cache()
        dX, dW, db = ref_layers.dense_backward(X, self.W, Z, A, dY, self.activation.code,
                                               self.activation.alpha)
        self.dW += dW
        if self.bias:
            self.db += db
        return dX

    def __repr__(self):
        args = [str(self.n_in), str(self.n_out)]
        if self.activation.name != "identity":
            args.append(f"activation={self.activation.name!r}")
        if not self.bias:
            args.append("bias=False")
        if self.tied_to is not None:
            args.append("tied" + (", transpose=True" if self.transpose else ""))
        return f"Dense({', '.join(args)})"


@register
class Maxout(Layer):
    """Maxout units (Goodfellow et al., 2013): each output is the max of ``pieces`` affine
    functions of the input.

    ``Z = X W + b`` with W of shape (n_in, n_out·pieces), where unit j owns columns
    j·pieces … j·pieces + pieces − 1; ``A_j = max_k Z_{j,k}``. The gradient flows to the
    winning piece of each unit (the first one on ties).
    """

    def __init__(self, n_in: int, n_out: int, pieces: int, init: str = "auto",
                 bias: bool = True):
        super().__init__()
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.pieces = check_positive_int(pieces, "pieces")
        self.init = initializers.check_init(init)
        self.bias = bool(bias)

    def build(self, n_in: int) -> int:
        if n_in != self.n_in:
            raise ValueError(f"{self!r} expects {self.n_in} inputs but receives {n_in}")
        return self.n_out

    def param_specs(self) -> List[ParamSpec]:
        specs = [("W", (self.n_in, self.n_out * self.pieces), "weight")]
        if self.bias:
            specs.append(("b", (self.n_out * self.pieces,), "bias"))
        return specs

    def init_params(self, rng: np.random.Generator,
                    next_activation: Optional[str] = None) -> None:
        scheme = initializers.resolve(self.init, None)
        initializers.initialize(scheme, self.W, self.n_in, self.n_out, rng)
        if self.bias:
            self.b[...] = 0

    def core_desc(self, ctx: Any) -> Optional[Config]:
        offsets = ctx.offsets(self)
        return dict(kind=LayerKind.K_MAXOUT, n_in=self.n_in, n_out=self.n_out,
                    pieces=self.pieces, w_off=offsets["W"], b_off=offsets.get("b", -1))

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        Z, A = ref_layers.maxout_forward(X, self.W, self.b if self.bias else None, self.pieces)
        self._cache = (X, Z)
        return A

    def backward(self, dY: np.ndarray) -> np.ndarray:
        X, Z = self._need_cache()
        dX, dW, db = ref_layers.maxout_backward(X, self.W, Z, dY, self.pieces)
        self.dW += dW
        if self.bias:
            self.db += db
        return dX

    def __repr__(self):
        return f"Maxout({self.n_in}, {self.n_out}, pieces={self.pieces})"


def _layer_index(layer):
    """Index of ``layer`` in its model's ``flat_layers`` (how configs refer to a layer)."""
    model = getattr(layer, "_model", None)
    if model is None:
        raise ValueError(f"{layer!r} is referred to by another layer but belongs to no model; "
                         "describe the whole Sequential")
    return next(i for i, other in enumerate(model.flat_layers) if other is layer)
