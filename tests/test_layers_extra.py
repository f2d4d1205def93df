"""The layers of issue 4 inside models: Dropout, GaussianNoise, BatchNorm, LayerNorm, Residual
and tied Dense weights. Gradient checks with fixed masks, core vs NumPy reference in training
and evaluation mode, dropout statistics and reproducibility, BatchNorm and LayerNorm against
torch, bad arguments. (The kernels alone: test_norm_kernels.py; penalties, constraints and
training with them: test_regularizers.py, test_regularization.py.)"""

import numpy as np
import pytest

import fastmlp as fm
from helpers import RTOL, FixedStep, WeightedSumLoss, rel_err, run_threads


def tied_autoencoder():
    enc = fm.Dense(4, 6, activation="tanh")
    return [enc, fm.Dense(6, 4, activation="tanh", tied_to=enc, transpose=True), fm.Dense(4, 3)]


def tied_same_shape():
    shared = fm.Dense(6, 6, activation="tanh")
    return [fm.Dense(4, 6, activation="tanh"), shared,
            fm.Dense(6, 6, activation="sigmoid", tied_to=shared), fm.Dense(6, 3)]


def stacked():
    # The Dense before a BatchNorm has no bias: BatchNorm removes any shift, so that bias
    # would have an exactly zero gradient, which a relative error cannot judge.
    return [fm.Dense(4, 6, bias=False), fm.BatchNorm(6), fm.ReLU(), fm.Dropout(0.3),
            fm.Residual(fm.LayerNorm(6), fm.Dense(6, 6, activation="tanh")),
            fm.GaussianNoise(0.1), fm.Dense(6, 3)]


def stacked_tied():
    enc = fm.Dense(4, 8, bias=False)
    return [enc, fm.BatchNorm(8, momentum=0.3), fm.Tanh(), fm.Dropout(0.25),
            fm.Residual(fm.LayerNorm(8), fm.Dense(8, 8, activation="relu"), fm.Dropout(0.2)),
            fm.Dense(8, 4, activation="tanh", tied_to=enc, transpose=True),
            fm.LayerNorm(4, elementwise_affine=False), fm.Dense(4, 3)]


CASES = [
    ("Dropout", lambda: [fm.Dense(4, 6, activation="tanh"), fm.Dropout(0.4), fm.Dense(6, 3)]),
    ("Dropout-p0", lambda: [fm.Dense(4, 6, activation="tanh"), fm.Dropout(0.0),
                            fm.Dense(6, 3)]),
    ("GaussianNoise", lambda: [fm.Dense(4, 6, activation="tanh"), fm.GaussianNoise(0.5),
                               fm.Dense(6, 3)]),
    ("BatchNorm", lambda: [fm.Dense(4, 6, bias=False), fm.BatchNorm(6), fm.Dense(6, 3)]),
    ("BatchNorm-plain", lambda: [fm.Dense(4, 6, bias=False),
                                 fm.BatchNorm(6, momentum=0.5, affine=False), fm.Dense(6, 3)]),
    ("LayerNorm", lambda: [fm.Dense(4, 6), fm.LayerNorm(6), fm.Dense(6, 3)]),
    ("LayerNorm-plain", lambda: [fm.Dense(4, 6), fm.LayerNorm(6, elementwise_affine=False),
                                 fm.Dense(6, 3)]),
    ("Residual", lambda: [fm.Dense(4, 6, activation="tanh"),
                          fm.Residual(fm.Dense(6, 6, activation="tanh"), fm.Dense(6, 6)),
                          fm.Dense(6, 3)]),
    ("Residual-nested", lambda: [fm.Dense(4, 6),
                                 fm.Residual(fm.Dense(6, 6, activation="tanh"),
                                             fm.Residual(fm.Dense(6, 6, activation="elu"))),
                                 fm.Dense(6, 3)]),
    ("Residual-first", lambda: [fm.Residual(fm.Dense(4, 4, activation="tanh")),
                                fm.Dense(4, 3)]),
    ("Chain", lambda: [fm.layers.Chain(fm.Dense(4, 6, activation="tanh"), fm.LayerNorm(6)),
                       fm.Residual(fm.layers.Chain(fm.Dense(6, 6), fm.Tanh())),
                       fm.Dense(6, 3)]),
    ("tied-transpose", tied_autoencoder),
    ("tied-same-shape", tied_same_shape),
    ("stacked", stacked),
    ("stacked-tied", stacked_tied),
]
IDS = [c[0] for c in CASES]


