"""One training epoch on the MNIST shape: the fused core vs the NumPy reference vs PyTorch
CPU, with the NumPy GEMM-only time of the same steps beside them.

784-512-256-10 ReLU, softmax cross-entropy, Adam(lr=1e-3); 20,000 random rows (the work per
epoch does not depend on the values) at batch 32, 128 and 256, float32 and float64.

- core / numpy: ``Trainer.fit(X, y, epochs=1, verbose=0)`` — shuffled; the per-fit input
  checks are included, as a user calling fit pays them;
- torch: a shuffled epoch of ``zero_grad()``, forward, loss, ``backward()``, ``step()``,
  batches gathered by index as fastmlp does;
- gemm-only: the matrix products of those steps by NumPy alone (forward A·W per layer,
  backward Aᵀ·dZ per layer and dZ·Wᵀ but for the first layer), into preallocated arrays.
  ``gemm-only / core`` is the share of a step the BLAS needs: how close the step is to the
  machine's limit;
- gemm-only-core-blas: the same products through fastmlp's GEMM wrapper
  (``fastmlp._blas.gemm_memview``), i.e. with the OpenBLAS build scipy ships, which the
  core calls (NumPy ships another build; see ``threadpoolctl.threadpool_info()``). The gap
  core − gemm-only-core-blas is fastmlp's own non-GEMM time.
"""
import pytest

from fastmlp import bench

ROWS = 20_000
BATCHES = [32, 128, 256]
DTYPES = ["float32", "float64"]


def _group(batch, dtype):
    return f"epoch mnist b{batch} {dtype} ({ROWS:,} rows)"


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_epoch(timed, batch, dtype, backend):
    work = bench.fastmlp_epoch("mnist", backend, dtype, batch=batch, n_rows=ROWS)
    timed(_group(batch, dtype), backend, work, 1, "epoch",
          rounds=1 if backend == "numpy" else 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_epoch_torch(timed, batch, dtype, torch):
    work = bench.torch_train("mnist", dtype, batch=batch, n_rows=ROWS)
    timed(_group(batch, dtype), "torch", work, 1, "epoch", rounds=3)


@pytest.mark.parametrize("blas", ["numpy", "core"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_epoch_gemm_only(timed, batch, dtype, blas):
    work = bench.gemm_only("mnist", dtype, batch=batch, n_rows=ROWS, blas=blas)
    name = "gemm-only" if blas == "numpy" else "gemm-only-core-blas"
    timed(_group(batch, dtype), name, work, 1, "epoch", rounds=3)
