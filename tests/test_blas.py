import numpy as np
import pytest

from fastmlp._blas import gemm_memview
from helpers import RTOL, rel_err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 7), (17, 1, 9), (64, 33, 2)])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, m, n, k, rng):
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.normal(size=(m, n)).astype(dtype)
    expect = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2.0 * c
    gemm_memview(a, b, c, trans_a, trans_b, alpha=0.5, beta=2.0)
    assert rel_err(c, expect) < RTOL[dtype] * 10


def test_gemm_shape_mismatch_is_an_error():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="shapes"):
        gemm_memview(a, np.ones((4, 2)), np.ones((2, 2)))


def test_gemm_rejects_wrong_dtype_and_layout():
    with pytest.raises(ValueError):
        gemm_memview(np.ones((2, 2), dtype=np.float32), np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError):
        gemm_memview(np.ones((2, 3)).T, np.ones((2, 2)), np.ones((3, 2)))
