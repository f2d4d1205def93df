"""Row-major GEMM: fastmlp's own kernels (``include/fastmlp/gemm.h``), or scipy's BLAS.

The own kernels (AVX-512 or AVX2 + FMA, the best the CPU runs, chosen at import; BLIS-style
packing, OpenMP over the larger dimension) run when the CPU has at least AVX2 and FMA;
otherwise, on other architectures, and if their packing
buffer cannot be allocated, the call goes to ``scipy.linalg.cython_blas``. BLAS is
column-major; a row-major ``C = op(A) op(B)`` is the column-major ``Cᵀ = op(B)ᵀ op(A)ᵀ``,
i.e. the same call with A and B (and m and n) swapped. Dimensions are LP64 ``int``:
callers check they are < 2**31 at the Python boundary.

Threads: a GEMM called from a thread uses up to ``get_num_threads()`` OpenMP threads (the
thread's override, else the process default, else OpenMP's: ``OMP_NUM_THREADS`` or the
available cores), and only for products large enough to pay for them. The result does not
depend on the number of threads: each element is the same dot product in the same order.
A process forked after the parent may have used threads runs single-threaded (GNU OpenMP
hangs in a forked child's first parallel region).
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "fastmlp/gemm.h" nogil:
    ctypedef void (*fm_task_fn)(void* ctx, Py_ssize_t chunk, int slot) noexcept nogil
    void fm_pool_run(int threads, Py_ssize_t n, fm_task_fn fn, void* ctx)
    double fm_pool_take_wait()
    int fm_pool_workers()
    void fm_gemm_set_chunks(int along_n, int along_m)
    void fm_gemm_set_tail(int sixteenths, int parts, int cols, int rows, int adaptive)
    int fm_gemm_heads_timed(double ratio)
    int fm_gemm_tail_16ths
    int fm_gemm_tail_parts
    int fm_gemm_tail_adaptive
    int fm_gemm_tail_on
    int fm_gemm_heads_ratio
    int fm_gemm_tail_cols
    int fm_gemm_tail_rows
    Py_ssize_t fm_gemm_plan_chunks(Py_ssize_t units, int t, Py_ssize_t per_thread,
                                   Py_ssize_t min_tail, Py_ssize_t* head, Py_ssize_t* tail)
    int fm_gemm_chunks_n
    int fm_gemm_chunks_m
    int fm_gemm_set_streaming(int on)
    int fm_gemm_native()
    int fm_gemm_cpu_isa()
    int fm_gemm_set_isa(int isa)
    int fm_gemm_get_isa()
    void fm_gemm_tile(int f64, int plain, int* mr, int* nr)
    void fm_threads_init()
    void fm_set_threads(int n, int this_thread_only)
    int fm_get_threads()
    int fm_threads_override
    ctypedef void (*fm_gemm_epi_fn)(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                                    Py_ssize_t cols) noexcept nogil
    int fm_gemm_f32(int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
                    const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb,
                    float beta, float* c, Py_ssize_t ldc, int threads, fm_gemm_epi_fn epi,
                    void* epi_ctx, const fm_gemm_tile_epi* tile_epi)
    int fm_gemm_f64(int ta, int tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
                    const double* a, Py_ssize_t lda, const double* b, Py_ssize_t ldb,
                    double beta, double* c, Py_ssize_t ldc, int threads, fm_gemm_epi_fn epi,
                    void* epi_ctx, const fm_gemm_tile_epi* tile_epi)

fm_threads_init()
cdef bint _NATIVE_OK = fm_gemm_native()
fm_gemm_set_isa(-1)

#: GEMM kernel families by code (gemm.h's FM_ISA_*).
GEMM_ISAS = ("none", "avx2", "avx512")
cdef bint _use_native = _NATIVE_OK


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil:
    """C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major.

    Contract: lda/ldb/ldc are row strides in elements; m, n, k > 0.
    """
    gemm_epi(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, NULL)


cdef void gemm_epi(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                   const floating* a, int lda, const floating* b, int ldb,
                   floating beta, floating* c, int ldc, gemm_epi_fn epi,
                   void* epi_ctx) noexcept nogil:
    """:func:`gemm`, then ``epi(epi_ctx, r0, rows, c0, cols)`` (when not NULL) over blocks of
    C that together cover it once: per finished chunk on the thread that computed it (own
    kernels), or once over all of C after a BLAS call."""
    gemm_epi_tile(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epi,
                  epi_ctx, NULL)


cdef void gemm_epi_tile(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                        const floating* a, int lda, const floating* b, int ldb,
                        floating beta, floating* c, int ldc, gemm_epi_fn epi, void* epi_ctx,
                        const fm_gemm_tile_epi* tile_epi) noexcept nogil:
    """:func:`gemm_epi`; where the own kernels tile the product and tile_epi is not NULL,
    their tiles do tile_epi's work as they store the last K block instead of epi (which
    must do the same work: it still runs on the other paths)."""
    if _use_native:
        if floating is float:
            if fm_gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                           fm_get_threads(), <fm_gemm_epi_fn> epi, epi_ctx, tile_epi) == 0:
                return
        else:
            if fm_gemm_f64(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                           fm_get_threads(), <fm_gemm_epi_fn> epi, epi_ctx, tile_epi) == 0:
                return
    cdef char ta = b"T" if trans_a else b"N"
    cdef char tb = b"T" if trans_b else b"N"
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)
    if epi != NULL:
        epi(epi_ctx, 0, m, 0, n)


cdef void pool_run(int threads, Py_ssize_t n, task_fn fn, void* ctx) noexcept nogil:
    fm_pool_run(threads, n, <fm_task_fn> fn, ctx)


cdef double pool_take_wait() noexcept nogil:
    return fm_pool_take_wait()


cdef int num_threads() noexcept nogil:
    return fm_get_threads()


cdef int thread_override_get() noexcept nogil:
    return fm_threads_override


cdef void thread_override_set(int n) noexcept nogil:
    fm_set_threads(n, 1)


def native_available():
    """True when this CPU runs fastmlp's own GEMM kernels (x86-64 with AVX2 and FMA)."""
    return bool(_NATIVE_OK)


