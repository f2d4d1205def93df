"""Activation layers: elementwise functions, PReLU (learnable slopes) and Softmax."""
from typing import Any, List, Optional, Union

import numpy as np

from fastmlp._codes import ACT_NAMES as ACT_CODES, LayerKind
from fastmlp._serial import register
from fastmlp._typing import Config, ParamSpec
from fastmlp.layers.base import Layer
from fastmlp.reference import activations as ref_act
from fastmlp.reference import layers as ref_layers


def _check_finite_param(value, name):
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@register
class Activation(Layer):
    """An elementwise activation ``A = f(X)`` (see ``fastmlp.reference.activations``)."""

    name = "identity"

    def __init__(self, alpha: float = 0.0):
        super().__init__()
        self.alpha = _check_finite_param(alpha, "alpha")

    @property
    def activation_name(self) -> str:
        return self.name

    @property
    def code(self) -> int:
        return ACT_CODES[self.name]

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return dict(kind=LayerKind.K_ACT, act=self.code, alpha=self.alpha,
                    n_in=self.n_in, n_out=self.n_out)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        A = ref_act.forward(self.code, X, self.alpha)
        self._cache = (X, A)
        return A

    def backward(self, dY: np.ndarray) -> np.ndarray:
        X, A = self._need_cache()
        return ref_act.backward(self.code, X, A, dY, self.alpha)

    def __repr__(self):
        return f"{type(self).__name__}()"


@register
class Identity(Activation):
    """f(x) = x."""
    name = "identity"


@register
class Sigmoid(Activation):
    """f(x) = 1 / (1 + e^{−x}); f' = f (1 − f)."""
    name = "sigmoid"


@register
class Tanh(Activation):
    """f(x) = tanh x; f' = 1 − f²."""
    name = "tanh"


@register
class ReLU(Activation):
    """f(x) = max(x, 0); f'(x) = 1 for x > 0, else 0 (0 at x = 0, as PyTorch)."""
    name = "relu"


@register
class LeakyReLU(Activation):
    """f(x) = x for x > 0, negative_slope·x otherwise (torch's ``negative_slope``; Keras'
    and older fastmlp's ``alpha`` is the same number)."""
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, alpha: Optional[float] = None):
        super().__init__(negative_slope if alpha is None else alpha)

    @property
    def negative_slope(self) -> float:
        return self.alpha

    def get_config(self) -> Config:
        return {"negative_slope": self.alpha}

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.alpha})"


@register
class ELU(Activation):
    """f(x) = x for x > 0, alpha·(e^x − 1) otherwise; f' = f + alpha for x <= 0."""
    name = "elu"

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


@register
class Softplus(Activation):
    """f(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^{−|x|}); f' = σ(x)."""
    name = "softplus"


@register
class ArcTan(Activation):
    """f(x) = arctan x; f' = 1 / (1 + x²)."""
    name = "arctan"


@register
class HardTanh(Activation):
    """f(x) = clip(x, −1, 1); f' = 1 on (−1, 1), 0 elsewhere."""
    name = "hard_tanh"


@register
class Step(Activation):
    """Binary step: f(x) = 1 for x > 0, else 0.

    Its derivative is 0 everywhere (undefined at 0, taken as 0), so no gradient flows
    through it: a network that needs training below a Step cannot learn by backprop.
    """
    name = "step"


@register
class SiLU(Activation):
    """f(x) = x·σ(x) (swish); f' = σ(x)(1 + x(1 − σ(x)))."""
    name = "silu"


@register
class GELU(Activation):
    """f(x) = x·Φ(x) = x/2·(1 + erf(x/√2)), the exact form (PyTorch's default);
    f' = Φ(x) + x·φ(x).

    ``approximate="tanh"`` (torch's name) is the tanh form, f(x) = x/2·(1 + tanh(u)),
    u = √(2/π)(x + 0.044715 x³), f' = (1 + t)/2 + x/2·(1 − t²)·√(2/π)(1 + 3·0.044715 x²)
    with t = tanh(u). The core has no kernel for it: a tanh GELU runs in NumPy, as a
    user layer does (a standalone layer only, not a Dense activation).
    """
    name = "gelu"

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        super().__init__()
        self.approximate = approximate

    def get_config(self) -> Config:
        return {"approximate": self.approximate}

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return None if self.approximate == "tanh" else super().core_desc(ctx)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if self.approximate == "none":
            return super().forward(X, training)
        t = np.tanh(_GELU_C * (X + 0.044715 * X ** 3))
        self._cache = (X, t)
        return 0.5 * X * (1 + t)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        if self.approximate == "none":
            return super().backward(dY)
        X, t = self._need_cache()
        du = _GELU_C * (1 + 3 * 0.044715 * X ** 2)
        return dY * (0.5 * (1 + t) + 0.5 * X * (1 - t * t) * du)

    def __repr__(self):
        return "GELU(approximate='tanh')" if self.approximate == "tanh" else "GELU()"


_GELU_C = float(np.sqrt(2.0 / np.pi))


ACTIVATION_LAYERS = {cls.name: cls for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, ELU,
                                               Softplus, ArcTan, HardTanh, Step, SiLU, GELU)}


def activation_from_name(activation: Union[str, "Activation", None]) -> "Activation":
    """An Activation instance for a name, an instance, or None (identity)."""
    if activation is None:
        return Identity()
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[activation]()
    raise ValueError(f"activation must be one of {sorted(ACTIVATION_LAYERS)} or None; "
                     f"got {activation!r}")


@register
class PReLU(Layer):
    """f(x) = x for x > 0, a·x otherwise, with learnable slopes a (He et al., 2015).

    Parameters
    ----------
    num_parameters : int
        1 (one slope shared by all units) or the layer width (one slope per unit).
    init : float
        Initial slope (0.25, as PyTorch).
    """
    activation_name = "prelu"

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, (int, np.integer)) \
                or num_parameters < 1:
            raise ValueError(f"num_parameters must be a positive integer, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = _check_finite_param(init, "init")

    def build(self, n_in: int) -> int:
        n = super().build(n_in)
        if self.num_parameters not in (1, n):
            raise ValueError(f"PReLU(num_parameters={self.num_parameters}) needs 1 or the layer "
                             f"width ({n}) slopes")
        return n

    def param_specs(self) -> List[ParamSpec]:
        return [("weight", (self.num_parameters,), "other")]

    def init_params(self, rng: np.random.Generator,
                    next_activation: Optional[str] = None) -> None:
        self.weight[...] = self.init

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return dict(kind=LayerKind.K_PRELU, n_in=self.n_in, n_out=self.n_out,
                    n_slopes=self.num_parameters, w_off=ctx.offsets(self)["weight"])

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        self._cache = X
        return ref_layers.prelu_forward(X, self.weight)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        X = self._need_cache()
        dX, dslope = ref_layers.prelu_backward(X, self.weight, dY)
        self.dweight += dslope
        return dX

    def __repr__(self):
        return f"PReLU(num_parameters={self.num_parameters}, init={self.init})"


@register
class Softmax(Layer):
    """Row-wise softmax: A_ij = e^{X_ij} / Σ_k e^{X_ik} (shifted by the row max).

    For classification training prefer raw logits with ``CrossEntropyLoss``, which fuses
    softmax with the loss stably; this layer is for outputs meant as probabilities.
    """

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return dict(kind=LayerKind.K_SOFTMAX, n_in=self.n_in, n_out=self.n_out)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        S = ref_layers.softmax_forward(X)
        self._cache = S
        return S

    def backward(self, dY: np.ndarray) -> np.ndarray:
        return ref_layers.softmax_backward(self._need_cache(), dY)
