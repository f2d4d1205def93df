"""NumPy twins of the activation kernels (include/fastmlp/act_template.h).

``forward(code, z, alpha)`` returns act(z); ``backward(code, z, a, da, alpha)`` returns
da * act'(z), with a = act(z). Codes are ``fastmlp._activations.fm_act``.
"""
import numpy as np
from scipy.special import erf

from fastmlp._activations import fm_act as Act

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


def forward(code, z, alpha=0.0):
    """act(z) for the activation ``code``, elementwise, in z's dtype."""
    z = np.asarray(z)
    one = z.dtype.type(1)
    a = z.dtype.type(alpha)
    code = Act(code)
    if code == Act.FM_IDENTITY:
        out = z.copy()
    elif code == Act.FM_SIGMOID:
        out = sigmoid(z)
    elif code == Act.FM_TANH:
        out = np.tanh(z)
    elif code == Act.FM_RELU:
        out = np.where(z > 0, z, 0)
    elif code == Act.FM_LEAKY_RELU:
        out = np.where(z > 0, z, a * z)
    elif code == Act.FM_ELU:
        out = np.where(z > 0, z, a * np.expm1(np.minimum(z, 0)))
    elif code == Act.FM_SOFTPLUS:
        out = softplus(z)
    elif code == Act.FM_ARCTAN:
        out = np.arctan(z)
    elif code == Act.FM_HARD_TANH:
        out = np.clip(z, -one, one)
    elif code == Act.FM_STEP:
        out = (z > 0).astype(z.dtype)
    elif code == Act.FM_SILU:
        out = z * sigmoid(z)
    else:  # GELU, exact erf form
        out = 0.5 * z * (1 + erf(z * _SQRT1_2))
    return out.astype(z.dtype, copy=False)


def derivative(code, z, a, alpha=0.0):
    """act'(z), using a = act(z) where that is the cheaper form."""
    z = np.asarray(z)
    code = Act(code)
    al = z.dtype.type(alpha)
    if code == Act.FM_IDENTITY:
        d = np.ones_like(z)
    elif code == Act.FM_SIGMOID:
        d = a * (1 - a)
    elif code == Act.FM_TANH:
        d = 1 - a * a
    elif code == Act.FM_RELU:
        d = (z > 0).astype(z.dtype)
    elif code == Act.FM_LEAKY_RELU:
        d = np.where(z > 0, 1, al)
    elif code == Act.FM_ELU:
        d = np.where(z > 0, 1, a + al)
    elif code == Act.FM_SOFTPLUS:
        d = sigmoid(z)
    elif code == Act.FM_ARCTAN:
        d = 1 / (1 + z * z)
    elif code == Act.FM_HARD_TANH:
        d = ((z > -1) & (z < 1)).astype(z.dtype)
    elif code == Act.FM_STEP:
        d = np.zeros_like(z)
    elif code == Act.FM_SILU:
        s = sigmoid(z)
        d = s * (1 + z * (1 - s))
    else:
        d = 0.5 * (1 + erf(z * _SQRT1_2)) + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    return d.astype(z.dtype, copy=False)


def backward(code, z, a, da, alpha=0.0):
    """da * act'(z)."""
    return (da * derivative(code, z, a, alpha)).astype(np.asarray(da).dtype, copy=False)
