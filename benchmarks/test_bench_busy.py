"""Training while another process keeps one core busy (a shared machine): one epoch of
6,400 rows of the MNIST shape at batch 32, float32, through ``Trainer.fit``, with the
adaptive thread governor (``n_threads=None``), and with the thread count fixed at 2 and
at 1. The governor should run close to the fixed 1 and well ahead of the fixed 2, whose
team waits at every barrier for the member parked behind the busy process.

Predicting 10,000 rows of the same shape meanwhile (a Sequential, and its layers as a
graph Model), on every thread (runs of rows claimed by each thread in turn, so the parked
one holds up only its own) and on one.
"""
import time

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


@pytest.mark.parametrize("graph", [False, True], ids=["sequential", "graph"])
@pytest.mark.parametrize("n_threads", [None, 1], ids=["all-threads", "one-thread"])
def test_predict_with_a_core_busy(timed, busy, n_threads, graph):
    work = bench.busy_predict(n_threads, graph=graph)
    timed(f"predict mnist 10,000 rows{' (graph Model)' * graph}, one core busy",
          f"n_threads={n_threads}", work, 1, "call", rounds=20)


@pytest.mark.parametrize("split", [False, True], ids=["one-thread", "split"])
def test_input_check_with_a_core_busy(benchmark, busy, split):
    """The finiteness check of a 20,000 x 32 float32 input (640,000 elements) at the start
    of a call, the core's team asleep (10 ms idle before each round, as between two fits):
    as fit and predict run it (one thread below 2**22 elements), and split over the core's
    threads, which waits for the team member parked behind the busy process."""
    work = bench.input_check(split, n_calls=1)
    benchmark.group = "input check 20k x 32 f32 after 10 ms idle, one core busy"
    benchmark.name = "split" if split else "one-thread"
    benchmark.pedantic(work, setup=lambda: time.sleep(0.01), rounds=200, warmup_rounds=1)
