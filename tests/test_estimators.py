"""fastmlp.MLPClassifier / MLPRegressor: parity with scikit-learn's MLPs, the scikit-learn
API (partial_fit, warm_start, pickling, clone, GridSearchCV, Pipeline, ...), the fastmlp-only
options, and scikit-learn-style errors."""
import copy
import io
import pickle
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
from scipy import sparse
from sklearn import neural_network as sknn
from sklearn.base import clone
from sklearn.datasets import (load_diabetes, load_digits, make_classification,
                              make_multilabel_classification, make_regression)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp as fm
from fastmlp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(n_samples=300, n_features=10, n_informative=6, n_classes=3,
                               random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=300, n_features=8, n_targets=2, noise=1.0, random_state=0)
    return X, y / 100


def _pair(cls, X, y, **kw):
    """The fastmlp estimator and scikit-learn's, fitted with the same parameters."""
    kw = {"hidden_layer_sizes": (16,), "max_iter": 20, "random_state": 0, **kw}
    ours = cls(**kw).fit(X, y)
    theirs = getattr(sknn, cls.__name__)(**kw).fit(X, y)
    return ours, theirs


def _assert_same_weights(a, b, atol):
    for mine, theirs in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=atol)


# -- the same math as scikit-learn --------------------------------------------------------------

@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
@pytest.mark.parametrize("target", ["multiclass", "binary", "multilabel"])
def test_classifier_matches_sklearn(clf_data, solver, target):
    """Same initial weights, shuffles, loss scale and L2 strength: sgd and lbfgs land on
    scikit-learn's weights (batches of 100 rows: no partial batch)."""
    X, y = clf_data
    if target == "binary":
        y = (y > 0).astype(int)
    elif target == "multilabel":
        X, y = make_multilabel_classification(n_samples=300, n_classes=4, random_state=0)
    ours, theirs = _pair(MLPClassifier, X, y, solver=solver, batch_size=100, alpha=1e-2)
    _assert_same_weights(ours, theirs, 1e-8)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.out_activation_ == theirs.out_activation_
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
@pytest.mark.parametrize("loss,n_targets", [("squared_error", 1), ("squared_error", 2),
                                            ("poisson", 1)])
def test_regressor_matches_sklearn(reg_data, solver, loss, n_targets):
    X, Y = reg_data
    y = Y[:, 0] if n_targets == 1 else Y
    if loss == "poisson":
        y = np.random.RandomState(0).poisson(np.exp(0.3 * X[:, 0]))
    ours, theirs = _pair(MLPRegressor, X, y, solver=solver, loss=loss, batch_size=100,
                         learning_rate_init=0.01, alpha=1e-2)
    _assert_same_weights(ours, theirs, 1e-7)
    # multi-output: loss_ estimates the epoch's mean L2 term (see the class notes)
    rel = 1e-9 if n_targets == 1 or solver == "lbfgs" else 1e-3
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rel)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("schedule", [dict(learning_rate="invscaling", learning_rate_init=0.5),
                                      dict(learning_rate="adaptive", tol=1e-2, max_iter=150),
                                      dict(early_stopping=True, max_iter=60),
                                      dict(nesterovs_momentum=False, shuffle=False)])
def test_sgd_schedules_match_sklearn(clf_data, schedule):
    """Learning-rate schedules (momentum buffer rescaled as sklearn's velocity), early
    stopping (split, scores, best weights) and the stopping rule: sklearn's, exactly."""
    X, y = clf_data
    ours, theirs = _pair(MLPClassifier, X, y, solver="sgd", batch_size=30, **schedule)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours._optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-8)
    if schedule.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_
        assert ours.best_loss_ is None
    _assert_same_weights(ours, theirs, 1e-7)


def test_adam_close_to_sklearn(clf_data):
    """Adam differs only by where epsilon enters (documented): same predictions."""
    X, y = clf_data
    ours, theirs = _pair(MLPClassifier, X, y, max_iter=30)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-3)


def test_accuracy_parity_digits():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16, y, test_size=0.3, random_state=0)
    kw = dict(hidden_layer_sizes=(64,), max_iter=40, random_state=0)
    ours = MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte)
    theirs = sknn.MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte)
    assert ours > 0.9
    assert abs(ours - theirs) <= 0.01


def test_r2_parity_diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    kw = dict(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=300, random_state=0)
    ours = MLPRegressor(**kw).fit(Xtr, ytr).score(Xte, yte)
    theirs = sknn.MLPRegressor(**kw).fit(Xtr, ytr).score(Xte, yte)
    assert ours > 0.3
    assert abs(ours - theirs) <= 0.01


