# Row-major GEMM over raw pointers, for float32 and float64: fastmlp's own AVX2 kernels
# (include/fastmlp/gemm.h) where the CPU has them, scipy's BLAS otherwise; no GIL.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil

# The same, then epi(epi_ctx, r0, rows, c0, cols) over blocks of C covering it once (per
# finished chunk, on the thread that computed it): a fused elementwise epilogue.
ctypedef void (*gemm_epi_fn)(void* ctx, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                             Py_ssize_t cols) noexcept nogil
cdef void gemm_epi(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                   const floating* a, int lda, const floating* b, int ldb,
                   floating beta, floating* c, int ldc, gemm_epi_fn epi,
                   void* epi_ctx) noexcept nogil

# The same, where the own kernels tile the product and tile_epi is not NULL: the tiles add
# the bias and write max(C, 0) as they store C's last K block, instead of epi (which must do
# the same work; it still runs on the other paths); with a_bad, they check A's blocks for
# NaN and inf as they first read them. See gemm.h's fm_gemm_tile_epi.
cdef extern from "fastmlp/gemm.h":
    ctypedef struct fm_gemm_tile_epi:
        const void* bias
        void* a
        int relu
        int* a_bad        # or NULL: A's blocks checked for NaN and inf as the tiles read them
        int* a_checked    # set when that check covered all of A (the tiled path ran)
cdef void gemm_epi_tile(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                        const floating* a, int lda, const floating* b, int ldb,
                        floating beta, floating* c, int ldc, gemm_epi_fn epi, void* epi_ctx,
                        const fm_gemm_tile_epi* tile_epi) noexcept nogil

# Threads a core kernel may use when called from the current thread (set_num_threads).
cdef int num_threads() noexcept nogil
# The calling thread's override of that count (0: none), read and set without the GIL.
cdef int thread_override_get() noexcept nogil
cdef void thread_override_set(int n) noexcept nogil

# The core's thread team (include/fastmlp/pool.h): run fn(ctx, i, slot) for every chunk i in
# [0, n) on up to `threads` threads, chunks claimed dynamically; one team per process.
ctypedef void (*task_fn)(void* ctx, Py_ssize_t chunk, int slot) noexcept nogil
cdef void pool_run(int threads, Py_ssize_t n, task_fn fn, void* ctx) noexcept nogil
# Seconds this thread waited at the end of its jobs for chunks other threads held, since
# the last call (the thread governor's sign of a parked worker).
cdef double pool_take_wait() noexcept nogil
