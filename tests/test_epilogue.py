"""GEMM epilogues (include/fastmlp/epilogue.h, gemm.h's fm_gemm_epi_fn): the blocks an
epilogue sees cover C exactly once and hold their final values, on every kernel family,
thread count and path (tiles, streamed rows, BLAS); the dense layer's fused bias and
activation equal the separate pass bit for bit; the finiteness check done while dW is
written stops a fit before an update from a non-finite gradient, as the pass it replaces.
"""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _blas, _plan
from fastmlp._codes import Act, LayerKind

from helpers import python_identity

PATHS = [(isa, t) for isa in ("avx512", "avx2", "blas") for t in (1, 2)]


@pytest.fixture(params=PATHS, ids=[f"{i}-{t}t" for i, t in PATHS])
def isa_and_threads(request):
    """Every GEMM path (each family of own kernels this CPU runs, scipy's BLAS) on one
    and two threads; restored afterwards."""
    isa, threads = request.param
    saved_native, saved_threads = _blas.use_native(), _blas.thread_override()
    if isa == "blas":
        _blas.use_native(False)
    elif _blas.set_gemm_isa(isa) != isa:
        _blas.set_gemm_isa(None)
        pytest.skip(f"this CPU cannot run the {isa} kernels")
    _blas.set_num_threads(threads, this_thread_only=True)
    yield request.param
    _blas.set_num_threads(saved_threads, this_thread_only=True)
    _blas.use_native(saved_native)
    _blas.set_gemm_isa(None)

SHAPES = [  # (m, n, k, trans_a, trans_b): the products of MLP steps, edges and odd sizes
    (1, 300, 20, False, False), (2, 77, 9, False, False),       # streamed rows
    (1, 512, 784, False, False), (2, 200, 1500, False, False),  # streamed rows, 2 threads
    (8, 33, 5, False, False), (32, 512, 784, False, False),     # forward, batch side
    (256, 520, 300, False, False), (37, 45, 530, False, True),  # dX = dZ Wᵀ
    (784, 512, 32, True, False), (300, 70, 256, True, False),   # dW = Xᵀ dZ
    (150, 40, 0, False, False),                                 # k = 0: C = beta C
    (64, 1, 1024, False, False), (1024, 1, 64, True, False),    # one column (n = 1)
    (5000, 1, 300, False, True), (3000, 1, 200, True, False),   # one column, 2 threads
    (64, 1024, 1, False, True), (100, 4, 100, True, False),     # streamed: K = 1, B <= 4 KB
    (1000, 600, 10, False, True), (4000, 4, 100, True, False),  # streamed over MC x NC, 2 threads
]


@pytest.mark.parametrize("m,n,k,ta,tb", SHAPES)
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_epilogue_covers_c_once_with_final_values(rng, isa_and_threads, m, n, k, ta, tb, beta):
    a = rng.normal(size=(k, m) if ta else (m, k))
    b = rng.normal(size=(n, k) if tb else (k, n))
    c0 = rng.normal(size=(m, n))
    c = c0.copy()
    visits, seen = _blas.gemm_epilogue_for_tests(a, b, c, ta, tb, beta)
    np.testing.assert_array_equal(visits, 1)
    np.testing.assert_array_equal(seen, c)
    expect = (a.T if ta else a) @ (b.T if tb else b) + beta * c0
    np.testing.assert_allclose(c, expect, rtol=1e-10, atol=1e-10)


def _plan_out(descs, n_params, X, seed=0):
    rng = np.random.default_rng(seed)
    params = rng.normal(size=n_params).astype(X.dtype)
    plan = _plan.Plan(descs, params, np.zeros_like(params))
    return np.array(plan.forward(X)), plan, params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act,alpha", [(Act.FM_RELU, 0.0), (Act.FM_LEAKY_RELU, 0.1),
                                       (Act.FM_HARD_TANH, 0.0), (Act.FM_STEP, 0.0),
                                       (Act.FM_TANH, 0.0), (Act.FM_GELU, 0.0)])
@pytest.mark.parametrize("rows", [1, 7, 200])
def test_fused_dense_activation_equals_separate_pass(rng, isa_and_threads, dtype, act, alpha,
                                                      rows):
    """Dense(act) (bias and activation in the product's epilogue when exact, else a pass)
    == Dense(identity: bias in the epilogue) then an activation layer (its own pass)."""
    n_in, n_out = 300, 130
    n_params = n_in * n_out + n_out
    X = rng.normal(size=(rows, n_in)).astype(dtype)
    dense = dict(kind=LayerKind.K_DENSE, n_in=n_in, n_out=n_out, w_off=0, b_off=n_in * n_out)
    fused, _, _ = _plan_out([dict(dense, act=int(act), alpha=alpha)], n_params, X)
    apart, _, _ = _plan_out([dict(dense, act=int(Act.FM_IDENTITY)),
                             dict(kind=LayerKind.K_ACT, n_in=n_out, n_out=n_out, act=int(act),
                                  alpha=alpha)], n_params, X)
    np.testing.assert_array_equal(fused, apart)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", [Act.FM_IDENTITY, Act.FM_RELU])
