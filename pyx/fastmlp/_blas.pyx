"""Row-major GEMM on top of ``scipy.linalg.cython_blas`` (the BLAS scipy links).

BLAS is column-major; a row-major ``C = op(A) op(B)`` is the column-major
``Cᵀ = op(B)ᵀ op(A)ᵀ``, i.e. the same call with A and B (and m and n) swapped.
Dimensions are LP64 ``int``: callers check they are < 2**31 at the Python boundary.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil:
    """C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major.

    Contract: lda/ldb/ldc are row strides in elements; m, n, k > 0.
    """
    cdef char ta = b"T" if trans_a else b"N"
    cdef char tb = b"T" if trans_b else b"N"
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda,
              &beta, c, &ldc)


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
                c[i, j] = <floating> (beta * c[i, j])
        return
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating> alpha, &a[0, 0], a.shape[1],
             &b[0, 0], b.shape[1], <floating> beta, &c[0, 0], c.shape[1])
