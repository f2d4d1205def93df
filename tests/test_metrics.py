"""Metrics by name and as callables, against scikit-learn."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import metrics as M

skm = pytest.importorskip("sklearn.metrics")


def probs(rng, n=200, k=4):
    z = rng.normal(size=(n, k)) * 2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_accuracy_multiclass_binary_onehot(rng):
    p = probs(rng)
    y = rng.integers(0, 4, 200)
    assert M.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert M.accuracy(fm.one_hot(y, 4), p) == M.accuracy(y, p)
    pb = rng.random(200)
    yb = rng.integers(0, 2, 200)
    expected = skm.accuracy_score(yb, pb > 0.5)
    assert M.accuracy(yb, pb) == pytest.approx(expected)
    assert M.accuracy(yb[:, None].astype(float), pb[:, None]) == pytest.approx(expected)
    multi = (rng.random((200, 3)) > 0.5).astype(float)        # multi-label: exact match
    pm = rng.random((200, 3))
    assert M.accuracy(multi, pm) == pytest.approx(skm.accuracy_score(multi, pm > 0.5))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy(rng, k):
    p = probs(rng)
    y = rng.integers(0, 4, 200)
    expected = skm.top_k_accuracy_score(y, p, k=k, labels=range(4))
    assert M.top_k_accuracy(y, p, k=k) == pytest.approx(expected)
    name, fn = M.get_metric(f"top_{k}_accuracy")
    assert name == f"top_{k}_accuracy" and fn(y, p) == pytest.approx(expected)
    assert M.top_k_accuracy(y, p, k=10) == 1.0


def test_regression_metrics(rng):
    y = rng.normal(size=(150, 2))
    pred = y + rng.normal(size=(150, 2)) * 0.3
    assert M.mse(y, pred) == pytest.approx(skm.mean_squared_error(y, pred), rel=1e-12)
    assert M.mae(y, pred) == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert M.r2(y, pred) == pytest.approx(skm.r2_score(y, pred), rel=1e-12)
    y1, p1 = y[:, 0], pred[:, :1]                    # (n,) targets against (n, 1) outputs
    assert M.mse(y1, p1) == pytest.approx(skm.mean_squared_error(y1, p1[:, 0]), rel=1e-12)
    assert M.r2(y1, p1) == pytest.approx(skm.r2_score(y1, p1[:, 0]), rel=1e-12)
    const = np.ones(10)
    assert M.r2(const, const[:, None]) == skm.r2_score(const, const) == 1.0
    assert M.r2(const, const[:, None] + 1) == skm.r2_score(const, const + 1) == 0.0


def test_log_loss(rng):
    p = probs(rng)
    y = rng.integers(0, 4, 200)
    expected = skm.log_loss(y, p, labels=range(4))
    assert M.log_loss(y, p) == pytest.approx(expected, rel=1e-10)
    assert M.log_loss(fm.one_hot(y, 4), p) == pytest.approx(expected, rel=1e-10)
    pb, yb = rng.uniform(0.01, 0.99, 200), rng.integers(0, 2, 200)
    assert M.log_loss(yb, pb[:, None]) == pytest.approx(skm.log_loss(yb, pb), rel=1e-10)
    assert np.isfinite(M.log_loss([0, 1], np.array([[1.0, 0.0], [1.0, 0.0]])))


def test_get_metric_names_and_callables():
    assert M.get_metric("accuracy") == ("accuracy", M.accuracy)
    assert M.get_metric("acc")[1] is M.accuracy
    for name in ("mse", "mae", "r2", "log_loss", "top_k_accuracy"):
        assert M.get_metric(name)[0] == name

    def my_score(y, p):
        return 0.5
    assert M.get_metric(my_score) == ("my_score", my_score)
    for bad in ("precission", "top_x_accuracy", 3):
        with pytest.raises(ValueError, match="metrics"):
            M.get_metric(bad)
    with pytest.raises(ValueError, match="metrics"):
        fm.Trainer(fm.Sequential([fm.Dense(2, 2)]), fm.CrossEntropyLoss(), "sgd",
                   metrics=["f2"])


def test_link_maps_outputs_to_predictions(rng):
    z = rng.normal(size=(5, 3))
    p = M.link(fm.CrossEntropyLoss(), z)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(M.link(fm.BCEWithLogitsLoss(), z), 1 / (1 + np.exp(-z)),
                               rtol=1e-12)
    assert M.link(fm.MSELoss(), z) is z


def test_trainer_metrics_match_sklearn(rng):
    """Metrics in fit/evaluate are computed on what the network predicts (softmax)."""
    X = rng.normal(size=(90, 4))
    y = rng.integers(0, 3, 90)
    model = fm.Sequential([fm.Dense(4, 3)], dtype="float64", seed=0)

    def true_class_prob(y_true, p):
        return float(p[np.arange(len(y_true)), y_true].mean())
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), "adam",
                    metrics=["accuracy", "top_2_accuracy", "log_loss", true_class_prob])
    h = tr.fit(X, y, epochs=2, verbose=0, validation_data=(X[:30], y[:30]))
    p = M.link(tr.loss, tr.predict(X))
    ev = tr.evaluate(X, y)
    assert ev["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert ev["top_2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=2))
    assert ev["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)
    assert ev["log_loss"] == pytest.approx(ev["loss"], rel=1e-9)       # CE == log-loss
    assert ev["true_class_prob"] == pytest.approx(p[np.arange(90), y].mean())
    assert h["accuracy"][-1] == ev["accuracy"]
    assert h["val_top_2_accuracy"][-1] == tr.evaluate(X[:30], y[:30])["top_2_accuracy"]
    reg = fm.Trainer(fm.Sequential([fm.Dense(4, 1)], dtype="float64"), fm.MSELoss(), "sgd",
                     metrics=["mse", "mae", "r2"])
    t = X @ np.array([1.0, -1.0, 0.5, 0.0])
    ev = reg.evaluate(X, t)
    out = reg.predict(X)[:, 0]
    assert ev["r2"] == pytest.approx(skm.r2_score(t, out), rel=1e-12)
    assert ev["mae"] == pytest.approx(skm.mean_absolute_error(t, out), rel=1e-12)
    assert ev["mse"] == pytest.approx(ev["loss"], rel=1e-12)


# --- issue 16, item 18: Keras' auc, precision, recall, f1; scikit-learn functions -----------

@pytest.mark.parametrize("name,sk,kw", [
    ("precision", "precision_score", {}), ("recall", "recall_score", {}),
    ("f1", "f1_score", {}), ("precision_macro", "precision_score", {"average": "macro"}),
    ("recall_macro", "recall_score", {"average": "macro"}),
    ("f1_macro", "f1_score", {"average": "macro"})])
def test_precision_recall_f1_against_sklearn(rng, name, sk, kw):
    fn = M.get_metric(name)[1]
    skfn = getattr(skm, sk)
    pb = rng.random(300)
    yb = (pb + rng.normal(scale=0.3, size=300) > 0.5).astype(int)
    assert fn(yb, pb[:, None]) == pytest.approx(skfn(yb, pb > 0.5, **kw))      # sigmoid output
    p2 = np.stack([1 - pb, pb], axis=1)
    assert fn(yb, p2) == pytest.approx(skfn(yb, p2.argmax(1), **kw))           # softmax of 2
    p = probs(rng, n=300)
    y = rng.integers(0, 4, 300)
    macro = {"average": "macro"}
    assert fn(y, p) == pytest.approx(skfn(y, p.argmax(1), **macro, labels=range(4)))
    assert fn(fm.one_hot(y, 4), p) == fn(y, p)


def test_auc_against_sklearn(rng):
    auc = M.get_metric("auc")[1]
    pb = np.round(rng.random(300), 2)                       # ties
    yb = (pb + rng.normal(scale=0.3, size=300) > 0.5).astype(int)
    assert auc(yb, pb[:, None]) == pytest.approx(skm.roc_auc_score(yb, pb))
    assert auc(yb, np.stack([1 - pb, pb], 1)) == pytest.approx(skm.roc_auc_score(yb, pb))
    p = probs(rng, n=300)
    y = rng.integers(0, 4, 300)
    assert auc(y, p) == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr",
                                                        average="macro"))
    assert np.isnan(auc(np.zeros(5, int), rng.random((5, 1))))   # one class: undefined


def test_sklearn_metric_functions_receive_labels(rng):
    """A scikit-learn metric of class predictions gets class predictions; one of scores
    gets the probabilities; a user function keeps getting probabilities."""
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] > 0).astype(int)
    model = fm.Sequential([fm.Dense(4, 8, activation="relu"), fm.Dense(8, 2)], seed=0)
    t = fm.Trainer(model, "cross_entropy", fm.Adam(lr=1e-2),
                   metrics=[skm.f1_score, skm.accuracy_score, skm.log_loss, "f1"])
    h = t.fit(X, y, epochs=2, verbose=0).history
    pred = t.predict(X).argmax(1)
    assert h["f1_score"][-1] == pytest.approx(skm.f1_score(y, pred)) == h["f1"][-1]
    assert h["accuracy_score"][-1] == pytest.approx(skm.accuracy_score(y, pred))
    assert h["log_loss"][-1] == pytest.approx(skm.log_loss(y, t.predict_proba(X)))