# --- gradient checks ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("name,make", CASES, ids=IDS)
def test_gradient_check(name, make, backend, rng):
    model = fm.Sequential(make(), dtype="float64", seed=1, backend=backend)
    X = rng.normal(size=(5, 4))
    assert fm.gradient_check(model, FixedStep(WeightedSumLoss(3), model), X, None) < 1e-6


# --- core vs reference ----------------------------------------------------------------------

def _grads_by_param(model):
    return [model.grads[p["offset"]:p["offset"] + int(np.prod(p["shape"]))]
            for p in model.param_info]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 2, 7, 64])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,make", CASES, ids=IDS)
def test_core_matches_reference(name, make, training, batch, dtype, rng):
    core = fm.Sequential(make(), dtype=dtype, seed=3)
    ref = fm.Sequential(make(), dtype=dtype, seed=3, backend="numpy")
    np.testing.assert_array_equal(core.get_weights(), ref.get_weights())
    tol = RTOL[dtype] * 10
    for step in (1, 2):         # twice: new masks, updated running statistics
        X = rng.normal(size=(batch, core.n_in))
        out_c, out_r = core.forward(X, training=training), ref.forward(X, training=training)
        assert out_c.dtype == dtype and out_c.shape == (batch, 3)
        assert rel_err(out_c, out_r) < tol
        g = rng.normal(size=out_c.shape)
        assert rel_err(core.backward(g), ref.backward(g)) < tol
        for gc, gr in zip(_grads_by_param(core), _grads_by_param(ref)):
            assert rel_err(gc, gr) < tol
        if core.buffers.size:
            assert rel_err(core.buffers, ref.buffers) < tol
        assert core.rng_step == ref.rng_step == (step if training else 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_masks_identical_on_both_backends(dtype, p):
    models = [fm.Sequential([fm.Dense(5, 5, bias=False), fm.Dropout(p), fm.Dropout(p)],
                            dtype=dtype, seed=11, backend=b) for b in ("core", "numpy")]
    X = np.ones((13, 5))
    for m in models:
        m[0].W[...] = np.eye(5)
    for _ in range(3):
        outs = [m.forward(X, training=True) for m in models]
        np.testing.assert_array_equal(outs[0], outs[1])
        # the layer's own mask() is what the core draws (for the current step)
        np.testing.assert_array_equal(models[0][1].mask(13) * models[0][2].mask(13), outs[0])


# --- dropout: statistics and reproducibility ------------------------------------------------

def dropout_model(p, seed=0, backend="core", width=100, dtype="float64"):
    return fm.Sequential([fm.Dense(width, width, bias=False, init="zeros"), fm.Dropout(p)],
                         dtype=dtype, seed=seed, backend=backend)


def identity_in(model):
    model[0].W[...] = np.eye(model.n_in)
    return model


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_rate_scale_and_mean(p, backend, rng):
    model = identity_in(dropout_model(p, seed=4, backend=backend))
    X = rng.normal(loc=1.0, size=(400, 100))
    out = model.forward(X, training=True)
    n = X.size
    dropped = out == 0
    # the drop rate: Binomial(n, p) / n within 5 sigma
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # survivors scaled by exactly 1/(1 - p) (inverted dropout)
    np.testing.assert_array_equal(out[~dropped], X[~dropped] * (1.0 / (1.0 - p)))
    # the mean is kept: E[x·m] = x, so mean(out − X) is 0 within 5 sigma, where
    # Var(x·m − x) = x²·p/(1 − p) per element
    sigma = np.sqrt((X ** 2).mean() * p / (1 - p) / n)
    assert abs(out.mean() - X.mean()) < 5 * sigma
    col_sigma = np.sqrt((X ** 2).mean(axis=0) * p / (1 - p) / X.shape[0])
    assert (np.abs(out.mean(axis=0) - X.mean(axis=0)) < 6 * col_sigma).all()


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_dropout_reproducible_by_seed_and_step(backend, rng):
    X = rng.normal(size=(30, 100))
    a, b, c = (identity_in(dropout_model(0.5, seed=s, backend=backend)) for s in (7, 7, 8))
    seq_a = [a.forward(X, training=True) for _ in range(3)]
    seq_b = [b.forward(X, training=True) for _ in range(3)]
    for xa, xb in zip(seq_a, seq_b):                      # same seed: the same masks
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(seq_a[0], seq_a[1])         # a new step: a new mask
    assert not np.array_equal(seq_a[1], seq_a[2])
    assert not np.array_equal(c.forward(X, training=True), seq_a[0])   # another seed
    a.rng_step = 1                                        # back to step 2: its mask again
    np.testing.assert_array_equal(a.forward(X, training=True), seq_a[1])
    assert a.rng_step == 2
    # two Dropout layers of one model draw different masks (their own streams)
    two = fm.Sequential([fm.Dense(100, 100, bias=False), fm.Dropout(0.5), fm.Dropout(0.5)],
                        seed=7, backend=backend)
    assert not np.array_equal(two[1].mask(30), two[2].mask(30))


def test_dropout_masks_do_not_depend_on_threads(rng):
    """No threading inside the kernel: masks are a function of (seed, layer, step, element).
    Two models with one seed, trained concurrently from two threads, draw exactly what one
    model draws alone."""
    X = rng.normal(size=(64, 30))
    serial = identity_in(dropout_model(0.3, seed=21, width=30))
    expect = [serial.forward(X, training=True) for _ in range(8)]
    models = [identity_in(dropout_model(0.3, seed=21, width=30)) for _ in range(2)]
    results = [[], []]

    def work(i):
        for _ in range(8):
            results[i].append(models[i].forward(X, training=True))

    run_threads(work, 2)
    for got in results:
        for a, b in zip(got, expect):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("make", [lambda: fm.Dropout(0.5), lambda: fm.GaussianNoise(1.0)],
                         ids=["Dropout", "GaussianNoise"])
def test_evaluation_mode_is_the_identity(make, backend, rng):
    model = fm.Sequential([fm.Dense(6, 6, bias=False), make()], dtype="float64", seed=0,
                          backend=backend)
    model[0].W[...] = np.eye(6)
    X = rng.normal(size=(9, 6))
    np.testing.assert_array_equal(model.forward(X), X)
    np.testing.assert_array_equal(model.predict(X), X)
    assert model.rng_step == 0                            # evaluation draws nothing
    np.testing.assert_array_equal(model.backward(np.ones((9, 6))), np.ones((9, 6)) @ np.eye(6))
    assert not np.array_equal(model.forward(X, training=True), X)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_gaussian_noise_statistics(backend, rng):
    std = 0.7
    model = fm.Sequential([fm.Dense(50, 50, bias=False), fm.GaussianNoise(std)],
                          dtype="float64", seed=2, backend=backend)
    model[0].W[...] = np.eye(50)
    X = rng.normal(size=(400, 50))
    noise = model.forward(X, training=True) - X
    n = noise.size
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)
    assert abs(noise.std() / std - 1) < 5 * np.sqrt(0.5 / n)          # sd of the sample sd
    assert abs(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]) < 5 / np.sqrt(400)
    dX = model.backward(np.ones_like(X))
    np.testing.assert_array_equal(dX, np.ones_like(X))               # gradient unchanged


