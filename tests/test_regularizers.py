"""Penalties and constraints: kernels vs the NumPy reference, gradient checks, the lecture
example (L2 prefers spread-out weights, L1 sparse ones), role and layer selection, max-norm
and non-negativity, validation."""
import numpy as np
import pytest

import fastmlp
from fastmlp import _regularize
from fastmlp.reference import regularize as ref
from fastmlp.regularizers import ElasticNet, L1Penalty, L2Penalty, MaxNorm, NonNeg, Penalty
from helpers import RTOL, rel_err

DTYPES = [np.float64, np.float32]
COEFS = [(0.0, 0.3), (0.7, 0.0), (0.25, 1.5)]


def model_with_bias(dtype="float64", seed=0):
    return fastmlp.Sequential([fastmlp.Dense(4, 5, activation="tanh"), fastmlp.PReLU(5),
                               fastmlp.Dense(5, 3)], dtype=dtype, seed=seed)


# --- kernels vs reference ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l1,l2", COEFS)
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_penalty_value_grad_matches_reference(rng, dtype, l1, l2, n):
    w = rng.normal(size=n).astype(dtype)
    w[::5] = 0                                       # sign(0) = 0 on both sides
    g0 = rng.normal(size=n).astype(dtype)
    g_core, g_ref = g0.copy(), g0.copy()
    v_core = _regularize.penalty_value_grad_memview(w, g_core, l1, l2)
    v_ref = ref.penalty_value_grad(w, g_ref, l1, l2)
    assert rel_err([v_core], [v_ref]) <= RTOL[dtype]
    assert rel_err(g_core, g_ref) <= RTOL[dtype]
    assert _regularize.penalty_value_grad_memview(w, None, l1, l2) == pytest.approx(v_core)


def test_penalty_value_grad_formula():
    w = np.array([1.0, -2.0, 0.0, 3.0])
    g = np.zeros(4)
    v = _regularize.penalty_value_grad_memview(w, g, 0.5, 2.0)
    assert v == 0.5 * 6.0 + 0.5 * 2.0 * 14.0
    np.testing.assert_array_equal(g, [0.5 + 2.0, -0.5 - 4.0, 0.0, 0.5 + 6.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_penalties_apply_matches_reference(rng, dtype):
    params = rng.normal(size=60).astype(dtype)
    ranges = [(0, 10, 0.1, 0.0), (15, 20, 0.0, 0.4), (40, 20, 0.3, 0.2), (35, 0, 1.0, 1.0)]
    g_core, g_ref = np.zeros_like(params), np.zeros_like(params)
    v_core = _regularize.penalties_apply_memview(ranges, params, g_core)
    v_ref = ref.penalties_apply(ranges, params, g_ref)
    assert rel_err([v_core], [v_ref]) <= RTOL[dtype]
    assert rel_err(g_core, g_ref) <= RTOL[dtype]
    assert not g_core[10:15].any() and not g_core[35:40].any()   # outside the ranges
    table = _regularize.penalty_table(ranges, params.shape[0])
    assert _regularize.penalties_apply_memview(table, params, None) == pytest.approx(v_core)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (40, 300), (3, 513)])
def test_maxnorm_matches_reference(rng, dtype, shape):
    W = rng.normal(size=shape).astype(dtype)
    W[:, ::2] *= 0.01                                # some columns under the limit
    W_core, W_ref = W.copy(), W.copy()
    _regularize.maxnorm_columns_memview(W_core, 1.5)
    ref.maxnorm_columns(W_ref, 1.5)
    assert rel_err(W_core, W_ref) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_constraints_apply_matches_reference(rng, dtype):
    params = rng.normal(size=50).astype(dtype) * 3
    cons = [(_regularize.ConstraintKind.C_MAXNORM, 2, 4, 5, 1.0),
            (_regularize.ConstraintKind.C_NONNEG, 30, 4, 5, 0.0)]
    p_core, p_ref = params.copy(), params.copy()
    _regularize.constraints_apply_memview(cons, p_core)
    ref.constraints_apply(cons, p_ref)
    assert rel_err(p_core, p_ref) <= RTOL[dtype]
    np.testing.assert_array_equal(p_core[:2], params[:2])       # outside the blocks
    np.testing.assert_array_equal(p_core[22:30], params[22:30])
    assert (p_core[30:50] >= 0).all()


def test_tables_refuse_bad_rows():
    with pytest.raises(ValueError, match="outside the arena"):
        _regularize.penalty_table([(5, 10, 0.1, 0.1)], 12)
    with pytest.raises(ValueError, match="l1, l2"):
        _regularize.penalty_table([(0, 1, -0.1, 0.1)], 12)
    with pytest.raises(ValueError, match="unknown kind"):
        _regularize.constraint_table([(7, 0, 1, 1, 1.0)], 12)
    with pytest.raises(ValueError, match="outside"):
        _regularize.constraint_table([(0, 0, 4, 4, 1.0)], 12)
    with pytest.raises(ValueError, match="max_value"):
        _regularize.constraint_table([(0, 0, 2, 2, np.nan)], 12)


