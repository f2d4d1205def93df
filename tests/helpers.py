"""Shared test helpers (tests/ is on sys.path through pyproject's pythonpath)."""
import threading
import tracemalloc

import numpy as np

#: Agreement required between the core and the NumPy reference (see DESIGN.md).
RTOL = {np.float64: 1e-12, np.float32: 1e-5}

#: (rows, batch_size) pairs that take predict down each of its paths, for an input of 1531
#: rows: per-thread runs that do and do not divide the rows, a last short run, a single
#: run, fewer rows than batch_size (chunks on the team), tiny batches.
PREDICT_SPLITS = ((1531, 256), (1531, 1531), (1530, 100), (600, 256), (37, 8), (300, 1024),
                  (5, 2))


def rel_err(a, b, scale=None):
    """max |a − b| relative to the largest magnitude of b (norm-wise relative error), or
    to ``scale`` when given (for tensors that should be 0 up to rounding)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if scale is None:
        scale = np.abs(b).max(initial=0.0)
    scale = max(scale, np.finfo(np.float64).tiny)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def python_identity():
    """A user layer in NumPy that changes nothing: a model holding it is not fused."""
    import fastmlp as fm

    class PyIdentity(fm.Layer):
        def forward(self, X, training=False):
            return X

        def backward(self, dY):
            return dY
    return PyIdentity()


def fused_and_python_params(make_trainer, X, y, **fit_kwargs):
    """Parameters after ``make_trainer(python).fit(X, y, **fit_kwargs)`` for the fused
    model (python=False) and the same model with a Python layer (python=True)."""
    out = []
    for python in (False, True):
        tr = make_trainer(python)
        assert tr.model.is_fused != python
        tr.fit(X, y, verbose=0, **fit_kwargs)
        out.append(tr.model.params.copy())
    return out


class WeightedSumLoss:
    """L = Σ_ij C_ij · out_ij + ½ Σ out²: a smooth test objective with a known gradient."""

    def __init__(self, n_out, seed=0):
        self.C = np.random.default_rng(seed).normal(size=n_out)

    def __call__(self, out, y=None):
        out = np.asarray(out, dtype=np.float64)
        return float((out * self.C).sum() + 0.5 * (out ** 2).sum())

    def grad(self, out, y=None):
        return (self.C + out).astype(np.asarray(out).dtype)


class FixedStep:
    """A loss wrapper that pins the dropout/noise RNG counter, for gradient checks.

    ``gradient_check`` runs ``model.forward(X, training=True)`` once for backprop, then twice
    per parameter for the central differences. Each training forward first advances
    ``model.rng_step`` and then draws its masks for that step, so every difference would see
    a new mask and compare different functions. The loss is evaluated right after each
    forward: setting the counter back to ``step - 1`` there makes the next forward draw for
    ``step`` again. Every forward then uses one fixed mask (and one fixed noise draw), and
    the function checked is a deterministic function of the parameters.
    """

    def __init__(self, loss, model, step=7):
        self.loss, self.model, self.step = loss, model, step
        model.rng_step = step - 1

    def __call__(self, out, y=None):
        self.model.rng_step = self.step - 1
        return self.loss(out, y)

    def grad(self, out, y=None):
        self.model.rng_step = self.step - 1
        return self.loss.grad(out, y)


def retained_bytes(step, warmup=3, repeats=100):
    """Python-heap bytes still held after ``repeats`` calls of ``step()``, measured after
    ``warmup`` calls (workspaces sized once): what a steady state allocates and keeps."""
    for _ in range(warmup):
        step()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(repeats):
        step()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current - base


def run_threads(work, n):
    """``work(i)`` for i in range(n), each in its own thread; returns when all are done."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
