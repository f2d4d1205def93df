"""Weight penalty and weight constraint kernels over the flat parameter arena.

Penalties (after backward): value ``l1 Σ|w| + (l2/2) Σw²`` and gradient ``l1 sign(w) + l2 w``
added into the gradient arena, over a table of ``PenaltyRange`` rows. Constraints (after the
optimizer update): max-norm on the columns of a weight matrix (one column = the incoming
weights of one unit) and non-negativity, over a table of ``ConstraintRange`` rows.

``penalty_table`` / ``constraint_table`` validate a list of tuples against the arena length
and pack it into a NumPy structured array whose rows are the C structs (the executor keeps
the array and passes ``&table[0]``). The ``*_memview`` functions are thin wrappers used by the
tests and by ``fastmlp.regularizers``; ``fastmlp.reference.regularize`` holds their NumPy
twins (same signatures).
"""
import numpy as np

from cython cimport floating
from libc.math cimport fabs, isfinite, sqrt

#: Row layouts of the tables (``align=True``: the same padding as the C structs).
PENALTY_DTYPE = np.dtype([("offset", np.intp), ("n", np.intp), ("l1", np.float64),
                          ("l2", np.float64), ("l1_prox", np.float64), ("partner", np.intp),
                          ("tie", np.float64)], align=True)
CONSTRAINT_DTYPE = np.dtype([("kind", np.intc), ("offset", np.intp), ("n_in", np.intp),
                             ("n_out", np.intp), ("value", np.float64)], align=True)
if PENALTY_DTYPE.itemsize != sizeof(PenaltyRange) or \
        CONSTRAINT_DTYPE.itemsize != sizeof(ConstraintRange):
    raise ImportError("fastmlp._regularize: table dtypes do not match the C structs")

cdef enum:
    _BLOCK = 256        # columns per max-norm block (norms and scales live on the stack)


# --- penalties ----------------------------------------------------------------------------

cdef inline void _abs_sq_sums(const floating* w, Py_ssize_t n, double* s_abs,
                              double* s_sq) noexcept nogil:
    """Σ|w| and Σw² in double, over two interleaved partial sums each."""
    cdef double a0 = 0, a1 = 0, q0 = 0, q1 = 0, x, y
    cdef Py_ssize_t i = 0
    while i + 2 <= n:
        x = w[i]
        y = w[i + 1]
        a0 += fabs(x)
        a1 += fabs(y)
        q0 += x * x
        q1 += y * y
        i += 2
    if i < n:
        x = w[i]
        a0 += fabs(x)
        q0 += x * x
    s_abs[0] = a0 + a1
    s_sq[0] = q0 + q1


cdef double penalty_value_grad(const floating* w, floating* grad, Py_ssize_t n,
                               double l1, double l2) noexcept nogil:
    """l1 Σ|w| + (l2/2) Σw²; grad += l1 sign(w) + l2 w when grad != NULL.
    Contract: sign(0) = 0 (the subgradient 0 at the kink); a term whose coefficient is 0
    contributes exactly 0 to the value (no 0 · inf)."""
    cdef double s_abs, s_sq, value = 0.0
    cdef floating a = <floating> l1, b = <floating> l2, v
    cdef Py_ssize_t i
    _abs_sq_sums(w, n, &s_abs, &s_sq)
    if l1 != 0:
        value += l1 * s_abs
    if l2 != 0:
        value += 0.5 * l2 * s_sq
    if grad == NULL:
        return value
    if l1 == 0:
        for i in range(n):
            grad[i] += b * w[i]
    else:
        for i in range(n):
            v = w[i]
            grad[i] += a * <floating> ((v > 0) - (v < 0)) + b * v
    return value


cdef double tie_value_grad(const floating* a, const floating* b, floating* ga, floating* gb,
                           Py_ssize_t n, double tie) noexcept nogil:
    """tie Σ(a − b)²; ga += 2 tie (a − b), gb −= 2 tie (a − b) when ga != NULL (gb too).
    Contract: the ranges do not overlap (penalty_table checks it)."""
    cdef double d, s = 0.0
    cdef floating g, c = <floating> (2.0 * tie)
    cdef Py_ssize_t i
    for i in range(n):
        d = <double> a[i] - <double> b[i]
        s += d * d
    if ga != NULL:
        for i in range(n):
            g = c * (a[i] - b[i])
            ga[i] += g
            gb[i] -= g
    return tie * s


cdef double penalties_apply(const PenaltyRange* r, Py_ssize_t n_ranges,
                            const floating* params, floating* grads) noexcept nogil:
    """Σ over the ranges of penalty_value_grad, the proximal L1's value (no gradient: its
    soft threshold follows the update) and the tie term; grads NULL: value only.
    Contract: every range (and partner range) lies inside the arena (penalty_table)."""
    cdef double value = 0.0, s_abs, s_sq
    cdef Py_ssize_t k
    for k in range(n_ranges):
        value += penalty_value_grad(params + r[k].offset,
                                    grads + r[k].offset if grads != NULL else NULL,
                                    r[k].n, r[k].l1, r[k].l2)
        if r[k].l1_prox != 0:
            _abs_sq_sums(params + r[k].offset, r[k].n, &s_abs, &s_sq)
            value += r[k].l1_prox * s_abs
        if r[k].partner >= 0 and r[k].tie != 0:
            value += tie_value_grad(params + r[k].offset, params + r[k].partner,
                                    grads + r[k].offset if grads != NULL else NULL,
                                    grads + r[k].partner if grads != NULL else NULL,
                                    r[k].n, r[k].tie)
    return value


