"""Thread safety: concurrent predict, training in threads, determinism."""
import itertools
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastmlp as fm


class PyScale(fm.Layer):
    """A Python layer (per-layer dispatch path)."""

    def forward(self, X, training=False):
        return 2.0 * X

    def backward(self, dY):
        return 2.0 * dY


@pytest.mark.parametrize("python_layer", [False, True])
def test_concurrent_predict_equals_serial(rng, python_layer):
    layers = [fm.Dense(20, 64, activation="relu"), fm.BatchNorm(64), fm.Dropout(0.5)]
    layers += [PyScale()] if python_layer else []
    layers += [fm.Dense(64, 5)]
    model = fm.Sequential(layers, seed=0)
    fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam()).fit(
        rng.normal(size=(200, 20)), rng.integers(0, 5, 200), epochs=1, verbose=0)
    inputs = [rng.normal(size=(int(n), 20)) for n in rng.integers(1, 3000, size=32)]
    serial = [model.predict(X) for X in inputs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(model.predict, inputs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_predict_does_not_disturb_backward(rng):
    model = fm.Sequential([fm.Dense(4, 8, activation="tanh"), fm.Dense(8, 2)], seed=0)
    X = rng.normal(size=(5, 4))
    model.forward(X, training=True)
    model.predict(rng.normal(size=(7, 4)))             # a different batch in between
    dX = model.backward(np.ones((5, 2)))               # still the gradient of X's forward
    ref = fm.Sequential([fm.Dense(4, 8, activation="tanh"), fm.Dense(8, 2)], seed=0)
    ref.forward(X, training=True)
    np.testing.assert_array_equal(dX, ref.backward(np.ones((5, 2))))


def _train(seed, X, y):
    model = fm.Sequential([fm.Dense(32, 64, activation="relu"), fm.Dense(64, 64,
                           activation="relu"), fm.Dense(64, 4)], seed=seed)
    fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3)).fit(
        X, y, epochs=3, batch_size=16, verbose=0)
    return model.params.copy()


def test_two_models_train_in_two_threads_as_serially(rng):
    X = rng.normal(size=(512, 32)).astype(np.float32)
    y = rng.integers(0, 4, 512)
    serial = [_train(s, X, y) for s in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda s: _train(s, X, y), (1, 2)))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_weights_bit_identical(rng):
    X = rng.normal(size=(300, 32)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    np.testing.assert_array_equal(_train(7, X, y), _train(7, X, y))


@pytest.mark.skipif(not fm._blas.native_available(),
                    reason="without AVX2/FMA the GEMMs are BLAS's, whose sums may depend on "
                           "its thread count")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_thread_count_does_not_change_the_weights(rng, dtype):
    """The core's products and updates are large enough here to be split over threads
    (GEMMs of 96 x 512 x 256 multiply-adds, an arena of 300k parameters); each element is
    the same expression in the same order whatever the split, so 1, 2 and 3 threads give
    bit-identical weights (the fused path; with BLAS GEMMs this is not promised)."""
    X = rng.normal(size=(480, 256)).astype(dtype)
    y = rng.integers(0, 10, 480)
    weights = []
    for n_threads in (1, 2, 3):
        model = fm.Sequential([fm.Dense(256, 512, activation="relu"), fm.Dropout(0.2),
                               fm.Dense(512, 256, activation="tanh"), fm.Dense(256, 10)],
                              dtype=dtype, seed=3)
        fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3), n_threads=n_threads).fit(
            X, y, epochs=2, batch_size=96, verbose=0)
        weights.append(model.params.copy())
    np.testing.assert_array_equal(weights[0], weights[1])
    np.testing.assert_array_equal(weights[0], weights[2])


def test_fit_while_training_elsewhere_is_refused(rng):
    model = fm.Sequential([fm.Dense(8, 4)], seed=0)
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 4, 64)
    started, release = threading.Event(), threading.Event()

    def hold(epoch, logs):
        started.set()
        release.wait(10)

    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD())
    t = threading.Thread(target=tr.fit, args=(X, y), kwargs=dict(
        epochs=1, verbose=0, callbacks=[fm.LambdaCallback(on_epoch_end=hold)]))
    t.start()
    assert started.wait(10)
    try:
        with pytest.raises(RuntimeError, match="already being trained"):
            fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD()).fit(X, y, verbose=0)
    finally:
        release.set()
        t.join()


