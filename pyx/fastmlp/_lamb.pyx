"""LAMB's kernel (see ``_lamb.pxd``) and its thin wrapper; NumPy twin in
``fastmlp.reference.lamb``."""
import numpy as np

from cython cimport floating
from libc.math cimport pow, sqrt


cdef void lamb_prepare(LambHyper* h, Py_ssize_t t) noexcept nogil:
    h.bc1 = 1.0 - pow(h.beta1, <double> t)
    h.bc2 = 1.0 - pow(h.beta2, <double> t)


cdef inline double _direction(double m, double v, double p, const LambHyper* h) noexcept nogil:
    """u = (m / bc1) / (sqrt(v / bc2) + eps) + wd p."""
    return (m / h.bc1) / (sqrt(v / h.bc2) + h.eps) + h.weight_decay * p


cdef void _tensor(floating* p, const floating* g, floating* m, floating* v, Py_ssize_t n,
                  const LambHyper* h) noexcept nogil:
    cdef double pn = 0.0, un = 0.0, mi, vi, u, r
    cdef Py_ssize_t i
    for i in range(n):                       # moments, and both norms
        mi = h.beta1 * m[i] + (1.0 - h.beta1) * g[i]
        vi = h.beta2 * v[i] + (1.0 - h.beta2) * (<double> g[i] * g[i])
        m[i] = <floating> mi
        v[i] = <floating> vi
        u = _direction(m[i], v[i], p[i], h)
        pn += <double> p[i] * p[i]
        un += u * u
    r = 1.0 if pn == 0.0 or un == 0.0 else sqrt(pn) / sqrt(un)
    for i in range(n):                       # the update, u recomputed from the stored m, v
        p[i] = <floating> (p[i] - h.lr * r * _direction(m[i], v[i], p[i], h))


cdef void lamb_step(floating* params, const floating* grads, floating* exp_avg,
                    floating* exp_avg_sq, const Py_ssize_t* ranges, Py_ssize_t n_ranges,
                    const LambHyper* h) noexcept nogil:
    cdef Py_ssize_t k, off
    for k in range(n_ranges):
        off = ranges[2 * k]
        _tensor(params + off, grads + off, exp_avg + off, exp_avg_sq + off, ranges[2 * k + 1], h)


def check_ranges(ranges, Py_ssize_t n):
    """``ranges`` as a C-contiguous intp array of (offset, size) pairs, disjoint and inside
    [0, n); ValueError otherwise."""
    r = np.ascontiguousarray(ranges, dtype=np.intp).reshape(-1)
    if r.shape[0] % 2:
        raise ValueError("ranges must hold (offset, size) pairs")
    pairs = sorted(zip(r[0::2].tolist(), r[1::2].tolist()))
    end = 0
    for off, size in pairs:
        if off < end or size < 0 or off + size > n:
            raise ValueError(f"ranges: tensor [{off}, {off + size}) overlaps another or "
                             f"leaves the arena of {n}")
        end = off + size
    return r


def lamb_step_memview(floating[::1] params, const floating[::1] grads,
                      floating[::1] exp_avg, floating[::1] exp_avg_sq, ranges,
                      Py_ssize_t t, double lr, double beta1, double beta2, double eps,
                      double weight_decay):
    """One LAMB step of step number ``t`` (>= 1), in place (see ``_lamb.pxd``)."""
    cdef Py_ssize_t n = params.shape[0]
    if grads.shape[0] != n or exp_avg.shape[0] != n or exp_avg_sq.shape[0] != n:
        raise ValueError("params, grads, exp_avg and exp_avg_sq must have one length")
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    cdef const Py_ssize_t[::1] r = check_ranges(ranges, n)
    cdef LambHyper h = LambHyper(lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                 weight_decay=weight_decay, bc1=0.0, bc2=0.0)
    lamb_prepare(&h, t)
    if n == 0 or r.shape[0] == 0:
        return
    with nogil:
        lamb_step(&params[0], &grads[0], &exp_avg[0], &exp_avg_sq[0], &r[0],
                  r.shape[0] // 2, &h)
