"""Normalization kernels: core vs NumPy reference, torch formulas and modules, gradient checks,
constant features, bad input."""
import numpy as np
import pytest

from fastmlp import _norm as core
from fastmlp.reference import norm as ref
from helpers import RTOL, rel_err

DTYPES = [np.float32, np.float64]
# B = 2 (the smallest training batch), n = 1, odd sizes, and n > 64 (several column blocks).
SHAPES = [(2, 1), (2, 5), (7, 13), (33, 130), (5, 200)]
AFFINE = {"affine": (True, True), "none": (False, False), "scale_only": (True, False)}


def _data(rng, shape, dtype, affine="affine"):
    B, n = shape
    X = rng.normal(loc=1.5, scale=2.0, size=shape).astype(dtype)
    has_g, has_b = AFFINE[affine]
    gamma = rng.normal(size=n).astype(dtype) if has_g else None
    beta = rng.normal(size=n).astype(dtype) if has_b else None
    return X, gamma, beta


def _stats(rng, n, dtype):
    return rng.normal(size=n).astype(dtype), rng.uniform(0.5, 2.0, size=n).astype(dtype)


def _zeros_like_params(gamma, beta, n, dtype):
    return (np.zeros(n, dtype) if gamma is not None else None,
            np.zeros(n, dtype) if beta is not None else None)


# --- core vs reference ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", list(AFFINE))
def test_batchnorm_matches_reference(dtype, shape, training, affine, rng):
    X, gamma, beta = _data(rng, shape, dtype, affine)
    rm, rv = _stats(rng, shape[1], dtype)
    rm2, rv2 = rm.copy(), rv.copy()
    A, xhat, inv = core.batchnorm_forward_memview(X, gamma, beta, rm, rv, 0.3, 1e-5, training)
    A_ref, cache = ref.batchnorm_forward(X, gamma, beta, rm2, rv2, 0.3, 1e-5, training)
    tol = RTOL[dtype]
    assert A.dtype == xhat.dtype == inv.dtype == dtype
    for got, want in [(A, A_ref), (xhat, cache.xhat), (inv, cache.inv_std), (rm, rm2), (rv, rv2)]:
        assert rel_err(got, want) < tol

    dA = rng.normal(size=shape).astype(dtype)
    dgamma, dbeta = _zeros_like_params(gamma, beta, shape[1], dtype)
    dX = core.batchnorm_backward_memview(xhat, inv, gamma, dA, dgamma, dbeta, training)
    dX_ref, dgamma_ref, dbeta_ref = ref.batchnorm_backward(cache, dA)
    assert dX.dtype == dtype
    assert rel_err(dX, dX_ref) < tol
    if gamma is not None:
        assert rel_err(dgamma, dgamma_ref) < tol
    if beta is not None:
        assert rel_err(dbeta, dbeta_ref) < tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(1, 7)])
@pytest.mark.parametrize("affine", list(AFFINE))
def test_layernorm_matches_reference(dtype, shape, affine, rng):
    X, gamma, beta = _data(rng, shape, dtype, affine)
    A, xhat, inv = core.layernorm_forward_memview(X, gamma, beta, 1e-5)
    A_ref, cache = ref.layernorm_forward(X, gamma, beta, 1e-5)
    tol = RTOL[dtype]
    assert A.dtype == dtype and inv.shape == (shape[0],)
    for got, want in [(A, A_ref), (xhat, cache.xhat), (inv, cache.inv_std)]:
        assert rel_err(got, want) < tol

    dA = rng.normal(size=shape).astype(dtype)
    dgamma, dbeta = _zeros_like_params(gamma, beta, shape[1], dtype)
    dX = core.layernorm_backward_memview(xhat, inv, gamma, dA, dgamma, dbeta)
    dX_ref, dgamma_ref, dbeta_ref = ref.layernorm_backward(cache, dA)
    assert rel_err(dX, dX_ref) < tol
    if gamma is not None:
        assert rel_err(dgamma, dgamma_ref) < tol
    if beta is not None:
        assert rel_err(dbeta, dbeta_ref) < tol