@pytest.mark.parametrize("python_layer", [False, True], ids=["fused", "python"])
def test_keyboard_interrupt_leaves_a_consistent_model(rng, python_layer):
    """Ctrl-C arrives between steps (the fused loop returns to Python between chunks):
    the model holds the weights after the last completed step, History the completed
    epochs, and training can go on."""
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 4, 64)
    layers = [fm.Dense(8, 16, activation="relu")] + ([PyScale()] if python_layer else [])
    model = fm.Sequential(layers + [fm.Dense(16, 4)], seed=0)
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1))
    trainer.fit(X, y, epochs=1, batch_size=8, verbose=0)
    snapshots = []

    def interrupt(step, logs):
        snapshots.append(model.get_weights())
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X, y, epochs=3, batch_size=8, verbose=1,
                    callbacks=[fm.LambdaCallback(on_batch_end=interrupt)])
    np.testing.assert_array_equal(model.get_weights(), snapshots[-1])
    assert np.isfinite(model.params).all() and len(trainer.history) == 0
    assert not model._train_lock.locked()
    history = trainer.fit(X, y, epochs=1, batch_size=8, verbose=0)     # goes on
    assert len(history) == 1 and np.isfinite(history["loss"][0])


FORK_SCRIPT = """
import os, sys
import numpy as np
import fastmlp as fm
X = np.random.default_rng(0).normal(size=(600, 300)).astype(np.float32)
model = fm.Sequential([fm.Dense(300, 512, activation="relu"), fm.Dense(512, 4)], seed=0)
fm.set_num_threads(2)
expect = model.predict(X)                 # large enough for a 2-thread team in the parent
pid = os.fork()
if pid == 0:                              # GNU OpenMP would hang here without the guard
    ok = fm.get_num_threads() == 1 and np.array_equal(model.predict(X), expect)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_runs_single_threaded_and_does_not_hang():
    """A child forked after the parent ran OpenMP teams (multiprocessing's fork start
    method) must not enter a parallel region: GNU OpenMP deadlocks there. The core runs
    single-threaded in such a child, with the same results."""
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], timeout=120)
    assert done.returncode == 0


# --- the thread governor (include/fastmlp/governor.h), on synthetic machines ---------------
def _trace(max_threads, per_step, windows):
    from fastmlp._train import governor_trace
    return governor_trace(max_threads, per_step, windows)


def test_governor_keeps_all_threads_on_an_idle_machine():
    """Two threads are faster: it stays there, and its probes of one thread thin out."""
    trace = _trace(2, lambda w, t: {2: 1.0, 1: 1.6}[t], 400)
    assert trace[:4] == [2, 2, 2, 2]
    assert trace.count(1) <= 8            # probes, backing off to one per 256 windows
    assert trace[-100:].count(1) <= 1


def test_governor_drops_to_one_thread_when_a_core_is_busy():
    """Measured on this 2-core machine with one core busy: 6.5 ms a step on 2 threads,
    2.7 ms on 1. After its first probe it runs on one thread."""
    trace = _trace(2, lambda w, t: {2: 6.5, 1: 2.7}[t], 100)
    assert trace.index(1) == 4 and trace[4:].count(2) <= 5


def test_governor_does_not_probe_a_team_that_keeps_up():
    """When the caller hardly waits for its workers' chunks (1-5 % of a window on a quiet
    machine), fewer threads cannot help: after the first probe no window runs on one
    thread. The first probe runs whatever the waits (a worker parked from the start may
    never get a chunk, and the caller then does not wait at all); and when the waits are
    long on average (a parked worker holding a chunk: up to 54 % of a window measured
    with a busy core), the probes go on as before."""
    quiet = _trace(2, lambda w, t: ({2: 1.0, 1: 1.6}[t], 0.03), 400)
    assert quiet.index(1) == 4 and quiet.count(1) == 1
    busy = _trace(2, lambda w, t: ({2: 6.5, 1: 2.7}[t], 0.0), 100)   # worker never joins
    assert busy.index(1) == 4 and busy[4:].count(2) <= 5
    late = _trace(2, lambda w, t: ({2: 1.0, 1: 1.6}[t] if w < 100 else {2: 6.5, 1: 2.7}[t],
                                   0.03 if w < 100 else [0.0, 0.3][w % 2]), 200)
    assert late[:100].count(1) == 1 and late[-50:].count(1) >= 45


def _runs(trace):
    """[(threads, steps in a row)] of a step trace."""
    return [(t, len(list(run))) for t, run in itertools.groupby(trace)]


def test_governor_ends_a_losing_probe_early():
    """Step by step on a simulated clock: a probe of one thread at half speed stops once
    it has taken as long as a whole window of 16 steps at two threads (after 8 of its
    steps, not 16), and the governor stays on two. A probe that is faster runs its whole
    window and wins."""
    from fastmlp._train import governor_step_trace
    idle = governor_step_trace(2, lambda s, t: {2: 1.0, 1: 2.0}[t], 16 * 40)
    first = idle.index(1)
    assert first == 4 * 16                              # after four windows at the setting
    assert idle[first:first + 9] == [1] * 8 + [2]       # 8 steps, then back on two
    assert idle[-16 * 8:].count(1) == 0
    # just under a window's time: 15 steps at 1.07 (16.05 > 16 only at the 15th)
    slow = governor_step_trace(2, lambda s, t: {2: 1.0, 1: 1.07}[t], 16 * 8)
    assert slow[first:first + 16] == [1] * 15 + [2]
    runs = _runs(governor_step_trace(2, lambda s, t: {2: 6.5, 1: 2.7}[t], 16 * 40))
    assert runs[:3] == [(2, 64), (1, 16), (2, 16)]      # probe, then the window judging it
    # on one thread from then on; its probes of two threads stop after 7 steps (7 x 6.5
    # >= 16 x 2.7), where they ran 16 before
    assert runs[3][0] == 1 and [n for t, n in runs[3:] if t == 2] == [7, 7, 7]


def test_governor_probe_carries_on_across_runs():
    """Epochs of 39 steps (MNIST at batch 512 over 20,000 rows), with 1000 s outside the
    loop between them: a probe that begins in the last steps of an epoch keeps the steps
    it ran, and the time between epochs is not counted: a losing probe still runs 8 steps
    in all (it ran 7 + 8 = 15 when the pause restarted it), a winning one 16."""
    from fastmlp._train import governor_step_trace
    idle = governor_step_trace(2, lambda s, t: {2: 1.0, 1: 2.0}[t], 39 * 10, run_steps=39)
    assert idle.count(1) == 8 and idle.index(1) == 71      # 7 steps in epoch 2, 1 in 3
    busy = governor_step_trace(2, lambda s, t: {2: 6.5, 1: 2.7}[t], 39 * 10, run_steps=39)
    assert _runs(busy)[:2] == [(2, 71), (1, 16)]


def test_governor_measures_how_long_the_caller_waits(rng):
    """A real fit records the share of each window the training thread waited for
    other threads' chunks."""
    X, y = rng.normal(size=(4096, 64)).astype(np.float32), rng.integers(0, 4, 4096)
    model = fm.Sequential([fm.Dense(64, 512, activation="relu"), fm.Dense(512, 4)],
                          dtype="float32", seed=0)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(1e-3))
    tr.fit(X, y, epochs=1, batch_size=64, verbose=0)
    share = tr._governor().wait_share
    assert share is not None and 0.0 <= share < 1.0


