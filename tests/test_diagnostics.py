"""fm.Diagnostics: per-layer records from the fused loop, their values, warnings, plot."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import RTOL, python_identity, rel_err

KEYS = ("grad_norm", "weight_norm", "update_ratio", "dead_fraction", "act_mean", "act_std")


def _relu_model(python=False, dtype="float64"):
    layers = [fm.Dense(4, 6, activation="relu"), fm.Dense(6, 3), fm.ReLU(), fm.Dense(3, 2)]
    return fm.Sequential(layers + ([python_identity()] if python else []), dtype=dtype,
                         seed=2)


def test_values_of_the_last_step(rng):
    X = rng.normal(size=(40, 4))
    y = rng.integers(0, 2, 40)
    model = _relu_model()
    model[1].b[...] = -100.0                         # the ReLU after it is dead for all rows
    diag = fm.Diagnostics(every=1)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1))
    tr.fit(X, y, epochs=2, batch_size=40, shuffle=False, callbacks=[diag], verbose=0)
    rec = diag.records
    assert set(rec) == set(KEYS) | {"step"}
    assert all(rec[k].shape == (2, 3) for k in KEYS) and rec["step"].tolist() == [1, 2]
    Ws = [model[0].W, model[1].W, model[3].W]
    dWs = [model[0].dW, model[1].dW, model[3].dW]
    np.testing.assert_allclose(rec["weight_norm"][-1], [np.linalg.norm(w) for w in Ws],
                               rtol=1e-12)
    np.testing.assert_allclose(rec["grad_norm"][-1], [np.linalg.norm(g) for g in dWs],
                               rtol=1e-12)
    before = [w + 0.1 * g for w, g in zip(Ws, dWs)]          # SGD: W = W_before − lr·dW
    np.testing.assert_allclose(rec["update_ratio"][-1],
                               [0.1 * np.linalg.norm(g) / np.linalg.norm(b)
                                for g, b in zip(dWs, before)], rtol=1e-10)
    a0 = np.maximum(X @ model[0].W + model[0].b, 0)
    np.testing.assert_allclose(rec["act_mean"][-1, 0], a0.mean(), rtol=1e-12)
    np.testing.assert_allclose(rec["act_std"][-1, 0], a0.std(), rtol=1e-12)
    assert rec["dead_fraction"][-1, 1] == 1.0
    assert rec["dead_fraction"][-1, 0] == np.mean((a0 == 0).all(axis=0))
    assert np.isnan(rec["dead_fraction"][-1, 2])             # no ReLU after the last layer


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_and_python_paths_record_the_same(rng, dtype):
    X = rng.normal(size=(64, 4))
    y = rng.integers(0, 2, 64)
    recs = []
    for python in (False, True):
        model = _relu_model(python, dtype)
        assert model.is_fused != python
        diag = fm.Diagnostics(every=3)
        fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), seed=0).fit(
            X, y, epochs=2, batch_size=8, callbacks=[diag], verbose=0)
        recs.append(diag.records)
    assert recs[0]["step"].tolist() == [3, 6, 8, 11, 14, 16]     # every 3 steps, epoch ends
    for k in KEYS:
        ok = ~np.isnan(recs[0][k])
        assert rel_err(recs[1][k][ok], recs[0][k][ok]) < 1e3 * RTOL[np.dtype(dtype).type]


def _deep(batchnorm, rng):
    layers = [fm.Dense(8, 32, activation="sigmoid")]
    for _ in range(7):
        layers += ([fm.BatchNorm(32)] if batchnorm else []) + [
            fm.Dense(32, 32, activation="sigmoid")]
    return fm.Sequential(layers + [fm.Dense(32, 2)], seed=0, dtype="float64")


def test_vanishing_gradients_warn_with_the_remedies(rng, tmp_path):
    X = rng.normal(size=(128, 8))
    y = (X[:, 0] > 0).astype(np.int64)
    diag = fm.Diagnostics(every=4, vanish=1e-2)
    tr = fm.Trainer(_deep(False, rng), fm.CrossEntropyLoss(), fm.SGD(lr=0.1))
    with pytest.warns(UserWarning, match="batch norm.*residual"):
        hist = tr.fit(X, y, epochs=1, batch_size=32, callbacks=[diag], verbose=0)
    g = diag.records["grad_norm"]
    assert (g[:, 0] < 1e-2 * g[:, -1]).all()
    pytest.importorskip("matplotlib")
    fig = hist.plot_diagnostics(tmp_path / "d.png")
    assert len(fig.axes) == 6 and (tmp_path / "d.png").stat().st_size > 0


def test_exploding_gradients_warn(rng):
    X = 100 * rng.normal(size=(32, 4))
    y = 1e4 * rng.normal(size=(32, 2))
    model = fm.Sequential([fm.Dense(4, 8, activation="relu"), fm.Dense(8, 2)], seed=0)
    with pytest.warns(UserWarning, match="smaller step"):
        fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=1e-9)).fit(
            X, y, epochs=1, batch_size=32, callbacks=[fm.Diagnostics(explode=1e3)],
            verbose=0)


def test_validation():
    with pytest.raises(ValueError, match="every"):
        fm.Diagnostics(every=0)
    with pytest.raises(TypeError, match="every"):
        fm.Diagnostics(every=1.5)
    with pytest.raises(ValueError, match="vanish"):
        fm.Diagnostics(vanish=-1)
    with pytest.raises(ValueError, match="plot_diagnostics"):
        fm.History().plot_diagnostics()