@pytest.mark.parametrize("kind", ["bn_train", "bn_eval", "ln"])
def test_backward_accumulates_skips_dX_and_allows_dX_to_alias_dA(kind, rng):
    X, gamma, beta = _data(rng, (6, 70), np.float64)
    rm, rv = _stats(rng, 70, np.float64)
    dA = rng.normal(size=X.shape)
    if kind == "ln":
        _, xhat, inv = core.layernorm_forward_memview(X, gamma, beta)
        back = core.layernorm_backward_memview
    else:
        training = kind == "bn_train"
        _, xhat, inv = core.batchnorm_forward_memview(X, gamma, beta, rm, rv, training=training)

        def back(*args, **kw):
            return core.batchnorm_backward_memview(*args, training=training, **kw)
    g0, b0 = np.zeros(70), np.zeros(70)
    dX = back(xhat, inv, gamma, dA, g0, b0)
    g1, b1 = np.full(70, 2.0), np.full(70, -1.0)
    assert back(xhat, inv, gamma, dA, g1, b1, need_dX=False) is None
    assert rel_err(g1, g0 + 2.0) < 1e-15 and rel_err(b1, b0 - 1.0) < 1e-15
    in_place = dA.copy()
    back(xhat, inv, gamma, in_place, out=in_place)
    assert rel_err(in_place, dX) == 0.0


@pytest.mark.parametrize("training", [True, False])
def test_forward_without_xhat_gives_the_same_output(training, rng):
    X, gamma, beta = _data(rng, (9, 70), np.float32)
    rm, rv = _stats(rng, 70, np.float32)
    rm2, rv2 = rm.copy(), rv.copy()
    A, _, inv = core.batchnorm_forward_memview(X, gamma, beta, rm, rv, training=training)
    A2, none, inv2 = core.batchnorm_forward_memview(X, gamma, beta, rm2, rv2,
                                                    training=training, need_xhat=False)
    assert none is None
    assert rel_err(A2, A) == 0.0 and rel_err(inv2, inv) == 0.0 and rel_err(rv2, rv) == 0.0
    A, _, _ = core.layernorm_forward_memview(X, gamma, beta)
    assert rel_err(core.layernorm_forward_memview(X, gamma, beta, need_xhat=False)[0], A) == 0


def test_float32_statistics_are_accumulated_in_double(rng):
    # A large offset and a small spread: float32 sums would lose most digits of the variance.
    X = (1000.0 + 0.01 * rng.normal(size=(512, 3))).astype(np.float32)
    X64 = X.astype(np.float64)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    _, xhat, _ = core.batchnorm_forward_memview(X, None, None, rm, rv, 1.0, 1e-12)
    exact = (X64 - X64.mean(axis=0)) / X64.std(axis=0)
    assert rel_err(xhat, exact) < 1e-6
    assert rel_err(rv, X64.var(axis=0, ddof=1)) < 1e-6
    _, xhat, _ = core.layernorm_forward_memview(np.ascontiguousarray(X.T), None, None, 1e-12)
    assert rel_err(xhat, exact.T) < 1e-6


# --- central differences (float64) ----------------------------------------------------------

def _numeric_grads(f, arrays, h=1e-6):
    """Central differences of the scalar f() with respect to each array (perturbed in place)."""
    grads = []
    for arr in arrays:
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            up = f()
            arr[idx] = old - h
            down = f()
            arr[idx] = old
            g[idx] = (up - down) / (2 * h)
        grads.append(g)
    return grads


@pytest.mark.parametrize("kind", ["bn_train", "bn_eval", "ln"])
@pytest.mark.parametrize("shape", [(2, 3), (5, 4), (9, 1)])
def test_gradients_match_central_differences(kind, shape, rng):
    X, gamma, beta = _data(rng, shape, np.float64)
    rm, rv = _stats(rng, shape[1], np.float64)
    C = rng.normal(size=shape)
    training = kind == "bn_train"

    def forward():
        if kind == "ln":
            return core.layernorm_forward_memview(X, gamma, beta)
        return core.batchnorm_forward_memview(X, gamma, beta, rm.copy(), rv.copy(),
                                              training=training)

    def objective():
        return float((C * forward()[0]).sum())

    _, xhat, inv = forward()
    dgamma, dbeta = np.zeros(shape[1]), np.zeros(shape[1])
    if kind == "ln":
        dX = core.layernorm_backward_memview(xhat, inv, gamma, C, dgamma, dbeta)
    else:
        dX = core.batchnorm_backward_memview(xhat, inv, gamma, C, dgamma, dbeta, training)
    numeric = _numeric_grads(objective, [X, gamma, beta])
    for analytic, num in zip([dX, dgamma, dbeta], numeric):
        assert rel_err(analytic, num) < 1e-6


