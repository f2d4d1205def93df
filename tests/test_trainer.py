"""Trainer: fit/evaluate/predict, both training paths, rows per epoch, weights, errors."""
import threading
import tracemalloc

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _epoch
from helpers import RTOL, rel_err


class PyIdentity(fm.Layer):
    """A user layer in NumPy that changes nothing: the model is no longer fused."""

    def forward(self, X, training=False):
        return X

    def backward(self, dY):
        return dY


class RowRecorder(fm.Layer):
    """A first layer in NumPy: reads a row id from column 0, records it, drops the column."""

    def __init__(self, n_in):
        super().__init__()
        self.n_in = n_in
        self.seen = []                          # (training, ids) per forward call

    def build(self, n_in):
        self.n_out = n_in - 1
        return self.n_out

    def forward(self, X, training=False):
        self.seen.append((training, X[:, 0].astype(np.int64)))
        return X[:, 1:]

    def backward(self, dY):
        return np.hstack([np.zeros((dY.shape[0], 1), dY.dtype), dY])


def with_ids(X):
    return np.hstack([np.arange(X.shape[0])[:, None], X])


def clf_data(rng, n=120, d=4, k=3):
    X = rng.normal(size=(n, d))
    y = np.argmax(X[:, :k] + 0.3 * rng.normal(size=(n, k)), axis=1)
    return X, y


def dense_model(d, k, dtype="float64", python=False, seed=0, hidden=8):
    layers = [fm.Dense(d, hidden, activation="tanh"), fm.Dense(hidden, k)]
    return fm.Sequential(layers + ([PyIdentity()] if python else []), dtype=dtype, seed=seed)


