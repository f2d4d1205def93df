"""LAMB: the per-tensor trust ratio, core vs reference, fused vs Python step, optax."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _lamb as core
from fastmlp.reference import lamb as ref
from helpers import RTOL, fused_and_python_params, python_identity, rel_err

HYPER = dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-6, weight_decay=0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_reference_and_formula(rng, dtype):
    n = 37
    ranges = np.array([0, 12, 12, 3, 15, 22], dtype=np.intp)
    p = rng.normal(size=n).astype(dtype)
    p[12:15] = 0                               # a zero tensor: trust ratio 1
    states = [p.copy(), np.zeros(n, dtype), np.zeros(n, dtype)]
    twins = [p.copy(), np.zeros(n, dtype), np.zeros(n, dtype)]
    for t in (1, 2, 3):
        g = rng.normal(size=n).astype(dtype)
        core.lamb_step_memview(states[0], g, states[1], states[2], ranges, t, **HYPER)
        ref.lamb_step(twins[0], g, twins[1], twins[2], ranges, t, **HYPER)
        for a, b in zip(states, twins):
            assert rel_err(a, b) < RTOL[dtype]
    # one step by hand
    p0 = rng.normal(size=n)
    g = rng.normal(size=n)
    p1, m, v = p0.copy(), np.zeros(n), np.zeros(n)
    core.lamb_step_memview(p1, g, m, v, ranges, 1, **HYPER)
    u = g / (np.abs(g) + 1e-6) + 0.1 * p0          # m̂ = g, v̂ = g² at t = 1
    expect = p0.copy()
    for off, size in ranges.reshape(-1, 2):
        s = slice(off, off + size)
        trust = np.linalg.norm(p0[s]) / np.linalg.norm(u[s])
        expect[s] -= 0.01 * trust * u[s]
    np.testing.assert_allclose(p1, expect, rtol=1e-12)


def _model(dtype, python=False):
    layers = [fm.Dense(4, 8, activation="tanh"), fm.Dense(8, 3)]
    return fm.Sequential(layers + ([python_identity()] if python else []), dtype=dtype,
                         seed=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_and_python_paths_agree(rng, dtype):
    X = rng.normal(size=(60, 4))
    y = rng.integers(0, 3, 60)
    out = fused_and_python_params(
        lambda python: fm.Trainer(_model(dtype, python), fm.CrossEntropyLoss(),
                                  fm.LAMB(lr=0.02, weight_decay=0.01)),
        X, y, epochs=3, batch_size=16)
    assert rel_err(out[1], out[0]) <= 10 * RTOL[np.dtype(dtype).type]
    numpy_model = _model(dtype)
    numpy_model.backend = "numpy"
    fm.Trainer(numpy_model, fm.CrossEntropyLoss(), fm.LAMB(lr=0.02, weight_decay=0.01)).fit(
        X, y, epochs=3, batch_size=16, verbose=0)
    assert rel_err(numpy_model.params, out[0]) <= 10 * RTOL[np.dtype(dtype).type]


def test_equals_optax_step_for_step(rng):
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    model = _model("float64")
    opt = fm.LAMB(lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.05)
    names = [f"{p['layer']}.{p['name']}" for p in model.param_info]
    views = {f"{p['layer']}.{p['name']}": getattr(model.flat_layers[p["layer"]], p["name"])
             for p in model.param_info}
    with jax.enable_x64(True):
        tx = optax.lamb(0.01, b1=0.9, b2=0.99, eps=1e-6, weight_decay=0.05)
        params = {k: jax.numpy.asarray(views[k].copy()) for k in names}
        state = tx.init(params)
        for _ in range(5):
            grads = {k: rng.normal(size=views[k].shape) for k in names}
            for k in names:
                layer, name = k.split(".")
                getattr(model.flat_layers[int(layer)], "d" + name)[...] = grads[k]
            opt.step(model)
            upd, state = tx.update({k: jax.numpy.asarray(v) for k, v in grads.items()},
                                   state, params)
            params = optax.apply_updates(params, upd)
            for k in names:
                np.testing.assert_allclose(views[k], np.asarray(params[k]), rtol=1e-12,
                                           atol=1e-15)


def test_validation_and_convergence(rng):
    with pytest.raises(ValueError, match="beta"):
        fm.LAMB(betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="weight_decay"):
        fm.LAMB(weight_decay=-1)
    with pytest.raises(ValueError, match="learning rate"):
        fm.LAMB(lr=-1)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = fm.Sequential([fm.Dense(4, 16, activation="relu"), fm.Dense(16, 2)], seed=0)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.LAMB(lr=0.05), metrics=["accuracy"])
    hist = tr.fit(X, y, epochs=30, batch_size=32, verbose=0)
    assert hist["accuracy"][-1] > 0.95
    assert repr(fm.LAMB()).startswith("LAMB(lr=0.001")