# --- torch.nn.BatchNorm1d semantics, written out ------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.35])
def test_batchnorm_follows_torch_formulas(dtype, momentum, rng):
    n, eps = 6, 1e-3
    gamma, beta = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    rm, rv = np.zeros(n, dtype), np.ones(n, dtype)      # torch's initial running stats
    want_rm, want_rv = np.zeros(n), np.ones(n)
    for step, B in enumerate([8, 2, 5, 16]):
        X = rng.normal(loc=step, scale=1 + step, size=(B, n)).astype(dtype)
        A, _, _ = core.batchnorm_forward_memview(X, gamma, beta, rm, rv, momentum, eps, True)
        X64 = X.astype(np.float64)
        mean, var = X64.mean(axis=0), X64.var(axis=0)                   # biased: normalizes
        want_A = gamma * (X64 - mean) / np.sqrt(var + eps) + beta
        want_rm = (1 - momentum) * want_rm + momentum * mean
        want_rv = (1 - momentum) * want_rv + momentum * X64.var(axis=0, ddof=1)  # unbiased
        assert rel_err(A, want_A) < RTOL[dtype]
        assert rel_err(rm, want_rm) < RTOL[dtype] and rel_err(rv, want_rv) < RTOL[dtype]
    X = rng.normal(size=(3, n)).astype(dtype)
    A, _, _ = core.batchnorm_forward_memview(X, gamma, beta, rm, rv, momentum, eps, False)
    want_A = gamma * (X - want_rm) / np.sqrt(want_rv + eps) + beta
    assert rel_err(A, want_A) < RTOL[dtype]
    assert rel_err(rm, want_rm) < RTOL[dtype]                            # eval: unchanged
    one = core.batchnorm_forward_memview(X[:1], gamma, beta, rm, rv, momentum, eps, False)[0]
    assert rel_err(one, want_A[:1]) < RTOL[dtype]                       # B = 1 is fine in eval


# --- torch modules (when importable) ----------------------------------------------------------

# torch runs in float64 on the same (possibly float32) inputs: the exact answer to compare to.
# (torch's own float32 BatchNorm backward loses ~1e-4 relative at B = 2; the kernels ~1e-6.)
TORCH_TOL = {np.float32: 1e-5, np.float64: 1e-10}


def _torch():
    return pytest.importorskip("torch")


def _t(a):
    return _torch().from_numpy(np.asarray(a, dtype=np.float64).copy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.7])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_torch(dtype, momentum, affine, rng):
    torch = _torch()
    n, tol = 70, TORCH_TOL[dtype]
    bn = torch.nn.BatchNorm1d(n, momentum=momentum, eps=1e-5, affine=affine,
                              dtype=torch.float64)
    gamma = rng.normal(size=n).astype(dtype) if affine else None
    beta = rng.normal(size=n).astype(dtype) if affine else None
    if affine:
        with torch.no_grad():
            bn.weight.copy_(_t(gamma))
            bn.bias.copy_(_t(beta))
    rm, rv = np.zeros(n, dtype), np.ones(n, dtype)
    for training, B in [(True, 16), (True, 2), (True, 9), (False, 5), (False, 1)]:
        bn.train(training)
        X = rng.normal(loc=0.5, scale=3.0, size=(B, n)).astype(dtype)
        C = rng.normal(size=(B, n)).astype(dtype)
        Xt = _t(X).requires_grad_(True)
        bn.zero_grad()
        out = bn(Xt)
        (out * _t(C)).sum().backward()
        A, xhat, inv = core.batchnorm_forward_memview(X, gamma, beta, rm, rv, momentum, 1e-5,
                                                      training)
        dgamma, dbeta = _zeros_like_params(gamma, beta, n, dtype)
        dX = core.batchnorm_backward_memview(xhat, inv, gamma, C, dgamma, dbeta, training)
        assert rel_err(A, out.detach().numpy()) < tol
        assert rel_err(rm, bn.running_mean.numpy()) < tol
        assert rel_err(rv, bn.running_var.numpy()) < tol
        assert rel_err(dX, Xt.grad.numpy()) < tol
        if affine:
            assert rel_err(dgamma, bn.weight.grad.numpy()) < tol
            assert rel_err(dbeta, bn.bias.grad.numpy()) < tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", list(AFFINE))