# -- the basic contract -----------------------------------------------------------------------
def test_fit_history_evaluate_predict(rng):
    X, y = clf_data(rng)
    model, opt, loss = dense_model(4, 3), fm.Adam(lr=1e-2), fm.CrossEntropyLoss()
    tr = fm.Trainer(model, loss, opt, metrics=["accuracy"])
    assert tr.model is model and tr.optimizer is opt and tr.loss is loss and tr.history is None
    h = tr.fit(X[:100], y[:100], epochs=4, batch_size=16, validation_data=(X[100:], y[100:]),
               verbose=0)
    assert isinstance(h, fm.History) and tr.history is h and len(h) == 4
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"}
    assert all(len(v) == 4 for v in h.history.values()) and h.epoch == [0, 1, 2, 3]
    assert h["lr"] == [1e-2] * 4 and all(t >= 0 for t in h["epoch_time"])
    assert h["loss"][-1] < h["loss"][0]
    out = tr.predict(X[100:])
    np.testing.assert_array_equal(out, model.forward(X[100:]))
    ev = tr.evaluate(X[100:], y[100:])
    assert ev["loss"] == pytest.approx(loss(out, y[100:]), rel=1e-12)
    assert ev["accuracy"] == pytest.approx((out.argmax(1) == y[100:]).mean())
    assert ev == pytest.approx({"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1]})


def test_evaluate_predict_in_chunks_and_zero_epochs(rng):
    n = fm.sequential.PREDICT_CHUNK * 2 + 7
    X = rng.normal(size=(n, 3))
    model = fm.Sequential([fm.Dense(3, 5, activation="relu"), fm.Dense(5, 1)], dtype="float64")
    tr = fm.Trainer(model, fm.MSELoss(), "sgd", metrics=["mse"])
    out = tr.predict(X)
    assert out.shape == (n, 1) and rel_err(out, model.forward(X)) < 1e-14
    ev = tr.evaluate(X, X.sum(axis=1))
    assert ev["loss"] == pytest.approx(((out[:, 0] - X.sum(axis=1)) ** 2).mean(), rel=1e-12)
    assert ev["mse"] == pytest.approx(ev["loss"], rel=1e-12)
    before = model.get_weights()
    h = tr.fit(X, X.sum(axis=1), epochs=0, verbose=0)
    assert len(h) == 0 and h.history == {}
    np.testing.assert_array_equal(model.params, before)


def test_low_level_loop_equals_fit(rng):
    """PyTorch style by hand == fit without shuffling (same batches, same kernels)."""
    X, y = clf_data(rng, n=50)
    manual, fitted = dense_model(4, 3), dense_model(4, 3)
    loss, opt = fm.CrossEntropyLoss(), fm.Adam(lr=1e-2)
    for _ in range(2):
        for s in range(0, 50, 16):
            manual.zero_grad()
            out = manual.forward(X[s:s + 16], training=True)
            manual.backward(loss.grad(out, y[s:s + 16]))
            opt.step(manual)
    fm.Trainer(fitted, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2)).fit(
        X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert rel_err(fitted.params, manual.params) < 1e-12


# -- both paths: same rows, same result --------------------------------------------------------
def _l1_row_visits(python, batch_size, epochs, callbacks=(), verbose=0):
    """With X = I (one-hot rows), L1 loss against huge targets and SGD(lr=1), a visit of row
    i adds 1/B to W[i] (B = size of its batch): the weights count the visits."""
    n = 37
    model = fm.Sequential([fm.Dense(n, 1)] + ([PyIdentity()] if python else []),
                          dtype="float64", seed=0)
    assert model.is_fused != python
    snaps = [model[0].W[:, 0].copy()]
    rec = fm.LambdaCallback(on_epoch_end=lambda e, logs: snaps.append(model[0].W[:, 0].copy()))
    tr = fm.Trainer(model, fm.L1Loss(), fm.SGD(lr=1.0), seed=1)
    tr.fit(np.eye(n), np.full(n, 1e6), epochs=epochs, batch_size=batch_size,
           callbacks=[rec, *callbacks], verbose=verbose)
    return [b - a for a, b in zip(snaps, snaps[1:])]


@pytest.mark.parametrize("python", [False, True], ids=["fused", "python"])
@pytest.mark.parametrize("batch_cb", [False, True], ids=["epoch", "per-step"])
def test_every_row_exactly_once_per_epoch(python, batch_cb):
    calls = []
    cbs = [fm.LambdaCallback(on_batch_end=lambda b, logs: calls.append(b))] if batch_cb else []
    deltas = _l1_row_visits(python, batch_size=8, epochs=3, callbacks=cbs)
    assert len(deltas) == 3
    for delta in deltas:                       # 37 rows: batches of 8, 8, 8, 8 and 5
        np.testing.assert_allclose(np.sort(delta), [1 / 8] * 32 + [1 / 5] * 5, rtol=1e-12)
    assert not np.array_equal(deltas[0], deltas[1])        # shuffled between epochs
    if batch_cb:
        assert calls == [0, 1, 2, 3, 4] * 3


def test_rows_seen_by_a_python_layer(rng):
    n, B = 53, 10
    rec = RowRecorder(4)
    model = fm.Sequential([rec, fm.Dense(3, 2)], dtype="float64", seed=0)
    X, y = with_ids(rng.normal(size=(n, 3))), rng.integers(0, 2, n)
    fm.Trainer(model, fm.CrossEntropyLoss(), "adam").fit(X, y, epochs=2, batch_size=B,
                                                          verbose=0)
    batches = [ids for training, ids in rec.seen if training]
    assert [len(b) for b in batches] == [10, 10, 10, 10, 10, 3] * 2
    for epoch in (batches[:6], batches[6:]):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(n))
    assert not np.array_equal(np.concatenate(batches[:6]), np.concatenate(batches[6:]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["ce-adam", "mse-sgd", "bce-rmsprop"])
def test_fused_and_python_paths_agree(rng, dtype, case):
    X = rng.normal(size=(77, 5))
    loss, y, k, make_opt = {
        "ce-adam": (fm.CrossEntropyLoss(), rng.integers(0, 3, 77), 3, lambda: fm.Adam(lr=1e-2)),
        "mse-sgd": (fm.MSELoss(), rng.normal(size=(77, 2)), 2,
                    lambda: fm.SGD(lr=0.05, momentum=0.9, nesterov=True)),
        "bce-rmsprop": (fm.BCEWithLogitsLoss(), (X[:, 0] > 0).astype(float), 1,
                        lambda: fm.RMSprop(lr=1e-2, centered=True)),
    }[case]
    w = rng.uniform(0, 2, 77)
    params, hists = [], []
    for python in (False, True):
        model = dense_model(5, k, dtype, python=python, seed=3)
        tr = fm.Trainer(model, loss, make_opt(), seed=7)
        hists.append(tr.fit(X, y, epochs=3, batch_size=10, sample_weight=w,
                            validation_split=0.2, verbose=0).history)
        params.append(model.params)
    assert rel_err(params[1], params[0]) <= RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(hists[1]["loss"], hists[0]["loss"], rtol=1e-5)
    np.testing.assert_allclose(hists[1]["val_loss"], hists[0]["val_loss"], rtol=1e-5)


def test_chunked_epochs_equal_whole_epochs(rng, capsys):
    """The fused loop returning to Python every step (or for the bar) changes nothing."""
    X, y = clf_data(rng)
    results = []
    for kw in (dict(verbose=0), dict(verbose=1),
               dict(verbose=0, callbacks=[fm.LambdaCallback(on_batch_end=lambda b, l: None)])):
        model = dense_model(4, 3)
        fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), seed=2).fit(
            X, y, epochs=2, batch_size=7, **kw)
        results.append(model.params)
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[2], results[0])


