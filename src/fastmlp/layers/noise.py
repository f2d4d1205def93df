"""Training-time noise: Dropout and GaussianNoise (identity in evaluation mode).

Randomness is counter-based (Philox): the draw for element i of layer k at training step
t is a pure function of (model seed, k, t, i), so a seed gives the same masks whatever the
thread count, and the NumPy path draws exactly what the core draws.
"""
import math
import numbers
from typing import Any, Optional

import numpy as np

from fastmlp._codes import LayerKind
from fastmlp._serial import register
from fastmlp._typing import Config
from fastmlp.layers.base import Layer
from fastmlp.reference import rng as ref_rng


def _check_float(value, name, low, high=math.inf, high_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    ok = low <= value < high if high_open else low <= value <= high
    if not (math.isfinite(value) and ok):
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {bound}, got {value}")
    return value


class _Stochastic(Layer):
    """Shared plumbing: the model's RNG key, this layer's stream and the step counter."""

    def _draw_key(self):
        model = self._model
        stream = model.flat_layers.index(self) if model is not None else 0
        seed = model.rng_seed if model is not None else 0
        step = model.rng_step if model is not None else 0
        return seed, stream, step


@register
class Dropout(_Stochastic):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` and the
    survivors are scaled by 1/(1−p), so the expected activation is unchanged; in evaluation
    mode the layer is the identity.

    ``A = X ⊙ M``, ``M_i = 1/(1−p)`` with probability 1−p, else 0; ``dX = dA ⊙ M``.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _check_float(p, "p", 0.0, 1.0)

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return dict(kind=LayerKind.K_DROPOUT, n_in=self.n_in, n_out=self.n_out, rate=self.p)

    def mask(self, n_rows: int) -> np.ndarray:
        """The mask (n_rows, width) of the current training step (as the core draws it)."""
        seed, stream, step = self._draw_key()
        dtype = self._model.dtype if self._model is not None else np.float64
        keep = dtype.type(1.0 / (1.0 - self.p))
        u = ref_rng.uniform(seed, stream, step, n_rows * self.n_out).reshape(n_rows, self.n_out)
        return np.where(u >= self.p, keep, dtype.type(0))

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0:
            self._cache = None
            return X.copy()
        M = self.mask(X.shape[0]).astype(X.dtype)
        self._cache = M
        return X * M

    def backward(self, dY: np.ndarray) -> np.ndarray:
        return dY.copy() if self._cache is None else dY * self._cache

    def __repr__(self):
        return f"Dropout(p={self.p})"


@register
class GaussianNoise(_Stochastic):
    """Additive zero-mean Gaussian noise in training (a regularizer and a form of data
    augmentation): ``A = X + std·ε``, ε ~ N(0, 1); the identity in evaluation mode.
    The gradient passes through unchanged."""

    def __init__(self, std: float):
        super().__init__()
        self.std = _check_float(std, "std", 0.0, math.inf)

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return dict(kind=LayerKind.K_NOISE, n_in=self.n_in, n_out=self.n_out, std=self.std)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.std == 0:
            return X.copy()
        seed, stream, step = self._draw_key()
        eps = ref_rng.normal(seed, stream, step, X.size).reshape(X.shape)
        return X + (self.std * eps).astype(X.dtype)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        return dY.copy()

    def __repr__(self):
        return f"GaussianNoise(std={self.std})"
