"""Two small models (32-64-64-4 ReLU, cross-entropy, Adam, batch 16, 20,000 rows each)
trained at once in two Python threads vs one after the other — fastmlp only.

The fused loop runs without the GIL, so on 2 free cores the threaded run should take about
half the time. The speedup (one after the other / threads, each the median of 3 runs
timed with ``time.perf_counter``, outside pytest-benchmark) lands in ``extra_info``.
"""
import pytest

from fastmlp import bench

ROWS = 20_000


@pytest.mark.parametrize("mode", ["one-after-other", "two-threads"])
def test_two_models(timed, mode):
    work = bench.two_models(mode == "two-threads", ROWS)
    b = timed(f"2 models 32-64-64-4 b16 ({ROWS:,} rows each)", mode, work, 1, "call",
              rounds=3)
    if mode == "two-threads":
        serial = bench.measure(bench.two_models(False, ROWS), repeat=3)
        threads = bench.measure(work, repeat=3)
        b.extra_info.update(serial_s=round(serial, 4), threads_s=round(threads, 4),
                            speedup=round(serial / threads, 3))