def test_sample_weight_full_batch_is_sklearns(clf_data):
    """lbfgs: the weighted objective is sklearn's exactly, and integer weights equal
    repeated rows."""
    X, y = clf_data
    w = np.random.RandomState(0).randint(0, 4, size=X.shape[0])
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, random_state=0)
    ours = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    theirs = sknn.MLPClassifier(**kw).fit(X, y, sample_weight=w)
    _assert_same_weights(ours, theirs, 1e-7)
    repeated = MLPClassifier(**kw).fit(X.repeat(w, axis=0), y.repeat(w))
    np.testing.assert_allclose(ours.predict_proba(X), repeated.predict_proba(X), atol=1e-6)


def test_fitted_attributes(clf_data):
    X, y = clf_data
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(10, 7), (7, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (3,)]
    assert (clf.n_layers_, clf.n_outputs_, clf.n_features_in_) == (4, 3, 10)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3 and clf.t_ == 900
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.out_activation_ == "softmax" and clf.loss == "log_loss"
    lbfgs = MLPClassifier(solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    assert not hasattr(lbfgs, "loss_curve_") and lbfgs.t_ == 0     # as sklearn


def test_coefs_are_views(clf_data):
    X, y = clf_data
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    clf.coefs_[1][...] = 0
    clf.intercepts_ = [np.zeros(4), np.array([0.0, 1.0, 0.0])]
    assert (clf.predict(X) == 1).all()
    with pytest.raises(ValueError, match="shape"):
        clf.coefs_ = [np.zeros((2, 2)), np.zeros((4, 3))]


# -- scikit-learn behaviour ------------------------------------------------------------------

def test_predict_proba_formats(clf_data):
    X, y = clf_data
    clf = MLPClassifier(max_iter=5, random_state=0).fit(X, y)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(p))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[p.argmax(axis=1)])
    binary = MLPClassifier(max_iter=5, random_state=0).fit(X, y > 0)
    assert binary.predict_proba(X).shape == (300, 2) and binary.n_outputs_ == 1
    assert binary.predict(X).dtype == bool


def test_multilabel_and_multioutput():
    X, Y = make_multilabel_classification(n_samples=200, n_classes=3, random_state=0)
    clf = MLPClassifier(max_iter=50, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (200, 3) and set(np.unique(clf.predict(X))) <= {0, 1}
    p = clf.predict_proba(X)
    assert p.shape == (200, 3) and ((p > 0) & (p < 1)).all()
    Xr, Yr = make_regression(n_samples=200, n_features=5, n_targets=3, random_state=0)
    reg = MLPRegressor(max_iter=20, random_state=0).fit(Xr, Yr / 100)
    assert reg.predict(Xr).shape == (200, 3) and reg.n_outputs_ == 3


def test_string_labels_and_sparse_input(clf_data):
    X, y = clf_data
    labels = np.array(["ant", "bee", "cat"])[y]
    dense = MLPClassifier(max_iter=10, random_state=0).fit(X, labels)
    for fmt in (sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array):
        sp = MLPClassifier(max_iter=10, random_state=0).fit(fmt(X), labels)
        np.testing.assert_array_equal(sp.predict(fmt(X)), dense.predict(X))
        np.testing.assert_allclose(sp.predict_proba(X), dense.predict_proba(X))
    assert set(dense.predict(X)) <= {"ant", "bee", "cat"}
    assert dense.score(X, labels) > 0.6


def test_partial_fit(clf_data):
    X, y = clf_data
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    ours = MLPClassifier(solver="sgd", random_state=0)
    theirs = sknn.MLPClassifier(solver="sgd", random_state=0)
    for part in np.array_split(np.arange(300), 3):
        ours.partial_fit(X[part], y[part], classes=[0, 1, 2])
        theirs.partial_fit(X[part], y[part], classes=[0, 1, 2])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == 1 and ours.t_ == 300
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        ours.partial_fit(X, y + 5)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    reg = MLPRegressor(random_state=0)
    reg.partial_fit(X, y.astype(float))
    reg.partial_fit(X, y.astype(float))
    assert len(reg.loss_curve_) == 2
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y.astype(float))


def test_warm_start(clf_data):
    X, y = clf_data
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0)
    clf.fit(X, y)
    first = [c.copy() for c in clf.coefs_]
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    assert not np.allclose(first[0], clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, np.where(y == 2, 1, y))
    clf.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="network of the previous fit"):
        clf.fit(X, y)
    clf.set_params(warm_start=False).fit(X, y)            # starts again
    assert clf.coefs_[0].shape == (10, 9)


@pytest.mark.parametrize("est", [MLPClassifier(hidden_layer_sizes=(8,), max_iter=5,
                                               random_state=0),
                                 MLPClassifier(hidden_layer_sizes=(8,), max_iter=5,
                                               dropout=0.2, batch_norm=True, random_state=0)])
