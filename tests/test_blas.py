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


# --- fastmlp's own GEMM (include/fastmlp/gemm.h) -------------------------------------------
from fastmlp import _blas  # noqa: E402

native = pytest.mark.skipif(not _blas.native_available(),
                            reason="this CPU has no AVX2/FMA: GEMMs go to BLAS")


@pytest.fixture
def gemm_threads():
    """Set this thread's core threads within a test, restoring its override afterwards."""
    saved = _blas.thread_override()
    yield lambda n: _blas.set_num_threads(n, this_thread_only=True)
    _blas.set_num_threads(saved, this_thread_only=True)


ISAS = ("avx512", "avx2")


def _isa_runs(isa):
    return _blas.GEMM_ISAS.index(_blas.best_gemm_isa()) >= _blas.GEMM_ISAS.index(isa)


@pytest.fixture
def gemm_isa():
    """Select a kernel family within a test (skips when this CPU cannot run it); the
    default is restored afterwards."""
    def use(isa):
        if not _isa_runs(isa):
            pytest.skip(f"this CPU cannot run the {isa} kernels")
        assert _blas.set_gemm_isa(isa) == isa
    yield use
    _blas.set_gemm_isa(None)


@pytest.fixture(params=ISAS + ("blas",))
def backend(request, gemm_isa):
    """Every GEMM path: each family of own kernels (those this CPU runs) and scipy's BLAS."""
    saved = _blas.use_native()
    if request.param == "blas":
        _blas.use_native(False)
    else:
        gemm_isa(request.param)
    yield request.param
    _blas.use_native(saved)


def _check_gemm(m, n, k, trans_a, trans_b, alpha, beta, dtype, rng):
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    A, B = (a.T if trans_a else a).astype(np.float64), (b.T if trans_b else b).astype(np.float64)
    expect = alpha * (A @ B) + (beta * c0 if beta else 0.0)
    c = np.full_like(c0, np.nan) if beta == 0 else c0.copy()   # beta = 0 never reads C
    gemm_memview(a, b, c, trans_a, trans_b, alpha=alpha, beta=beta)
    # error relative to Σ|a||b|, the scale of the rounding of each dot product
    scale = float((np.abs(A) @ np.abs(B)).max() * max(abs(alpha), 1) + abs(beta) * np.abs(c0).max())
    assert rel_err(c, expect, scale=scale) < RTOL[dtype], (m, n, k, trans_a, trans_b)


# Shapes that reach every path of both families: each row-tile height (1..8 rows and the
# half-MR splits), partial column panels of 16 and 32, K across a KC block edge (256), an A
# large enough to be packed (> 1024 rows), N across an NC block (512 / 256), MLP products.
SHAPES = [(1, 1, 1), (2, 3, 1), (5, 17, 3), (7, 16, 9), (8, 15, 257), (11, 33, 2),
          (12, 40, 5), (15, 70, 260), (16, 64, 31), (24, 100, 33),
          (32, 512, 100), (100, 10, 300), (13, 600, 40), (1030, 20, 7), (70, 9, 1030),
          (70, 1, 600), (1030, 1, 7)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_paths_match_numpy(backend, dtype, trans_a, trans_b, m, n, k, rng):
    _check_gemm(m, n, k, trans_a, trans_b, 1.0, 0.0, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.0), (1.0, 1.0), (-2.0, 0.25), (0.0, 1.0)])
def test_gemm_alpha_beta(backend, dtype, alpha, beta, rng):
    for m, n, k in [(6, 16, 5), (9, 21, 300)]:
        _check_gemm(m, n, k, True, False, alpha, beta, dtype, rng)


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_every_kernel_family_computes_the_same_bits(gemm_isa, dtype, trans_a, trans_b, rng):
    """AVX-512 and AVX2 tiles differ in shape (8 x 32 vs 6 x 16 floats) but block K alike
    and sum each element in the same order: every product, on every path (streamed rows,
    B in place, packed tiles, threads), is bit-identical whichever family runs."""
    if not _isa_runs("avx512"):
        pytest.skip("this CPU cannot run the avx512 kernels: one family only")
    for m, n, k in SHAPES + [(256, 784, 512), (784, 512, 32)]:
        a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
        c0 = rng.normal(size=(m, n)).astype(dtype)
        out = []
        for isa in ISAS:
            gemm_isa(isa)
            c = c0.copy()
            gemm_memview(a, b, c, trans_a, trans_b, alpha=0.75, beta=0.5)
            out.append(c)
        np.testing.assert_array_equal(out[0], out[1], err_msg=str((m, n, k)))


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k,trans_a", [(64, 700, 300, False), (900, 64, 200, True),
                                           (1, 300, 784, False), (2, 512, 1000, False),
                                           (1, 40, 2000, False), (2, 600, 900, False)])