def test_layernorm_matches_torch(dtype, affine, rng):
    torch = _torch()
    B, n, tol = 11, 70, TORCH_TOL[dtype]
    has_g, has_b = AFFINE[affine]
    ln = torch.nn.LayerNorm(n, eps=1e-5, elementwise_affine=has_g, bias=has_b,
                            dtype=torch.float64)
    X, gamma, beta = _data(rng, (B, n), dtype, affine)
    with torch.no_grad():
        if has_g:
            ln.weight.copy_(_t(gamma))
        if has_b:
            ln.bias.copy_(_t(beta))
    C = rng.normal(size=(B, n)).astype(dtype)
    Xt = _t(X).requires_grad_(True)
    out = ln(Xt)
    (out * _t(C)).sum().backward()
    A, xhat, inv = core.layernorm_forward_memview(X, gamma, beta, 1e-5)
    dgamma, dbeta = _zeros_like_params(gamma, beta, n, dtype)
    dX = core.layernorm_backward_memview(xhat, inv, gamma, C, dgamma, dbeta)
    assert rel_err(A, out.detach().numpy()) < tol
    assert rel_err(dX, Xt.grad.numpy()) < tol
    if has_g:
        assert rel_err(dgamma, ln.weight.grad.numpy()) < tol
    if has_b:
        assert rel_err(dbeta, ln.bias.grad.numpy()) < tol


# --- degenerate input -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_features_and_rows_stay_finite(dtype, rng):
    X, gamma, beta = _data(rng, (4, 5), dtype)
    X[:, 2] = 0.1                                  # a constant feature: batch variance 0
    X[1, :] = 0.1                                  # a constant row: LayerNorm variance 0
    dA = rng.normal(size=X.shape).astype(dtype)
    rm, rv = np.zeros(5, dtype), np.zeros(5, dtype)      # running variance 0 too
    for training in (True, False):
        A, xhat, inv = core.batchnorm_forward_memview(X, gamma, beta, rm, rv,
                                                      training=training)
        dX = core.batchnorm_backward_memview(xhat, inv, gamma, dA, training=training)
        assert np.isfinite(A).all() and np.isfinite(dX).all() and np.isfinite(rv).all()
    assert np.abs(core.batchnorm_forward_memview(X, None, None, rm, rv)[0][:, 2]).max() < 1e-3
    A, xhat, inv = core.layernorm_forward_memview(X, gamma, beta)
    dX = core.layernorm_backward_memview(xhat, inv, gamma, dA)
    assert np.isfinite(A).all() and np.isfinite(dX).all()
    assert np.abs(xhat[1]).max() < 1e-3
    twins = np.repeat(X[:1], 2, axis=0)            # B = 2, identical rows
    A, xhat, inv = core.batchnorm_forward_memview(twins, gamma, beta, rm, rv)
    assert np.isfinite(A).all() and np.abs(xhat).max() < 1e-3


def test_bad_shapes_raise_value_error():
    X, v3, v4 = np.ones((5, 4)), np.ones(3), np.ones(4)
    bn_fwd, bn_bwd = core.batchnorm_forward_memview, core.batchnorm_backward_memview
    ln_fwd, ln_bwd = core.layernorm_forward_memview, core.layernorm_backward_memview
    calls = [
        lambda: bn_fwd(X, v3, v4, v4, v4),
        lambda: bn_fwd(X, v4, v3, v4, v4),
        lambda: bn_fwd(X, v4, v4, v3, v4),
        lambda: bn_fwd(X, v4, v4, v4, v3),
        lambda: bn_fwd(X, v4, v4, None, v4),
        lambda: bn_fwd(X[:1], v4, v4, v4, v4, training=True),      # torch raises too
        lambda: bn_bwd(X, v4, v4, np.ones((5, 3))),
        lambda: bn_bwd(X, v4, v4, np.ones((4, 4))),
        lambda: bn_bwd(X, v3, v4, X),
        lambda: bn_bwd(X, v4, v3, X),
        lambda: bn_bwd(X, v4, v4, X, dgamma=v3),
        lambda: bn_bwd(X, v4, v4, X, dbeta=v3),
        lambda: bn_bwd(X, v4, v4, X, out=np.ones((5, 3))),
        lambda: ln_fwd(X, v3, None),
        lambda: ln_fwd(X, None, v3),
        lambda: ln_fwd(np.ones((2, 0)), None, None),
        lambda: ln_bwd(X, v4, None, X),                             # inv_std is per row
        lambda: ln_bwd(X, np.ones(5), v3, X),
        lambda: ln_bwd(X, np.ones(5), None, X, out=np.ones((4, 5))),
        lambda: ref.batchnorm_forward(X[:1], None, None, v4, v4),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"call {i} did not raise")


def test_wrong_dtype_or_layout_is_rejected():
    X = np.ones((5, 4))
    with pytest.raises((TypeError, ValueError)):
        core.batchnorm_forward_memview(X, None, None, np.ones(4, np.float32), np.ones(4))
    with pytest.raises((TypeError, ValueError)):
        core.layernorm_forward_memview(np.ones((4, 5)).T, None, None)
    with pytest.raises((TypeError, ValueError)):
        core.layernorm_forward_memview(np.ones(4), None, None)
