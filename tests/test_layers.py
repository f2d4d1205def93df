"""Every layer: gradient-checked in float64, core vs NumPy reference in both dtypes."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import RTOL, WeightedSumLoss, rel_err

ACTIVATION_LAYERS = [fm.Identity, fm.Sigmoid, fm.Tanh, fm.ReLU, fm.LeakyReLU, fm.ELU,
                     fm.Softplus, fm.ArcTan, fm.HardTanh, fm.SiLU, fm.GELU]


def _stacks():
    """(id, layer factory) pairs covering every layer kind."""
    cases = [(cls.__name__, lambda cls=cls: [fm.Dense(4, 6), cls(), fm.Dense(6, 3)])
             for cls in ACTIVATION_LAYERS]
    cases += [(f"Dense-{a}", lambda a=a: [fm.Dense(4, 6, activation=a), fm.Dense(6, 3)])
              for a in ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "arctan",
                        "hard_tanh", "silu", "gelu"]]
    cases += [
        ("PReLU-shared", lambda: [fm.Dense(4, 6), fm.PReLU(), fm.Dense(6, 3)]),
        ("PReLU-per-unit", lambda: [fm.Dense(4, 6), fm.PReLU(6, init=0.1), fm.Dense(6, 3)]),
        ("Softmax", lambda: [fm.Dense(4, 6), fm.Softmax(), fm.Dense(6, 3)]),
        ("Maxout", lambda: [fm.Maxout(4, 5, pieces=3), fm.Dense(5, 3)]),
        ("no-bias", lambda: [fm.Dense(4, 6, activation="tanh", bias=False), fm.Dense(6, 3)]),
        ("deep", lambda: [fm.Dense(4, 8, activation="relu"), fm.Dense(8, 8, activation="tanh"),
                          fm.Dense(8, 8, activation="gelu"), fm.Dense(8, 3)]),
    ]
    return cases


CASES = _stacks()


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_gradient_check(name, make, backend, rng):
    model = fm.Sequential(make(), dtype="float64", seed=1, backend=backend)
    X = rng.normal(size=(5, 4))
    assert fm.gradient_check(model, WeightedSumLoss(3), X, None) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_core_matches_reference(name, make, dtype, batch, rng):
    core = fm.Sequential(make(), dtype=dtype, seed=3)
    ref = fm.Sequential(make(), dtype=dtype, seed=3, backend="numpy")
    np.testing.assert_array_equal(core.params, ref.params)
    X = rng.normal(size=(batch, 4))
    out_c, out_r = core.forward(X, training=True), ref.forward(X, training=True)
    assert out_c.dtype == dtype and out_c.shape == (batch, 3)
    assert rel_err(out_c, out_r) < RTOL[dtype] * 10
    g = rng.normal(size=out_c.shape)
    dx_c, dx_r = core.backward(g), ref.backward(g)
    assert rel_err(dx_c, dx_r) < RTOL[dtype] * 10
    for p in core.param_info:
        sl = slice(p["offset"], p["offset"] + int(np.prod(p["shape"])))
        assert rel_err(core.grads[sl], ref.grads[sl]) < RTOL[dtype] * 10, p


def test_step_passes_no_gradient(rng):
    model = fm.Sequential([fm.Dense(3, 4), fm.Step(), fm.Dense(4, 2)], dtype="float64", seed=0)
    model.forward(rng.normal(size=(6, 3)), training=True)
    dX = model.backward(np.ones((6, 2)))
    assert not dX.any()
    assert not model[0].dW.any() and model[2].dW.any()


def test_maxout_takes_the_max_piece():
    m = fm.Sequential([fm.Maxout(1, 1, pieces=3)], dtype="float64")
    m[0].W[...] = [[1.0, -1.0, 0.5]]
    m[0].b[...] = [0.0, 0.0, 1.0]
    np.testing.assert_allclose(m.forward([[2.0], [-3.0], [0.5]]), [[2.0], [3.0], [1.25]])


def test_prelu_slopes_learnable(rng):
    m = fm.Sequential([fm.Dense(2, 3), fm.PReLU(3)], dtype="float64", seed=0)
    np.testing.assert_array_equal(m[1].weight, 0.25)
    m.forward(rng.normal(size=(20, 2)), training=True)
    m.backward(np.ones((20, 3)))
    assert m[1].dweight.shape == (3,) and m[1].dweight.any()


@pytest.mark.parametrize("bad", [lambda: fm.PReLU(0), lambda: fm.PReLU(2.5),
                                 lambda: fm.LeakyReLU(float("nan")),
                                 lambda: fm.Maxout(3, 2, pieces=0)])
def test_bad_layer_arguments(bad):
    with pytest.raises((ValueError, TypeError)):
        bad()


def test_prelu_slope_count_must_fit_width():
    with pytest.raises(ValueError, match="num_parameters"):
        fm.Sequential([fm.Dense(2, 3), fm.PReLU(4)])