def test_governor_follows_a_change_of_load():
    idle, busy = {2: 1.0, 1: 1.6}, {2: 6.5, 1: 2.7}
    trace = _trace(2, lambda w, t: (busy if 20 <= w < 150 else idle)[t], 450)
    assert trace[140:150].count(1) >= 9       # on one thread while the core was busy
    assert trace[-50:].count(2) >= 49         # back on two once it was free again


@pytest.mark.parametrize("costs,best", [({2: 1.0, 1: 1.3}, 2), ({2: 6.5, 1: 2.7}, 1)],
                         ids=["idle", "busy"])
def test_governor_is_not_fooled_by_a_noisy_machine(costs, best):
    """Each window's time is off by -30 % to +50 % at random (this VM's speed drifts that
    much): comparing a probe with the windows on both sides of it, the governor still
    spends nearly all its windows on the faster count."""
    noise = np.random.default_rng(0).uniform(0.7, 1.5, size=2000)
    trace = _trace(2, lambda w, t: costs[t] * noise[w], 2000)
    assert trace.count(best) >= 0.95 * len(trace)


def test_governor_settles_on_the_best_count_of_many():
    costs = {8: 4.0, 4: 2.0, 2: 1.5, 1: 2.0}
    trace = _trace(8, lambda w, t: costs[t], 120)
    assert trace[-40:].count(2) >= 38


def test_governor_is_off_with_one_thread_or_a_fixed_count(rng):
    assert set(_trace(1, lambda w, t: 1.0, 50)) == {1}
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 2, 64)
    for n_threads, adaptive in ((None, True), (1, False)):
        model = fm.Sequential([fm.Dense(8, 2)], seed=0)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1), n_threads=n_threads)
        before = fm.get_num_threads()
        tr.fit(X, y, epochs=2, batch_size=4, verbose=0)
        assert fm.get_num_threads() == before           # the override is restored
        from fastmlp._epoch import EpochLoop
        loop = EpochLoop(tr, tr._inputs(X), tr._targets(y, 64), None, 4)
        loop.run(np.arange(64, dtype=np.int64))
        assert (loop.runner.governor is not None) == adaptive
        if adaptive:
            assert loop.runner.governor is tr._governor()          # kept across fits
            assert loop.runner.governor.threads == fm.get_num_threads()