@pytest.mark.parametrize("isa", ISAS)
def test_gemm_threads_split_gives_the_serial_result(gemm_threads, gemm_isa, isa, dtype, m, n,
                                                    k, trans_a, rng):
    """Large enough to be split over threads (along N, then along M; 1-2 rows streamed
    along K, each thread a run of whole K blocks the caller adds in order): each element
    is the same dot product in the same order, so the result is bit-identical (alpha and
    beta included)."""
    gemm_isa(isa)
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    out = []
    for threads in (1, 2, 3):
        gemm_threads(threads)
        c = c0.copy()
        gemm_memview(a, b, c, trans_a=trans_a, alpha=0.75, beta=0.5)
        out.append(c)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    A = a.T if trans_a else a
    assert rel_err(out[0], 0.75 * (A.astype(np.float64) @ b) + 0.5 * c0) < RTOL[dtype] * 10


@pytest.fixture
def gemm_tail():
    """Set the guided tail of split products within a test (always on, not adaptive),
    restoring the settings afterwards."""
    saved = _blas.gemm_tail()
    yield lambda sixteenths, parts: _blas.gemm_tail(sixteenths, parts, adaptive=False)
    _blas.gemm_tail(*saved)


@pytest.mark.parametrize("units", list(range(1, 60)) + [131, 257, 1000])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("min_tail", [1, 4, 24])
@pytest.mark.parametrize("sixteenths,parts", [(0, 2), (1, 1), (4, 2), (15, 3)])
def test_guided_split_covers_the_product_once(gemm_tail, units, threads, min_tail,
                                              sixteenths, parts):
    """A product's units (NR columns or MR rows) in ``threads`` head chunks of ``head``
    units, then tail chunks of ``tail`` (the last one cut): every unit in exactly one
    chunk, no chunk empty; at most ``parts`` tail chunks a thread, each of at least
    ``min_tail`` units but the last; about ``sixteenths`` / 16 of the work in the tail
    (uniform with 0, or when the heads would be empty)."""
    gemm_tail(sixteenths, parts)
    t = min(threads, units)
    if t < 2:
        return
    n, head, tail = _blas.gemm_plan_chunks_for_tests(units, t, min_tail)
    starts = [i * head if i < t else t * head + (i - t) * tail for i in range(n)]
    ends = [min(units, s + (head if i < t else tail)) for i, s in enumerate(starts)]
    assert starts[0] == 0 and ends[-1] == units
    assert all(e > s for s, e in zip(starts, ends))
    assert starts[1:] == ends[:-1]
    in_tail = max(units * sixteenths // 16, min_tail * t)
    if sixteenths == 0 or units - in_tail < t:
        assert head == tail and n <= t
        return
    assert t < n <= t + t * parts
    assert all(e - s >= min_tail for s, e in zip(starts[t:-1], ends[t:-1]))
    assert in_tail <= units - t * head < in_tail + t


def test_adaptive_tail_follows_the_heads_times():
    """The adaptive tail turns on once the slowest head chunk has taken over 1.12x the
    fastest's time on average (a vCPU running slower), not for one outlier, and off again
    once the heads end together; in between (1.06-1.12x) it keeps its state."""
    settle = lambda ratio, n: [_blas.gemm_heads_timed_for_tests(ratio) for _ in range(n)][-1]
    assert not settle(1.0, 60)
    assert not _blas.gemm_heads_timed_for_tests(3.0)          # one outlier
    assert not settle(1.0, 60)
    assert settle(1.6, 12)
    assert _blas.gemm_tail_state()[0] and _blas.gemm_tail_state()[1] > 1.12
    assert settle(1.09, 60)                                   # hysteresis: stays on
    assert not settle(1.0, 60)
    assert not settle(1.09, 60)                               # and stays off
    with pytest.raises(ValueError, match="ratio"):
        _blas.gemm_heads_timed_for_tests(0.5)


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k,trans_a", [(64, 700, 300, False), (900, 64, 200, True),
                                           (250, 600, 100, True), (700, 90, 120, False)])
