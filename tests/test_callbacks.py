"""Callbacks (Keras semantics), History, progress output and divergence handling."""
import csv
import sys

import numpy as np
import pytest

import fastmlp as fm


class PyIdentity(fm.Layer):
    """A user layer in NumPy that changes nothing: the model is no longer fused."""

    def forward(self, X, training=False):
        return X

    def backward(self, dY):
        return dY


class FakeModel:
    def __init__(self):
        self.w = np.zeros(1)

    def get_weights(self):
        return self.w.copy()

    def set_weights(self, w):
        self.w[...] = w


class FakeTrainer:
    def __init__(self):
        self.model, self.optimizer, self.stop_training = FakeModel(), fm.SGD(lr=1.0), False


def drive(cb, values, monitor="m"):
    """Run ``cb`` over per-epoch values of ``monitor`` as the Trainer would; the fake
    model's weight is the epoch number. Returns (epochs run, trainer)."""
    tr = FakeTrainer()
    cb.set_trainer(tr)
    cb.on_train_begin({})
    epochs = 0
    for epoch, v in enumerate(values):
        cb.on_epoch_begin(epoch, {})
        tr.model.w[0] = epoch
        cb.on_epoch_end(epoch, {monitor: v})
        epochs += 1
        if tr.stop_training:
            break
    cb.on_train_end({})
    return epochs, tr


def data(rng, n=80):
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def model(python=False, dtype="float64"):
    layers = [fm.Dense(3, 6, activation="tanh"), fm.Dense(6, 2)]
    return fm.Sequential(layers + ([PyIdentity()] if python else []), dtype=dtype, seed=0)


# -- EarlyStopping ------------------------------------------------------------------------------
@pytest.mark.parametrize("patience, values, epochs, best, triggered", [
    (2, [5, 4, 4, 4, 1], 4, 1, True),       # stops on the 2nd epoch without improvement
    (2, [5, 4, 4, 3, 3, 3], 6, 3, True),
    (0, [5, 6, 1], 2, 0, True),             # patience 0: the first bad epoch stops
    (3, [5, 4, 3, 2, 1], 5, 4, False),      # never triggered: runs to the end
    (3, [5, 1, 3, 2], 4, 1, False),
])
def test_early_stopping_patience(patience, values, epochs, best, triggered):
    cb = fm.EarlyStopping(monitor="m", patience=patience)
    ran, tr = drive(cb, values)
    assert ran == epochs and cb.best_epoch == best
    assert tr.model.w[0] == best            # best weights restored (triggered or not)
    assert (cb.stopped_epoch is not None) == triggered


def test_early_stopping_min_delta_and_modes():
    cb = fm.EarlyStopping(monitor="m", patience=2, min_delta=0.5)
    assert drive(cb, [5, 4.6, 4.55, 4.0, 1])[0] == 3         # 0.4, 0.45 < 0.5 from best 5
    assert cb.best == 5
    cb = fm.EarlyStopping(monitor="m", patience=1, min_delta=0.5)
    assert drive(cb, [5, 4.4, 3.9, 3.8])[0] == 4 and cb.best_epoch == 2
    for monitor, mode in (("val_accuracy", "max"), ("acc", "max"), ("val_r2", "max"),
                          ("val_loss", "min"), ("mae", "min"), ("top_3_accuracy", "max")):
        assert fm.EarlyStopping(monitor=monitor).mode == mode
    cb = fm.EarlyStopping(monitor="val_accuracy", patience=1)  # auto -> max
    epochs, tr = drive(cb, [0.5, 0.7, 0.6, 0.9], "val_accuracy")
    assert epochs == 3 and tr.model.w[0] == 1
    cb = fm.EarlyStopping(monitor="score", mode="max", patience=1)
    assert drive(cb, [1, 2, 1.5], "score")[0] == 3 and cb.best == 2
    cb = fm.EarlyStopping(monitor="score", mode="min", patience=1)
    assert drive(cb, [1, 2, 1.5], "score")[0] == 2 and cb.best == 1


def test_early_stopping_start_from_epoch_and_no_restore():
    cb = fm.EarlyStopping(monitor="m", patience=1, start_from_epoch=2)
    epochs, tr = drive(cb, [1, 9, 5, 6, 7])                 # epochs 0, 1 are not monitored
    assert epochs == 4 and cb.best_epoch == 2 and tr.model.w[0] == 2
    cb = fm.EarlyStopping(monitor="m", patience=1, restore_best_weights=False)
    epochs, tr = drive(cb, [1, 2, 3])
    assert epochs == 2 and tr.model.w[0] == 1              # the last weights stay


def test_early_stopping_missing_metric_and_bad_args(capsys):
    cb = fm.EarlyStopping(monitor="val_loss", verbose=1)
    with pytest.warns(RuntimeWarning, match="val_loss.*not available"):
        assert drive(cb, [1, 2, 3], "loss")[0] == 3
    cb = fm.EarlyStopping(monitor="m", verbose=1)
    drive(cb, [np.nan, np.nan])                             # no improvement ever: no crash
    assert "Restoring the weights of epoch 1" in capsys.readouterr().out
    for kw in (dict(mode="up"), dict(patience=-1), dict(patience=1.5), dict(min_delta=-1),
               dict(start_from_epoch=-1)):
        with pytest.raises(ValueError):
            fm.EarlyStopping(**kw)


def test_early_stopping_in_fit_restores_best_weights(rng):
    """A real fit: the monitored score is injected; the weights of its best epoch return."""
    X, y = data(rng)
    m = model()
    scores, snaps = [3, 1, 2, 0.5, 0.7, 0.6, 0.9, 0.8], []
    inject = fm.LambdaCallback(on_epoch_end=lambda e, logs: (
        logs.__setitem__("score", scores[e]), snaps.append(m.get_weights())))
    tr = fm.Trainer(m, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2))
    h = tr.fit(X, y, epochs=8, verbose=0,
               callbacks=[inject, fm.EarlyStopping(monitor="score", patience=3)])
    assert len(h) == 7 and h["score"] == scores[:7]
    np.testing.assert_array_equal(m.params, snaps[3])
    h = tr.fit(X, y, epochs=5, verbose=0,                      # not triggered: restored too
               callbacks=[inject, fm.EarlyStopping(monitor="score", patience=10)])
    assert len(h) == 5
    np.testing.assert_array_equal(m.params, snaps[7 + 3])


# -- learning-rate callbacks -------------------------------------------------------------------
def test_reduce_lr_on_plateau_keras_patience():
    cb = fm.ReduceLROnPlateau(monitor="m", patience=2, factor=0.5)
    tr = FakeTrainer()
    cb.set_trainer(tr)
    cb.on_train_begin({})
    lrs = []
    for epoch, v in enumerate([1, 1, 1, 1, 1, 0.5, 0.5, 0.5]):
        cb.on_epoch_end(epoch, {"m": v})
        lrs.append(tr.optimizer.lr)
    assert lrs == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    cb = fm.ReduceLROnPlateau(monitor="m", patience=1, factor=0.1, min_lr=0.05, cooldown=1)
    cb.set_trainer(tr := FakeTrainer())
    cb.on_train_begin({})
    lrs = []
    for epoch, v in enumerate([1, 2, 2, 2, 2]):
        cb.on_epoch_end(epoch, {"m": v})
        lrs.append(tr.optimizer.lr)
    assert lrs == [1, 0.1, 0.1, 0.05, 0.05]
    with pytest.raises(ValueError, match="factor"):
        fm.ReduceLROnPlateau(factor=2.0)


def test_reduce_lr_on_plateau_in_fit(rng):
    X, y = data(rng)
    tr = fm.Trainer(model(), fm.CrossEntropyLoss(), fm.Adam(lr=1e-2))
    flat = fm.LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("flat", 1.0))
    h = tr.fit(X, y, epochs=5, verbose=0,
               callbacks=[flat, fm.ReduceLROnPlateau(monitor="flat", patience=1, factor=0.5)])
    assert h["lr"] == pytest.approx([1e-2, 1e-2, 5e-3, 2.5e-3, 1.25e-3])


