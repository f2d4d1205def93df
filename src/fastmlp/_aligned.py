"""Arrays whose data start on a cache-line boundary.

The core's kernels load W, its gradient and the activations a vector (64 bytes with
AVX-512) at a time. NumPy aligns only to 16 bytes, so a row of a (784, 512) float32 W
placed 16 bytes past a line boundary straddles two lines at every load: streaming the
MNIST model's weights for a one-row prediction took 14 us instead of 10 (measured on
2 vCPUs of an Intel Xeon, family 6 model 167). Every array the kernels stream gets a
64-byte aligned start; shapes whose rows are a multiple of 16 floats stay aligned row
after row.
"""
from __future__ import annotations

import numpy as np

#: bytes: a cache line, and an AVX-512 vector
ALIGN = 64


def is_aligned(a: np.ndarray, align: int = ALIGN) -> bool:
    """Whether ``a``'s data start on an ``align``-byte boundary."""
    return a.ctypes.data % align == 0


def aligned_empty(size: int, dtype, align: int = ALIGN) -> np.ndarray:
    """An uninitialized 1-D array of ``size`` elements starting on an ``align``-byte
    boundary (a view into a slightly larger allocation, which it keeps alive)."""
    dtype = np.dtype(dtype)
    raw = np.empty(size + align // dtype.itemsize, dtype)
    start = (-raw.ctypes.data % align) // dtype.itemsize
    return raw[start:start + size]


def aligned_full(size: int, dtype, value: float = 0.0, align: int = ALIGN) -> np.ndarray:
    """:func:`aligned_empty`, every element ``value``."""
    out = aligned_empty(size, dtype, align)
    out[...] = value
    return out


def aligned(a: np.ndarray, align: int = ALIGN) -> np.ndarray:
    """``a`` itself when its data are aligned, else an aligned copy of the 1-D array."""
    if is_aligned(a, align):
        return a
    out = aligned_empty(a.shape[0], a.dtype, align)
    out[...] = a
    return out