@pytest.mark.parametrize("sixteenths,parts", [(0, 2), (4, 2), (15, 3), (2, 1)])
def test_guided_split_gives_the_serial_result(gemm_threads, gemm_tail, dtype, m, n, k,
                                              trans_a, sixteenths, parts, rng):
    """Split along N or M with a guided tail of any size: each element is still computed
    by one chunk, as on one thread: the same bits (alpha and beta included)."""
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    gemm_threads(1)
    serial = c0.copy()
    gemm_memview(a, b, serial, trans_a=trans_a, alpha=0.75, beta=0.5)
    gemm_tail(sixteenths, parts)
    for threads in (2, 3):
        gemm_threads(threads)
        c = c0.copy()
        gemm_memview(a, b, c, trans_a=trans_a, alpha=0.75, beta=0.5)
        np.testing.assert_array_equal(c, serial, err_msg=str(threads))


def test_gemm_reads_strided_rows(backend, rng):
    """Row strides larger than the row (a column block of a bigger matrix, as the core's
    workspace gives) are honoured for every operand."""
    big_a, big_b = rng.normal(size=(40, 50)), rng.normal(size=(50, 60))
    big_c = np.zeros((40, 70))
    from fastmlp._blas import gemm_strided_for_tests as gemm_strided
    gemm_strided(big_a, big_b, big_c, 33, 29, 21)
    expect = big_a[:33, :21] @ big_b[:21, :29]
    assert rel_err(big_c[:33, :29], expect) < 1e-12
    assert not big_c[:, 29:].any() and not big_c[33:].any()
    gemm_strided(big_a, big_b, big_c, 37, 1, 45)     # one column of C, 70 apart
    assert rel_err(big_c[:37, :1], big_a[:37, :45] @ big_b[:45, :1]) < 1e-12
    assert not big_c[:, 29:].any() and not big_c[37:].any()


def test_thread_settings_override_default_per_thread(gemm_threads):
    """A thread's override wins over the process default, in that thread only."""
    import threading

    import fastmlp as fm

    def other(seen):
        seen.append(fm.get_num_threads())
        _blas.set_num_threads(3, this_thread_only=True)
        seen.append(fm.get_num_threads())
    gemm_threads(1)
    try:
        fm.set_num_threads(2)
        seen = []
        t = threading.Thread(target=other, args=(seen,))
        t.start()
        t.join()
        assert seen == [2, 3] and fm.get_num_threads() == 1
        with fm.limit_threads(4):
            assert fm.get_num_threads() == 4
        assert fm.get_num_threads() == 1
    finally:
        fm.set_num_threads(None)
    with pytest.raises(ValueError, match="n_threads"):
        with fm.limit_threads(0):
            pass
    with pytest.raises(TypeError, match="n"):
        fm.set_num_threads(1.5)


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [10, 77, 300])
def test_gemm_rows_do_not_depend_on_the_batch(gemm_isa, isa, dtype, trans_b, n, rng):
    """Row i of op(A) B is bit-identical whether it is computed alone (the streaming path
    of 1-2 rows: strips of columns in registers, the last columns masked), in a small
    batch (tiles reading B in place) or in a large one (packed tiles): every path
    accumulates each element in the same order, alpha and beta included. So a model
    predicts a row the same alone or in any batch."""
    gemm_isa(isa)
    m, k = 40, 600                  # k spans three KC blocks; n: strips, 4 and 1 vectors, a
    a = rng.normal(size=(m, k)).astype(dtype)                   # partial vector, panels
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    for alpha, beta in ((1.0, 0.0), (0.75, 0.5)):
        full = c0.copy()
        gemm_memview(a, b, full, trans_b=trans_b, alpha=alpha, beta=beta)
        for size in (1, 2, 3, 5, 6, 7, 8, 9, 13, 17):
            part = c0[7:7 + size].copy()
            gemm_memview(np.ascontiguousarray(a[7:7 + size]), b, part, trans_b=trans_b,
                         alpha=alpha, beta=beta)
            np.testing.assert_array_equal(part, full[7:7 + size],
                                          err_msg=f"{size} rows, alpha {alpha}")