def test_pickle_joblib_deepcopy(clf_data, est, tmp_path):
    X, y = clf_data
    est.fit(X, np.array(["a", "b", "c"])[y])
    joblib.dump(est, tmp_path / "est.joblib")
    for other in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est),
                  joblib.load(tmp_path / "est.joblib")):
        np.testing.assert_array_equal(other.predict_proba(X), est.predict_proba(X))
        assert other.get_params() == est.get_params() and other.loss_curve_ == est.loss_curve_
        other.partial_fit(X, np.array(["a", "b", "c"])[y])      # the optimizer came along
    assert est.n_iter_ == 5                                      # the original is untouched


def test_predict_from_threads(clf_data):
    from concurrent.futures import ThreadPoolExecutor
    X, y = clf_data
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=3, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(lambda _: clf.predict_proba(X), range(16)):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_fastmlp_save_load(clf_data, cls, tmp_path):
    X, y = clf_data
    target = np.array(["a", "b", "c"])[y] if cls is MLPClassifier else y.astype(float)
    est = cls(hidden_layer_sizes=(8,), max_iter=5, early_stopping=True,
              n_iter_no_change=np.inf, dtype="float32", random_state=0).fit(X, target)
    fm.save(est, tmp_path / "est.fastmlp")
    back = fm.load(tmp_path / "est.fastmlp")
    assert type(back) is cls and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.validation_scores_ == est.validation_scores_ and back.t_ == est.t_
    if cls is MLPClassifier:
        assert back.classes_.dtype == est.classes_.dtype
    est.set_params(warm_start=True).fit(X, target)
    back.set_params(warm_start=True).fit(X, target)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    fm.save(cls(), tmp_path / "unfitted.fastmlp")
    assert not hasattr(fm.load(tmp_path / "unfitted.fastmlp"), "n_iter_")


def test_fastmlp_load_checks_the_file(clf_data):
    X, y = clf_data
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    for change, match in [(lambda c: c["arch"]["units"].__setitem__(1, 10**6), "do not fit"),
                          (lambda c: c["arch"].__setitem__("activation", "os.system"),
                           "activation"),
                          (lambda c: c["params"].__setitem__("bogus", 1), "unknown"),
                          (lambda c: c["params"].__setitem__("alpha", -1.0), "alpha")]:
        header, arrays = fm.io.pack(est)
        change(header["config"])
        with pytest.raises(ValueError, match=match):
            fm.io.unpack(header, arrays)


def test_fastmlp_load_reads_optimizer_configs_without_buffer_names(clf_data):
    """Files of the previous version named the optimizer's buffers only by their arrays."""
    X, y = clf_data
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    header, arrays = fm.io.pack(est)
    del header["config"]["optimizer"]["state"]
    back = fm.io.unpack(header, arrays)
    assert back._optimizer.step_count == est._optimizer.step_count
    for name, buf in est._optimizer.state.items():
        np.testing.assert_array_equal(back._optimizer.state[name], buf)


def test_clone_gridsearch_pipeline(clf_data):
    X, y = clf_data
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X, y)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "n_iter_")
    search = GridSearchCV(MLPClassifier(max_iter=10, learning_rate_init=0.01, random_state=0),
                          {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1e-1]}, cv=2)
    search.fit(X, y)
    assert set(search.best_params_) == {"hidden_layer_sizes", "alpha"}
    assert search.score(X, y) > 0.5
    pipe = make_pipeline(StandardScaler(), MLPRegressor(max_iter=20, random_state=0))
    pipe.fit(X, y.astype(float))
    assert pipe.predict(X).shape == (300,)


