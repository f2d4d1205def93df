"""Soft parameter tying: TyingPenalty's value and gradient, core vs reference, the fused
step, gradient_check(regularizers=...), validation."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _regularize as core
from fastmlp.reference import regularize as ref
from helpers import RTOL, fused_and_python_params, python_identity, rel_err


def _twins(dtype="float64", python=False, seed=0):
    a, b = fm.Dense(3, 3, activation="tanh"), fm.Dense(3, 3, activation="tanh")
    layers = [a, b, fm.Dense(3, 2)] + ([python_identity()] if python else [])
    return fm.Sequential(layers, dtype=dtype, seed=seed), a, b


def test_value_and_gradient_follow_the_formula():
    model, a, b = _twins()
    tie = fm.TyingPenalty(a, b, lam=0.3)
    d = a.W - b.W
    assert tie(model) == pytest.approx(0.3 * (d ** 2).sum(), rel=1e-14)
    model.zero_grad()
    tie.add_grad(model)
    np.testing.assert_allclose(a.dW, 2 * 0.3 * d, rtol=1e-14)
    np.testing.assert_allclose(b.dW, -2 * 0.3 * d, rtol=1e-14)
    assert not a.db.any() and not b.db.any()
    both = fm.TyingPenalty(a, b, 0.3, include_bias=True)
    assert both(model) == pytest.approx(0.3 * ((d ** 2).sum() + ((a.b - b.b) ** 2).sum()))
    model.zero_grad()
    both.add_grad(model)
    np.testing.assert_allclose(b.db, -0.6 * (a.b - b.b), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_matches_reference(rng, dtype):
    params = rng.normal(size=50).astype(dtype)
    rows = [(3, 10, 0.1, 0.2, 0.0, 20, 0.7), (40, 5, 0.0, 0.0, 0.5, -1, 0.0), (0, 2, 0, 0)]
    g1, g2 = np.zeros_like(params), np.zeros_like(params)
    v1 = core.penalties_apply_memview(rows, params, g1)
    v2 = ref.penalties_apply(rows, params, g2)
    assert v1 == pytest.approx(v2, rel=RTOL[dtype])
    assert rel_err(g1, g2) < RTOL[dtype]
    d = params[3:13].astype(np.float64) - params[20:30]
    expect = (0.1 * np.abs(params[3:13]).sum() + 0.1 * (params[3:13] ** 2).sum()
              + 0.7 * (d ** 2).sum() + 0.5 * np.abs(params[40:45]).sum())
    assert v2 == pytest.approx(expect, rel=RTOL[dtype])
    with pytest.raises(ValueError, match="partner"):
        core.penalties_apply_memview([(0, 10, 0, 0, 0, 45, 1.0)], params, None)
    with pytest.raises(ValueError, match="partner"):
        ref.penalties_apply([(0, 10, 0, 0, 0, 45, 1.0)], params, None)


def test_gradient_check_with_regularizers(rng):
    model, a, b = _twins(seed=4)
    X = rng.normal(size=(5, 3))
    y = rng.integers(0, 2, 5)
    tie = fm.TyingPenalty(a, b, lam=2.0, include_bias=True)
    assert fm.gradient_check(model, fm.CrossEntropyLoss(), X, y, regularizers=[tie]) < 1e-6
    assert fm.gradient_check(model, fm.CrossEntropyLoss(), X, y,
                             regularizers=[tie, fm.L2Penalty(0.5)]) < 1e-6

    class Wrong(fm.TyingPenalty):
        def add_grad(self, model, layers=None):
            pass                                  # a penalty whose gradient is missing
    assert fm.gradient_check(model, fm.CrossEntropyLoss(), X, y,
                             regularizers=[Wrong(a, b, 2.0)]) > 1e-2
    with pytest.raises(TypeError, match="regularizers"):
        fm.gradient_check(model, fm.CrossEntropyLoss(), X, y, regularizers=[object()])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_and_python_paths_agree(rng, dtype):
    X = rng.normal(size=(50, 3))
    y = rng.integers(0, 2, 50)

    def make(python):
        model, a, b = _twins(dtype, python, seed=1)
        return fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2),
                          regularizers=[fm.TyingPenalty(a, b, 0.5, include_bias=True)], seed=2)
    params = fused_and_python_params(make, X, y, epochs=3, batch_size=8)
    assert rel_err(params[1], params[0]) <= RTOL[np.dtype(dtype).type]


def test_tying_pulls_the_layers_together(rng):
    X = rng.normal(size=(80, 3))
    y = rng.integers(0, 2, 80)
    gaps = []
    for lam in (0.0, 1.0):
        model, a, b = _twins(seed=3)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.05),
                        regularizers=[fm.TyingPenalty(a, b, lam)])
        tr.fit(X, y, epochs=20, batch_size=16, verbose=0)
        gaps.append(np.linalg.norm(a.W - b.W))
    assert gaps[1] < 0.05 * gaps[0]


def test_validation():
    model, a, b = _twins()
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(3, 2\)"):
        fm.TyingPenalty(a, fm.Dense(3, 2), 0.1)
    with pytest.raises(ValueError, match="lam"):
        fm.TyingPenalty(a, b, -1.0)
    with pytest.raises(TypeError, match="layer_a"):
        fm.TyingPenalty("a", b, 1.0)
    with pytest.raises(ValueError, match="layer_b"):
        fm.TyingPenalty(a, a, 1.0)
    with pytest.raises(ValueError, match="not in the model"):
        fm.TyingPenalty(a, fm.Dense(3, 3), 1.0)(model)
    bias_free = fm.Dense(3, 3, bias=False)
    with pytest.raises(ValueError, match="include_bias"):
        fm.TyingPenalty(a, bias_free, 1.0, include_bias=True)
    assert repr(fm.TyingPenalty(a, b, 0.5)) == "TyingPenalty(lam=0.5)"