@pytest.fixture
def gemm_streaming():
    """Set whether products may stream their rows (gemm.h's FM_STREAM_K); restored after."""
    was = _blas.gemm_streaming(True)
    yield _blas.gemm_streaming
    _blas.gemm_streaming(was)


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", [
    (16, 16, 2), (100, 16, 16), (100, 4, 16), (64, 1024, 1),    # a tiny model; one output's dX
    (37, 10, 33), (300, 3, 170), (70, 40, 20),                  # B <= 4 KB (f64 70x40x20: tiled)
    (400, 700, 10), (2000, 64, 16)])                            # K <= 16, over MC rows, 2 threads
def test_streamed_products_equal_the_tiled_ones(gemm_threads, gemm_isa, gemm_streaming, isa,
                                                dtype, trans_a, trans_b, m, n, k, rng):
    """Products with a B of at most 4 KB, or of at most 16 steps of K and more than two
    rows, stream their rows four, two and one at a time against B in place (a transposed
    B copied plain first, on the stack or in the packing buffer; one row of it read in
    place) instead of packing and tiling, split by rows over the threads. Each element is
    summed in the same order, so they equal the tiled product bit for bit, alpha and beta
    included, on 1 or 2 threads; and a block of their rows equals those rows of the
    whole product."""
    gemm_isa(isa)
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    for threads in (1, 2):
        gemm_threads(threads)
        for alpha, beta in ((1.0, 0.0), (0.75, 0.5)):
            gemm_streaming(False)
            tiled = c0.copy()
            gemm_memview(a, b, tiled, trans_a, trans_b, alpha=alpha, beta=beta)
            gemm_streaming(True)
            streamed = c0.copy()
            gemm_memview(a, b, streamed, trans_a, trans_b, alpha=alpha, beta=beta)
            np.testing.assert_array_equal(streamed, tiled, err_msg=f"alpha {alpha}")
            for size in (1, 2, 3, 5, 7, 8, 15, 17):
                sub = np.ascontiguousarray(a[:, 7:7 + size] if trans_a else a[7:7 + size])
                part = c0[7:7 + size].copy()
                gemm_memview(sub, b, part, trans_a, trans_b, alpha=alpha, beta=beta)
                np.testing.assert_array_equal(part, tiled[7:7 + size],
                                              err_msg=f"{size} rows, alpha {alpha}")


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True),
                                             (True, True)])
@pytest.mark.parametrize("isa", ISAS)
def test_one_column_product_is_that_column_of_a_wider_one(gemm_threads, gemm_isa, isa, dtype,
                                                         trans_a, trans_b, rng):
    """A product with one column (an output unit's forward, its dW) has loops of its own,
    laid out along M; each element is still summed per K block in the same order, so it
    is bit-identical to that column of a product with more columns (tiles), on any number
    of threads, with alpha and beta (beta = 0 never reads C)."""
    gemm_isa(isa)
    for m, k in [(1, 5), (7, 3), (17, 9), (64, 1024), (70, 600), (1030, 64), (4000, 300)]:
        a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.normal(size=(3, k) if trans_b else (k, 3)).astype(dtype)
        b1 = np.ascontiguousarray(b[:1] if trans_b else b[:, :1])
        c0 = rng.normal(size=(m, 3)).astype(dtype)
        _assert_same_bits_as_wider(gemm_threads, a, b, b1, c0, trans_a, trans_b, (m, k))


def _assert_same_bits_as_wider(gemm_threads, a, b, b_narrow, c0, trans_a, trans_b, label):
    """The product with ``b_narrow`` (the first columns of op(b)) equals those columns of
    the product with ``b`` (computed on one thread) bit for bit, on 1-3 threads, with
    alpha and beta (beta = 0 never reads C: that C starts as NaN)."""
    m, n = c0.shape[0], b_narrow.shape[0] if trans_b else b_narrow.shape[1]
    for alpha, beta in ((0.75, 0.5), (1.0, 0.0)):
        gemm_threads(1)
        wide = c0.copy()
        gemm_memview(a, b, wide, trans_a, trans_b, alpha=alpha, beta=beta)
        for threads in (1, 2, 3):
            gemm_threads(threads)
            narrow = c0[:, :n].copy() if beta else np.full((m, n), np.nan, c0.dtype)
            gemm_memview(a, b_narrow, narrow, trans_a, trans_b, alpha=alpha, beta=beta)
            np.testing.assert_array_equal(narrow, wide[:, :n],
                                          err_msg=str((label, alpha, beta, threads)))


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [10, 16])
def test_narrow_product_reads_a_transposed_a_in_place_with_the_same_bits(
        gemm_threads, gemm_isa, isa, dtype, n, rng):
    """dW = Xᵀ dZ of a layer with at most NR outputs (16 float32 columns with AVX2, 32 with
    AVX-512): one strip of tiles, so a transposed A of more than MC rows is read in place
    instead of packed (each value is read once either way). Bit-identical to those columns
    of a product wide enough to pack A (40 columns), on 1-3 threads (chunks of either
    kind), with alpha and beta."""
    gemm_isa(isa)
    for m, k in [(145, 130), (300, 300), (1030, 700)]:
        a = rng.normal(size=(k, m)).astype(dtype)
        b = rng.normal(size=(k, 40)).astype(dtype)
        c0 = rng.normal(size=(m, 40)).astype(dtype)
        bn = np.ascontiguousarray(b[:, :n])
        _assert_same_bits_as_wider(gemm_threads, a, b, bn, c0, True, False, (m, k))