def gemm_isa():
    """The kernel family the core's GEMM uses: "avx512", "avx2" or "none" (scipy's BLAS)."""
    return GEMM_ISAS[fm_gemm_get_isa()]


def best_gemm_isa():
    """The best kernel family this CPU runs (what ``set_gemm_isa(None)`` restores, unless
    the environment variable ``FASTMLP_GEMM_ISA`` names another)."""
    return GEMM_ISAS[fm_gemm_cpu_isa()]


def set_gemm_isa(isa):
    """Use the kernel family ``isa`` ("avx512", "avx2", "none"; None: the default chosen at
    import) and return the one now in use: a family this CPU cannot run gives the best one
    it can. Process-wide; meant for tests and benchmarks (every family computes the same
    bits)."""
    if isa is None:
        return GEMM_ISAS[fm_gemm_set_isa(-1)]
    if isa not in GEMM_ISAS:
        raise ValueError(f"isa must be one of {GEMM_ISAS} or None, got {isa!r}")
    return GEMM_ISAS[fm_gemm_set_isa(GEMM_ISAS.index(isa))]


ctypedef struct _ChunkLog:
    long long* runs      # runs[i]: times chunk i ran
    int* slots           # slots[i]: the slot that ran it
    double* spin         # busy work per chunk, so that several threads take part