@pytest.mark.parametrize("rows,n_out", [(1, 130), (7, 130), (200, 130), (300, 64), (40, 10),
                                        (1100, 96)])
def test_dense_bias_and_relu_are_numpys_ops_on_the_product(rng, isa_and_threads, dtype, act,
                                                            rows, n_out):
    """Bias and ReLU, whichever does them (the tiles as they store the last K block, the
    block epilogue, the pass after BLAS), are one rounded add and x > 0 ? x : 0 on the
    product: NumPy's add and where on the bias-free layer's output give the same bits
    (signs of zeros included), over whole and partial tiles, a row of zeros and a row of
    NaN (ReLU gives 0)."""
    n_in = 300
    X = rng.normal(size=(rows, n_in)).astype(dtype)
    X[-1, :] = 0.0
    X[-1, 0] = -0.0
    if rows > 2:
        X[1, 3] = np.nan
    W = rng.normal(size=n_in * n_out).astype(dtype)
    W[:n_out] = -0.0
    b = rng.normal(size=n_out).astype(dtype)
    b[:5] = -0.0
    dense = dict(kind=LayerKind.K_DENSE, n_in=n_in, n_out=n_out, w_off=0)
    plain = _plan.Plan([dict(dense, act=int(Act.FM_IDENTITY), b_off=-1)], W.copy(),
                       np.zeros_like(W))
    z = np.array(plain.forward(X)) + b
    params = np.concatenate([W, b])
    layer = _plan.Plan([dict(dense, act=int(act), b_off=n_in * n_out)], params,
                       np.zeros_like(params))
    out = np.array(layer.forward(X))
    expect = z if act == Act.FM_IDENTITY else np.where(z > 0, z, dtype(0))
    np.testing.assert_array_equal(out, expect)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expect))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_forward_matches_numpy(rng, isa_and_threads, dtype):
    n_in, n_out = 257, 70
    X = rng.normal(size=(33, n_in)).astype(dtype)
    desc = dict(kind=LayerKind.K_DENSE, n_in=n_in, n_out=n_out, w_off=0,
                b_off=n_in * n_out, act=int(Act.FM_LEAKY_RELU), alpha=0.2)
    out, _, p = _plan_out([desc], n_in * n_out + n_out, X)
    z = X.astype(np.float64) @ p[:n_in * n_out].reshape(n_in, n_out) + p[n_in * n_out:]
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.where(z > 0, z, 0.2 * z), rtol=tol, atol=tol)


@pytest.mark.parametrize("python", [False, True], ids=["fused", "python"])
def test_non_finite_gradient_with_finite_loss_stops_before_update(python):
    """Loss 9 per row (finite), dW = Σ 1e38 · 6/B = 6e38: inf in float32 (W = 3e-38 is
    normal, not flushed). The fused loop learns it from the check done while dW is written;
    the fit must stop before the update, naming the step, with the weights untouched."""
    layers = [fm.Dense(1, 1)] + ([python_identity()] if python else [])
    model = fm.Sequential(layers, dtype="float32", seed=0)
    model.layers[0].W[...] = 3e-38
    model.layers[0].b[...] = 0.0
    before = model.params.copy()
    X = np.full((8, 1), 1e38, np.float32)
    y = np.zeros((8, 1), np.float32)
    tr = fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=0.1))
    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        tr.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.params, before)


def test_checked_gradients_only_for_plain_dense_arenas():
    """The backward check replaces the pass over the arena only when it sees every
    gradient: plain Dense/Maxout arenas; a PReLU's slopes or a tied layer keep the pass."""
    dense = fm.Sequential([fm.Dense(4, 3, activation="relu"), fm.Maxout(3, 2, pieces=2)])
    assert dense.plan.grads_checkable_for_tests()
    prelu = fm.Sequential([fm.Dense(4, 3), fm.PReLU(3)])
    assert not prelu.plan.grads_checkable_for_tests()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,block", [((16, 4), (0, 16, 0, 4)), ((16, 16), (0, 16, 0, 16)),
                                         ((5, 33), (0, 5, 0, 33)), ((9, 40), (2, 5, 0, 40)),
                                         ((9, 40), (1, 7, 3, 20)), ((1, 7), (0, 1, 0, 7)),
                                         ((3, 70), (0, 3, 16, 54))])
def test_backward_check_finds_every_non_finite_value_of_its_block(dtype, shape, block):
    """Backward's check of a dW block (epilogue.h's fm_finite_epi; whole rows are checked
    as one run): a NaN, inf or -inf at any position of the block is found; values outside
    the block are not its business."""
    from fastmlp._plan import finite_block_for_tests as check
    r0, rows, c0, cols = block
    c = np.linspace(-3, 3, shape[0] * shape[1]).astype(dtype).reshape(shape)
    assert check(c, *block)
    for i in range(shape[0]):
        for j in range(shape[1]):
            inside = r0 <= i < r0 + rows and c0 <= j < c0 + cols
            for bad in (np.nan, np.inf, -np.inf):
                d = c.copy()
                d[i, j] = bad
                assert check(d, *block) is not inside, (i, j, bad)
    with pytest.raises(ValueError, match="outside"):
        check(c, r0, shape[0] + 1, c0, cols)
