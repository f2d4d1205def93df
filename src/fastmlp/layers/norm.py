"""Normalization layers: BatchNorm (torch.nn.BatchNorm1d) and LayerNorm."""
import math
import numbers
from typing import Any, List, Optional

import numpy as np

from fastmlp._codes import LayerFlag, LayerKind
from fastmlp._serial import register
from fastmlp._typing import BufferSpec, Config, ParamSpec
from fastmlp._validation import check_positive_int
from fastmlp.layers.base import Layer
from fastmlp.reference import norm as ref_norm


def _check_real(value, name, low, high=math.inf, low_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = (low < value if low_open else low <= value) and value <= high
    if not (math.isfinite(value) and ok):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}], "
                         f"got {value}")
    return value


class _Norm(Layer):
    def __init__(self, n, eps, affine):
        super().__init__()
        self.n_in = self.n_out = check_positive_int(n, "n")
        self.eps = _check_real(eps, "eps", 0.0, low_open=True)
        self.affine = bool(affine)

    def param_specs(self) -> List[ParamSpec]:
        if not self.affine:
            return []
        return [("weight", (self.n_out,), "other"), ("bias", (self.n_out,), "bias")]

    def init_params(self, rng: np.random.Generator,
                    next_activation: Optional[str] = None) -> None:
        if self.affine:
            self.weight[...] = 1
            self.bias[...] = 0

    def _gamma_beta(self):
        return (self.weight, self.bias) if self.affine else (None, None)

    def _desc(self, ctx, kind, **extra):
        offsets = ctx.offsets(self)
        return dict(kind=kind, n_in=self.n_in, n_out=self.n_out, eps=self.eps,
                    flags=LayerFlag.F_AFFINE if self.affine else 0,
                    w_off=offsets.get("weight", -1), b_off=offsets.get("bias", -1), **extra)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        dX, dgamma, dbeta = self._backward(self._need_cache(), dY)
        if self.affine:
            self.dweight += dgamma
            self.dbias += dbeta
        return dX


@register
class BatchNorm(_Norm):
    """Batch normalization (Ioffe & Szegedy, 2015), as ``torch.nn.BatchNorm1d``.

    Training: ``xhat = (x − μ_B) / sqrt(σ²_B + eps)`` with the batch mean and biased
    variance per feature, ``A = γ·xhat + β``; the running statistics follow
    ``running ← (1 − momentum)·running + momentum·batch`` (the variance unbiased).
    Evaluation uses the running statistics. A training batch needs at least 2 rows.

    Parameters
    ----------
    n : int
        Features.
    momentum : float in [0, 1]
    eps : float > 0
    affine : bool
        Learnable γ (``weight``, starts at 1) and β (``bias``, starts at 0).
    """

    def __init__(self, n: int, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True):
        super().__init__(n, eps, affine)
        self.momentum = _check_real(momentum, "momentum", 0.0, 1.0)

    def get_config(self) -> Config:
        return dict(n=self.n_out, momentum=self.momentum, eps=self.eps, affine=self.affine)

    def buffer_specs(self) -> List[BufferSpec]:
        # the core keeps 1/std of the last forward right after the running statistics
        n = self.n_out
        return [("running_mean", (n,), 0.0), ("running_var", (n,), 1.0), ("_inv_std", (n,), 1.0)]

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return self._desc(ctx, LayerKind.K_BATCHNORM, momentum=self.momentum,
                          s_off=ctx.offsets(self)["running_mean"])

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        gamma, beta = self._gamma_beta()
        training = training and X.shape[0] >= 2
        A, cache = ref_norm.batchnorm_forward(X, gamma, beta, self.running_mean,
                                              self.running_var, self.momentum, self.eps,
                                              training)
        self._inv_std[...] = cache.inv_std
        self._cache = cache
        return A

    _backward = staticmethod(ref_norm.batchnorm_backward)

    def __repr__(self):
        return (f"BatchNorm({self.n_out}, momentum={self.momentum}, eps={self.eps}, "
                f"affine={self.affine})")


@register
class LayerNorm(_Norm):
    """Layer normalization (Ba et al., 2016), as ``torch.nn.LayerNorm(n)``: each row is
    normalized over its n features, ``A = γ·(x − μ_row) / sqrt(σ²_row + eps) + β``; the
    same in training and evaluation."""

    def __init__(self, n: int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__(n, eps, elementwise_affine)

    def get_config(self) -> Config:
        return dict(n=self.n_out, eps=self.eps, elementwise_affine=self.affine)

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return self._desc(ctx, LayerKind.K_LAYERNORM)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        gamma, beta = self._gamma_beta()
        A, cache = ref_norm.layernorm_forward(X, gamma, beta, self.eps)
        self._cache = cache
        return A

    _backward = staticmethod(ref_norm.layernorm_backward)

    def __repr__(self):
        return f"LayerNorm({self.n_out}, eps={self.eps}, elementwise_affine={self.affine})"