# --- penalties on models -------------------------------------------------------------------

def lecture_model(theta):
    model = fastmlp.Sequential([fastmlp.Dense(3, 1, bias=False)], dtype="float64")
    model[0].W[:, 0] = theta
    return model


def test_lecture_example_l2_prefers_spread_l1_prefers_sparse():
    x = np.array([[1.0, 2.0, 1.0]])
    m1, m2 = lecture_model([0.0, 0.75, 0.0]), lecture_model([0.25, 0.5, 0.25])
    assert m1.predict(x)[0, 0] == 1.5 and m2.predict(x)[0, 0] == 1.5
    l2, l1 = L2Penalty(lam=2.0), L1Penalty(1.0)          # lam/2 Σθ² with lam = 2 is Σθ²
    assert l2(m1) == 0.5625 and l2(m2) == 0.375          # L2 prefers θ₂
    assert l1(m1) == 0.75 and l1(m2) == 1.0              # L1 prefers θ₁
    for backend in ("core", "numpy"):
        m1.backend = m2.backend = backend
        assert (l2(m1), l2(m2), l1(m1), l1(m2)) == (0.5625, 0.375, 0.75, 1.0)


def numeric_grad(pen, model, h=1e-6):
    g = np.zeros_like(model.params)
    for i in range(model.params.shape[0]):
        old = model.params[i]
        model.params[i] = old + h
        up = pen(model)
        model.params[i] = old - h
        down = pen(model)
        model.params[i] = old
        g[i] = (up - down) / (2 * h)
    return g


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("pen", [L2Penalty(0.3), L1Penalty(0.2), ElasticNet(0.1, 0.5),
                                 ElasticNet(0.1, 0.5, include_bias=True)])
def test_penalty_gradient_matches_central_differences(rng, pen, backend):
    model = model_with_bias(seed=1)
    model.backend = backend
    p = rng.uniform(0.1, 1.0, size=model.n_params) * rng.choice([-1, 1], size=model.n_params)
    model.params[...] = p                          # away from 0: |θ| is smooth there
    model.grads[...] = 1.0
    pen.add_grad(model)
    assert rel_err(model.grads - 1.0, numeric_grad(pen, model)) < 1e-8


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_penalty_core_matches_numpy_backend(rng, dtype):
    model = model_with_bias(dtype)
    pen = ElasticNet(0.05, 0.2, include_bias=True)
    v_core = pen(model)
    pen.add_grad(model)
    g_core = model.grads.copy()
    model.backend = "numpy"
    model.zero_grad()
    v_ref = pen(model)
    pen.add_grad(model)
    tol = RTOL[np.dtype(dtype).type]
    assert rel_err([v_core], [v_ref]) <= tol and rel_err(g_core, model.grads) <= tol


def by_role(model):
    out = {"weight": [], "bias": [], "other": []}
    for p in model.param_info:
        out[p["role"]].append(np.arange(p["offset"], p["offset"] + np.prod(p["shape"])))
    return {k: np.concatenate(v) if v else np.array([], int) for k, v in out.items()}


@pytest.mark.parametrize("include_bias", [False, True])
def test_biases_exempt_unless_included_and_other_never(include_bias):
    model = model_with_bias()
    model.params[...] = 0.5
    idx = by_role(model)
    assert idx["other"].size > 0                     # the PReLU slopes
    pen = L2Penalty(1.0, include_bias=include_bias)
    n_pen = idx["weight"].size + (idx["bias"].size if include_bias else 0)
    assert pen(model) == pytest.approx(0.5 * 0.25 * n_pen)
    pen.add_grad(model)
    assert (model.grads[idx["weight"]] == 0.5).all()
    assert (model.grads[idx["bias"]] == (0.5 if include_bias else 0.0)).all()
    assert (model.grads[idx["other"]] == 0).all()


def test_ranges_merge_adjacent_and_restrict_to_layers():
    model = model_with_bias()
    info = {(p["layer"], p["name"]): p for p in model.param_info}
    W0, b0, W2 = info[0, "W"], info[0, "b"], info[2, "W"]
    assert L1Penalty(0.1)._ranges(model) == [(W0["offset"], 20, 0.1, 0.0),
                                             (W2["offset"], 15, 0.1, 0.0)]
    assert L1Penalty(0.1, include_bias=True)._ranges(model, layers=[0]) == \
        [(W0["offset"], 20 + 5, 0.1, 0.0)]
    assert b0["offset"] == W0["offset"] + 20
    assert L1Penalty(0.1)._ranges(model, layers=2) == L1Penalty(0.1)._ranges(model, layers=[-1])
    assert L1Penalty(0.1)._ranges(model, layers=[1]) == []           # PReLU: role "other"