def test_python_regains_control_per_epoch_unless_asked(rng, monkeypatch):
    calls = []
    real = _epoch.EpochLoop._steps
    monkeypatch.setattr(_epoch.EpochLoop, "_steps",
                        lambda self, part: calls.append(len(part)) or real(self, part))
    X, y = clf_data(rng, n=100)
    tr = fm.Trainer(dense_model(4, 3), fm.CrossEntropyLoss(), "adam")
    tr.fit(X, y, epochs=3, batch_size=10, verbose=0)
    assert calls == [100] * 3
    calls.clear()
    tr.fit(X, y, epochs=1, batch_size=10, verbose=0,
           callbacks=[fm.LambdaCallback(on_batch_end=lambda b, logs: None)])
    assert calls == [10] * 10


def test_no_allocation_per_step_in_the_fused_loop(rng):
    X = rng.normal(size=(3000, 6))
    y = rng.integers(0, 3, 3000)
    model = fm.Sequential([fm.Dense(6, 16, activation="relu"), fm.Dense(16, 3)], seed=0)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3))
    tr.fit(X, y, epochs=1, batch_size=4, verbose=0)        # warm up (workspaces for 4 rows)
    used = {}
    for rows, batch_size in ((40, 4), (3000, 4), (3000, 1)):       # 10, 750, 3000 steps
        tracemalloc.start()
        tr.fit(X[:rows], y[:rows], epochs=1, batch_size=batch_size, verbose=0)
        used[rows // batch_size] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert all(current < 4096 for current, _ in used.values()), used   # kept: History & co
    assert used[3000][0] - used[10][0] < 1024, used                 # nothing kept per step
    # the peak is the copy of X (float64 -> float32) and per-epoch buffers, not the steps
    assert used[3000][1] - used[750][1] < 1024, used
    assert used[3000][1] < 2 * X.nbytes, used


def test_fit_while_training_in_another_thread(rng):
    X, y = clf_data(rng)
    model = dense_model(4, 3)
    started, release = threading.Event(), threading.Event()

    def hold(epoch, logs):
        started.set()
        release.wait(10)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), "adam")
    worker = threading.Thread(target=tr.fit, args=(X, y), kwargs=dict(
        verbose=0, callbacks=[fm.LambdaCallback(on_epoch_end=hold)]))
    worker.start()
    try:
        assert started.wait(10)
        other = fm.Trainer(model, fm.CrossEntropyLoss(), "adam")
        with pytest.raises(RuntimeError, match="already being trained"):
            other.fit(X, y, verbose=0)
    finally:
        release.set()
        worker.join(10)
    tr.fit(X, y, verbose=0)                            # the lock is free again


