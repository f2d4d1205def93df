"""Dask: a real LocalCluster of two worker processes. GridSearchCV through joblib's dask
backend equals n_jobs=1; a Trainer and an Ensemble trained on workers equal local fits."""
import numpy as np
import pytest

import fastmlp as fm

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                       dashboard_address=None, worker_dashboard_address=None)
    with cluster, distributed.Client(cluster) as c:
        yield c


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_grid_search_through_joblib_dask_equals_one_job(client):
    from sklearn.model_selection import GridSearchCV
    X, y = data()
    grid = {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-2]}
    make = lambda n_jobs: GridSearchCV(                         # noqa: E731
        fm.MLPClassifier(max_iter=15, random_state=0), grid, cv=3, n_jobs=n_jobs)
    local = make(1).fit(X, y)
    with joblib.parallel_backend("dask"):
        remote = make(-1).fit(X, y)
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))


def model_and_trainer():
    model = fm.Sequential([fm.Dense(5, 8, activation="relu"), fm.Dropout(0.1),
                           fm.Dense(8, 2)], seed=1)
    return fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), seed=2)


def test_a_trainer_trained_on_a_worker_equals_a_local_fit(client):
    X, y = data()
    local = model_and_trainer()
    local.fit(X, y, epochs=3, batch_size=16, verbose=0)
    remote = client.submit(fm.distributed.train, model_and_trainer(), X, y, epochs=3,
                           batch_size=16, verbose=0).result()
    assert np.array_equal(remote.model.params, local.model.params)
    assert remote.history.history["loss"] == local.history.history["loss"]
    # the optimizer state came back too: one more epoch each stays equal
    local.fit(X, y, epochs=1, batch_size=16, verbose=0)
    remote.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert np.array_equal(remote.model.params, local.model.params)


def test_ensemble_fit_on_dask_equals_threads(client):
    X, y = data()

    def members():
        return [fm.Sequential([fm.Dense(5, 6, activation="tanh"), fm.Dense(6, 2)], seed=s)
                for s in range(3)]
    here = fm.Ensemble(members(), loss=fm.CrossEntropyLoss())
    there = fm.Ensemble(members(), loss=fm.CrossEntropyLoss())
    h_here = here.fit(X, y, epochs=2, batch_size=16)
    h_there = there.fit(X, y, epochs=2, batch_size=16, backend="dask")
    assert [h.history["loss"] for h in h_there] == [h.history["loss"] for h in h_here]
    np.testing.assert_array_equal(there.predict_proba(X), here.predict_proba(X))


def test_ensemble_backend_is_checked():
    ens = fm.Ensemble([fm.Sequential([fm.Dense(5, 2)])], loss=fm.CrossEntropyLoss())
    with pytest.raises(ValueError, match="backend must be"):
        ens.fit(*data(), backend="ray")