def test_layer_restriction_value_and_grad():
    model = model_with_bias()
    model.params[...] = 1.0
    pen = L2Penalty(2.0)
    assert pen(model, layers=[2]) == 15.0 and pen(model, layers=[0]) == 20.0
    assert pen(model) == 35.0
    pen.add_grad(model, layers=[2])
    off = model.param_info[-2]["offset"]
    assert (model.grads[off:off + 15] == 2.0).all()
    assert model.grads.sum() == 30.0


def test_bad_layer_indices():
    model = model_with_bias()
    with pytest.raises(ValueError, match="out of range"):
        L2Penalty(0.1)(model, layers=[3])
    with pytest.raises(TypeError):
        L2Penalty(0.1)(model, layers=["0"])


# --- constraints ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_maxnorm_holds_after_apply(backend, dtype):
    model = fastmlp.Sequential([fastmlp.Dense(20, 300)], dtype=dtype, seed=3)
    W = model[0].W
    W *= 20
    W[:, ::3] *= 1e-3                                # these columns are under the limit
    before = W.copy()
    norms_before = np.linalg.norm(before.astype(np.float64), axis=0)
    c = MaxNorm(2.0)
    assert c.apply(W, backend=backend) is W
    norms = np.linalg.norm(W.astype(np.float64), axis=0)
    eps = np.finfo(dtype).eps
    assert (norms <= 2.0 * (1 + 4 * eps)).all()
    under = norms_before <= 2.0
    assert under.sum() >= 100
    np.testing.assert_array_equal(W[:, under], before[:, under])     # untouched
    np.testing.assert_allclose(norms[~under], 2.0, rtol=4 * eps)
    np.testing.assert_allclose(W[:, ~under] / before[:, ~under],     # a rescaling per column
                               np.broadcast_to(2.0 / norms_before[~under], (20, (~under).sum())),
                               rtol=4 * eps)


def test_nonneg_apply():
    W = np.array([[-1.0, 2.0], [0.5, -3.0], [0.0, -1e-300]])
    assert NonNeg().apply(W) is W
    np.testing.assert_array_equal(W, [[0.0, 2.0], [0.5, 0.0], [0.0, 0.0]])
    W32 = np.array([-1.5, 1.5], dtype=np.float32)
    NonNeg().apply(W32, backend="numpy")
    np.testing.assert_array_equal(W32, [0.0, 1.5])


def test_constraint_ranges_for_the_executor():
    params = np.arange(-10.0, 14.0)
    cons = [MaxNorm(1.0)._range(0, 3, 4), NonNeg()._range(12, 3, 4)]
    assert cons[0] == (int(_regularize.ConstraintKind.C_MAXNORM), 0, 3, 4, 1.0)
    assert cons[1] == (int(_regularize.ConstraintKind.C_NONNEG), 12, 3, 4, 0.0)
    expect = params.copy()
    MaxNorm(1.0).apply(expect[:12].reshape(3, 4))
    NonNeg().apply(expect[12:])
    _regularize.constraints_apply_memview(cons, params)
    np.testing.assert_allclose(params, expect, rtol=1e-15)


def test_constraint_apply_refuses_bad_arrays():
    with pytest.raises(TypeError):
        MaxNorm().apply([[1.0, 2.0]])
    with pytest.raises(TypeError):
        MaxNorm().apply(np.ones((3, 4))[:, ::2])
    with pytest.raises(ValueError, match="2-D"):
        MaxNorm().apply(np.ones(3))


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("make,name", [
    (lambda v: L2Penalty(v), "lam"), (lambda v: L1Penalty(v), "lam"),
    (lambda v: ElasticNet(v, 0.1), "l1"), (lambda v: ElasticNet(0.1, v), "l2"),
    (lambda v: Penalty(l2=v), "l2"), (lambda v: MaxNorm(v), "max_value")])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_coefficients_raise_naming_the_argument(make, name, bad):
    with pytest.raises(ValueError, match=name):
        make(bad)


def test_non_numbers_raise_type_error():
    with pytest.raises(TypeError, match="lam"):
        L2Penalty("0.1")
    with pytest.raises(TypeError, match="max_value"):
        MaxNorm(True)


def test_repr():
    assert repr(L2Penalty(0.01)) == "L2Penalty(lam=0.01)"
    assert repr(L1Penalty(0.5, include_bias=True)) == "L1Penalty(lam=0.5, include_bias=True)"
    assert repr(ElasticNet(0.1, 0.2)) == "ElasticNet(l1=0.1, l2=0.2)"
    assert repr(MaxNorm(2)) == "MaxNorm(max_value=2.0)"
