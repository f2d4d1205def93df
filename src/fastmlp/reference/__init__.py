"""The pure-NumPy twin of every core kernel: the tests' oracle and the benchmarks' baseline.

A whole model runs on it with ``Sequential(..., backend="numpy")``, whose ``ops`` is
:class:`~fastmlp.reference.ops.NumpyOps`. Nothing here imports a compiled module: the
codes come from the pure-Python ``fastmlp._codes``.
"""
from fastmlp.reference import (activations, checks, layers, losses, norm, ops, optim,
                               regularize, rng)

__all__ = ["activations", "checks", "layers", "losses", "norm", "ops", "optim", "regularize", "rng"]
