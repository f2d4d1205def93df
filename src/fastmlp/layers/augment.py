"""ImageAugment: random affine transforms of each row seen as an image, in training only."""
import math
import numbers
from typing import Any, Optional, Tuple

import numpy as np

from fastmlp._codes import LayerKind
from fastmlp._serial import register
from fastmlp._typing import Config
from fastmlp.layers.noise import _Stochastic
from fastmlp.reference import augment as ref_aug


def _nonneg(value, name, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (0 <= value < high):
        raise ValueError(f"{name} must be in [0, {high}), got {value!r}")
    return float(value)


@register
class ImageAugment(_Stochastic):
    r"""Dataset augmentation in the network: in training, every row, seen as an image of
    ``shape`` (h, w[, c]; row-major, channels last), is resampled through a random affine
    map; in evaluation mode the layer is the identity.

    Per row, uniform draws of the core's counter-based RNG (seed, layer, step, row) give a
    rotation :math:`\theta \in [-\text{max\_rotation}, \text{max\_rotation}]` degrees, a
    scale :math:`s \in [1 - \text{max\_scale}, 1 + \text{max\_scale}]`, a shift
    :math:`t \in [-\text{max\_shift}, \text{max\_shift}]^2` pixels and, with ``flip``, a
    left-right flip half of the time. Output pixel :math:`(i, j)` takes the bilinear
    interpolation of the input at

    .. math:: \begin{pmatrix} s_x \\ s_y \end{pmatrix} = \frac{1}{s} R(-\theta)
              \begin{pmatrix} j - c_x - t_x \\ i - c_y - t_y \end{pmatrix}
              + \begin{pmatrix} c_x \\ c_y \end{pmatrix}

    (the image centre :math:`c`; zeros outside; :math:`s_x \to w - 1 - s_x` when flipped).
    The resampling runs in the core (``include/fastmlp/augment.h``), no Python per row, and a
    seed reproduces it whatever the thread count. Backward is its exact adjoint.

    The lecture's warning: a transform must not change the class. A flip turns a "b" into a
    "d", a 180° rotation a "6" into a "9": keep ``flip=False`` and small rotations for digits
    and letters.

    Parameters
    ----------
    shape : (h, w) or (h, w, c)
        The image of a row (h·w·c features).
    max_shift : float
        Largest shift, in pixels (>= 0).
    max_rotation : float
        Largest rotation, in degrees, [0, 180].
    max_scale : float
        Largest relative zoom, [0, 1).
    flip : bool
        Random left-right flips.

    Examples
    --------
    >>> aug = ImageAugment((8, 8), max_shift=1, max_rotation=10)
    """

    def __init__(self, shape: Tuple[int, ...], max_shift: float = 0.0, max_rotation: float = 0.0,
                 max_scale: float = 0.0, flip: bool = False):
        super().__init__()
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
        if not (isinstance(shape, tuple) and len(shape) in (2, 3)
                and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                        for v in shape)):
            raise ValueError(f"shape must be (h, w) or (h, w, c) of positive integers, "
                             f"got {shape!r}")
        self.shape = tuple(int(v) for v in shape)
        self._hwc = self.shape if len(self.shape) == 3 else self.shape + (1,)
        self.max_shift = _nonneg(max_shift, "max_shift")
        self.max_rotation = _nonneg(max_rotation, "max_rotation", 180.0 + 1e-12)
        self.max_scale = _nonneg(max_scale, "max_scale", 1.0)
        if flip not in (True, False):
            raise TypeError(f"flip must be True or False, got {flip!r}")
        self.flip = bool(flip)
        self.n_in = self.n_out = int(np.prod(self._hwc))

    def build(self, n_in: int) -> int:
        if n_in != self.n_in:
            raise ValueError(f"ImageAugment(shape={self.shape}) needs {self.n_in} input "
                             f"features (h·w·c), got {n_in}")
        return super().build(n_in)

    def _aug(self):
        h, w, c = self._hwc
        return dict(h=h, w=w, c=c, max_shift=self.max_shift,
                    max_rotation=math.radians(self.max_rotation), max_scale=self.max_scale,
                    flip=int(self.flip))

    def core_desc(self, ctx: Any) -> Optional[Config]:
        return dict(kind=LayerKind.K_AUGMENT, n_in=self.n_in, n_out=self.n_out,
                    aug=self._aug())

    def maps(self, n_rows: int) -> np.ndarray:
        """The inverse maps (n_rows, 6) of the current training step, as the core draws them."""
        seed, stream, step = self._draw_key()
        a = self._aug()
        return ref_aug.maps(self._hwc, a["max_shift"], a["max_rotation"], a["max_scale"],
                            self.flip, seed, stream, step, n_rows)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        if not training:
            self._cache = None
            return X.copy()
        self._cache = self.maps(X.shape[0])
        return ref_aug.augment_forward(X, self._hwc, self._cache)

    def backward(self, dY: np.ndarray) -> np.ndarray:
        if self._cache is None:
            return dY.copy()
        return ref_aug.augment_backward(dY, self._hwc, self._cache)

    def __repr__(self):
        args = [f"shape={self.shape}"] + [f"{k}={getattr(self, k)!r}" for k in
                                          ("max_shift", "max_rotation", "max_scale", "flip")
                                          if getattr(self, k)]
        return f"ImageAugment({', '.join(args)})"