# --- constraints --------------------------------------------------------------------------

cdef void maxnorm_columns(floating* W, Py_ssize_t n_in, Py_ssize_t n_out,
                          double max_value) noexcept nogil:
    """W[:, j] *= max_value / ‖W[:, j]‖₂ where ‖W[:, j]‖₂ > max_value (norms in double).
    Row-major W is walked row by row over blocks of _BLOCK columns (two passes: norms, then
    scales), so memory is read contiguously and nothing is allocated. Columns under the limit
    are multiplied by exactly 1 (bit-identical); a NaN norm leaves its column as it is."""
    cdef double norm2[_BLOCK]
    cdef double factor[_BLOCK]
    cdef double nrm
    cdef floating* row
    cdef Py_ssize_t j0 = 0, m, i, j
    cdef bint scaled
    while j0 < n_out:
        m = n_out - j0 if n_out - j0 < _BLOCK else _BLOCK
        for j in range(m):
            norm2[j] = 0.0
        for i in range(n_in):
            row = W + i * n_out + j0
            for j in range(m):
                norm2[j] += <double> row[j] * row[j]
        scaled = False
        for j in range(m):
            nrm = sqrt(norm2[j])
            factor[j] = 1.0
            if nrm > max_value:
                factor[j] = max_value / nrm
                scaled = True
        if scaled:
            for i in range(n_in):
                row = W + i * n_out + j0
                for j in range(m):
                    row[j] = <floating> (row[j] * factor[j])
        j0 += m


cdef void nonneg(floating* w, Py_ssize_t n) noexcept nogil:
    """w = 0 where w < 0 (NaN and -0.0 stay as they are)."""
    cdef Py_ssize_t i
    for i in range(n):
        if w[i] < 0:
            w[i] = 0


cdef void soft_threshold(floating* w, Py_ssize_t n, double threshold) noexcept nogil:
    """w = sign(w) max(|w| − threshold, 0): the proximal step of threshold Σ|w|; elements
    with |w| <= threshold become exactly +0.0, NaN stays NaN."""
    cdef floating t = <floating> threshold, v
    cdef Py_ssize_t i
    for i in range(n):
        v = w[i]
        if v > t:
            w[i] = v - t
        elif v < -t:
            w[i] = v + t
        elif v == v:
            w[i] = 0


cdef void constraints_apply(const ConstraintRange* c, Py_ssize_t n_c,
                            floating* params) noexcept nogil:
    """Each constraint in table order. Contract: blocks lie inside the arena and kinds are
    valid (constraint_table checks both); an unknown kind is skipped."""
    cdef Py_ssize_t k
    for k in range(n_c):
        if c[k].kind == C_MAXNORM:
            maxnorm_columns(params + c[k].offset, c[k].n_in, c[k].n_out, c[k].value)
        elif c[k].kind == C_NONNEG:
            nonneg(params + c[k].offset, c[k].n_in * c[k].n_out)
        elif c[k].kind == C_SOFT_THRESHOLD:
            soft_threshold(params + c[k].offset, c[k].n_in * c[k].n_out, c[k].value)


# --- tables (validated at the Python boundary) ---------------------------------------------

def penalty_row(r):
    """A penalty row as the full 7-tuple ``(offset, n, l1, l2, l1_prox, partner, tie)``:
    4-tuples ``(offset, n, l1, l2)`` get ``l1_prox = 0, partner = -1, tie = 0``."""
    r = tuple(r)
    if len(r) == 4:
        return r + (0.0, -1, 0.0)
    if len(r) != 7:
        raise ValueError(f"a penalty row has 4 or 7 fields, got {r!r}")
    return r


def penalty_table(ranges, Py_ssize_t n_params):
    """Rows ``(offset, n, l1, l2[, l1_prox, partner, tie])`` as a ``PENALTY_DTYPE`` array;
    ValueError when a range or its partner range leaves the arena ``[0, n_params)``, the two
    overlap, or a coefficient is negative or not finite."""
    t = np.array([penalty_row(r) for r in ranges], dtype=PENALTY_DTYPE)
    for k in range(t.shape[0]):
        off, n, l1, l2, l1_prox, partner, tie = t[k]
        if off < 0 or n < 0 or off + n > n_params:
            raise ValueError(f"penalty range {k} [{off}, {off + n}) is outside the arena "
                             f"of {n_params} parameters")
        if not all(isfinite(c) and c >= 0 for c in (l1, l2, l1_prox, tie)):
            raise ValueError(f"penalty range {k}: l1, l2, l1_prox and tie must be finite "
                             f"and >= 0, got {l1}, {l2}, {l1_prox}, {tie}")
        if partner >= 0 and (partner + n > n_params or abs(partner - off) < n):
            raise ValueError(f"penalty range {k}: partner range [{partner}, {partner + n}) "
                             f"is outside the arena of {n_params} or overlaps [{off}, "
                             f"{off + n})")
    return t


