"""One matrix product of an MLP step, float32: fastmlp's own GEMM (AVX-512 or AVX2
micro-kernels, chunks over the core's thread team), the same call through scipy's BLAS (the core's fallback),
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


FAMILY_SHAPES = dict(SHAPES, **{"fwd-b256": (256, 512, 784, False),
                                "wide-b256": (256, 2048, 2048, False)})


@pytest.mark.parametrize("shape", list(FAMILY_SHAPES))
def test_kernel_families(benchmark, shape, capsys):
    """AVX-512 (8 x 32 tiles) against AVX2 (6 x 16) kernels of the core on one product, in
    interleaved rounds: the ratio avx2 / avx512 time with its range in extra_info (> 1:
    the AVX-512 kernels are faster). Skipped where the CPU has no AVX-512."""
    from fastmlp import _blas
    if _blas.best_gemm_isa() != "avx512":
        pytest.skip("this CPU has no AVX-512: one kernel family only")
    m, n, k, trans_a = FAMILY_SHAPES[shape]
    works = {"fastmlp": bench.gemm_calls("avx512", m, n, k, trans_a, n_calls=10),
             "avx2": bench.gemm_calls("avx2", m, n, k, trans_a, n_calls=10)}
    rounds = bench.measure_rounds(works, repeat=7)
    med, lo, hi = bench.round_ratios(rounds, "avx2")
    benchmark.group = f"GEMM kernel families {m}x{n}x{k}"
    benchmark.extra_info.update(avx2_over_avx512=med, range=(lo, hi))
    with capsys.disabled():
        print(f"\n{shape} {m}x{n}x{k}: avx2 / avx512 time {med:.2f}x [{lo:.2f}-{hi:.2f}]")
    benchmark.pedantic(works["fastmlp"], rounds=3, iterations=1, warmup_rounds=1)
