"""Training steps, Adam, float32: the fused core vs the NumPy reference vs PyTorch CPU.

- tiny: 2-16-16-1 tanh, MSE, at batch 1, 8 and 64 — where per-step overhead is everything;
- wide: 1024-2048-2048-1024 ReLU, MSE, at batch 256 — where the BLAS is everything (with the
  NumPy GEMM-only time of the same steps beside it).

How a step is timed, fairly for all three: each call runs N steps over N consecutive batches
of N·batch rows and the median per step is ``median / N`` (``extra_info``). fastmlp runs them
as ``Trainer.fit`` does within an epoch (``fastmlp._epoch.EpochLoop.run``): with the core
that is ONE call of the fused runner (``fastmlp._train.Runner``) for all N steps, so its
per-call setup (binding the optimizer, checking the indices) is shared by N steps as in a
real epoch; with the NumPy reference it is the per-step Python loop. PyTorch runs the usual
``zero_grad()``, forward, loss, ``backward()``, ``step()`` on each batch. Timing
``Trainer.fit`` on one batch instead would add the per-fit checks to a single step.
"""
import pytest

from fastmlp import bench

TINY_STEPS = 100
WIDE_STEPS = 2


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_tiny_step(timed, batch, backend):
    work = bench.fastmlp_steps("tiny", backend, batch=batch, n_steps=TINY_STEPS)
    timed(f"step tiny b{batch} ({TINY_STEPS} steps/call)", backend, work, TINY_STEPS, "step")


@pytest.mark.parametrize("batch", [1, 8, 64])
def test_tiny_step_torch(timed, batch, torch):
    work = bench.torch_train("tiny", batch=batch, n_rows=batch * TINY_STEPS, shuffle=False)
    timed(f"step tiny b{batch} ({TINY_STEPS} steps/call)", "torch", work, TINY_STEPS, "step",
          rounds=5)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_wide_step(timed, backend):
    work = bench.fastmlp_steps("wide", backend, batch=256, n_steps=WIDE_STEPS)
    timed(f"step wide b256 ({WIDE_STEPS} steps/call)", backend, work, WIDE_STEPS, "step",
          rounds=3)


def test_wide_step_torch(timed, torch):
    work = bench.torch_train("wide", batch=256, n_rows=256 * WIDE_STEPS, shuffle=False)
    timed(f"step wide b256 ({WIDE_STEPS} steps/call)", "torch", work, WIDE_STEPS, "step",
          rounds=3)


@pytest.mark.parametrize("blas", ["numpy", "core"])
def test_wide_gemm_only(timed, blas):
    """The step's matrix products alone: by NumPy, and through the core's GEMM wrapper (the
    BLAS build scipy ships); see test_bench_epoch.py."""
    work = bench.gemm_only("wide", batch=256, n_rows=256 * WIDE_STEPS, blas=blas)
    name = "gemm-only" if blas == "numpy" else "gemm-only-core-blas"
    timed(f"step wide b256 ({WIDE_STEPS} steps/call)", name, work, WIDE_STEPS, "step",
          rounds=3)