def test_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = make_classification(n_samples=50, n_features=3, random_state=0)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    clf = MLPClassifier(max_iter=2, random_state=0).fit(df, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


# -- fastmlp-only options -----------------------------------------------------------------------

@pytest.mark.parametrize("X_dtype,dtype,expected", [(np.float32, None, np.float32),
                                                    (np.float64, None, np.float64),
                                                    (np.int64, None, np.float64),
                                                    (np.float64, "float32", np.float32)])
def test_dtype(clf_data, X_dtype, dtype, expected):
    X, y = clf_data
    clf = MLPClassifier(max_iter=2, dtype=dtype, random_state=0).fit(X.astype(X_dtype), y)
    assert clf.coefs_[0].dtype == expected and clf.predict_proba(X).dtype == expected


@pytest.mark.parametrize("extra", [dict(dropout=0.3), dict(batch_norm=True),
                                   dict(activation="gelu"), dict(activation="logistic"),
                                   dict(solver="adamw"), dict(solver="rmsprop"),
                                   dict(solver="bfgs", hidden_layer_sizes=(4,)),
                                   dict(solver="gd", learning_rate_init=0.5),
                                   dict(n_threads=1)])
def test_extra_options_train(clf_data, extra):
    X, y = clf_data
    kw = {"hidden_layer_sizes": (16,), "max_iter": 40, "learning_rate_init": 0.01,
          "random_state": 0, **extra}
    clf = MLPClassifier(**kw).fit(X, y)
    assert clf.score(X, y) > 0.6
    np.testing.assert_array_equal(clf.predict(X), clf.predict(X))   # evaluation mode


def test_batch_norm_skips_single_row_batch(clf_data):
    X, y = clf_data
    clf = MLPClassifier(batch_norm=True, batch_size=299, max_iter=2, random_state=0)
    clf.fit(X, y)                                # 300 rows: the 1-row batch is left out
    assert np.isfinite(clf.loss_)
    with pytest.raises(ValueError, match="at least 2"):
        MLPClassifier(batch_norm=True).fit(X[:1], y[:1])


def test_class_weight(clf_data):
    X, y = clf_data
    y = np.where(np.arange(300) < 270, 0, 1)         # 10% positives
    X = X + 0.5 * y[:, None]
    plain = MLPClassifier(max_iter=30, random_state=0).fit(X, y)
    balanced = MLPClassifier(max_iter=30, class_weight="balanced", random_state=0).fit(X, y)
    assert (balanced.predict(X)[y == 1] == 1).mean() > (plain.predict(X)[y == 1] == 1).mean()
    as_dict = MLPClassifier(max_iter=30, class_weight={0: 1.0, 1: 9.0},
                            random_state=0).fit(X, y)
    as_weights = MLPClassifier(max_iter=30, random_state=0).fit(
        X, y, sample_weight=np.where(y == 1, 9.0, 1.0))
    np.testing.assert_allclose(as_dict.coefs_[0], as_weights.coefs_[0])
    with pytest.raises(ValueError, match="not a class"):
        MLPClassifier(class_weight={5: 1.0}).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])


def test_convergence_warning_and_verbose(clf_data):
    X, y = clf_data
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(max_iter=2).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier(solver="lbfgs", max_iter=2).fit(X, y)
    out = io.StringIO()
    with redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPClassifier(max_iter=2, verbose=True, early_stopping=True).fit(X, y)
    assert "Iteration 2, loss = " in out.getvalue()
    assert "Validation score: " in out.getvalue()


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_fit_runs_the_trainers_loop(clf_data, solver, monkeypatch):
    """One training loop: every fit is a Trainer.fit (no loop of the estimators' own)."""
    X, y = clf_data
    calls = []
    fit = fm.Trainer.fit
    monkeypatch.setattr(fm.Trainer, "fit", lambda self, *a, **kw: calls.append(
        type(self).__name__) or fit(self, *a, **kw))
    MLPClassifier(hidden_layer_sizes=(8,), solver=solver, max_iter=3).fit(X, y)
    MLPClassifier(hidden_layer_sizes=(8,), solver="adam").partial_fit(X, y, classes=[0, 1, 2])
    assert calls == ["SklearnTrainer", "SklearnTrainer"]


def test_interrupted_fit_warns_and_keeps_the_best_weights(clf_data, monkeypatch):
    """As scikit-learn: Ctrl-C ends fit with a warning; early stopping's best weights are
    put back."""
    from fastmlp import _estimator_loop
    X, y = clf_data
    record = _estimator_loop.SklearnRecord.on_epoch_end

    def interrupt(self, epoch, logs=None):
        if epoch == 3:
            raise KeyboardInterrupt
        record(self, epoch, logs)
    monkeypatch.setattr(_estimator_loop.SklearnRecord, "on_epoch_end", interrupt)
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, random_state=0)
    with pytest.warns(UserWarning, match="interrupted by user"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3
    np.testing.assert_array_equal(clf._model.get_weights(), clf._best_weights)


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("params,match", [(dict(activation="swish"), "activation"),
                                          (dict(solver="newton-cg"), "solver"),
                                          (dict(alpha=-1.0), "alpha"),
                                          (dict(dropout=1.0), "dropout"),
                                          (dict(dtype="float16"), "dtype"),
                                          (dict(hidden_layer_sizes=(4, 0)), "> 0"),
                                          (dict(batch_size=0), "batch_size")])
def test_invalid_parameters(clf_data, params, match):
    X, y = clf_data
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_bad_input_errors(clf_data):
    X, y = clf_data
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(Xnan, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MLPRegressor().fit(X, y[:10])
    clf = MLPClassifier(max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :4])
    with pytest.raises(ValueError, match="Negative values"):
        MLPClassifier().fit(X, y, sample_weight=-np.ones(300))
    with pytest.raises(ValueError, match="non-zero"):
        MLPClassifier().fit(X, y, sample_weight=np.zeros(300))
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -np.ones(300))
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        MLPRegressor(solver="sgd", learning_rate_init=1.0).fit(X, X[:, 0] * 1e20)