# --- the core's thread team (include/fastmlp/pool.h) ----------------------------------------
@pytest.mark.parametrize("n,threads", [(1, 2), (2, 2), (7, 2), (64, 2), (1000, 3), (5, 1)])
def test_pool_runs_every_chunk_exactly_once(n, threads):
    for _ in range(20):
        runs, slots = _blas.pool_run_for_tests(n, threads)
        np.testing.assert_array_equal(runs, 1)
        assert ((slots >= 0) & (slots < threads)).all()


def test_pool_serves_concurrent_callers():
    """Callers in several threads at once: one owns the team, the others run their chunks
    alone; every chunk of every caller runs exactly once, and no caller waits forever."""
    import threading
    errors = []

    def caller():
        try:
            for _ in range(200):
                runs, _ = _blas.pool_run_for_tests(37, 2)
                assert (runs == 1).all()
        except AssertionError as e:
            errors.append(e)
    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors


# --- the measured FMA peak (include/fastmlp/peak.h) ----------------------------------------

@native
@pytest.mark.parametrize("isa", ISAS)
def test_fma_peak_runs_each_family_on_every_thread(isa, gemm_isa):
    """The chains of each family this CPU runs, on 1-3 threads of the team (3: more chunks
    than cores), give a positive, finite rate: the per-chunk clocks moved and every chunk
    ran."""
    gemm_isa(isa)
    lanes = {"avx2": 8, "avx512": 16}[isa]
    for threads in (1, 2, 3):
        flops, _ = _blas.fma_chains(threads, 5000)
        assert flops == 2 * threads * 5000 * 12 * lanes     # 12 chains, float32 lanes
        assert _blas.fma_flops(threads, 5000) == flops
        peak = _blas.fma_peak(threads, seconds=0.005, repeat=1)
        assert isinstance(peak, float) and np.isfinite(peak) and peak > 0
    assert _blas.fma_iters(0.005) >= 1000


def test_fma_peak_is_zero_without_kernels():
    """With the BLAS fallback ("none": no kernel of ours runs) there is nothing to measure,
    whatever the arguments (the calibration has no time to scale by)."""
    try:
        _blas.set_gemm_isa("none")
        assert _blas.fma_peak(2) == 0.0
        assert _blas.fma_chains(2, 1000) == (0.0, 0.0) and _blas.fma_flops(2, 1000) == 0.0
        assert _blas.fma_iters(10.0) == 1000
    finally:
        _blas.set_gemm_isa(None)


@pytest.mark.parametrize("kw,match", [
    (dict(threads=0), "threads must be >= 1, got 0"),
    (dict(threads=1, seconds=0.0), r"seconds must be in \[0.001, 10\], got 0.0"),
    (dict(threads=1, seconds=60.0), "seconds must be in"),
    (dict(threads=1, repeat=0), "repeat must be >= 1, got 0"),
])
def test_fma_peak_checks_its_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        _blas.fma_peak(**kw)


def test_fma_chains_and_iters_check_their_arguments():
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        _blas.fma_chains(0, 1000)
    with pytest.raises(ValueError, match=r"iters must be in \[1, 1e12\], got 0"):
        _blas.fma_chains(1, 0)
    with pytest.raises(ValueError, match="seconds must be in"):
        _blas.fma_iters(0.0)
