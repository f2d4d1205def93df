"""Ensemble: averaging, parallel training equal to serial training, accuracy, bad arguments."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import rel_err


def member(seed, n_in=4, n_out=3, hidden=16, dtype="float64", dropout=0.0):
    layers = [fm.Dense(n_in, hidden, activation="relu")]
    layers += [fm.Dropout(dropout)] if dropout else []
    return fm.Sequential(layers + [fm.Dense(hidden, n_out)], dtype=dtype, seed=seed)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def blobs(rng, n, k=3, d=4, spread=1.6):
    centers = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, n)
    return centers[y] + spread * rng.normal(size=(n, d)), y


# --- averaging ----------------------------------------------------------------------------------

def test_predict_is_the_mean_of_the_members(rng):
    models = [member(s) for s in range(3)] + [member(3, dtype="float32")]
    ens = fm.Ensemble(models)
    X = rng.normal(size=(7, 4))
    outs = [m.predict(X).astype(np.float64) for m in models]
    pred = ens.predict(X)
    assert pred.shape == (7, 3) and pred.dtype == np.float64
    assert rel_err(pred, sum(outs) / 4) < 1e-15
    np.testing.assert_array_equal(fm.Ensemble(models[:1]).predict(X), outs[0])


def test_predict_proba_averages_probabilities_not_logits(rng):
    models = [member(s) for s in range(3)]
    for m in models:
        m.params *= 3                               # confident members: the order matters
    X = rng.normal(size=(9, 4))
    logits = [m.predict(X) for m in models]
    proba = fm.Ensemble(models, loss=fm.CrossEntropyLoss()).predict_proba(X)
    want = sum(softmax(z) for z in logits) / 3
    assert rel_err(proba, want) < 1e-14
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
    assert rel_err(softmax(sum(logits) / 3), want) > 1e-3


def test_predict_proba_for_bce_is_the_mean_sigmoid(rng):
    models = [member(s, n_out=1) for s in range(4)]
    X = rng.normal(size=(6, 4))
    proba = fm.Ensemble(models, loss=fm.BCEWithLogitsLoss()).predict_proba(X)
    want = sum(1 / (1 + np.exp(-m.predict(X))) for m in models) / 4
    assert proba.shape == (6, 1) and rel_err(proba, want) < 1e-14


def test_predict_proba_needs_a_classification_loss(rng):
    X = rng.normal(size=(2, 4))
    with pytest.raises(ValueError, match="loss"):
        fm.Ensemble([member(0)]).predict_proba(X)
    with pytest.raises(ValueError, match="classification"):
        fm.Ensemble([member(0)], loss=fm.MSELoss()).predict_proba(X)


def test_prediction_is_evaluation_mode(rng):
    models = [member(s, dropout=0.5) for s in range(2)]
    X = rng.normal(size=(5, 4))
    ens = fm.Ensemble(models)
    np.testing.assert_array_equal(ens.predict(X), ens.predict(X))
    assert all(m.rng_step == 0 for m in models)


# --- training -----------------------------------------------------------------------------------

def fit_ensemble(n_jobs, optimizer="adam", **kw):
    rng = np.random.default_rng(0)
    X, y = blobs(rng, 120)
    ens = fm.Ensemble([member(s, dropout=0.2) for s in range(4)], loss=fm.CrossEntropyLoss())
    hists = ens.fit(X, y, optimizer=optimizer, epochs=4, batch_size=16, n_jobs=n_jobs,
                    validation_split=0.2, metrics=["accuracy"], **kw)
    return ens, hists


@pytest.mark.parametrize("n_jobs", [2, 3, 8])
def test_parallel_fit_equals_serial_fit(n_jobs):
    """Each member has its own seed (initialization, shuffling, dropout masks) and its own
    optimizer: training is deterministic, whatever runs alongside it."""
    serial, h_serial = fit_ensemble(1, optimizer_kwargs={"lr": 1e-2})
    parallel, h_parallel = fit_ensemble(n_jobs, optimizer_kwargs={"lr": 1e-2})
    for a, b, ha, hb in zip(serial, parallel, h_serial, h_parallel):
        np.testing.assert_array_equal(a.get_weights(), b.get_weights())
        assert ha.history["loss"] == hb.history["loss"]
        assert set(ha.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(h_parallel) == 4 and all(len(h) == 4 for h in h_parallel)
    # different seeds: different members
    assert not np.array_equal(serial[0].params, serial[1].params)


def test_every_member_gets_its_own_optimizer_and_callbacks():
    made = []

    def factory():
        made.append(fm.SGD(lr=0.05, momentum=0.9))
        return made[-1]

    stopper = fm.EarlyStopping(monitor="loss", patience=0)
    ens, hists = fit_ensemble(2, optimizer=factory, callbacks=[stopper])
    assert len(made) == 4 and len({id(o) for o in made}) == 4
    assert stopper.trainer is None                   # copies were used, not the original
    cbs = []
    fit_ensemble(2, optimizer=fm.RMSprop, optimizer_kwargs={"lr": 1e-3},
                 callbacks=lambda: cbs.append(fm.History()) or [])
    assert len(cbs) == 4


def test_an_ensemble_is_at_least_as_good_as_its_average_member():
    rng = np.random.default_rng(1)
    X, y = blobs(rng, 400)
    Xt, yt, Xv, yv = X[:60], y[:60], X[60:], y[60:]
    models = [member(s, hidden=64) for s in range(5)]
    ens = fm.Ensemble(models, loss=fm.CrossEntropyLoss())
    ens.fit(Xt, yt, optimizer="adam", optimizer_kwargs={"lr": 1e-2}, epochs=60,
            batch_size=20, n_jobs=2)
    loss = fm.CrossEntropyLoss()
    member_loss = np.mean([loss(m.predict(Xv), yv) for m in models])
    member_acc = np.mean([(m.predict(Xv).argmax(1) == yv).mean() for m in models])
    proba = ens.predict_proba(Xv)
    ens_loss = -np.log(proba[np.arange(len(yv)), yv]).mean()
    assert ens_loss <= member_loss                   # always true: log is concave
    assert (proba.argmax(1) == yv).mean() >= member_acc - 0.02


def test_fit_takes_the_loss_from_fit_or_init(rng):
    X, y = blobs(rng, 30)
    ens = fm.Ensemble([member(0), member(1)])
    with pytest.raises(ValueError, match="loss"):
        ens.fit(X, y)
    ens.fit(X, y, loss=fm.CrossEntropyLoss(), epochs=1)
    assert isinstance(ens.loss, fm.CrossEntropyLoss)
    assert ens.predict_proba(X).shape == (30, 3)


def test_errors_inside_a_member_reach_the_caller(rng):
    ens = fm.Ensemble([member(0), member(1)], loss=fm.CrossEntropyLoss())
    with pytest.raises(ValueError, match="features"):
        ens.fit(rng.normal(size=(10, 5)), np.zeros(10, int), n_jobs=2)


# --- bad arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: fm.Ensemble([]), ValueError, "models"),
    (lambda: fm.Ensemble(member(0)), TypeError, "models"),
    (lambda: fm.Ensemble([member(0), "model"]), TypeError, r"models\[1\]"),
    (lambda: fm.Ensemble([member(0), member(1, n_in=5)]), ValueError, "n_in"),
    (lambda: fm.Ensemble([member(0), member(1, n_out=2)]), ValueError, "n_out"),
    (lambda: (lambda m: fm.Ensemble([m, m]))(member(0)), ValueError, "distinct"),
])
def test_bad_construction(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("kw,exc,match", [
    (dict(n_jobs=0), ValueError, "n_jobs"),
    (dict(n_jobs=-1), ValueError, "n_jobs"),
    (dict(n_jobs=1.5), ValueError, "n_jobs"),
    (dict(optimizer=fm.Adam()), ValueError, "optimizer"),
    (dict(optimizer="adamx"), ValueError, "adamx"),
    (dict(optimizer="adam", optimizer_kwargs={"betas": (2.0, 0.9)}), ValueError, "beta"),
    (dict(optimizer=lambda: fm.SGD(lr=0.1), optimizer_kwargs={"lr": 1.0}), ValueError,
     "optimizer_kwargs"),
    (dict(optimizer=3), TypeError, "optimizer"),
])
def test_bad_fit_arguments(kw, exc, match, rng):
    X, y = blobs(rng, 20)
    ens = fm.Ensemble([member(0), member(1)], loss=fm.CrossEntropyLoss())
    before = [m.get_weights() for m in ens]
    with pytest.raises(exc, match=match):
        ens.fit(X, y, **kw)
    for m, w in zip(ens, before):
        np.testing.assert_array_equal(m.get_weights(), w)


def test_a_shared_optimizer_from_a_factory_is_refused(rng):
    shared = fm.Adam()
    ens = fm.Ensemble([member(0), member(1)], loss=fm.CrossEntropyLoss())
    with pytest.raises(ValueError, match="new optimizer"):
        ens.fit(*blobs(rng, 20), optimizer=lambda: shared)


def test_container_and_repr():
    models = [member(0), member(1)]
    ens = fm.Ensemble(models, loss=fm.CrossEntropyLoss())
    assert len(ens) == 2 and list(ens) == models and ens[1] is models[1]
    assert repr(ens).startswith("Ensemble(2 models, 4 → 3")
