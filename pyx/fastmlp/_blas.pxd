# Row-major GEMM over raw pointers, for float32 and float64: fastmlp's own AVX2 kernels
# (include/fastmlp/gemm.h) where the CPU has them, scipy's BLAS otherwise; no GIL.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil

# Threads a core kernel may use when called from the current thread (set_num_threads).
cdef int num_threads() noexcept nogil
# The calling thread's override of that count (0: none), read and set without the GIL.
cdef int thread_override_get() noexcept nogil
cdef void thread_override_set(int n) noexcept nogil