# --- normalization against torch ----------------------------------------------------------

@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("momentum", [0.1, 0.6])
def test_batchnorm_in_a_model_follows_the_formulas(backend, momentum, rng):
    """torch.nn.BatchNorm1d written out: batch mean and biased variance normalize in
    training; the running mean and the *unbiased* running variance follow an exponential
    average with weight ``momentum``; evaluation uses the running statistics."""
    n, eps = 5, 1e-3
    model = fm.Sequential([fm.BatchNorm(n, momentum=momentum, eps=eps)], dtype="float64",
                          backend=backend)
    bn = model[0]
    gamma, beta = rng.normal(size=n), rng.normal(size=n)
    bn.weight[...], bn.bias[...] = gamma, beta
    rm, rv = np.zeros(n), np.ones(n)
    for i, B in enumerate([8, 2, 5, 33]):
        X = rng.normal(loc=i, scale=1 + i, size=(B, n))
        out = model.forward(X, training=True)
        mean, var = X.mean(axis=0), X.var(axis=0)
        assert rel_err(out, gamma * (X - mean) / np.sqrt(var + eps) + beta) < 1e-12
        rm = (1 - momentum) * rm + momentum * mean
        rv = (1 - momentum) * rv + momentum * X.var(axis=0, ddof=1)
        assert rel_err(bn.running_mean, rm) < 1e-12 and rel_err(bn.running_var, rv) < 1e-12
    X = rng.normal(size=(4, n))
    for out in (model.forward(X), model.forward(X[:1])):
        assert rel_err(out, (gamma * (X - rm) / np.sqrt(rv + eps) + beta)[:out.shape[0]]) < 1e-12
    assert rel_err(bn.running_mean, rm) < 1e-12              # evaluation: unchanged


