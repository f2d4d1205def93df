"""Threads of the compiled core.

The core splits its large GEMMs and optimizer updates over OpenMP threads (small ones
stay on the calling thread). How many it may use, for a call made from a given thread:
that thread's override (``Trainer(n_threads=...)`` sets one during ``fit``), else the
process default (:func:`set_num_threads`), else OpenMP's default (``OMP_NUM_THREADS`` or
the available cores). The results do not depend on it: every element is computed by the
same expression in the same order whatever the split.
"""
import contextlib
import numbers
from typing import Iterator, Optional

from fastmlp import _blas


def set_num_threads(n: Optional[int] = None) -> None:
    """Set the process-wide number of threads of the core (None: OpenMP's default).

    Examples
    --------
    >>> fm.set_num_threads(1)      # e.g. on a machine whose other cores are busy
    """
    _blas.set_num_threads(0 if n is None else _check(n, "n"))


def get_num_threads() -> int:
    """Threads the core may use for a call made from the current thread."""
    return _blas.get_num_threads()


@contextlib.contextmanager
def limit_threads(n: Optional[int]) -> Iterator[None]:
    """Within the block, the calling thread's core calls use at most ``n`` threads, and
    the BLAS pools (numpy's and scipy's OpenBLAS, through threadpoolctl) too. ``None``
    changes nothing. Other threads are not affected by the core setting."""
    if n is None:
        yield
        return
    n = _check(n, "n_threads")
    from threadpoolctl import threadpool_limits
    saved = _blas.thread_override()
    _blas.set_num_threads(n, this_thread_only=True)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        _blas.set_num_threads(saved, this_thread_only=True)


def _check(n, name):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None, got {n!r}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return int(n)
