"""Activation kernels: core vs NumPy reference, finite differences, extreme values."""
import numpy as np
import pytest

from fastmlp import _activations as core
from fastmlp._codes import ACT_NAMES
from fastmlp.reference import activations as ref
from helpers import RTOL, rel_err

NAMES = sorted(ACT_NAMES)
ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def _inputs(dtype, rng, shape=(7, 13)):
    z = rng.normal(scale=3.0, size=shape).astype(dtype)
    z.flat[:4] = [0.0, -0.0, 1.0, -1.0][: z.size]  # the kinks
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (3, 1000)])
def test_forward_matches_reference(name, dtype, shape, rng):
    code, alpha = ACT_NAMES[name], ALPHA.get(name, 0.0)
    z = _inputs(dtype, rng, shape)
    b = rng.normal(size=shape[1]).astype(dtype)
    zb = z + b
    a = core.forward(code, z, b, alpha=alpha)   # adds the bias to z in place
    assert rel_err(z, zb) == 0.0
    assert a.dtype == dtype
    assert rel_err(a, ref.forward(code, zb, alpha)) < RTOL[dtype] * 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_reference(name, dtype, rng):
    code, alpha = ACT_NAMES[name], ALPHA.get(name, 0.0)
    z = _inputs(dtype, rng).ravel()
    a = ref.forward(code, z, alpha)
    da = rng.normal(size=z.shape).astype(dtype)
    dz = core.backward(code, z, a, da, alpha=alpha)
    assert dz.dtype == dtype
    assert rel_err(dz, ref.backward(code, z, a, da, alpha)) < RTOL[dtype] * 4


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_central_differences(name, rng):
    code, alpha = ACT_NAMES[name], ALPHA.get(name, 0.0)
    z = rng.normal(scale=2.0, size=(1, 200))
    z = z[np.abs(z) > 1e-3].reshape(1, -1)                     # away from the kinks at 0
    z = z[(np.abs(np.abs(z) - 1) > 1e-3)].reshape(1, -1)       # and HardTanh's at ±1
    eps = 1e-6
    numeric = (core.forward(code, z + eps, alpha=alpha)
               - core.forward(code, z - eps, alpha=alpha)) / (2 * eps)
    a = core.forward(code, z.copy(), alpha=alpha)
    analytic = core.backward(code, z.ravel(), a.ravel(), np.ones(z.size), alpha=alpha)
    assert np.abs(analytic - numeric.ravel()).max() < 1e-8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_inputs_stay_finite(name, dtype):
    code, alpha = ACT_NAMES[name], ALPHA.get(name, 0.0)
    z = np.array([[-1e4, -50.0, -1e-30, 0.0, 1e-30, 50.0, 1e4]], dtype=dtype)
    a = core.forward(code, z.copy(), alpha=alpha)
    dz = core.backward(code, z.ravel(), a.ravel(), np.ones(z.size, dtype=dtype), alpha=alpha)
    assert np.isfinite(a).all() and np.isfinite(dz).all()
    assert rel_err(a, ref.forward(code, z, alpha)) < RTOL[dtype] * 4


def test_known_values():
    z = np.array([[-2.0, 0.0, 3.0]])
    f = lambda name, alpha=0.0: core.forward(ACT_NAMES[name], z.copy(), alpha=alpha)
    np.testing.assert_allclose(f("relu"), [[0, 0, 3]])
    np.testing.assert_allclose(f("leaky_relu", 0.1), [[-0.2, 0, 3]])
    np.testing.assert_allclose(f("step"), [[0, 0, 1]])
    np.testing.assert_allclose(f("hard_tanh"), [[-1, 0, 1]])
    np.testing.assert_allclose(f("sigmoid"), 1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_allclose(f("gelu"), [[-0.04550026389635842, 0.0, 3 * 0.9986501019683699]],
                               rtol=1e-14)


def test_unknown_code_is_an_error():
    with pytest.raises(ValueError, match="act"):
        core.forward(99, np.ones((1, 1)))
