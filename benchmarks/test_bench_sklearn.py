"""fastmlp.MLPClassifier vs scikit-learn's MLPClassifier: the same fit, side by side.

20,000 × 784 float32 rows (make_classification, 50 informative features, 10 classes),
hidden layers (512, 256), adam, batch 200, 5 epochs (tol=0 and a large n_iter_no_change
force all 5), random_state=0: both fit the same objective from the same initial weights
with the same batches. Beside them, "gemm-only": the matrix products of the same 5 epochs
by NumPy alone (forward X·W per layer, backward Aᵀ·dZ per layer and dZ·Wᵀ but for the first
layer), the floor any implementation on this BLAS has to pay.

Each case runs with the BLAS's default threads and with one thread (``n_threads=1`` for
fastmlp, ``threadpool_limits(1)`` around scikit-learn and gemm-only). Wall-clock: on a busy
machine the multi-threaded ratios move a lot (BLAS threads wait for descheduled peers); the
one-thread group is the steadier comparison.
"""
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sknn
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier

GROUP = "sklearn MLPClassifier fit, {}: 20,000x784 f32, (512, 256), adam, b200, 5 epochs"
THREADS = ["default threads", "1 thread"]
PARAMS = dict(hidden_layer_sizes=(512, 256), solver="adam", batch_size=200, max_iter=5,
              tol=0.0, n_iter_no_change=1000, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=20_000, n_features=784, n_informative=50,
                               n_classes=10, random_state=0)
    return X.astype(np.float32), y


def _fit(cls, X, y, threads):
    one = threads == "1 thread"
    with warnings.catch_warnings(), threadpool_limits(1 if one else None):
        warnings.simplefilter("ignore", ConvergenceWarning)
        extra = {"n_threads": 1} if one and cls is MLPClassifier else {}
        est = cls(**PARAMS, **extra).fit(X, y)
    assert est.n_iter_ == 5
    return est


def _gemm_only(X, threads, epochs=5, batch=200, units=(784, 512, 256, 10)):
    with threadpool_limits(1 if threads == "1 thread" else None):
        _gemm_epochs(X, epochs, batch, units)


def _gemm_epochs(X, epochs, batch, units):
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((a, b), dtype=np.float32) for a, b in zip(units, units[1:])]
    acts = [np.empty((batch, u), np.float32) for u in units]
    grads = [np.empty_like(W) for W in Ws]
    for _ in range(epochs):
        for start in range(0, X.shape[0], batch):
            acts[0] = X[start:start + batch]
            for i, W in enumerate(Ws):
                np.matmul(acts[i], W, out=acts[i + 1][:acts[0].shape[0]])
            dz = acts[-1][:acts[0].shape[0]]
            for i in range(len(Ws) - 1, -1, -1):
                np.matmul(acts[i][:dz.shape[0]].T, dz, out=grads[i])
                if i:
                    dz = dz @ Ws[i].T


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("impl", ["fastmlp", "sklearn"])
def test_fit(benchmark, data, impl, threads):
    X, y = data
    cls = MLPClassifier if impl == "fastmlp" else sknn.MLPClassifier
    benchmark.group, benchmark.name = GROUP.format(threads), impl
    benchmark.pedantic(_fit, args=(cls, X, y, threads), rounds=1, iterations=1)


@pytest.mark.parametrize("threads", THREADS)
def test_gemm_only(benchmark, data, threads):
    benchmark.group, benchmark.name = GROUP.format(threads), "gemm-only"
    benchmark.pedantic(_gemm_only, args=(data[0], threads), rounds=1, iterations=1)
