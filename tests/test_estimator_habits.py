"""Estimator habits of scikit-learn users (issue 16): full-batch solvers and noise, advice
at the estimator's level, sklearn's attribute semantics, activations."""
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression

from fastmlp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


@pytest.mark.parametrize("solver", ["lbfgs", "bfgs", "gd", "newton"])
def test_dropout_refused_with_full_batch_solvers(digits, solver):
    """Item 4: as the Trainer, a noisy objective is refused for a full-batch solver."""
    X, y = digits
    with pytest.raises(ValueError, match=rf"dropout=0.2.*solver='{solver}'.*adam"):
        MLPClassifier((8,), solver=solver, dropout=0.2, max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPRegressor(hidden_layer_sizes=(8,), solver=solver, dropout=0.2, max_iter=5).fit(X, y.astype(float))
    # batch_norm on the whole training set is deterministic: accepted
    MLPClassifier((8,), solver=solver, batch_norm=True, max_iter=3).fit(X, y)


@pytest.mark.parametrize("solver", ["bfgs", "newton"])
def test_dense_hessian_solvers_give_estimator_advice(digits, solver):
    """Item 12: the advice names the estimator's parameters, not LBFGS() or max_params."""
    X, y = digits
    with pytest.raises(ValueError, match=r"solver='lbfgs'.*hidden_layer_sizes") as info:
        MLPClassifier(solver=solver, max_iter=2).fit(X, y)
    assert "max_params" not in str(info.value) and "LBFGS()" not in str(info.value)


def _replace_elements(est, coefs, intercepts):
    est.coefs_ = [0] * len(coefs)
    est.intercepts_ = [0] * len(intercepts)
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        est.coefs_[i] = W.copy()              # scikit-learn then updates them in place
        est.intercepts_[i] = b.copy()


def test_replacing_elements_of_fitted_coefs_takes_effect(digits):
    """Item 6: ``coefs_[i] = W`` changes the network, as in scikit-learn."""
    from sklearn.neural_network import MLPClassifier as SkMLP
    X, y = digits
    ours, theirs = MLPClassifier((5,), max_iter=3).fit(X, y), SkMLP((5,), max_iter=3).fit(X, y)
    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=c.shape) for c in theirs.coefs_]
    intercepts = [rng.normal(size=b.shape) for b in theirs.intercepts_]
    for est in (ours, theirs):
        est.coefs_[0] = coefs[0]
        est.coefs_[1] = coefs[1]
        est.intercepts_[1] = intercepts[1]
        est.intercepts_[0] = intercepts[0]
    np.testing.assert_allclose(ours.coefs_[0], coefs[0])
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10)
    with pytest.raises(ValueError, match=r"coefs_\[0\].*shape"):
        ours.coefs_[0] = np.zeros((2, 2))


def test_weights_set_before_partial_fit_are_used():
    """Item 6: sklearn's worked example (test_mlp.py::test_fit): weights put into an
    unfitted estimator element by element are where partial_fit starts."""
    from sklearn.neural_network import MLPClassifier as SkMLP
    X, y = np.array([[0.6, 0.8, 0.7]]), np.array([0])
    coefs = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), np.array([[0.1], [0.2]])]
    intercepts = [np.array([0.1, 0.1]), np.array([1.0])]
    kw = dict(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic",
              random_state=1, max_iter=1, hidden_layer_sizes=2, momentum=0)
    sk = SkMLP(**kw)
    _replace_elements(sk, coefs, intercepts)
    sk.n_outputs_, sk.n_layers_, sk.n_iter_, sk.t_, sk.out_activation_ = 1, 3, 0, 0, "logistic"
    sk.loss_curve_, sk.best_loss_, sk._no_improvement_count = [], np.inf, 0
    sk._coef_velocity = [np.zeros_like(c) for c in coefs]
    sk._intercept_velocity = [np.zeros_like(b) for b in intercepts]
    sk.learning_rate_ = 0.1
    sk.partial_fit(X, y, classes=[0, 1])
    ours = MLPClassifier(**kw)
    _replace_elements(ours, coefs, intercepts)
    ours.partial_fit(X, y, classes=[0, 1])
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-12)
    with pytest.raises(ValueError, match=r"coefs_\[1\].*shape"):
        bad = MLPClassifier(**kw)
        _replace_elements(bad, [coefs[0], np.zeros((3, 1))], intercepts)
        bad.partial_fit(X, y, classes=[0, 1])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # as sklearn's test
def test_diverging_loss_with_early_stopping_does_not_raise():
    """Item 6: sklearn's test_mlp_diverging_loss: the best weights are kept, the last
    validation score is nan."""
    X, y = make_regression(n_samples=150, n_features=4, noise=0.1, random_state=0)
    mlp = MLPRegressor(hidden_layer_sizes=100, activation="identity", solver="sgd",
                       learning_rate_init=1, max_iter=20, early_stopping=True,
                       n_iter_no_change=10, random_state=0)
    mlp.fit(X * 100, y)
    assert str(mlp.validation_scores_[-1]) == "nan"
    assert isinstance(mlp.validation_scores_[-1], float)
    assert all(np.isfinite(c).all() for c in mlp.coefs_)


def _documented_activations():
    """The activation names the estimators' docstring lists."""
    import re
    doc = MLPClassifier.__doc__
    part = doc[doc.index("activation : str"):doc.index("solver : str")]
    return sorted(set(re.findall(r'"([a-z_]+)"', part)))


@pytest.mark.parametrize("activation", _documented_activations())
def test_every_documented_activation_is_taken(digits, activation, tmp_path):
    """Item 19: activation= takes what the docstring promises, prelu included."""
    import fastmlp as fm
    X, y = digits
    clf = MLPClassifier((6,), activation=activation, max_iter=3, random_state=0).fit(X, y)
    assert clf.score(X, y) >= 0
    fm.save(clf, tmp_path / "c.fmlp")
    np.testing.assert_array_equal(fm.load(tmp_path / "c.fmlp").predict_proba(X),
                                  clf.predict_proba(X))


def test_prelu_slopes_are_learned(digits):
    X, y = digits
    clf = MLPClassifier((6, 5), activation="prelu", batch_norm=True, max_iter=5,
                        random_state=0).fit(X, y)
    slopes = [layer.weight[0] for layer in clf._model.layers if type(layer).__name__ == "PReLU"]
    assert len(slopes) == 2 and all(s != 0.25 for s in slopes)
    assert len(clf.coefs_) == 3
