"""NumPy twins of the activation kernels (include/fastmlp/act_template.h).

``forward(code, z, alpha)`` returns act(z); ``backward(code, z, a, da, alpha)`` returns
da * act'(z), with a = act(z). Codes are ``fastmlp._codes.Act``;
one entry per code in ``FORWARD`` and ``DERIVATIVE``.
"""
import numpy as np
from scipy.special import erf

from fastmlp._codes import Act

_SQRT1_2 = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794


def sigmoid(z):
    """σ(z) = 1 / (1 + e^{-z}), computed from e^{-|z|} so it never overflows."""
    e = np.exp(-np.abs(z))
    r = 1 / (1 + e)
    return np.where(z >= 0, r, e * r).astype(z.dtype, copy=False)


def softplus(z):
    """log(1 + e^z) = max(z, 0) + log1p(e^{-|z|})."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _gelu(z):
    """x Φ(x) in the exact erf form."""
    return 0.5 * z * (1 + erf(z * _SQRT1_2))


def _gelu_derivative(z):
    """Φ(x) + x φ(x)."""
    return 0.5 * (1 + erf(z * _SQRT1_2)) + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z)


def _silu_derivative(z):
    """σ(z) (1 + z (1 − σ(z)))."""
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


#: code -> act(z, alpha); alpha is a scalar of z's dtype (leaky slope, ELU alpha)
FORWARD = {
    Act.FM_IDENTITY: lambda z, al: z.copy(),
    Act.FM_SIGMOID: lambda z, al: sigmoid(z),
    Act.FM_TANH: lambda z, al: np.tanh(z),
    Act.FM_RELU: lambda z, al: np.where(z > 0, z, 0),
    Act.FM_LEAKY_RELU: lambda z, al: np.where(z > 0, z, al * z),
    Act.FM_ELU: lambda z, al: np.where(z > 0, z, al * np.expm1(np.minimum(z, 0))),
    Act.FM_SOFTPLUS: lambda z, al: softplus(z),
    Act.FM_ARCTAN: lambda z, al: np.arctan(z),
    Act.FM_HARD_TANH: lambda z, al: np.clip(z, -z.dtype.type(1), z.dtype.type(1)),
    Act.FM_STEP: lambda z, al: (z > 0).astype(z.dtype),
    Act.FM_SILU: lambda z, al: z * sigmoid(z),
    Act.FM_GELU: lambda z, al: _gelu(z),
}

#: code -> act'(z) from (z, a = act(z), alpha), using a where that is the cheaper form
DERIVATIVE = {
    Act.FM_IDENTITY: lambda z, a, al: np.ones_like(z),
    Act.FM_SIGMOID: lambda z, a, al: a * (1 - a),
    Act.FM_TANH: lambda z, a, al: 1 - a * a,
    Act.FM_RELU: lambda z, a, al: (z > 0).astype(z.dtype),
    Act.FM_LEAKY_RELU: lambda z, a, al: np.where(z > 0, 1, al),
    Act.FM_ELU: lambda z, a, al: np.where(z > 0, 1, a + al),
    Act.FM_SOFTPLUS: lambda z, a, al: sigmoid(z),
    Act.FM_ARCTAN: lambda z, a, al: 1 / (1 + z * z),
    Act.FM_HARD_TANH: lambda z, a, al: ((z > -1) & (z < 1)).astype(z.dtype),
    Act.FM_STEP: lambda z, a, al: np.zeros_like(z),
    Act.FM_SILU: lambda z, a, al: _silu_derivative(z),
    Act.FM_GELU: lambda z, a, al: _gelu_derivative(z),
}


def forward(code, z, alpha=0.0):
    """act(z) for the activation ``code``, elementwise, in z's dtype."""
    z = np.asarray(z)
    out = FORWARD[Act(code)](z, z.dtype.type(alpha))
    return out.astype(z.dtype, copy=False)


def derivative(code, z, a, alpha=0.0):
    """act'(z), using a = act(z) where that is the cheaper form."""
    z = np.asarray(z)
    d = DERIVATIVE[Act(code)](z, a, z.dtype.type(alpha))
    return d.astype(z.dtype, copy=False)


def backward(code, z, a, da, alpha=0.0):
    """da * act'(z)."""
    return (da * derivative(code, z, a, alpha)).astype(np.asarray(da).dtype, copy=False)
