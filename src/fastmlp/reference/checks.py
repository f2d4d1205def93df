"""NumPy twins of the input checks (``fastmlp._optim.array_is_finite``)."""
import numpy as np


def array_is_finite(x):
    """True when the C-contiguous float32/float64 array x (any shape) has no NaN or ±inf;
    the kernel's refusals (ValueError for a non-contiguous or unaligned array, TypeError
    for another dtype)."""
    if not (x.flags.c_contiguous and x.flags.aligned):
        raise ValueError("x must be C-contiguous and aligned")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    return bool(np.isfinite(x).all())
