"""Training while another process keeps one core busy (a shared machine): one epoch of
6,400 rows of the MNIST shape at batch 32, float32, through ``Trainer.fit``, with the
adaptive thread governor (``n_threads=None``), and with the thread count fixed at 2 and
at 1. The governor should run close to the fixed 1 and well ahead of the fixed 2, whose
team waits at every barrier for the member parked behind the busy process.
"""
import pytest

from fastmlp import bench


@pytest.fixture(scope="module")
def busy():
    with bench.busy_core():
        yield


@pytest.mark.parametrize("n_threads", [None, 2, 1], ids=["adaptive", "fixed-2", "fixed-1"])
def test_fit_with_a_core_busy(timed, busy, n_threads):
    work = bench.busy_fit(n_threads)
    timed("mnist epoch b32, one core busy", f"n_threads={n_threads}", work, 1, "epoch",
          rounds=5)
