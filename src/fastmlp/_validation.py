"""Checks at the Python boundary: everything the core receives has been through here."""
import numbers

import numpy as np

from fastmlp._ops import OPS
from fastmlp._optim import matrix_ready  # noqa: F401  (re-exported: predict's fast path)

FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def check_dtype(dtype, name="dtype"):
    """Return np.float32 or np.float64 for a dtype spelling; ValueError otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{name} must be 'float32' or 'float64', got {dtype!r}")
    return dt.type


def check_positive_int(value, name):
    """An integer >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    if value >= 2**31:
        raise ValueError(f"{name} must be < 2**31, got {value}")
    return int(value)


def as_numeric(a, name):
    """``np.asarray(a)`` for numbers only: strings, objects and complex numbers raise
    TypeError, ragged lists ValueError, both naming the argument."""
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a string")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (bool, int or float), got dtype {arr.dtype}")
    return arr


def contiguous(a, dtype):
    """``a`` as a C-contiguous, aligned ndarray of ``dtype`` (a copy only when needed): what
    the core's kernels may read through typed pointers. ``np.ascontiguousarray`` alone
    keeps an unaligned buffer as it is."""
    return np.require(np.asarray(a), dtype, ["C_CONTIGUOUS", "ALIGNED"])


def as_float_matrix(X, dtype, name="X", n_cols=None, allow_nonfinite=False,
                    allow_empty=False, ops=None):
    """Convert X to a C-contiguous 2-D array of ``dtype``, safely.

    Accepts lists, integer/bool/float16 arrays, Fortran-ordered, strided, unaligned and
    read-only arrays (converted, never modified). Refuses strings, objects, complex
    numbers, other ranks, a wrong column count and (unless allowed) empty batches, NaN or
    inf. ``ops`` (a model's backend, default the compiled core) runs the check for NaN and
    inf.
    """
    arr = as_numeric(X, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {arr.ndim}-D "
                         f"with shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} has no rows (shape {arr.shape})")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ValueError(f"{name} has {arr.shape[1]} features (columns), expected {n_cols}")
    arr = contiguous(arr, dtype)
    if not allow_nonfinite and not (ops or OPS["core"]).array_is_finite(arr):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr
