"""Trainer habits of Keras and PyTorch users (issue 16): validation split, losses and metrics
by name or class, label shapes, checkpoints, CSV logs, fit arguments."""
import numpy as np
import pytest

import fastmlp as fm


@fm.io.register(name="tests.habits.RowIds")
class RowIds(fm.Layer):
    """First layer in NumPy: records the row ids (column 0) seen in evaluation mode."""

    def __init__(self, n_in):
        super().__init__()
        self.n_in = n_in
        self.evaluated = []

    def build(self, n_in):
        self.n_out = n_in - 1
        return self.n_out

    def forward(self, X, training=False):
        if not training:
            self.evaluated.append(X[:, 0].astype(np.int64))
        return X[:, 1:]

    def backward(self, dY):
        return np.hstack([np.zeros((dY.shape[0], 1), dY.dtype), dY])


def _ids_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = np.hstack([np.arange(n)[:, None], rng.normal(size=(n, 4))])
    return X, rng.integers(0, 3, n)


def _val_rows(trainer, X, y, **kw):
    rec = trainer.model[0]
    rec.evaluated.clear()
    trainer.fit(X, y, epochs=1, validation_split=0.2, verbose=0, **kw)
    return set(np.concatenate(rec.evaluated).tolist())


@pytest.mark.parametrize("seed", [0, None])
def test_validation_split_holds_out_the_same_rows_every_fit(tmp_path, seed):
    """Item 3: a second fit, or a fit after a resume, validates on the rows held out first."""
    X, y = _ids_data()
    model = fm.Sequential([RowIds(5), fm.Dense(4, 3)], seed=seed)
    t = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3))
    first = _val_rows(t, X, y)
    assert len(first) == 40
    assert _val_rows(t, X, y) == first
    fm.save(t, tmp_path / "t.fmlp")
    resumed = fm.load(tmp_path / "t.fmlp")
    assert _val_rows(resumed, X, y) == first
    other = fm.Trainer(fm.Sequential([RowIds(5), fm.Dense(4, 3)], seed=1),
                       fm.CrossEntropyLoss(), fm.Adam(), seed=12345)
    assert _val_rows(other, X, y) != first          # fixed by the seed, not by accident


def _clf(seed=0, n_in=4, n_out=3):
    return fm.Sequential([fm.Dense(n_in, 8, activation="relu"), fm.Dense(8, n_out)], seed=seed)


def _clf_data(n=60, seed=0, n_in=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)


@pytest.mark.parametrize("loss,cls", [
    (fm.CrossEntropyLoss, fm.CrossEntropyLoss),
    ("categorical_crossentropy", fm.CrossEntropyLoss),
    ("sparse_categorical_crossentropy", fm.CrossEntropyLoss),
    ("cross_entropy", fm.CrossEntropyLoss), ("CrossEntropyLoss", fm.CrossEntropyLoss),
    ("mse", fm.MSELoss), ("mean_squared_error", fm.MSELoss), ("mae", fm.L1Loss),
    ("huber", fm.HuberLoss), ("binary_crossentropy", fm.BCEWithLogitsLoss),
    (fm.MSELoss(), fm.MSELoss)])
def test_loss_by_class_or_name(loss, cls):
    """Item 9: losses take what the optimizer takes (name, class or instance)."""
    t = fm.Trainer(_clf(), loss, "adam")
    assert type(t.loss) is cls
    assert type(fm.losses.get_loss(loss)) is cls


def test_bad_loss_names_the_argument():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge_loss'.*mse"):
        fm.Trainer(_clf(), "hinge_loss", "adam")
    with pytest.raises(TypeError, match="loss must be"):
        fm.Trainer(_clf(), 3, "adam")
    with pytest.raises(TypeError, match="loss must be"):
        fm.Trainer(_clf(), fm.Adam, "adam")


def test_metrics_by_bare_string_callable_class_or_dict():
    """Items 9, 10: a bare string is one metric; a dict names callables."""
    X, y = _clf_data()
    assert [n for n, _ in fm.Trainer(_clf(), "cross_entropy", "adam",
                                     metrics="accuracy").metrics] == ["accuracy"]
    t = fm.Trainer(_clf(), "cross_entropy", "adam", metrics={"share": lambda a, b: 0.5})
    assert t.fit(X, y, verbose=0).history["share"] == [0.5]
    with pytest.raises(ValueError, match="metrics"):
        fm.Trainer(_clf(), "cross_entropy", "adam", metrics="acuracy")


def test_integer_labels_of_shape_n_by_1():
    """Item 11: (n, 1) class labels are read as (n,), as scikit-learn and Keras do."""
    X, y = _clf_data()
    a = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.SGD(lr=0.1), metrics=["accuracy"], seed=0)
    b = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.SGD(lr=0.1), metrics=["accuracy"], seed=0)
    ha = a.fit(X, y[:, None], epochs=2, verbose=0, validation_data=(X, y[:, None]))
    hb = b.fit(X, y, epochs=2, verbose=0, validation_data=(X, y))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert ha.history[key] == hb.history[key]
    assert a.evaluate(X, y[:, None]) == b.evaluate(X, y)


def test_named_custom_metric_restores(tmp_path):
    """Item 13: a metric given a name is saved under it and restored by it."""
    X, y = _clf_data()
    f = lambda yt, p: float((p.argmax(1) == yt).mean())      # noqa: E731
    t = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam(), metrics={"my_metric": f})
    t.fit(X, y, verbose=0)
    fm.save(t, tmp_path / "t.fmlp")
    back = fm.load(tmp_path / "t.fmlp", custom_objects={"my_metric": f})
    assert back.metrics == [("my_metric", f)]
    anon = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam(), metrics=[f])
    fm.save(anon, tmp_path / "a.fmlp")
    with pytest.raises(ValueError, match=r"custom_objects=\{'metric'"):
        fm.load(tmp_path / "a.fmlp", custom_objects={"my_metric": f})


def test_checkpoint_path_checked_at_fit_start(tmp_path):
    """Item 13: a {val_loss} path without validation data, or a missing directory, fails
    before the first epoch trains, naming the user's path."""
    X, y = _clf_data()
    t = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam())
    seen = []
    spy = fm.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))
    bad = fm.ModelCheckpoint(str(tmp_path / "m-{val_loss:.3f}.fmlp"), monitor="loss")
    with pytest.raises(ValueError, match=r"val_loss.*validation"):
        t.fit(X, y, epochs=2, verbose=0, callbacks=[spy, bad])
    assert seen == []
    missing = str(tmp_path / "nope" / "m.fmlp")
    with pytest.raises(FileNotFoundError, match="nope"):
        t.fit(X, y, epochs=1, verbose=0, callbacks=[fm.ModelCheckpoint(missing,
                                                                          monitor="loss")])
    with pytest.raises(FileNotFoundError) as info:
        fm.save(t, missing)
    assert missing in str(info.value) and ".tmp" not in str(info.value)
    ok = fm.ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_loss:.3f}.fmlp"))
    t.fit(X, y, epochs=1, verbose=0, validation_split=0.2, callbacks=[ok])
    assert len(list(tmp_path.glob("m-1-*.fmlp"))) == 1


def test_csv_logger_append_after_resume_continues_epochs(tmp_path):
    """Item 15: appending to a log after a resume numbers the epochs on."""
    import csv
    X, y = _clf_data()
    path = tmp_path / "log.csv"
    t = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam())
    t.fit(X, y, epochs=3, verbose=0, callbacks=[fm.CSVLogger(path)])
    fm.save(t, tmp_path / "t.fmlp")
    resumed = fm.load(tmp_path / "t.fmlp")
    resumed.fit(X, y, epochs=2, verbose=0, callbacks=[fm.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    # with Keras' initial_epoch the trainer's numbers are kept as they are
    fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam()).fit(
        X, y, epochs=7, initial_epoch=5, verbose=0, callbacks=[fm.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3, 4, 5, 6]


def test_initial_epoch_and_validation_freq():
    """Item 18: Keras' fit(initial_epoch=, validation_freq=)."""
    X, y = _clf_data()
    t = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam())
    seen = []
    cb = fm.LambdaCallback(on_epoch_end=lambda e, logs: seen.append((e, "val_loss" in logs)))
    h = t.fit(X, y, epochs=6, initial_epoch=2, validation_split=0.2, validation_freq=2,
              verbose=0, callbacks=[cb])
    assert seen == [(2, False), (3, True), (4, False), (5, True)]
    assert h.epoch == [2, 3, 4, 5] and len(h.history["loss"]) == 4
    seen.clear()
    t.fit(X, y, epochs=3, validation_split=0.2, validation_freq=[1, 3], verbose=0,
          callbacks=[cb])
    assert seen == [(0, True), (1, False), (2, True)]
    for bad, exc in [(dict(initial_epoch=-1), ValueError), (dict(initial_epoch=1.5), TypeError),
                     (dict(validation_freq=0), ValueError),
                     (dict(validation_freq="x"), TypeError)]:
        with pytest.raises(exc, match=next(iter(bad))):
            t.fit(X, y, epochs=2, verbose=0, **bad)


def test_validation_data_with_sample_weights():
    """Item 18: a 3-tuple (X_val, y_val, w_val) weights the validation loss."""
    X, y = _clf_data()
    t = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.SGD(lr=0.0))
    w = np.linspace(0, 2, X.shape[0])
    h = t.fit(X, y, verbose=0, validation_data=(X, y, w))
    assert h.history["val_loss"][0] == pytest.approx(t.evaluate(X, y, sample_weight=w)["loss"])
    assert h.history["val_loss"][0] != pytest.approx(t.evaluate(X, y)["loss"])
    with pytest.raises(ValueError, match="validation_data"):
        t.fit(X, y, verbose=0, validation_data=(X,))


def test_class_weight_balanced_as_sklearn():
    """Item 18: class_weight="balanced" weighs classes by n / (k * count)."""
    from sklearn.utils.class_weight import compute_class_weight
    X, y = _clf_data()
    y = np.where(np.arange(y.shape[0]) < 40, 0, y)           # unbalanced
    cw = compute_class_weight("balanced", classes=np.arange(3), y=y)
    a = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.SGD(lr=0.1), seed=0)
    b = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.SGD(lr=0.1), seed=0)
    ha = a.fit(X, y, epochs=2, verbose=0, class_weight="balanced").history["loss"]
    hb = b.fit(X, y, epochs=2, verbose=0, class_weight=dict(enumerate(cw))).history["loss"]
    np.testing.assert_allclose(ha, hb, rtol=1e-6)
    with pytest.raises(ValueError, match="class_weight"):
        a.fit(X, y, verbose=0, class_weight="balance")


def test_predict_proba():
    """Item 18: Trainer.predict_proba gives the probabilities the loss means."""
    X, y = _clf_data()
    t = fm.Trainer(_clf(), fm.CrossEntropyLoss(), fm.Adam())
    p = t.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(p.argmax(1), t.predict(X).argmax(1))
    b = fm.Trainer(_clf(n_out=1), fm.BCEWithLogitsLoss(), fm.Adam())
    np.testing.assert_allclose(b.predict_proba(X), 1 / (1 + np.exp(-b.predict(X))), rtol=1e-6)
    with pytest.raises(TypeError, match="classification loss"):
        fm.Trainer(_clf(), fm.MSELoss(), fm.Adam()).predict_proba(X)


def test_model_summary(capsys):
    """Item 18: Keras' model.summary(): layers, output shapes, parameter counts."""
    m = fm.Sequential(fm.Dense(4, 8, activation="relu"), fm.Residual(fm.Dense(8, 8)),
                      fm.Dropout(0.1), fm.Dense(8, 3))
    m.summary()
    out = capsys.readouterr().out
    for text in ("Dense(4, 8, activation='relu')", "(None, 8)", "(None, 3)", "Residual",
                 f"Total params: {m.n_params:,}", "Dropout"):
        assert text in out
    lines = []
    m.summary(print_fn=lines.append)
    assert "\n".join(lines) + "\n" == out


def test_train_loss_and_metrics_measured_the_same_way():
    """Item 20: with metrics, the epoch's loss and metrics are both evaluation-mode values
    on the training rows at the epoch's end; without, loss is the running training mean."""
    X, y = _clf_data(n=80)
    w = np.linspace(0.5, 1.5, X.shape[0])

    def noisy():
        return fm.Sequential(fm.Dense(4, 16, activation="relu"), fm.Dropout(0.5),
                             fm.Dense(16, 3), seed=0)
    t = fm.Trainer(noisy(), fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), metrics=["accuracy"],
                   regularizers=[fm.L2Penalty(1e-3)], seed=0)
    h = t.fit(X, y, epochs=2, verbose=0, sample_weight=w).history
    ev = t.evaluate(X, y, sample_weight=w)
    assert h["loss"][-1] == pytest.approx(ev["loss"], rel=1e-6)
    assert h["accuracy"][-1] == ev["accuracy"]
    plain = fm.Trainer(noisy(), fm.CrossEntropyLoss(), fm.Adam(lr=1e-2),
                       regularizers=[fm.L2Penalty(1e-3)], seed=0)
    hp = plain.fit(X, y, epochs=2, verbose=0, sample_weight=w).history
    assert hp["loss"][-1] != pytest.approx(plain.evaluate(X, y, sample_weight=w)["loss"],
                                           rel=1e-3)          # the running mean, dropout on
