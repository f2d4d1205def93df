"""The pure-NumPy twin of every core kernel: the tests' oracle and the benchmarks' baseline.

A whole model runs on it with ``Sequential(..., backend="numpy")``.
"""
from fastmlp.reference import activations, layers, losses, norm, optim, regularize, rng

__all__ = ["activations", "layers", "losses", "norm", "optim", "regularize", "rng"]
