"""Inference on the MNIST shape (784-512-256-10, float32): the latency of one row (200 calls
per benchmark call) and the throughput on 10,000 rows (one call).

fastmlp ``model.predict`` on the core and on the NumPy backend; PyTorch ``net(X)`` under
``torch.inference_mode()``. Rows per second land in ``extra_info``.
"""
import pytest

from fastmlp import bench

CASES = [(1, 200), (10_000, 1)]


@pytest.mark.parametrize("impl", ["core", "numpy", "torch"])
@pytest.mark.parametrize("rows,calls", CASES, ids=["1-row", "10000-rows"])
def test_predict(timed, request, rows, calls, impl):
    if impl == "torch":
        request.getfixturevalue("torch")
    work = bench.predictions(impl, rows, calls)
    b = timed(f"predict mnist {rows:,} row(s) ({calls} calls/call)", impl, work, calls, "call")
    stats = getattr(getattr(b, "stats", None), "stats", None)
    if stats is not None:
        b.extra_info["rows_per_s"] = round(rows * calls / stats.median)
