"""Benchmarks: run with ``pytest benchmarks/ --benchmark-only`` (pytest-benchmark).

Each case is grouped so the core, the NumPy reference and (when importable) PyTorch
print side by side; ratios come from one run on one machine. The work itself (models, data,
training loops, the NumPy GEMM-only loop) is built by ``fastmlp.bench``, which
``python -m fastmlp bench`` times too: the suite and the quick table measure one thing.
"""
import os

import numpy as np
import pytest

#: ``FASTMLP_BENCH_THREADS=n``: limit the BLAS pools and PyTorch to n threads (e.g. 1 on a
#: loaded machine, where a 2-thread BLAS waits for a descheduled worker).
THREADS = os.environ.get("FASTMLP_BENCH_THREADS")


@pytest.fixture(scope="session", autouse=True)
def thread_limits():
    if THREADS is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from fastmlp import _bench_work
    _bench_work.TORCH_THREADS = int(THREADS)
    with threadpool_limits(limits=int(THREADS)):
        yield


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def torch():
    """PyTorch CPU, for comparisons only (``pip install torch==2.13.0``)."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: pip install torch==2.13.0")
    from fastmlp import _bench_work
    torch.set_num_threads(_bench_work.TORCH_THREADS)
    return torch


@pytest.fixture
def timed(benchmark):
    """``timed(group, name, work, units=1, unit="call", rounds=None)``: benchmark ``work``
    (a ``fastmlp.bench`` work function doing ``units`` units per call) in ``group`` under
    ``name``. ``rounds=None`` lets pytest-benchmark calibrate; otherwise that many rounds of
    one call after one warm-up call (for slow cases). The median per unit lands in
    ``extra_info`` (``median_per_<unit>_us``)."""
    def run(group, name, work, units=1, unit="call", rounds=None):
        benchmark.group, benchmark.name = group, name
        benchmark.extra_info.update(units_per_call=units, unit=unit)
        if rounds is None:
            benchmark(work)
        else:
            benchmark.pedantic(work, rounds=rounds, iterations=1, warmup_rounds=1)
        stats = getattr(getattr(benchmark, "stats", None), "stats", None)
        if stats is not None:
            benchmark.extra_info[f"median_per_{unit}_us"] = round(stats.median / units * 1e6, 3)
        return benchmark
    return run