def constraint_table(constraints, Py_ssize_t n_params):
    """Rows ``(kind, offset, n_in, n_out, value)`` as a ``CONSTRAINT_DTYPE`` array;
    ValueError on an unknown kind, a block outside the arena or a bad max-norm value.

    A ``CONSTRAINT_DTYPE`` array is checked and returned as is, not copied: an executor
    holding it sees later changes of its ``value`` fields (the proximal L1's threshold
    follows the learning rate, ``fastmlp._epoch``)."""
    if isinstance(constraints, np.ndarray) and constraints.dtype == CONSTRAINT_DTYPE:
        t = constraints
    else:
        t = np.array([tuple(c) for c in constraints], dtype=CONSTRAINT_DTYPE)
    for k in range(t.shape[0]):
        kind, off, n_in, n_out, value = t[k]
        if kind not in (C_MAXNORM, C_NONNEG, C_SOFT_THRESHOLD):
            raise ValueError(f"constraint {k}: unknown kind {kind}")
        if off < 0 or n_in < 0 or n_out < 0 or off + n_in * n_out > n_params:
            raise ValueError(f"constraint {k}: block ({n_in}, {n_out}) at {off} is outside "
                             f"the arena of {n_params} parameters")
        if kind != C_NONNEG and not (isfinite(value) and value >= 0):
            what = "max_value" if kind == C_MAXNORM else "threshold"
            raise ValueError(f"constraint {k}: {what} must be finite and >= 0, got {value}")
    return t


# --- thin wrappers (memoryviews in; the same signatures as fastmlp.reference.regularize) ---

cdef int _same_size(Py_ssize_t n, str name, Py_ssize_t m) except -1:
    if m != n:
        raise ValueError(f"{name} has {m} elements, expected {n}")
    return 0


def penalty_value_grad_memview(const floating[::1] w, floating[::1] grad, double l1,
                               double l2):
    """l1 Σ|w| + (l2/2) Σw²; grad += l1 sign(w) + l2 w in place unless grad is None."""
    cdef Py_ssize_t n = w.shape[0]
    cdef floating* g = NULL
    cdef double value = 0.0
    if grad is not None:
        _same_size(n, "grad", grad.shape[0])
        if n > 0:
            g = &grad[0]
    if n == 0:
        return value
    with nogil:
        value = penalty_value_grad(&w[0], g, n, l1, l2)
    return value


def penalties_apply_memview(ranges, const floating[::1] params, floating[::1] grads):
    """Total penalty over ``ranges`` (rows of ``penalty_table``, or a penalty_table);
    gradients added into ``grads`` unless it is None."""
    cdef Py_ssize_t n = params.shape[0]
    cdef const PenaltyRange[::1] t = penalty_table(ranges, n)
    cdef floating* g = NULL
    cdef double value = 0.0
    if grads is not None:
        _same_size(n, "grads", grads.shape[0])
        g = &grads[0] if n > 0 else NULL
    if n == 0 or t.shape[0] == 0:
        return value
    with nogil:
        value = penalties_apply(&t[0], t.shape[0], &params[0], g)
    return value


def maxnorm_columns_memview(floating[:, ::1] W, double max_value):
    """Rescale in place every column of W whose L2 norm exceeds max_value onto norm max_value."""
    if not (isfinite(max_value) and max_value >= 0):
        raise ValueError(f"max_value must be finite and >= 0, got {max_value}")
    if W.shape[0] == 0 or W.shape[1] == 0:
        return
    with nogil:
        maxnorm_columns(&W[0, 0], W.shape[0], W.shape[1], max_value)


def nonneg_memview(floating[::1] w):
    """w = max(w, 0) in place."""
    if w.shape[0] == 0:
        return
    with nogil:
        nonneg(&w[0], w.shape[0])


def constraints_apply_memview(constraints, floating[::1] params):
    """Apply ``constraints`` (tuples ``(kind, offset, n_in, n_out, value)`` or a
    constraint_table) to ``params`` in place, in order."""
    cdef const ConstraintRange[::1] t = constraint_table(constraints, params.shape[0])
    if params.shape[0] == 0 or t.shape[0] == 0:
        return
    with nogil:
        constraints_apply(&t[0], t.shape[0], &params[0])


def soft_threshold_memview(floating[::1] w, double threshold):
    """w = sign(w) max(|w| − threshold, 0) in place (threshold finite and >= 0)."""
    if not (isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    if w.shape[0] == 0:
        return
    with nogil:
        soft_threshold(&w[0], w.shape[0], threshold)
