"""Resources: memory stays flat over long training, models leave nothing behind when they
are dropped, save/load close their files, and predict allocates only its output.

RSS is read from /proc/self/status (Linux); the tests that need it are skipped elsewhere.
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastmlp as fm

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/status")
needs_proc = pytest.mark.skipif(not LINUX, reason="reads /proc/self (Linux)")


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def small_model(seed=0):
    return fm.Sequential([fm.Dense(2, 16, activation="tanh"), fm.Dense(16, 16, activation="relu"),
                          fm.Dense(16, 1)], dtype="float32", seed=seed)


@pytest.mark.slow
@needs_proc
def test_rss_flat_over_100k_fused_steps(rng):
    """2-16-16-1, batch 8, 8,000 rows × 100 epochs = 100,000 fused steps: after a warm-up
    epoch, the resident set grows by less than a few MB (no per-step or per-epoch leak)."""
    X = rng.normal(size=(8000, 2)).astype(np.float32)
    y = (X[:, :1] * X[:, 1:]).astype(np.float32)
    model = small_model()
    assert model.is_fused
    trainer = fm.Trainer(model, fm.MSELoss(), fm.Adam(lr=1e-3), seed=0, n_threads=1)
    trainer.fit(X, y, epochs=2, batch_size=8, verbose=0)          # warm-up: workspaces
    gc.collect()
    before = rss_kib()
    history = trainer.fit(X, y, epochs=100, batch_size=8, verbose=0)
    gc.collect()
    growth = rss_kib() - before
    assert len(history.history["loss"]) == 100 and np.isfinite(history.history["loss"]).all()
    print(f"RSS growth over 100,000 steps: {growth} KiB")
    assert growth < 4 * 1024, f"RSS grew by {growth} KiB over 100,000 steps"


@needs_proc
def test_creating_and_dropping_1000_models_leaks_nothing(rng):
    X = rng.normal(size=(4, 2)).astype(np.float32)

    def churn(k):
        for i in range(k):
            m = fm.Sequential([fm.Dense(2, 32, activation="relu"), fm.Dropout(0.1),
                               fm.LayerNorm(32), fm.Dense(32, 1)], seed=i)
            m.forward(X, training=True)
            m.backward(np.ones((4, 1), np.float32))
            m.predict(X)
            del m

    churn(100)                                                      # warm-up: caches
    gc.collect()
    rss0 = rss_kib()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    churn(1000)
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = rss_kib() - rss0
    print(f"1,000 models: Python heap {traced - base} B, RSS {rss_growth} KiB")
    assert traced - base < 64 * 1024          # one model's arena alone is ~4.6 KB
    assert rss_growth < 4 * 1024


def test_dropped_model_is_freed_by_refcount():
    """No reference cycle keeps a model (and its arena) alive: it dies without the GC."""
    import weakref
    gc.disable()
    try:
        m = small_model()
        m.predict(np.ones((3, 2), np.float32))
        m.forward(np.ones((3, 2), np.float32), training=True)
        params = weakref.ref(m.params.base if m.params.base is not None else m.params)
        ref = weakref.ref(m)
        del m
        alive = ref() is not None
    finally:
        gc.enable()
    if alive:        # cycles are allowed, but the cyclic GC must then reclaim the model
        gc.collect()
        assert ref() is None
    gc.collect()
    assert params() is None


@needs_proc
def test_save_and_load_close_their_files(tmp_path, rng):
    model = small_model()
    X = rng.normal(size=(5, 2)).astype(np.float32)
    fm.save(model, tmp_path / "m0.fmlp")
    fm.load(tmp_path / "m0.fmlp")                                  # warm-up (imports)
    gc.collect()
    before = open_fds()
    for i in range(50):
        path = tmp_path / f"m{i % 3}.fmlp"
        fm.save(model, path)
        np.testing.assert_array_equal(fm.load(path).predict(X), model.predict(X))
    with pytest.raises(Exception):
        fm.load(tmp_path / "missing.fmlp")
    (tmp_path / "bad.fmlp").write_bytes(b"not a model")
    with pytest.raises(Exception):
        fm.load(tmp_path / "bad.fmlp")
    gc.collect()
    assert open_fds() == before


def test_predict_steady_state_allocates_only_its_output(rng):
    model = fm.Sequential([fm.Dense(8, 64, activation="relu"), fm.LayerNorm(64),
                           fm.Dense(64, 3)], dtype="float64", seed=0)
    X = rng.normal(size=(200, 8))
    out_bytes = 200 * 3 * 8
    for _ in range(3):
        model.predict(X)                                           # warm-up: workspaces
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    kept = [model.predict(X) for _ in range(20)]
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_call = (current - base) / 20
    print(f"predict: {per_call:.0f} B kept per call (output {out_bytes} B), "
          f"peak {peak - base} B")
    assert per_call < out_bytes + 512           # the output (+ the ndarray header)
    assert peak - current < out_bytes + 4096    # no transient copies of X or of hidden layers
    del kept