def test_learning_rate_scheduler(rng):
    X, y = data(rng)
    tr = fm.Trainer(model(), fm.CrossEntropyLoss(), fm.SGD(lr=0.1))
    h = tr.fit(X, y, epochs=3, verbose=0,
               callbacks=[fm.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert h["lr"] == pytest.approx([0.05, 0.025, 0.0125])
    h = tr.fit(X, y, epochs=3, verbose=0,
               callbacks=[fm.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))])
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3]) and tr.optimizer.lr == h["lr"][-1]
    sched = fm.schedules.StepLR(tr.optimizer, step_size=2, gamma=0.1)
    h = tr.fit(X, y, epochs=4, verbose=0, callbacks=[fm.LearningRateScheduler(sched)])
    assert h["lr"] == pytest.approx([0.1 / 3, 0.1 / 3, 0.01 / 3, 0.01 / 3])
    with pytest.raises(ValueError, match="invalid learning rate"):
        tr.fit(X, y, verbose=0, callbacks=[fm.LearningRateScheduler(lambda e, lr: -1.0)])
    with pytest.raises(TypeError, match="schedule"):
        fm.LearningRateScheduler(0.1)


def test_learning_rate_change_reaches_the_fused_loop(rng):
    """lr = 0 from epoch 1 on: the weights stop moving, on both paths."""
    X, y = data(rng)
    for python in (False, True):
        m = model(python)
        snaps = []
        fm.Trainer(m, fm.CrossEntropyLoss(), fm.SGD(lr=0.1)).fit(X, y, epochs=3, verbose=0,
            callbacks=[fm.LearningRateScheduler(lambda e, lr: 0.1 if e == 0 else 0.0),
                       fm.LambdaCallback(on_epoch_end=lambda e, l: snaps.append(m.get_weights()))])
        np.testing.assert_array_equal(snaps[1], snaps[0])
        np.testing.assert_array_equal(snaps[2], snaps[0])
# -- divergence: FloatingPointError or TerminateOnNaN ---------------------------------------
def _diverge_by_hand(lr, X, y):
    """The low-level loop (float32, batches of 10, no shuffling) until the loss or its
    gradient is not finite (fit stops before an update with a non-finite gradient):
    (epoch, step, weights then, weights at the start of that epoch)."""
    m, opt, loss = fm.Sequential([fm.Dense(3, 1)], seed=0), fm.SGD(lr=lr), fm.MSELoss()
    for epoch in range(60):
        start = m.get_weights()
        for s in range(0, 40, 10):
            out = m.forward(X[s:s + 10], training=True)
            if not (np.isfinite(out).all() and np.isfinite(loss(out, y[s:s + 10]))):
                return epoch, s // 10, m.get_weights(), start
            m.zero_grad()
            m.backward(loss.grad(out, y[s:s + 10]))
            if not np.isfinite(m.grads).all():
                return epoch, s // 10, m.get_weights(), start
            opt.step(m)
    raise AssertionError("did not diverge")


@pytest.mark.parametrize("python", [False, True], ids=["fused", "python"])
@pytest.mark.parametrize("lr", [1.0, 0.2])
@pytest.mark.parametrize("terminate", [False, True], ids=["raise", "TerminateOnNaN"])
def test_diverging_run(rng, capsys, python, lr, terminate):
    X = rng.normal(size=(40, 3)) * 3
    y = X @ np.array([1.0, 2.0, 3.0])
    epoch, step, last, start = _diverge_by_hand(lr, X, y)
    model = fm.Sequential([fm.Dense(3, 1)] + ([PyIdentity()] if python else []), seed=0)
    tr = fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=lr))
    msg = f"epoch {epoch + 1}, step {step + 1}"
    kw = dict(epochs=100, batch_size=10, shuffle=False, verbose=0)
    if terminate:
        ended = []
        h = tr.fit(X, y, callbacks=[fm.TerminateOnNaN(),
                                    fm.LambdaCallback(on_train_end=ended.append)], **kw)
        assert len(h) == epoch and ended and tr.stop_training
        assert msg in capsys.readouterr().out
    else:
        with pytest.raises(FloatingPointError, match=msg):
            tr.fit(X, y, **kw)
    assert np.isfinite(model.params).all()
    np.testing.assert_array_equal(model.params, last if np.isfinite(last).all() else start)


# -- the other callbacks ------------------------------------------------------------------------
def test_csv_logger(rng, tmp_path):
    X, y = data(rng)
    path = tmp_path / "log.csv"
    tr = fm.Trainer(model(), fm.CrossEntropyLoss(), "adam", metrics=["accuracy"])
    h = tr.fit(X, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[fm.CSVLogger(path)])
    rows = list(csv.DictReader(open(path)))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert set(rows[0]) == {"epoch", *h.history}
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "lr"):
        assert [float(r[key]) for r in rows] == pytest.approx(h[key], rel=1e-12)
    tr.fit(X, y, epochs=2, verbose=0, callbacks=[fm.CSVLogger(path)])       # overwrite
    assert len(list(csv.DictReader(open(path)))) == 2
    tr.fit(X, y, epochs=2, verbose=0, callbacks=[fm.CSVLogger(path, append=True)])
    assert len(list(csv.DictReader(open(path)))) == 4
    tr.fit(X, y, epochs=1, verbose=0, callbacks=[fm.CSVLogger(path, separator=";")])
    assert open(path).readline().startswith("epoch;")