# -- learning --------------------------------------------------------------------------------
def test_digits_reach_95_percent():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    (Xtr, ytr), (Xv, yv), (Xte, yte) = fm.train_val_test_split(X, y, (0.7, 0.1, 0.2), seed=0)
    sc = fm.Standardizer().fit(Xtr)
    model = fm.Sequential([fm.Dense(64, 64, activation="relu"), fm.Dense(64, 10)], seed=0)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=3e-3), metrics=["accuracy"])
    tr.fit(sc.transform(Xtr), ytr, epochs=30, batch_size=32, verbose=0,
           validation_data=(sc.transform(Xv), yv), callbacks=[fm.EarlyStopping(patience=5)])
    assert tr.evaluate(sc.transform(Xte), yte)["accuracy"] >= 0.95


@pytest.mark.parametrize("python", [False, True], ids=["fused", "python"])
def test_xor_learned(python):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([0, 1, 1, 0])
    model = fm.Sequential([fm.Dense(2, 8, activation="tanh"), fm.Dense(8, 1)]
                          + ([PyIdentity()] if python else []), seed=0)
    tr = fm.Trainer(model, fm.BCEWithLogitsLoss(), fm.Adam(lr=0.05), metrics=["accuracy"])
    h = tr.fit(X, y, epochs=300, batch_size=4, verbose=0)
    assert h["accuracy"][-1] == 1.0
    np.testing.assert_array_equal(tr.predict(X)[:, 0] > 0, y == 1)


# -- weights ------------------------------------------------------------------------------------
@pytest.mark.parametrize("python", [False, True], ids=["fused", "python"])
def test_zero_sample_weight_is_training_without_the_rows(rng, python):
    """Full batches and SGD: weights sum over the batch size (Keras), so zero weights for
    some rows == training on the others with the learning rate scaled by kept / n."""
    X, y = clf_data(rng, n=60)
    keep = rng.random(60) < 0.6
    a, b = dense_model(4, 3, python=python), dense_model(4, 3, python=python)
    fm.Trainer(a, fm.CrossEntropyLoss(), fm.SGD(lr=0.3)).fit(
        X, y, epochs=5, batch_size=60, sample_weight=keep.astype(float), verbose=0)
    fm.Trainer(b, fm.CrossEntropyLoss(), fm.SGD(lr=0.3 * keep.sum() / 60)).fit(
        X[keep], y[keep], epochs=5, batch_size=60, verbose=0)
    assert rel_err(a.params, b.params) < 1e-12


@pytest.mark.parametrize("loss, y_of", [
    (fm.CrossEntropyLoss(), lambda X: np.argmax(X[:, :3], axis=1)),
    (fm.CrossEntropyLoss(), lambda X: fm.one_hot(np.argmax(X[:, :3], axis=1), 3)),
    (fm.BCEWithLogitsLoss(), lambda X: (X[:, 0] > 0).astype(float)),
], ids=["labels", "one-hot", "bce"])
def test_class_weight_equals_sample_weight(rng, loss, y_of):
    X = rng.normal(size=(50, 4))
    y, k = y_of(X), 1 if isinstance(loss, fm.BCEWithLogitsLoss) else 3
    labels = (X[:, 0] > 0).astype(int) if k == 1 else np.argmax(X[:, :3], axis=1)
    cw = {0: 0.5, 1: 3.0}
    a, b = dense_model(4, k), dense_model(4, k)
    fm.Trainer(a, loss, fm.Adam(lr=1e-2), seed=1).fit(X, y, epochs=2, batch_size=8,
                                                      class_weight=cw, verbose=0)
    fm.Trainer(b, loss, fm.Adam(lr=1e-2), seed=1).fit(
        X, y, epochs=2, batch_size=8, sample_weight=[cw.get(c, 1.0) for c in labels], verbose=0)
    assert rel_err(a.params, b.params) < 1e-12