def _torch():
    return pytest.importorskip("torch")


def _t(a):
    return _torch().from_numpy(np.array(a, dtype=np.float64))


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("affine", [True, False])
def test_model_with_batchnorm_matches_torch(backend, affine, rng):
    """Dense → BatchNorm → ReLU → Dense against torch.nn.Sequential with the same weights:
    outputs, running statistics, all gradients, in training and evaluation mode."""
    torch = _torch()
    model = fm.Sequential([fm.Dense(4, 7), fm.BatchNorm(7, momentum=0.2, affine=affine),
                           fm.ReLU(), fm.Dense(7, 3)], dtype="float64", seed=5, backend=backend)
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 7),
                                 torch.nn.BatchNorm1d(7, momentum=0.2, affine=affine),
                                 torch.nn.ReLU(), torch.nn.Linear(7, 3)).double()
    if affine:
        model[1].weight[...] = rng.uniform(0.5, 1.5, 7)
        model[1].bias[...] = rng.normal(size=7)
    with torch.no_grad():
        for i in (0, 3):
            tmodel[i].weight.copy_(_t(model[i].W.T))
            tmodel[i].bias.copy_(_t(model[i].b))
        if affine:
            tmodel[1].weight.copy_(_t(model[1].weight))
            tmodel[1].bias.copy_(_t(model[1].bias))
    for training, B in [(True, 16), (True, 2), (True, 9), (False, 5), (False, 1)]:
        tmodel.train(training)
        X = rng.normal(loc=0.5, scale=2.0, size=(B, 4))
        C = rng.normal(size=(B, 3))
        Xt = _t(X).requires_grad_(True)
        tmodel.zero_grad()
        tout = tmodel(Xt)
        (tout * _t(C)).sum().backward()
        model.zero_grad()
        out = model.forward(X, training=training)
        dX = model.backward(C)
        assert rel_err(out, tout.detach().numpy()) < 1e-10
        assert rel_err(model[1].running_mean, tmodel[1].running_mean.numpy()) < 1e-10
        assert rel_err(model[1].running_var, tmodel[1].running_var.numpy()) < 1e-10
        assert rel_err(dX, Xt.grad.numpy()) < 1e-10
        for i in (0, 3):
            assert rel_err(model[i].dW, tmodel[i].weight.grad.numpy().T) < 1e-10
            # in training the bias before BatchNorm has no gradient (0 up to rounding)
            db_scale = np.abs(model[i].dW).max() if i == 0 and training else None
            assert rel_err(model[i].db, tmodel[i].bias.grad.numpy(), db_scale) < 1e-10
        if affine:
            assert rel_err(model[1].dweight, tmodel[1].weight.grad.numpy()) < 1e-10
            assert rel_err(model[1].dbias, tmodel[1].bias.grad.numpy()) < 1e-10


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_model_with_layernorm_matches_torch(backend, rng):
    torch = _torch()
    model = fm.Sequential([fm.Dense(4, 7), fm.LayerNorm(7), fm.Dense(7, 3)], dtype="float64",
                          seed=5, backend=backend)
    model[1].weight[...] = rng.uniform(0.5, 1.5, 7)
    model[1].bias[...] = rng.normal(size=7)
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.LayerNorm(7),
                                 torch.nn.Linear(7, 3)).double()
    with torch.no_grad():
        for i in (0, 2):
            tmodel[i].weight.copy_(_t(model[i].W.T))
            tmodel[i].bias.copy_(_t(model[i].b))
        tmodel[1].weight.copy_(_t(model[1].weight))
        tmodel[1].bias.copy_(_t(model[1].bias))
    X, C = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    Xt = _t(X).requires_grad_(True)
    tout = tmodel(Xt)
    (tout * _t(C)).sum().backward()
    out = model.forward(X, training=True)
    np.testing.assert_array_equal(model.forward(X), out)     # the same in evaluation
    assert rel_err(out, tout.detach().numpy()) < 1e-10
    assert rel_err(model.backward(C), Xt.grad.numpy()) < 1e-10
    assert rel_err(model[1].dweight, tmodel[1].weight.grad.numpy()) < 1e-10
    assert rel_err(model[0].dW, tmodel[0].weight.grad.numpy().T) < 1e-10


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_batchnorm_one_row_training_batch_uses_running_statistics(backend, rng):
    """A training batch of 1 row has no batch variance: BatchNorm then normalizes with the
    running statistics, leaves them unchanged, and backpropagates as in evaluation mode
    (no crash, no NaN). Trainer.fit refuses to make such batches (test_regularization)."""
    model = fm.Sequential([fm.Dense(3, 4), fm.BatchNorm(4), fm.Dense(4, 2)], dtype="float64",
                          seed=1, backend=backend)
    model.forward(rng.normal(size=(10, 3)), training=True)     # non-trivial running stats
    stats = model[1].running_mean.copy(), model[1].running_var.copy()
    x = rng.normal(size=(1, 3))
    out = model.forward(x, training=True)
    np.testing.assert_array_equal(model[1].running_mean, stats[0])
    np.testing.assert_array_equal(model[1].running_var, stats[1])
    assert rel_err(out, model.forward(x)) < 1e-15
    model.forward(x, training=True)
    model.zero_grad()
    dX = model.backward(np.ones((1, 2)))
    assert np.isfinite(dX).all() and np.isfinite(model.grads).all() and model[0].dW.any()
    assert fm.gradient_check(model, WeightedSumLoss(2), x, None) < 1e-6


