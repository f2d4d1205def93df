"""Regularization in training: penalty gradients on whole models, layer-level and
trainer-level penalties on the fused and the Python path, constraints after every step, tied
weights in training, BatchNorm batch sizes in fit, and L2 / dropout / early stopping each
lowering the validation loss of an overfitting network. (The penalty and constraint kernels
and the lecture example: test_regularizers.py; the layers: test_layers_extra.py.)"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastmlp as fm
from helpers import FixedStep, WeightedSumLoss, rel_err


class PyIdentity(fm.Layer):
    """A user layer in NumPy that changes nothing: the model trains on the Python path."""

    def forward(self, X, training=False):
        return X

    def backward(self, dY):
        return dY


def make_model(twin, layer_reg=None, first_reg=None, dtype="float64", seed=3):
    """Dense → BatchNorm → ReLU → Dropout → Residual(LayerNorm, Dense) → tied Dense → Dense,
    with a max-norm and a non-negativity constraint. ``twin``: "fused" (one compiled plan),
    "numpy" (the NumPy backend) or "pylayer" (a core stage, then a Python layer); the last
    two train on the Python path. ``layer_reg`` goes on every layer owning a weight matrix
    (penalties hold no state: one object can serve several layers)."""
    enc = fm.Dense(6, 12, bias=False, regularizer=first_reg or layer_reg,
                   constraint=fm.MaxNorm(1.0))
    inner = fm.Dense(12, 12, activation="tanh", regularizer=layer_reg)
    layers = [enc, fm.BatchNorm(12, momentum=0.2), fm.ReLU(), fm.Dropout(0.25),
              fm.Residual(fm.LayerNorm(12), inner),
              fm.Dense(12, 6, activation="tanh", tied_to=enc, transpose=True),
              fm.Dense(6, 3, regularizer=layer_reg, constraint=fm.NonNeg())]
    if twin == "pylayer":     # last: the dropout streams (layer indices) stay the same
        layers.append(PyIdentity())
    model = fm.Sequential(layers, dtype=dtype, seed=seed,
                          backend="numpy" if twin == "numpy" else "core")
    assert model.is_fused == (twin == "fused")
    return model


def clf_data(rng, n=47, d=6, k=3):
    X = rng.normal(size=(n, d))
    y = np.argmax(X[:, :k] + 0.3 * rng.normal(size=(n, k)), axis=1)
    return X, y


# --- penalty gradients on a whole model --------------------------------------------------------

def central_differences(objective, params, h=1e-6):
    g = np.empty_like(params)
    for i in range(params.shape[0]):
        old = params[i]
        params[i] = old + h
        up = objective()
        params[i] = old - h
        down = objective()
        params[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def per_tensor_error(model, analytic, numeric):
    errs = []
    for p in model.param_info:
        sl = slice(p["offset"], p["offset"] + int(np.prod(p["shape"])))
        scale = max(np.abs(analytic[sl]).max(), np.abs(numeric[sl]).max(), 1e-300)
        errs.append(np.abs(analytic[sl] - numeric[sl]).max() / scale)
    return max(errs)


PENALTIES = [fm.L2Penalty(0.3), fm.L1Penalty(0.2), fm.ElasticNet(0.1, 0.5),
             fm.ElasticNet(0.1, 0.5, include_bias=True)]


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("pen", PENALTIES, ids=repr)
def test_penalty_gradient_on_a_stacked_model(pen, backend, rng):
    """Penalties act on parameters, not outputs: ``pen.add_grad`` against central differences
    of ``pen(model)`` over the arena, alone and added to a loss, on a model with tied
    weights, normalization parameters (role "other": never penalized) and dropout (its mask
    pinned by FixedStep)."""
    model = make_model("fused" if backend == "core" else "numpy", seed=1)
    X = rng.normal(size=(5, 6))
    model.zero_grad()
    pen.add_grad(model)
    alone = central_differences(lambda: pen(model), model.params)
    assert per_tensor_error(model, model.grads, alone) < 1e-7
    for p in model.param_info:                     # BatchNorm/LayerNorm scales: exempt
        if p["role"] == "other":
            assert not model.grads[p["offset"]:p["offset"] + p["shape"][0]].any()
    loss = FixedStep(WeightedSumLoss(3), model)
    model.zero_grad()
    out = model.forward(X, training=True)
    model.backward(loss.grad(out))
    pen.add_grad(model)
    numeric = central_differences(
        lambda: loss(model.forward(X, training=True)) + pen(model), model.params)
    assert per_tensor_error(model, model.grads, numeric) < 1e-6


def test_tied_weights_are_penalized_once():
    model = make_model("fused")
    model.params[...] = 0.5
    n_weights = 6 * 12 + 12 * 12 + 6 * 3          # the tied decoder owns no W
    assert fm.L2Penalty(2.0)(model) == pytest.approx(0.25 * n_weights)


# --- both paths, both ways of attaching a penalty --------------------------------------------

def train(model, regularizers=(), epochs=3, seed=7, **fit):
    rng = np.random.default_rng(0)
    X, y = clf_data(rng)
    snaps = []
    rec = fm.LambdaCallback(on_epoch_end=lambda e, logs: snaps.append(model.get_weights()))
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=2e-2), regularizers=regularizers,
                    seed=seed)
    h = tr.fit(X, y, epochs=epochs, batch_size=10, validation_split=0.2, callbacks=[rec],
               verbose=0, **fit)
    return snaps, h.history


@pytest.mark.parametrize("twin", ["numpy", "pylayer"])
def test_layer_and_trainer_penalties_give_one_trajectory_on_both_paths(twin):
    """L2 on every weight matrix, once through ``Dense(..., regularizer=...)`` and once
    through ``Trainer(regularizers=[...])``, on the fused path and on the Python path:
    the same weights (and running statistics) after every epoch, the same losses. The model
    has dropout, BatchNorm, a residual block, tied weights and two constraints, so this also
    shows that both paths draw the same masks and apply the same projections."""
    lam = 0.05
    runs = {
        "fused-layer": train(make_model("fused", layer_reg=fm.L2Penalty(lam))),
        "fused-trainer": train(make_model("fused"), [fm.L2Penalty(lam)]),
        "python-layer": train(make_model(twin, layer_reg=fm.L2Penalty(lam))),
        "python-trainer": train(make_model(twin), [fm.L2Penalty(lam)]),
    }
    ref_snaps, ref_hist = runs["fused-layer"]
    unregularized, _ = train(make_model("fused"))
    assert rel_err(unregularized[-1], ref_snaps[-1]) > 1e-3      # the penalty matters
    for name, (snaps, hist) in runs.items():
        assert len(snaps) == 3, name
        for a, b in zip(snaps, ref_snaps):
            assert rel_err(a, b) < 1e-12, name
        np.testing.assert_allclose(hist["loss"], ref_hist["loss"], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(hist["val_loss"], ref_hist["val_loss"], rtol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("twin", ["numpy", "pylayer"])
def test_mixed_penalties_fused_equals_python(twin):
    """An L1 penalty on the first layer plus an elastic net over the whole model."""
    runs = []
    for kind in ("fused", twin):
        model = make_model(kind, first_reg=fm.L1Penalty(0.01))
        snaps, hist = train(model, [fm.ElasticNet(0.002, 0.03, include_bias=True)])
        runs.append((snaps, hist, model.rng_step))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert rel_err(b, a) < 1e-12
    np.testing.assert_allclose(runs[1][1]["loss"], runs[0][1]["loss"], rtol=1e-12)
    assert runs[0][2] == runs[1][2] == 3 * 4      # 38 training rows: 4 steps per epoch


def test_float32_paths_agree():
    runs = [train(make_model(kind, layer_reg=fm.L2Penalty(0.05), dtype="float32"))[0][-1]
            for kind in ("fused", "numpy")]
    assert rel_err(runs[1], runs[0]) < 1e-4


# --- constraints hold after every step -----------------------------------------------------------

def constrained_model(twin, constraint):
    layers = [fm.Dense(8, 32, activation="relu", constraint=constraint()), fm.Dropout(0.2),
              fm.Dense(32, 3, constraint=constraint())]
    if twin == "pylayer":
        layers.append(PyIdentity())
    return fm.Sequential(layers, dtype="float64", seed=0,
                         backend="numpy" if twin == "numpy" else "core")


@pytest.mark.parametrize("twin", ["fused", "numpy", "pylayer"])
def test_maxnorm_holds_after_every_step(twin, rng):
    c = 0.4
    model = constrained_model(twin, lambda: fm.MaxNorm(c))
    dense = [model[0], model[2]]
    assert max(np.linalg.norm(d.W, axis=0).max() for d in dense) > c      # at the start
    norms = []
    check = fm.LambdaCallback(on_batch_end=lambda b, logs: norms.append(
        [np.linalg.norm(d.W, axis=0) for d in dense]))
    X, y = rng.normal(size=(50, 8)), rng.integers(0, 3, 50)
    fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.5)).fit(
        X, y, epochs=3, batch_size=8, callbacks=[check], verbose=0)
    assert len(norms) == 3 * 7                       # every step was checked
    for step in norms:
        for n in step:
            assert (n <= c * (1 + 1e-12)).all()
    assert sum(np.isclose(n, c, rtol=1e-12).sum() for n in norms[-1]) > 5   # it binds


@pytest.mark.parametrize("twin", ["fused", "numpy", "pylayer"])
def test_nonneg_holds_after_every_step(twin, rng):
    model = constrained_model(twin, fm.NonNeg)
    dense = [model[0], model[2]]
    assert min(d.W.min() for d in dense) < 0
    mins, zeros = [], []

    def check(batch, logs):
        mins.append(min(d.W.min() for d in dense))
        zeros.append(sum((d.W == 0).sum() for d in dense))

    X, y = rng.normal(size=(50, 8)), rng.integers(0, 3, 50)
    fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1)).fit(
        X, y, epochs=2, batch_size=10, callbacks=[fm.LambdaCallback(on_batch_end=check)],
        verbose=0)
    assert len(mins) == 2 * 5 and min(mins) >= 0 and min(zeros) > 0


# --- tied weights in training ----------------------------------------------------------------

@pytest.mark.parametrize("twin", ["fused", "numpy"])
def test_tied_autoencoder_trains_with_shared_weights(twin, rng):
    enc = fm.Dense(10, 4, activation="tanh")
    dec = fm.Dense(4, 10, tied_to=enc, transpose=True)
    model = fm.Sequential([enc, dec], dtype="float64", seed=0,
                          backend="numpy" if twin == "numpy" else "core")
    X = rng.normal(size=(60, 3)) @ rng.normal(size=(3, 10))
    W0 = enc.W.copy()
    h = fm.Trainer(model, fm.MSELoss(), fm.Adam(lr=1e-2)).fit(X, X, epochs=30, batch_size=12,
                                                               verbose=0)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert not np.allclose(enc.W, W0)
    assert np.shares_memory(dec.W, enc.W) and np.array_equal(dec.W, enc.W.T)
    want = np.tanh(X @ enc.W + enc.b) @ enc.W.T + dec.b
    assert rel_err(model.predict(X), want) < 1e-13


# --- BatchNorm and the batch size ----------------------------------------------------------

def bn_model(optimizer="adam"):
    model = fm.Sequential([fm.Dense(3, 4, bias=False), fm.BatchNorm(4), fm.Dense(4, 1)],
                          dtype="float64", seed=0)
    return fm.Trainer(model, fm.MSELoss(), optimizer)


@pytest.mark.parametrize("n,batch_size,fit", [
    (33, 8, {}),                                          # 8 + 8 + 8 + 8 + 1
    (33, 1, {}),
    (36, 8, dict(validation_split=3 / 36)),               # 33 training rows
    (1, 4, {}),
])
def test_fit_refuses_a_one_row_batchnorm_batch(n, batch_size, fit, rng):
    tr = bn_model()
    before = tr.model.get_weights()
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    with pytest.raises(ValueError, match="batch_size" if n > 1 else "1 training row"):
        tr.fit(X, y, epochs=1, batch_size=batch_size, verbose=0, **fit)
    np.testing.assert_array_equal(tr.model.get_weights(), before)


def test_full_batch_solver_with_one_row_is_refused(rng):
    with pytest.raises(ValueError, match="BatchNorm"):
        bn_model(fm.LBFGS()).fit(rng.normal(size=(1, 3)), [1.0], epochs=1, verbose=0)


@pytest.mark.parametrize("noise", [lambda: fm.Dropout(0.2), lambda: fm.GaussianNoise(0.1)])
@pytest.mark.parametrize("solver", [fm.LBFGS, fm.GradientDescent])
def test_full_batch_solvers_refuse_noise_layers(noise, solver, rng):
    """A line search needs one objective; dropout and noise redraw at every evaluation
    (L-BFGS used to stop after a few iterations, claiming convergence)."""
    layer = noise()
    model = fm.Sequential([fm.Dense(3, 8, activation="tanh"), layer, fm.Dense(8, 1)],
                          dtype="float64", seed=0)
    tr = fm.Trainer(model, fm.MSELoss(), solver())
    with pytest.raises(ValueError, match=type(layer).__name__):
        tr.fit(rng.normal(size=(20, 3)), rng.normal(size=20), epochs=3, verbose=0)
    off = fm.Sequential([fm.Dense(3, 8, activation="tanh"), fm.Dropout(0.0), fm.Dense(8, 1)],
                        dtype="float64", seed=0)
    fm.Trainer(off, fm.MSELoss(), solver()).fit(rng.normal(size=(20, 3)), rng.normal(size=20),
                                                epochs=3, verbose=0)


@pytest.mark.parametrize("n,batch_size", [(33, 11), (34, 8), (2, 64), (33, 64)])
def test_fit_with_batchnorm_and_fine_batches(n, batch_size, rng):
    tr = bn_model()
    h = tr.fit(rng.normal(size=(n, 3)), rng.normal(size=n), epochs=2, batch_size=batch_size,
               verbose=0)
    assert len(h) == 2 and np.isfinite(h["loss"]).all()
    assert not np.array_equal(tr.model[1].running_mean, 0)
    # without BatchNorm a 1-row batch is fine
    plain = fm.Sequential([fm.Dense(3, 1)], dtype="float64", seed=0)
    fm.Trainer(plain, fm.MSELoss(), "sgd").fit(rng.normal(size=(33, 3)), rng.normal(size=33),
                                               batch_size=8, verbose=0)


# --- regularization helps an overfitting network ----------------------------------------------

def overfit_data(seed=0, n_train=30, n_val=300, d=10, k=3):
    """Few rows with noisy labels: a wide network memorizes them."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, k))
    X = rng.normal(size=(n_train + n_val, d))
    y = np.argmax(X @ W + 1.5 * rng.normal(size=(n_train + n_val, k)), axis=1)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def overfit_run(regularizers=(), dropout=0.0, early_stopping=False):
    (Xt, yt), (Xv, yv) = overfit_data()
    layers = [fm.Dense(10, 128, activation="relu"), fm.Dropout(dropout),
              fm.Dense(128, 128, activation="relu"), fm.Dropout(dropout), fm.Dense(128, 3)]
    model = fm.Sequential(layers, dtype="float64", seed=0)
    loss = fm.CrossEntropyLoss()
    cbs = [fm.EarlyStopping(patience=10)] if early_stopping else []
    fm.Trainer(model, loss, fm.Adam(lr=1e-3), regularizers=regularizers).fit(
        Xt, yt, epochs=150, batch_size=10, validation_data=(Xv, yv), callbacks=cbs, verbose=0)
    return loss(model.predict(Xv), yv)          # the data loss alone, without penalties


def test_regularization_lowers_the_validation_loss_of_an_overfitting_net():
    # one BLAS thread: on these tiny matrices more threads only cost time
    with threadpool_limits(1):
        none = overfit_run()
        regularized = {"l2": overfit_run(regularizers=[fm.L2Penalty(3e-2)]),
                       "dropout": overfit_run(dropout=0.6),
                       "early stopping": overfit_run(early_stopping=True)}
    for name, value in regularized.items():      # measured: 0.64, 0.72, 0.72 of `none`
        assert value < 0.85 * none, (name, value, none)
