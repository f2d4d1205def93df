"""Loss kernels: value and gradient in one pass over each row, float32 and float64.

Every kernel follows the contract written in ``_losses.pxd``: it returns
``scale * sum_i w_i * l_i`` and, when ``grad`` is not NULL, writes
``grad[i, :] = scale * w_i * dl_i/dpred[i, :]``. Arithmetic is done in double whatever the
storage type, so float32 results differ from float64 ones only by the final rounding.
The ``*_memview`` functions are thin wrappers for the tests and for ``fastmlp.losses``;
they check shapes and labels (kernels assume valid input).
"""
import numpy as np

from cython cimport floating
from libc.math cimport exp, fabs, log, log1p


cdef inline double _weight(const floating* row_weight, Py_ssize_t i) noexcept nogil:
    return 1.0 if row_weight == NULL else <double> row_weight[i]


cdef double mse(const floating* pred, const floating* target, const floating* row_weight,
                floating* grad, Py_ssize_t n, Py_ssize_t d, double scale) noexcept nogil:
    """l_i = sum_j (pred - target)^2; dl/dpred = 2 (pred - target)."""
    cdef Py_ssize_t i, j, k
    cdef double total = 0.0, row, g, diff
    for i in range(n):
        row = 0.0
        g = 2.0 * scale * _weight(row_weight, i)
        for j in range(d):
            k = i * d + j
            diff = <double> pred[k] - <double> target[k]
            row += diff * diff
            if grad != NULL:
                grad[k] = <floating> (g * diff)
        total += _weight(row_weight, i) * row
    return scale * total


cdef double l1(const floating* pred, const floating* target, const floating* row_weight,
               floating* grad, Py_ssize_t n, Py_ssize_t d, double scale) noexcept nogil:
    """l_i = sum_j |pred - target|; dl/dpred = sign(pred - target), 0 at 0 (as torch)."""
    cdef Py_ssize_t i, j, k
    cdef double total = 0.0, row, g, diff
    for i in range(n):
        row = 0.0
        g = scale * _weight(row_weight, i)
        for j in range(d):
            k = i * d + j
            diff = <double> pred[k] - <double> target[k]
            row += fabs(diff)
            if grad != NULL:
                grad[k] = <floating> (g if diff > 0 else (-g if diff < 0 else 0.0))
        total += _weight(row_weight, i) * row
    return scale * total


cdef double huber(const floating* pred, const floating* target, const floating* row_weight,
                  floating* grad, Py_ssize_t n, Py_ssize_t d, double scale,
                  double delta) noexcept nogil:
    """With r = pred - target: l = r^2/2 if |r| < delta else delta (|r| - delta/2);
    dl/dpred = r clipped to [-delta, delta]. Contract: delta > 0."""
    cdef Py_ssize_t i, j, k
    cdef double total = 0.0, row, g, diff, a
    for i in range(n):
        row = 0.0
        g = scale * _weight(row_weight, i)
        for j in range(d):
            k = i * d + j
            diff = <double> pred[k] - <double> target[k]
            a = fabs(diff)
            if a < delta:
                row += 0.5 * diff * diff
            else:
                row += delta * (a - 0.5 * delta)
                diff = delta if diff > 0 else -delta
            if grad != NULL:
                grad[k] = <floating> (g * diff)
        total += _weight(row_weight, i) * row
    return scale * total


cdef double bce_with_logits(const floating* pred, const floating* target,
                            const floating* row_weight, floating* grad, Py_ssize_t n,
                            Py_ssize_t d, double scale) noexcept nogil:
    """With logit x and target y: l = max(x, 0) - x y + log1p(exp(-|x|));
    dl/dx = sigmoid(x) - y, with sigmoid from e = exp(-|x|) in (0, 1] (no overflow)."""
    cdef Py_ssize_t i, j, k
    cdef double total = 0.0, row, g, x, y, e, r
    for i in range(n):
        row = 0.0
        g = scale * _weight(row_weight, i)
        for j in range(d):
            k = i * d + j
            x = pred[k]
            y = target[k]
            e = exp(-fabs(x))
            row += (x if x > 0 else 0.0) - x * y + log1p(e)
            if grad != NULL:
                r = 1.0 / (1.0 + e)
                grad[k] = <floating> (g * ((r if x >= 0 else e * r) - y))
        total += _weight(row_weight, i) * row
    return scale * total


