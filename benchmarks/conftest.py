"""Benchmarks: run with ``pytest benchmarks/ --benchmark-only`` (pytest-benchmark).

Each case is grouped so the core, the NumPy reference and (when importable) PyTorch
print side by side; ratios come from one run on one machine.
"""
import numpy as np
import pytest


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def torch():
    """PyTorch CPU, for comparisons only (``pip install torch==2.13.0``)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
    torch.set_num_threads(2)
    return torch