# --- residual and tied weights --------------------------------------------------------------

@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_residual_adds_the_skip_connection(backend, rng):
    inner = fm.Dense(5, 5, activation="tanh")
    model = fm.Sequential([fm.Residual(inner, fm.LayerNorm(5))], dtype="float64", seed=0,
                          backend=backend)
    X = rng.normal(size=(6, 5))
    h = np.tanh(X @ inner.W + inner.b)
    f = (h - h.mean(axis=1, keepdims=True)) / np.sqrt(h.var(axis=1, keepdims=True) + 1e-5)
    assert rel_err(model.forward(X), X + f) < 1e-13
    assert model.n_params == inner.n_params() + 10 == model[0].n_params()


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_tied_weights_are_views(backend):
    enc = fm.Dense(5, 3, activation="tanh")
    dec = fm.Dense(3, 5, tied_to=enc, transpose=True)
    model = fm.Sequential([enc, dec], dtype="float64", seed=0, backend=backend)
    assert model.n_params == 5 * 3 + 3 + 5                      # W once, two biases
    assert dec.W.shape == (3, 5) and np.shares_memory(dec.W, enc.W)
    assert np.shares_memory(dec.dW, enc.dW)
    np.testing.assert_array_equal(dec.W, enc.W.T)
    enc.W[1, 2] = 42.0
    assert dec.W[2, 1] == 42.0
    assert [n for n, _ in model.named_parameters()] == ["0.W", "0.b", "1.b"]


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("transpose", [True, False])
def test_tied_gradient_is_the_sum_of_both_uses(backend, transpose, rng):
    """The tied model's gradient of W = the encoder's gradient + the decoder's gradient
    (transposed back), computed on an untied twin whose two matrices hold the same values."""
    if transpose:
        enc = fm.Dense(6, 4, activation="tanh")
        dec = fm.Dense(4, 6, tied_to=enc, transpose=True)
    else:
        enc = fm.Dense(6, 6, activation="tanh")
        dec = fm.Dense(6, 6, activation="sigmoid", tied_to=enc)
    tied = fm.Sequential([enc, dec], dtype="float64", seed=2, backend=backend)
    free = fm.Sequential([fm.Dense(6, enc.n_out, activation="tanh"),
                          fm.Dense(dec.n_in, 6, activation=dec.activation.name)],
                         dtype="float64", backend=backend)
    free[0].W[...], free[0].b[...] = enc.W, enc.b
    free[1].W[...], free[1].b[...] = dec.W, rng.normal(size=6)
    dec.b[...] = free[1].b
    X, G = rng.normal(size=(7, 6)), rng.normal(size=(7, 6))
    outs = [m.forward(X, training=True) for m in (tied, free)]
    assert rel_err(outs[0], outs[1]) < 1e-14
    dX = [m.backward(G) for m in (tied, free)]
    assert rel_err(dX[0], dX[1]) < 1e-13
    want = free[0].dW + (free[1].dW.T if transpose else free[1].dW)
    assert rel_err(enc.dW, want) < 1e-13
    assert rel_err(dec.db, free[1].db) < 1e-14 and rel_err(enc.db, free[0].db) < 1e-14