def test_class_weight_errors(rng):
    X, y = clf_data(rng)
    tr = fm.Trainer(dense_model(4, 3), fm.CrossEntropyLoss(), "adam")
    for cw, exc in (([1, 2, 3], TypeError), ({3: 1.0}, ValueError), ({0: -1.0}, ValueError)):
        with pytest.raises(exc, match="class_weight"):
            tr.fit(X, y, class_weight=cw, verbose=0)
    reg = fm.Trainer(dense_model(4, 1), fm.MSELoss(), "adam")
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        reg.fit(X, X[:, 0], class_weight={0: 2.0}, verbose=0)


# -- validation split -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["labels", "bce"])
def test_validation_split_stratified_by_index(rng, kind):
    n = 200
    y = np.repeat([0, 1, 2, 0], [80, 60, 20, 40]) if kind == "labels" else \
        (np.arange(n) % 4 == 0).astype(float)
    X = with_ids(rng.normal(size=(n, 3)))
    rec = RowRecorder(4)
    k = 3 if kind == "labels" else 1
    loss = fm.CrossEntropyLoss() if kind == "labels" else fm.BCEWithLogitsLoss()
    model = fm.Sequential([rec, fm.Dense(3, k)], dtype="float64", seed=0)
    h = fm.Trainer(model, loss, "adam").fit(X, y, epochs=2, batch_size=16,
                                            validation_split=0.25, verbose=0)
    train = np.concatenate([ids for t, ids in rec.seen if t])
    val = [ids for t, ids in rec.seen if not t]
    np.testing.assert_array_equal(val[0], val[1])            # the same rows every epoch
    val = val[0]
    assert len(val) == 50 and len(train) == 2 * 150
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(n))
    counts = np.bincount(np.asarray(y, dtype=int)[val])
    expected = np.bincount(np.asarray(y, dtype=int)) * 0.25
    assert np.abs(counts - expected).max() <= 1                  # stratified
    assert not np.array_equal(np.sort(val), np.arange(n - 50, n))  # by shuffled index
    assert len(h["val_loss"]) == 2


def test_validation_split_regression_is_a_random_subset(rng):
    n = 100
    X, y = with_ids(rng.normal(size=(n, 2))), rng.normal(size=n)
    rec = RowRecorder(3)
    model = fm.Sequential([rec, fm.Dense(2, 1)], dtype="float64")
    fm.Trainer(model, fm.MSELoss(), "sgd", seed=4).fit(X, y, validation_split=0.3, verbose=0)
    val = [ids for t, ids in rec.seen if not t][0]
    assert len(val) == 30 and not np.array_equal(np.sort(val), np.arange(70, 100))
    rec.seen.clear()
    fm.Trainer(model, fm.MSELoss(), "sgd", seed=4).fit(X, y, validation_split=0.3, verbose=0)
    np.testing.assert_array_equal([ids for t, ids in rec.seen if not t][0], val)   # seeded