cdef void _log_chunk(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    cdef _ChunkLog* log = <_ChunkLog*> ctx
    cdef int r
    for r in range(2000):
        log.spin[i] += 1e-9 * r
    log.runs[i] += 1
    log.slots[i] = slot


def pool_run_for_tests(Py_ssize_t n, int threads):
    """Run ``n`` chunks on the core's team with up to ``threads`` threads; returns, per
    chunk, how many times it ran and the slot that ran it (tests: each exactly once, slots
    in [0, threads))."""
    import numpy as np
    runs = np.zeros(max(n, 1), np.int64)
    slots = np.full(max(n, 1), -1, np.int32)
    spin = np.zeros(max(n, 1), np.float64)
    cdef long long[::1] r = runs
    cdef int[::1] sl = slots
    cdef double[::1] sp = spin
    cdef _ChunkLog log
    log.runs, log.slots, log.spin = &r[0], &sl[0], &sp[0]
    with nogil:
        fm_pool_run(threads, n, _log_chunk, &log)
    return runs[:n], slots[:n]


def gemm_chunks(along_n=None, along_m=None):
    """Chunks per thread of split tiled products, along N and along M (see gemm.h); with
    arguments, set them first (for experiments and benchmarks: results do not change)."""
    fm_gemm_set_chunks(along_n or 0, along_m or 0)
    return fm_gemm_chunks_n, fm_gemm_chunks_m


def gemm_tail(sixteenths=None, parts=None, cols=None, rows=None, adaptive=None):
    """The guided tail of split tiled products (see gemm.h): the sixteenths of the work
    in small chunks after each thread's head chunk, how many a thread at most, the
    smallest tail chunk along N (columns) and along M (rows), and whether it is adaptive
    (used only while the threads' heads take unequal times) or always on. With arguments,
    set them first (0 sixteenths: a uniform split); returns the five. Results do not
    change."""
    fm_gemm_set_tail(-1 if sixteenths is None else sixteenths, parts or 0, cols or 0,
                     rows or 0, -1 if adaptive is None else bool(adaptive))
    return (fm_gemm_tail_16ths, fm_gemm_tail_parts, fm_gemm_tail_cols, fm_gemm_tail_rows,
            bool(fm_gemm_tail_adaptive))


def gemm_tail_state():
    """``(on, ratio)``: whether the adaptive tail is on now, and the average ratio of the
    slowest to the fastest head chunk's time over the last timed products."""
    return bool(fm_gemm_tail_on), fm_gemm_heads_ratio / 1024.0


def gemm_heads_timed_for_tests(double ratio):
    """Fold one product's slowest / fastest head time into the adaptive tail's average,
    as a timed product does; returns whether the tail is on."""
    if not ratio >= 1.0:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    return bool(fm_gemm_heads_timed(ratio))


def gemm_plan_chunks_for_tests(Py_ssize_t units, int threads, Py_ssize_t min_tail=1,
                               Py_ssize_t per_thread=1):
    """``(chunks, head, tail)``: how a product of ``units`` units (NR columns or MR rows)
    splits over ``threads`` > 1 threads, tail chunks of at least ``min_tail`` units, under
    the current gemm_chunks / gemm_tail."""
    cdef Py_ssize_t head = 0, tail = 0
    if units < 1 or threads < 2 or per_thread < 1 or min_tail < 1:
        raise ValueError(f"need units >= 1, threads >= 2, min_tail >= 1, per_thread >= 1, "
                         f"got {units}, {threads}, {min_tail}, {per_thread}")
    n = fm_gemm_plan_chunks(units, threads, per_thread, min_tail, &head, &tail)
    return n, head, tail


def gemm_streaming(enabled):
    """Whether products with a small B or a short K stream their rows instead of tiling
    (gemm.h's FM_STREAM_K); returns the previous setting. For tests and experiments: both
    paths give the same bits."""
    return bool(fm_gemm_set_streaming(bool(enabled)))


def pool_workers():
    """Worker threads the core's team has started (0 until a kernel first splits)."""
    return fm_pool_workers()


def gemm_tile(dtype_is_f64=False, plain_a=False):
    """(rows, columns) of the register tile of the family in use ((0, 0): none); with
    ``plain_a``, of its tiles over an A read in place along its rows (a forward's batch,
    a prediction's rows)."""
    cdef int mr, nr
    fm_gemm_tile(dtype_is_f64, plain_a, &mr, &nr)
    return mr, nr


def use_native(flag=None):
    """Return whether GEMMs use fastmlp's own kernels; with ``flag``, set it first (False:
    always scipy's BLAS, for comparisons; True is ignored where the kernels cannot run).
    Process-wide; meant for tests and benchmarks."""
    global _use_native
    if flag is not None:
        _use_native = bool(flag) and _NATIVE_OK
    return bool(_use_native)


def set_num_threads(int n, bint this_thread_only=False):
    """Threads the core's kernels (GEMM, optimizer updates) may use; ``n <= 0`` unsets.
    By default this sets the process-wide default; with ``this_thread_only`` it sets an
    override for the calling thread (other threads keep theirs)."""
    fm_set_threads(n, this_thread_only)


def get_num_threads():
    """Threads the core may use when called from the current thread."""
    return fm_get_threads()


def thread_override():
    """The calling thread's override (0: none), to restore it later."""
    return fm_threads_override

def gemm_memview(floating[:, ::1] a, floating[:, ::1] b, floating[:, ::1] c,
                 bint trans_a=False, bint trans_b=False,
                 double alpha=1.0, double beta=0.0):
    """Test wrapper: ``c = alpha * op(a) @ op(b) + beta * c`` in place (C-contiguous arrays)."""
    cdef int m = a.shape[1] if trans_a else a.shape[0]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int kb = b.shape[1] if trans_b else b.shape[0]
    cdef int n = b.shape[0] if trans_b else b.shape[1]
    if k != kb or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"gemm shapes do not agree: op(a) is ({m}, {k}), op(b) is ({kb}, {n}), "
                         f"c is ({c.shape[0]}, {c.shape[1]})")
    if m == 0 or n == 0:
        return
    if k == 0:
        # BLAS with k == 0 only scales C; do it here to keep the kernel's contract simple.
        for i in range(m):
            for j in range(n):
                c[i, j] = <floating> (beta * c[i, j]) if beta != 0 else 0
        return
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating> alpha, &a[0, 0], a.shape[1],
             &b[0, 0], b.shape[1], <floating> beta, &c[0, 0], c.shape[1])