cdef inline double _ce_row(const floating* x, const floating* t, Py_ssize_t y,
                           floating* gr, Py_ssize_t c, double g, double eps) noexcept nogil:
    """Cross-entropy of one row of logits x against q = (1 - eps) t + eps / c, where t is
    the one-hot of class y when t == NULL. With m = max x and s = sum exp(x - m):
    l = log(s) sum q + sum_j q_j (m - x_j); dl/dx_j = softmax_j sum q - q_j (times g).
    gr may alias x. For float64 the exps are kept in gr; float32 recomputes them in double.
    """
    cdef Py_ssize_t j
    cdef double m = x[0], s = 0.0, e, q, sum_q = 0.0, qmx = 0.0, inv_s
    cdef double off = eps / c
    for j in range(1, c):
        if x[j] > m:
            m = x[j]
    for j in range(c):
        e = exp(<double> x[j] - m)
        s += e
        q = off + (1.0 - eps) * (<double> t[j] if t != NULL else (1.0 if j == y else 0.0))
        sum_q += q
        qmx += q * (m - <double> x[j])
        if floating is double:
            if gr != NULL:
                gr[j] = e
    if gr != NULL:
        inv_s = sum_q / s
        for j in range(c):
            q = off + (1.0 - eps) * (<double> t[j] if t != NULL else (1.0 if j == y else 0.0))
            if floating is double:
                e = gr[j]
            else:
                e = exp(<double> x[j] - m)
            gr[j] = <floating> (g * (e * inv_s - q))
    return log(s) * sum_q + qmx


cdef double cross_entropy_labels(const floating* pred, const long long* labels,
                                 const floating* row_weight, floating* grad, Py_ssize_t n,
                                 Py_ssize_t c, double scale,
                                 double label_smoothing) noexcept nogil:
    """Softmax cross-entropy of logits (n, c) against class labels in [0, c)."""
    cdef Py_ssize_t i
    cdef double total = 0.0, w
    for i in range(n):
        w = _weight(row_weight, i)
        total += w * _ce_row(pred + i * c, <const floating*> NULL, <Py_ssize_t> labels[i],
                             grad + i * c if grad != NULL else NULL, c, scale * w,
                             label_smoothing)
    return scale * total


cdef double cross_entropy_probs(const floating* pred, const floating* target,
                                const floating* row_weight, floating* grad, Py_ssize_t n,
                                Py_ssize_t c, double scale,
                                double label_smoothing) noexcept nogil:
    """Softmax cross-entropy of logits (n, c) against probability rows target (n, c)."""
    cdef Py_ssize_t i
    cdef double total = 0.0, w
    for i in range(n):
        w = _weight(row_weight, i)
        total += w * _ce_row(pred + i * c, target + i * c, -1,
                             grad + i * c if grad != NULL else NULL, c, scale * w,
                             label_smoothing)
    return scale * total


cdef double multi_margin(const floating* pred, const long long* labels,
                         const floating* row_weight, floating* grad, Py_ssize_t n,
                         Py_ssize_t c, double scale, double margin) noexcept nogil:
    """l_i = sum_{j != y} max(0, margin - x_y + x_j) / c (torch, p=1); each active term
    adds 1/c to dl/dx_j and -1/c to dl/dx_y (a term at exactly 0 is inactive)."""
    cdef Py_ssize_t i, j, y, active
    cdef double total = 0.0, row, g, xy, z
    cdef const floating* x
    for i in range(n):
        x = pred + i * c
        y = <Py_ssize_t> labels[i]
        xy = x[y]
        g = scale * _weight(row_weight, i) / c
        row = 0.0
        active = 0
        for j in range(c):
            if j == y:
                continue
            z = margin - xy + <double> x[j]
            if z > 0:
                row += z
                active += 1
            if grad != NULL:
                grad[i * c + j] = <floating> (g if z > 0 else 0.0)
        if grad != NULL:
            grad[i * c + y] = <floating> (-g * active)
        total += _weight(row_weight, i) * row / c
    return scale * total


cdef double mean_scale(const LossSpec* spec, Py_ssize_t n) noexcept nogil:
    """PyTorch's reduction='mean' for n rows: 1/n (cross-entropy, margin), else 1/(n d)."""
    if spec.code == LOSS_CROSS_ENTROPY or spec.code == LOSS_MULTI_MARGIN:
        return 1.0 / n
    return 1.0 / (<double> n * spec.n_outputs)


cdef double batch_scale(const LossSpec* spec, Py_ssize_t n) noexcept nogil:
    """The scale of spec.reduction for n rows: mean_scale ('mean') or 1 ('sum')."""
    if spec.reduction == REDUCTION_SUM:
        return 1.0
    return mean_scale(spec, n)