# -- bad input ----------------------------------------------------------------------------------
def _bad(X, y):
    """(fit keyword arguments, exception, pattern naming the argument) for bad inputs."""
    return [
        (dict(y=y[:20]), ValueError, "y has 20 rows but X has 30"),
        (dict(X=np.where(X > 1, np.nan, X)), ValueError, "X contains NaN"),
        (dict(X=np.where(X > 1, -np.inf, X)), ValueError, "X contains NaN or inf"),
        (dict(X=X[:, :3]), ValueError, "X has 3 features"),
        (dict(y=np.array(["a", "b", "c"])[y]), TypeError, "^y: target must hold numbers"),
        (dict(y=y + 0.5), ValueError, "^y: .*fractional"),
        (dict(y=y + 3), ValueError, "^y: .*labels in"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=-3), ValueError, "batch_size"),
        (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
        (dict(epochs=-1), ValueError, "epochs must be >= 0"),
        (dict(epochs=True), TypeError, "epochs"),
        (dict(validation_split=1.0), ValueError, "validation_split"),
        (dict(validation_split=-0.1), ValueError, "validation_split"),
        (dict(verbose=3), ValueError, "verbose"),
        (dict(sample_weight=np.ones(20)), ValueError, "sample_weight"),
        (dict(sample_weight=-np.ones(30)), ValueError, "sample_weight"),
        (dict(sample_weight=np.full(30, np.nan)), ValueError, "sample_weight"),
        (dict(validation_data=(X,)), ValueError, "validation_data"),
        (dict(validation_data=(X, y[:5])), ValueError, "validation_data"),
        (dict(callbacks=[print]), TypeError, "callbacks"),
    ]


@pytest.mark.parametrize("case", range(21))
def test_fit_rejects_bad_input(case):
    rng = np.random.default_rng(case)
    X, y = clf_data(rng, n=30)
    kw, exc, pattern = _bad(X, y)[case]
    model = dense_model(4, 3)
    before = model.get_weights()
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), "adam")
    with pytest.raises(exc, match=pattern):
        tr.fit(**{"X": X, "y": y, "verbose": 0, **kw})
    np.testing.assert_array_equal(model.params, before)
    assert tr.fit(X, y, verbose=0) is not None          # nothing left locked or half-set


def test_regression_targets_and_evaluate_predict_checked(rng):
    X = rng.normal(size=(20, 3))
    tr = fm.Trainer(dense_model(3, 1), fm.MSELoss(), "adam")
    for bad in (np.where(X[:, 0] > 1, np.nan, X[:, 0]), np.where(X[:, 0] > 1, np.inf, 0)):
        with pytest.raises(ValueError, match="^y"):
            tr.fit(X, bad, verbose=0)
        with pytest.raises(ValueError, match="^y"):
            tr.evaluate(X, bad)
    with pytest.raises(ValueError, match="y has 19 rows but X has 20"):
        tr.evaluate(X, X[1:, 0])
    with pytest.raises(ValueError, match="X has 2 features"):
        tr.predict(X[:, :2])
    with pytest.raises(ValueError, match="X contains NaN"):
        tr.predict(np.full((2, 3), np.nan))
    with pytest.raises(TypeError, match="X"):
        tr.predict("abc")


def _unaligned(a):
    """A copy of ``a`` whose data starts one byte past an aligned address."""
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_arrays_are_copied_before_the_core(rng, dtype):
    """An unaligned but C-contiguous array of the right dtype is still copied (the core
    reads through typed pointers); results equal those of the aligned array."""
    X = rng.normal(size=(40, 6)).astype(dtype)
    y = rng.integers(0, 3, 40)
    w = rng.uniform(0.5, 1.5, 40)
    fits = []
    for conv in (lambda a: a, _unaligned):
        model = fm.Sequential([fm.Dense(6, 8, activation="tanh"), fm.Dense(8, 3)],
                              dtype=dtype, seed=1)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=0.01))
        tr.fit(conv(X), conv(y), epochs=2, batch_size=8, verbose=0, sample_weight=conv(w))
        fits.append((model.params.copy(), model.predict(conv(X)), tr.evaluate(conv(X), conv(y))))
    np.testing.assert_array_equal(fits[0][0], fits[1][0])
    np.testing.assert_array_equal(fits[0][1], fits[1][1])
    assert fits[0][2] == fits[1][2]
    plan = model._thread_stages()[0][1]
    with pytest.raises(TypeError, match="aligned"):
        plan.predict(_unaligned(X), 8)