def gemm_strided_for_tests(double[:, ::1] a, double[:, ::1] b, double[:, ::1] c,
                           int m, int n, int k):
    """Test wrapper: ``c[:m, :n] = a[:m, :k] @ b[:k, :n]`` with the full arrays' row
    strides (the operands are blocks of larger matrices)."""
    if not (0 < m <= min(a.shape[0], c.shape[0]) and 0 < k <= min(a.shape[1], b.shape[0])
            and 0 < n <= min(b.shape[1], c.shape[1])):
        raise ValueError("block sizes do not fit the arrays")
    with nogil:
        gemm(False, False, m, n, k, 1.0, &a[0, 0], a.shape[1], &b[0, 0], b.shape[1], 0.0,
             &c[0, 0], c.shape[1])


cdef extern from "fastmlp/peak.h" nogil:
    int FM_PEAK_CHAINS
    ctypedef struct fm_peak_job:
        long long iters
        int isa
        double* sink
        double* start
        double* end
    int fm_peak_lanes(int isa)
    void fm_peak_chunk(void* arg, Py_ssize_t i, int slot) noexcept


def fma_flops(int threads, long long iters):
    """The float32 FLOPs of ``fma_chains(threads, iters)``: 2 x threads x iters x chains x
    the lanes of the kernels in use; 0.0 where no kernel runs (not x86-64 with AVX2)."""
    return 2.0 * threads * iters * FM_PEAK_CHAINS * fm_peak_lanes(fm_gemm_get_isa())


def fma_chains(int threads, long long iters):
    """Run the FMA chains of ``fma_peak`` (peak.h), ``iters`` iterations on each of
    ``threads`` threads of the core's team; returns ``(flops, seconds)``: the float32
    FLOPs done (``fma_flops``) and the time from the first chunk's start to the last
    one's end. ``(0.0, 0.0)`` where no kernel runs."""
    import numpy as np
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not 1 <= iters <= 10**12:
        raise ValueError(f"iters must be in [1, 1e12], got {iters}")
    flops = fma_flops(threads, iters)
    if not flops:
        return 0.0, 0.0
    sink, start, end = (np.zeros(threads) for _ in range(3))
    cdef double[::1] sk = sink, st = start, en = end
    cdef fm_peak_job job
    job.isa, job.sink, job.start, job.end = fm_gemm_get_isa(), &sk[0], &st[0], &en[0]
    job.iters = iters
    with nogil:
        fm_pool_run(threads, threads, fm_peak_chunk, &job)
    return flops, float(end.max() - start.min())