# --- bad arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: fm.Dropout(1.0), ValueError, "p must"),
    (lambda: fm.Dropout(-0.1), ValueError, "p must"),
    (lambda: fm.Dropout(float("nan")), ValueError, "p must"),
    (lambda: fm.Dropout("0.5"), TypeError, "p must"),
    (lambda: fm.GaussianNoise(-0.1), ValueError, "std"),
    (lambda: fm.GaussianNoise(float("inf")), ValueError, "std"),
    (lambda: fm.BatchNorm(0), ValueError, "n"),
    (lambda: fm.BatchNorm(3, momentum=1.5), ValueError, "momentum"),
    (lambda: fm.BatchNorm(3, eps=0.0), ValueError, "eps"),
    (lambda: fm.LayerNorm(3, eps=-1e-5), ValueError, "eps"),
    (lambda: fm.Residual(), ValueError, "at least one"),
    (lambda: fm.Residual(fm.Dense(3, 3), "relu"), TypeError, r"layers\[1\]"),
    (lambda: fm.Sequential([fm.Dense(2, 4), fm.Residual(fm.Dense(4, 5))]), ValueError,
     "keep the width"),
    (lambda: fm.Sequential([fm.Dense(2, 4), fm.Residual(fm.Dense(3, 3))]), ValueError,
     "Residual layers"),
    (lambda: fm.Sequential([fm.Dense(2, 4), fm.BatchNorm(5)]), ValueError, "expects 5"),
    (lambda: fm.Dense(3, 5, tied_to=fm.Dense(3, 4), transpose=True), ValueError, "tied_to"),
    (lambda: fm.Dense(4, 3, tied_to=fm.Dense(3, 4)), ValueError, "tied_to"),
    (lambda: fm.Dense(3, 4, tied_to=fm.Maxout(3, 4, pieces=2)), ValueError, "tied_to"),
    (lambda: fm.Dense(4, 3, tied_to=fm.Dense(3, 4, tied_to=fm.Dense(4, 3), transpose=True),
                      transpose=True), ValueError, "tied_to"),
    (lambda: fm.Dense(3, 4, transpose=True), ValueError, "transpose"),
    (lambda: fm.Dense(4, 3, tied_to=fm.Dense(3, 4), transpose=True,
                      constraint=fm.MaxNorm(1.0)), ValueError, "constraint"),
    (lambda: fm.Dense(4, 3, tied_to=fm.Dense(3, 4), transpose=True,
                      regularizer=fm.L2Penalty(1.0)), ValueError, "regularizer"),
    (lambda: fm.Dense(3, 4, regularizer=0.1), TypeError, "regularizer"),
    (lambda: fm.Dense(3, 4, constraint="max_norm"), TypeError, "constraint"),
])
def test_bad_arguments_raise_naming_them(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_tied_layers_must_share_a_model():
    enc = fm.Dense(3, 4)
    fm.Sequential([enc])
    with pytest.raises(ValueError, match="same model"):
        fm.Sequential([fm.Dense(4, 3, tied_to=enc, transpose=True)])
