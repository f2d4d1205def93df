"""Pickling and deep copies of layers, Sequential and Trainer: exact round trips, and a copy
that trains on as the original does (issue 16, item 1)."""
import copy
import pickle

import numpy as np
import pytest

import fastmlp as fm


def _model(seed=0):
    return fm.Sequential([fm.Dense(6, 8, activation="relu"), fm.BatchNorm(8), fm.Dropout(0.2),
                          fm.Residual(fm.Dense(8, 8, activation="tanh"), fm.LayerNorm(8)),
                          fm.Dense(8, 3)], seed=seed)


def _data(n=64):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 6)), rng.integers(0, 3, n)


def _assert_same_model(a, b):
    assert type(a) is type(b) and len(a) == len(b)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.buffers, b.buffers)
    assert (a.rng_seed, a.rng_step, a.dtype, a.backend) == (b.rng_seed, b.rng_step, b.dtype,
                                                            b.backend)
    for p in a.param_info:            # every layer's views live in the copy's own arena
        layer = b.flat_layers[p["layer"]]
        assert np.shares_memory(getattr(layer, p["name"]), b.params)
        assert not np.shares_memory(getattr(layer, p["name"]), a.params)
        assert layer._model is b


@pytest.mark.parametrize("roundtrip", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_sequential_roundtrip_is_exact(roundtrip):
    X, y = _data()
    m = _model()
    fm.Trainer(m, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), seed=0).fit(X, y, epochs=1,
                                                                        verbose=0)
    c = roundtrip(m)
    _assert_same_model(m, c)
    np.testing.assert_array_equal(m.predict(X), c.predict(X))
    np.testing.assert_array_equal(m.forward(X, training=True), c.forward(X, training=True))
    c.params[0] += 1.0                       # independent arenas
    assert m.params[0] != c.params[0]


def test_trainer_roundtrip_trains_on_identically():
    X, y = _data()
    t = fm.Trainer(_model(), fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), metrics=["accuracy"],
                   seed=3)
    t.fit(X, y, epochs=2, verbose=0)
    copies = [copy.deepcopy(t), pickle.loads(pickle.dumps(t))]
    for c in copies:
        assert c.model is not t.model and c.optimizer is not t.optimizer
        _assert_same_model(t.model, c.model)
    expected = t.fit(X, y, epochs=2, verbose=0).history
    for c in copies:
        got = c.fit(X, y, epochs=2, verbose=0).history
        assert got["loss"] == expected["loss"] and got["accuracy"] == expected["accuracy"]
        np.testing.assert_array_equal(c.model.params, t.model.params)


def test_deepcopy_keeps_best_model_torch_habit():
    X, y = _data()
    m = _model()
    best = copy.deepcopy(m)
    fm.Trainer(m, fm.CrossEntropyLoss(), fm.SGD(lr=0.1), seed=0).fit(X, y, epochs=2, verbose=0)
    assert not np.array_equal(best.params, m.params)
    np.testing.assert_array_equal(best.params, _model().params)


def test_layer_deepcopy_and_tied_weights():
    enc = fm.Dense(5, 3, activation="tanh")
    m = fm.Sequential([enc, fm.Dense(3, 5, tied_to=enc, transpose=True)], seed=0,
                      dtype="float64")
    c = pickle.loads(pickle.dumps(m))
    assert np.shares_memory(c[1].W, c[0].W) and c[1].W.shape == (3, 5)
    X = np.random.default_rng(0).normal(size=(4, 5))
    np.testing.assert_array_equal(m.predict(X), c.predict(X))
    layer = copy.deepcopy(m[0])                 # a layer alone: a copy of its model comes along
    np.testing.assert_array_equal(layer.W, m[0].W)
    assert layer._model is not m and np.shares_memory(layer.W, layer._model.params)
    free = copy.deepcopy(fm.Dense(4, 2))        # a layer of no model
    assert free.n_in == 4 and free._model is None


def test_python_layer_model_pickles():
    from fastmlp.layers import Layer

    m = fm.Sequential([fm.Dense(4, 4), _Square(), fm.Dense(4, 2)], seed=0, dtype="float64")
    c = pickle.loads(pickle.dumps(m))
    X = np.random.default_rng(0).normal(size=(3, 4))
    np.testing.assert_array_equal(m.predict(X), c.predict(X))
    assert isinstance(c[1], Layer)


class _Square(fm.Layer):
    def forward(self, X, training=False):
        self._cache = X
        return X * X

    def backward(self, dY):
        return 2 * self._cache * dY


def test_joblib_dump_load(tmp_path):
    joblib = pytest.importorskip("joblib")
    m = _model()
    joblib.dump(m, tmp_path / "m.joblib")
    _assert_same_model(m, joblib.load(tmp_path / "m.joblib"))
