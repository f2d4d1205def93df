"""Shared test helpers (tests/ is on sys.path through pyproject's pythonpath)."""
import numpy as np

#: Agreement required between the core and the NumPy reference (see DESIGN.md).
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def rel_err(a, b):
    """max |a − b| relative to the largest magnitude of b (norm-wise relative error)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(np.abs(b).max(initial=0.0), np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max(initial=0.0) / scale)


class WeightedSumLoss:
    """L = Σ_ij C_ij · out_ij + ½ Σ out²: a smooth test objective with a known gradient."""

    def __init__(self, n_out, seed=0):
        self.C = np.random.default_rng(seed).normal(size=n_out)

    def __call__(self, out, y=None):
        out = np.asarray(out, dtype=np.float64)
        return float((out * self.C).sum() + 0.5 * (out ** 2).sum())

    def grad(self, out, y=None):
        return (self.C + out).astype(np.asarray(out).dtype)
