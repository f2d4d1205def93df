"""Proximal L1: the soft threshold after each update (exact zeros), its kernel and twin,
the fused step, fm.sparsity, validation."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _regularize as core
from fastmlp.reference import regularize as ref
from helpers import RTOL, python_identity, rel_err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_threshold_kernel_and_twin(rng, dtype):
    w = rng.normal(size=301).astype(dtype)
    w[:3] = [0.0, 0.1, -0.1]
    expect = np.sign(w) * np.maximum(np.abs(w) - dtype(0.1), 0)
    a, b = w.copy(), w.copy()
    core.soft_threshold_memview(a, 0.1)
    ref.soft_threshold(b, 0.1)
    np.testing.assert_array_equal(a, b)
    assert rel_err(a, expect) < RTOL[dtype]
    assert (a[:3] == 0).all()
    with pytest.raises(ValueError, match="threshold"):
        core.soft_threshold_memview(a, -1.0)


def test_two_weight_worked_example():
    """One SGD step on two weights from w* with zero loss gradient, lr 0.5, λ 0.4: the step
    lands on sign(w*)·max(|w*| − lr·λ, 0) — the lecture's soft threshold with α/H = lr·λ."""
    model = fm.Sequential([fm.Dense(2, 1, bias=False)], dtype="float64")
    model[0].W[:, 0] = [0.5, -0.1]
    X, y = np.zeros((1, 2)), np.zeros(1)        # zero input: the loss gradient is 0
    tr = fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=0.5),
                    regularizers=[fm.L1Penalty(0.4, proximal=True)])
    tr.fit(X, y, epochs=1, batch_size=1, verbose=0)
    np.testing.assert_allclose(model[0].W[:, 0], [0.3, 0.0], rtol=0, atol=1e-15)
    assert model[0].W[1, 0] == 0.0


def _data(rng, n=200):
    X = rng.normal(size=(n, 6))
    y = X[:, :2] @ np.array([1.5, -2.0]) + 0.05 * rng.normal(size=n)  # inputs 2..5 irrelevant
    return X, y


@pytest.mark.parametrize("opt", [lambda: fm.SGD(lr=0.05), lambda: fm.Adam(lr=0.02)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_and_python_paths_agree_and_zero_irrelevant_inputs(rng, opt, dtype):
    X, y = _data(rng)
    out = []
    for python in (False, True):
        model = fm.Sequential([fm.Dense(6, 1)] + ([python_identity()] if python else []),
                              dtype=dtype, seed=0)
        assert model.is_fused != python
        tr = fm.Trainer(model, fm.MSELoss(), opt(),
                        regularizers=[fm.ElasticNet(0.1, 1e-3, proximal=True)])
        hist = tr.fit(X, y, epochs=30, batch_size=20, verbose=0)
        out.append((model.params.copy(), hist.history["loss"]))
    assert rel_err(out[1][0], out[0][0]) <= 10 * RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-5)
    W = out[0][0][:6]
    assert (W[2:] == 0).all() and (np.abs(W[:2]) > 1).all()
    sp = fm.sparsity(model)
    assert sp == {"0.W": pytest.approx(4 / 6)}


def test_subgradient_l1_gives_no_exact_zeros(rng):
    X, y = _data(rng)
    model = fm.Sequential([fm.Dense(6, 1)], dtype="float64", seed=0)
    tr = fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=0.05), regularizers=[fm.L1Penalty(0.02)])
    tr.fit(X, y, epochs=30, batch_size=20, verbose=0)
    assert fm.sparsity(model)["0.W"] == 0.0


def test_loss_includes_the_l1_value_and_layer_regularizer(rng):
    X, y = _data(rng, 40)
    model = fm.Sequential([fm.Dense(6, 1, regularizer=fm.L1Penalty(0.1, proximal=True))],
                          dtype="float64", seed=0)
    tr = fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=0.0))
    hist = tr.fit(X, y, epochs=1, batch_size=40, verbose=0)
    expect = fm.MSELoss()(model.predict(X), y) + 0.1 * np.abs(model[0].W).sum()
    assert hist.history["loss"][0] == pytest.approx(expect, rel=1e-12)


def test_sparsity_and_validation():
    model = fm.Sequential([fm.Dense(2, 2), fm.Dense(2, 1, bias=False)], dtype="float64")
    model[0].W[...] = [[0, 1], [0, 0]]
    model[1].W[...] = [[1], [2]]
    assert fm.sparsity(model) == {"0.W": 0.75, "1.W": 0.0}
    assert fm.sparsity(model, include_bias=True)["0.b"] == 1.0
    with pytest.raises(TypeError, match="proximal"):
        fm.L1Penalty(0.1, proximal="yes")
    with pytest.raises(TypeError, match="model"):
        fm.sparsity(object())
    assert repr(fm.L1Penalty(0.1, proximal=True)) == "L1Penalty(lam=0.1, proximal=True)"