cdef double loss_value_grad(const LossSpec* spec, const floating* pred,
                            const floating* target, const long long* labels,
                            const floating* row_weight, floating* grad, Py_ssize_t n,
                            double scale) noexcept nogil:
    """The kernel of spec.code on pred (n, spec.n_outputs). Contract: cross-entropy takes
    labels (n,) when labels != NULL, else probability rows in target; multi-margin needs
    labels; the other losses need target. Returns 0 for an unknown code."""
    cdef Py_ssize_t d = spec.n_outputs
    cdef int code = spec.code
    if code == LOSS_MSE:
        return mse(pred, target, row_weight, grad, n, d, scale)
    if code == LOSS_L1:
        return l1(pred, target, row_weight, grad, n, d, scale)
    if code == LOSS_HUBER:
        return huber(pred, target, row_weight, grad, n, d, scale, spec.delta)
    if code == LOSS_BCE_WITH_LOGITS:
        return bce_with_logits(pred, target, row_weight, grad, n, d, scale)
    if code == LOSS_CROSS_ENTROPY:
        if labels != NULL:
            return cross_entropy_labels(pred, labels, row_weight, grad, n, d, scale,
                                        spec.label_smoothing)
        return cross_entropy_probs(pred, target, row_weight, grad, n, d, scale,
                                   spec.label_smoothing)
    if code == LOSS_MULTI_MARGIN:
        return multi_margin(pred, labels, row_weight, grad, n, d, scale, spec.margin)
    return 0.0


# --- thin wrappers (tests, fastmlp.losses) ------------------------------------------------

cdef _check(Py_ssize_t n, Py_ssize_t d, tuple target_shape, Py_ssize_t n_weights):
    """Shape checks shared by the wrappers (n_weights is -1 when there are no weights)."""
    if n == 0 or d == 0:
        raise ValueError(f"pred must have at least one row and one column, got ({n}, {d})")
    if target_shape is not None and target_shape != (n, d):
        raise ValueError(f"target has shape {target_shape}, pred has ({n}, {d})")
    if n_weights >= 0 and n_weights != n:
        raise ValueError(f"row_weight has {n_weights} entries, pred has {n} rows")


cdef _check_labels(const long long[::1] labels, Py_ssize_t n, Py_ssize_t d):
    """Labels must be (n,) and lie in [0, d): the kernels index rows with them."""
    cdef Py_ssize_t i
    if labels.shape[0] != n:
        raise ValueError(f"labels has {labels.shape[0]} entries, pred has {n} rows")
    for i in range(n):
        if labels[i] < 0 or labels[i] >= d:
            raise ValueError(f"labels must lie in [0, {d}), got {labels[i]} at index {i}")


