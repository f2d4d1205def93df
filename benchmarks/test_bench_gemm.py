"""One matrix product of an MLP step, float32: fastmlp's own GEMM (AVX2 micro-kernels,
OpenMP over the larger side), the same call through scipy's BLAS (the core's fallback),
and ``np.matmul`` (NumPy's OpenBLAS). Shapes: the first layer of the MNIST shape forward
at batch 32 (32 x 512 x 784), its weight gradient at batch 256 (dW = Xᵀ dZ, 784 x 512 x
256), and one row (the bandwidth-bound product of a single prediction).
"""
import pytest

from fastmlp import bench

SHAPES = {"fwd-b32": (32, 512, 784, False), "dW-b256": (784, 512, 256, True),
          "one-row": (1, 512, 784, False)}


@pytest.mark.parametrize("impl", ["core", "blas", "numpy"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_gemm(timed, shape, impl):
    m, n, k, trans_a = SHAPES[shape]
    work = bench.gemm_calls(impl, m, n, k, trans_a, n_calls=10)
    timed(f"GEMM {m}x{n}x{k}{' (A transposed)' if trans_a else ''}", impl, work, 10, "call")
