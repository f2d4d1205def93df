# Merge kernels of the graph executor (_graph.pyx): `cdef inline`, compiled in place.
# Blocks are row-major (B, width), C-contiguous. ``accum``: add into ``out`` instead of
# writing it (a tensor that fans out receives the sum of its consumers' gradients; the first
# contribution backward meets writes, the later ones add). Every loop runs in the order of
# the NumPy twin in fastmlp/layers/merge.py, so float64 results agree with it bit for bit.
from cython cimport floating
from libc.string cimport memcpy


cdef inline void put(const floating* src, floating* out, Py_ssize_t n,
                     bint accum) noexcept nogil:
    """out = src, or out += src."""
    cdef Py_ssize_t i
    if accum:
        for i in range(n):
            out[i] += src[i]
    else:
        memcpy(out, src, n * sizeof(floating))


cdef inline void put_neg(const floating* src, floating* out, Py_ssize_t n,
                         bint accum) noexcept nogil:
    """out = −src, or out += −src (Subtract's second input)."""
    cdef Py_ssize_t i
    if accum:
        for i in range(n):
            out[i] += -src[i]
    else:
        for i in range(n):
            out[i] = -src[i]


cdef inline void add2(const floating* a, const floating* b, floating* out,
                      Py_ssize_t n) noexcept nogil:
    """out = a + b (out may alias neither)."""
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] + b[i]


cdef inline void sub2(const floating* a, const floating* b, floating* out,
                      Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] - b[i]


cdef inline void mul2(const floating* a, const floating* b, floating* out,
                      Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] * b[i]


cdef inline void add_into(const floating* a, floating* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] += a[i]


cdef inline void mul_into(const floating* a, floating* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] *= a[i]


cdef inline void mul_others(floating** xs, Py_ssize_t k, Py_ssize_t skip,
                            const floating* dY, floating* out, Py_ssize_t n,
                            bint accum) noexcept nogil:
    """out (+)= (Π_{j≠skip} xs[j], multiplied left to right) ⊙ dY, for k >= 2 factors."""
    cdef Py_ssize_t i, j, first = 1 if skip == 0 else 0
    cdef floating p
    for i in range(n):
        p = xs[first][i]
        for j in range(first + 1, k):
            if j != skip:
                p = p * xs[j][i]
        if accum:
            out[i] += p * dY[i]
        else:
            out[i] = p * dY[i]


cdef inline void concat_block(const floating* x, floating* out, Py_ssize_t B, Py_ssize_t w,
                              Py_ssize_t width, Py_ssize_t col) noexcept nogil:
    """out[:, col:col + w] = x, out having ``width`` columns."""
    cdef Py_ssize_t r
    for r in range(B):
        memcpy(out + r * width + col, x + r * w, w * sizeof(floating))


cdef inline void split_block(const floating* dY, floating* dx, Py_ssize_t B, Py_ssize_t w,
                             Py_ssize_t width, Py_ssize_t col, bint accum) noexcept nogil:
    """dx (+)= dY[:, col:col + w], dY having ``width`` columns."""
    cdef Py_ssize_t r
    for r in range(B):
        put(dY + r * width + col, dx + r * w, w, accum)