cdef LossSpec _spec(int code, Py_ssize_t d, double delta, double label_smoothing,
                    double margin, int reduction=REDUCTION_MEAN) except *:
    """A checked ``LossSpec`` (the wrappers' only way to build one)."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction != REDUCTION_MEAN and reduction != REDUCTION_SUM:
        raise ValueError(f"reduction must be a Reduction (0 mean, 1 sum), got {reduction}")
    return LossSpec(code=code, n_outputs=d, delta=delta, label_smoothing=label_smoothing,
                    margin=margin, reduction=reduction)


cdef _call(const LossSpec* spec, const floating[:, ::1] pred, const floating* target,
           const long long* labels, const floating[::1] row_weight, double scale,
           bint with_grad):
    """Run the dispatcher without the GIL; return ``(value, grad or None)``.
    Shapes and labels were checked by the caller."""
    cdef double value
    cdef const floating* w = NULL if row_weight is None else &row_weight[0]
    cdef floating[:, ::1] grad
    cdef floating* g = NULL
    out = None
    if with_grad:
        out = np.empty((pred.shape[0], pred.shape[1]),
                       dtype=np.float32 if floating is float else np.float64)
        grad = out
        g = &grad[0, 0]
    with nogil:
        value = loss_value_grad(spec, &pred[0, 0], target, labels, w, g, pred.shape[0], scale)
    return value, out


cdef _elementwise(const LossSpec* spec, const floating[:, ::1] pred,
                  const floating[:, ::1] target, const floating[::1] row_weight,
                  double scale, bint with_grad):
    _check(pred.shape[0], pred.shape[1], (target.shape[0], target.shape[1]),
           -1 if row_weight is None else row_weight.shape[0])
    return _call(spec, pred, &target[0, 0], NULL, row_weight, scale, with_grad)


cdef _by_label(const LossSpec* spec, const floating[:, ::1] pred,
               const long long[::1] labels, const floating[::1] row_weight,
               double scale, bint with_grad):
    _check(pred.shape[0], pred.shape[1], None,
           -1 if row_weight is None else row_weight.shape[0])
    _check_labels(labels, pred.shape[0], pred.shape[1])
    return _call(spec, pred, NULL, &labels[0], row_weight, scale, with_grad)


def mse_memview(const floating[:, ::1] pred, const floating[:, ::1] target,
                const floating[::1] row_weight=None, double scale=1.0, bint with_grad=True):
    """Return ``(value, grad or None)`` of ``mse`` (C-contiguous arrays)."""
    cdef LossSpec spec = _spec(LOSS_MSE, pred.shape[1], 1.0, 0.0, 1.0)
    return _elementwise(&spec, pred, target, row_weight, scale, with_grad)


def l1_memview(const floating[:, ::1] pred, const floating[:, ::1] target,
               const floating[::1] row_weight=None, double scale=1.0, bint with_grad=True):
    """Return ``(value, grad or None)`` of ``l1``."""
    cdef LossSpec spec = _spec(LOSS_L1, pred.shape[1], 1.0, 0.0, 1.0)
    return _elementwise(&spec, pred, target, row_weight, scale, with_grad)


def huber_memview(const floating[:, ::1] pred, const floating[:, ::1] target,
                  const floating[::1] row_weight=None, double scale=1.0,
                  bint with_grad=True, double delta=1.0):
    """Return ``(value, grad or None)`` of ``huber``."""
    cdef LossSpec spec = _spec(LOSS_HUBER, pred.shape[1], delta, 0.0, 1.0)
    return _elementwise(&spec, pred, target, row_weight, scale, with_grad)


def bce_with_logits_memview(const floating[:, ::1] pred, const floating[:, ::1] target,
                            const floating[::1] row_weight=None, double scale=1.0,
                            bint with_grad=True):
    """Return ``(value, grad or None)`` of ``bce_with_logits``."""
    cdef LossSpec spec = _spec(LOSS_BCE_WITH_LOGITS, pred.shape[1], 1.0, 0.0, 1.0)
    return _elementwise(&spec, pred, target, row_weight, scale, with_grad)


def cross_entropy_probs_memview(const floating[:, ::1] pred, const floating[:, ::1] target,
                                const floating[::1] row_weight=None, double scale=1.0,
                                bint with_grad=True, double label_smoothing=0.0):
    """Return ``(value, grad or None)`` of ``cross_entropy_probs``."""
    cdef LossSpec spec = _spec(LOSS_CROSS_ENTROPY, pred.shape[1], 1.0,
                               label_smoothing, 1.0)
    return _elementwise(&spec, pred, target, row_weight, scale, with_grad)


def cross_entropy_labels_memview(const floating[:, ::1] pred, const long long[::1] labels,
                                 const floating[::1] row_weight=None, double scale=1.0,
                                 bint with_grad=True, double label_smoothing=0.0):
    """Return ``(value, grad or None)`` of ``cross_entropy_labels`` (labels int64)."""
    cdef LossSpec spec = _spec(LOSS_CROSS_ENTROPY, pred.shape[1], 1.0,
                               label_smoothing, 1.0)
    return _by_label(&spec, pred, labels, row_weight, scale, with_grad)


def multi_margin_memview(const floating[:, ::1] pred, const long long[::1] labels,
                         const floating[::1] row_weight=None, double scale=1.0,
                         bint with_grad=True, double margin=1.0):
    """Return ``(value, grad or None)`` of ``multi_margin`` (labels int64)."""
    cdef LossSpec spec = _spec(LOSS_MULTI_MARGIN, pred.shape[1], 1.0, 0.0, margin)
    return _by_label(&spec, pred, labels, row_weight, scale, with_grad)


def value_and_grad_memview(dict spec, const floating[:, ::1] pred,
                           const floating[:, ::1] target=None,
                           const long long[::1] labels=None,
                           const floating[::1] row_weight=None, scale=None,
                           bint with_grad=True):
    """Run ``loss_value_grad`` for a dict of ``LossSpec`` fields, as an executor would.

    Pass ``target`` for value targets or ``labels`` (int64) for class labels (cross-entropy,
    multi-margin). ``scale=None`` uses ``batch_scale``: PyTorch's 'mean' reduction, or
    'sum' when ``spec["reduction"]`` is ``Reduction.REDUCTION_SUM``.
    """
    cdef LossSpec s = _spec(spec["code"], spec["n_outputs"], spec.get("delta", 1.0),
                            spec.get("label_smoothing", 0.0), spec.get("margin", 1.0),
                            spec.get("reduction", REDUCTION_MEAN))
    if not 0 <= s.code < LOSS_N_CODES:
        raise ValueError(f"spec['code'] must be a LossCode, got {s.code}")
    if s.n_outputs != pred.shape[1]:
        raise ValueError(f"spec['n_outputs'] is {s.n_outputs}, pred has {pred.shape[1]} columns")
    if (target is None) == (labels is None):
        raise ValueError("pass exactly one of target and labels")
    if labels is None and s.code == LOSS_MULTI_MARGIN:
        raise ValueError("MultiMarginLoss needs class labels")
    if labels is not None and s.code < LOSS_CROSS_ENTROPY:
        raise ValueError("class labels are only for cross-entropy and multi-margin losses")
    cdef double sc = batch_scale(&s, pred.shape[0]) if scale is None else <double> scale
    if labels is not None:
        return _by_label(&s, pred, labels, row_weight, sc, with_grad)
    return _elementwise(&s, pred, target, row_weight, sc, with_grad)
