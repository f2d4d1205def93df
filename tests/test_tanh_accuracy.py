"""The core's own tanh (include/fastmlp/activations.h: not libmvec's, which needs glibc
2.35) against NumPy's over a dense sweep: the error bound stated in the header, in ulps of
the result, for float64 and float32, both branches, signs, the branch point and saturation."""
import numpy as np
import pytest

from fastmlp import _activations
from fastmlp._codes import ACT_NAMES

TANH = int(ACT_NAMES["tanh"])


def _sweep(dtype):
    dense = np.linspace(-20, 20, 1_000_001)
    near_zero = np.geomspace(1e-30, 1.0, 20_001)
    branch = 0.625 + np.linspace(-1e-6, 1e-6, 2001)
    x = np.concatenate([dense, near_zero, -near_zero, branch, -branch, [0.0, 400.0, -400.0]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_within_2_ulp_of_numpy(dtype):
    x = _sweep(dtype)
    got = _activations.forward(TANH, x.reshape(1, -1).copy())[0]
    want = np.tanh(x)
    ulp = np.spacing(np.abs(want)).astype(np.float64)        # in the dtype's own ulps
    err = np.abs(got.astype(np.float64) - want.astype(np.float64)) / ulp
    assert err.max() <= 2.0, (float(err.max()), float(x[err.argmax()]))
    assert np.array_equal(np.sign(got), np.sign(x))          # odd, exact 0 at 0
    assert np.all(np.abs(got) <= 1)