def fma_iters(double seconds):
    """Iterations of the FMA chains that take about ``seconds`` on one thread now (1000
    where no kernel runs: nothing to time)."""
    if not 0.001 <= seconds <= 10.0:
        raise ValueError(f"seconds must be in [0.001, 10], got {seconds}")
    flops, took = fma_chains(1, 20000)        # about 0.1-0.5 ms
    return max(1000, int(20000 * seconds / took)) if flops and took > 0 else 1000


def fma_peak(int threads, double seconds=0.25, int repeat=3):
    """The machine's float32 peak in GFLOP/s on ``threads`` threads of the core's team,
    measured (peak.h): every thread runs independent chains of FMAs on registers with the
    vectors of the GEMM kernels in use (float64: half). The best of ``repeat`` runs of
    about ``seconds`` each; 0.0 where no kernel runs (not x86-64 with AVX2). The clock of
    a shared or boosting CPU moves (one guest read 72 to 90 within a minute): compare
    rates measured side by side, as ``python -m fastmlp bench`` does."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    iters = fma_iters(seconds)
    if not fma_flops(threads, iters):
        return 0.0
    best = 0.0
    for _ in range(repeat):
        flops, took = fma_chains(threads, iters)
        best = max(best, flops / max(took, 1e-9) / 1e9)
    return best


cdef extern from *:
    """
    static inline void fm_count_visit(long long* p) { __atomic_add_fetch(p, 1, __ATOMIC_RELAXED); }
    """
    void fm_count_visit(long long* p) nogil


ctypedef struct _EpiLog:
    const double* c      # the product's C (row stride ldc)
    Py_ssize_t ldc
    long long* visits    # visits[i * ldc + j]: epilogue calls that covered C[i, j]
    double* seen         # seen[i * ldc + j]: the value C[i, j] held then


cdef void _log_epilogue(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                        Py_ssize_t cols) noexcept nogil:
    cdef _EpiLog* log = <_EpiLog*> ctx
    cdef Py_ssize_t i, j, at
    for i in range(r0, r0 + rows):
        for j in range(c0, c0 + cols):
            at = i * log.ldc + j
            fm_count_visit(&log.visits[at])
            log.seen[at] = log.c[at]


def gemm_epilogue_for_tests(double[:, ::1] a, double[:, ::1] b, double[:, ::1] c,
                            bint trans_a=False, bint trans_b=False, double beta=0.0):
    """Test wrapper: ``c = op(a) @ op(b) + beta * c`` in place with a logging epilogue;
    returns (visits, seen): how many epilogue calls covered each element of c (one each,
    by gemm_epi's contract) and the value each held when its block was handed over (its
    final value)."""
    import numpy as np
    cdef int m = a.shape[1] if trans_a else a.shape[0]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int n = b.shape[0] if trans_b else b.shape[1]
    if (b.shape[1] if trans_b else b.shape[0]) != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("gemm shapes do not agree")
    visits = np.zeros((m, n), np.int64)
    seen = np.full((m, n), np.nan)
    cdef long long[:, ::1] v = visits
    cdef double[:, ::1] s = seen
    cdef _EpiLog log
    log.c, log.ldc, log.visits, log.seen = &c[0, 0], n, &v[0, 0], &s[0, 0]
    with nogil:
        gemm_epi(trans_a, trans_b, m, n, k, 1.0, &a[0, 0], a.shape[1], &b[0, 0], b.shape[1],
                 beta, &c[0, 0], n, _log_epilogue, &log)
    return visits, seen