def test_lambda_callback_hooks_and_stop_training(rng):
    X, y = data(rng)
    events = []
    cb = fm.LambdaCallback(
        on_train_begin=lambda logs: events.append("begin"),
        on_epoch_begin=lambda e, logs: events.append(("epoch", e)),
        on_batch_end=lambda b, logs: events.append(("batch", b, round(logs["loss"], 9) > 0)),
        on_epoch_end=lambda e, logs: events.append(("end", e, sorted(logs))),
        on_train_end=lambda logs: events.append("done"))
    tr = fm.Trainer(model(), fm.CrossEntropyLoss(), "adam")
    tr.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    keys = ["epoch_time", "loss", "lr"]
    assert events == ["begin", ("epoch", 0), ("batch", 0, True), ("batch", 1, True),
                      ("batch", 2, True), ("end", 0, keys), ("epoch", 1), ("batch", 0, True),
                      ("batch", 1, True), ("batch", 2, True), ("end", 1, keys), "done"]
    assert not fm.LambdaCallback(on_epoch_end=print).wants_batches
    stop = fm.LambdaCallback(on_epoch_end=lambda e, logs: setattr(tr, "stop_training", e == 1))
    assert len(tr.fit(X, y, epochs=10, verbose=0, callbacks=[stop])) == 2


def test_subclassed_callback_and_checkpoint_constructible(tmp_path):
    class Batches(fm.Callback):
        def on_batch_end(self, batch, logs=None):
            pass
    assert Batches().wants_batches and not fm.EarlyStopping().wants_batches
    ck = fm.ModelCheckpoint(tmp_path / "m-{epoch:02d}.fmlp", monitor="val_accuracy")
    assert ck.mode == "max" and ck.save_best_only and ck.path.endswith("m-{epoch:02d}.fmlp")
    with pytest.raises(ValueError, match="mode"):
        fm.ModelCheckpoint("x", mode="biggest")


# -- History ------------------------------------------------------------------------------------
def test_history_records_every_key():
    h = fm.History()
    h.append(0, {"loss": 1.0})
    h.append(1, {"loss": 0.5, "val_loss": 0.7})
    h.append(2, {"loss": 0.4})
    assert h.epoch == [0, 1, 2] and len(h) == 3
    assert h.history == {"loss": [1.0, 0.5, 0.4], "val_loss": [None, 0.7, None]}
    assert "epochs=3" in repr(h)


def test_history_plot(rng, tmp_path):
    pytest.importorskip("matplotlib")
    X, y = data(rng)
    tr = fm.Trainer(model(), fm.CrossEntropyLoss(), "adam", metrics=["accuracy"])
    h = tr.fit(X, y, epochs=3, validation_split=0.25, verbose=0)
    path = tmp_path / "curves.png"
    fig = h.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [3, 3]
    with pytest.raises(ValueError, match="empty"):
        fm.History().plot(tmp_path / "none.png")


def test_history_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    h = fm.History()
    h.append(0, {"loss": 1.0})
    with pytest.raises(ImportError, match="pip install"):
        h.plot()


# -- progress -----------------------------------------------------------------------------------
def test_verbose_levels(rng, capfd):
    X, y = data(rng)
    tr = fm.Trainer(model(), fm.CrossEntropyLoss(), "adam", metrics=["accuracy"])
    tr.fit(X, y, epochs=2, verbose=0, validation_split=0.2)
    assert capfd.readouterr() == ("", "")
    tr.fit(X, y, epochs=3, verbose=2, validation_split=0.2)
    out, err = capfd.readouterr()
    lines = (out + err).strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3")
    assert all("loss=" in s and "val_accuracy=" in s for s in lines)
    tr.fit(X, y, epochs=2, verbose=1, validation_split=0.2)
    out, err = capfd.readouterr()
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "rows/s" in err
    assert "loss=" in err and "val_accuracy=" in err and out == ""
