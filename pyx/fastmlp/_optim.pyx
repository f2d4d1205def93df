"""Optimizer update kernels over the flat parameter arena (torch.optim update rules).

One kernel per family; Adam and AdamW are one kernel (``decoupled``), SGD with or without
momentum/Nesterov is one kernel. Every kernel is a single fused pass over contiguous memory;
the step-dependent scalars are computed by the caller (``*_prepare``) and passed in the
hyperparameter struct. The ``*_memview`` functions are thin wrappers used by the tests and by
``fastmlp.optim``; ``fastmlp.reference.optim`` holds their NumPy twins (same signatures).
"""
from cython cimport floating
from libc.math cimport sqrt, sqrtf, pow


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _lerp(floating a, floating b, floating w) noexcept nogil:
    """a + w (b - a), evaluated as torch.lerp does (exact at both ends)."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


# --- step-dependent scalars (the caller's side of the kernel contract) ---------------------

cdef void sgd_prepare(SGDHyper* h, Py_ssize_t t) noexcept nogil:
    h.first = t == 1


cdef void adagrad_prepare(AdagradHyper* h, Py_ssize_t t) noexcept nogil:
    h.clr = h.lr / (1.0 + (t - 1) * h.lr_decay)


cdef void adam_prepare(AdamHyper* h, Py_ssize_t t) noexcept nogil:
    h.step_size = h.lr / (1.0 - pow(h.beta1, <double> t))
    h.bc2_sqrt = sqrt(1.0 - pow(h.beta2, <double> t))


# --- kernels ------------------------------------------------------------------------------

cdef void sgd_step(floating* params, const floating* grads, floating* buf,
                   Py_ssize_t n, const SGDHyper* h) noexcept nogil:
    """d = g + wd p; b = d (first step) or mu b + (1 - dampening) d;
    p -= lr (d + mu b) with Nesterov, else p -= lr b. Without buf: p -= lr d.
    Contract: h.first is set by the caller (sgd_prepare)."""
    cdef floating lr = <floating> h.lr, wd = <floating> h.weight_decay
    cdef floating mu = <floating> h.momentum, keep = <floating> (1.0 - h.dampening)
    cdef floating d, b
    cdef Py_ssize_t i
    if buf == NULL:
        for i in range(n):
            params[i] -= lr * (grads[i] + wd * params[i])
        return
    for i in range(n):
        d = grads[i] + wd * params[i]
        b = d if h.first else mu * buf[i] + keep * d
        buf[i] = b
        params[i] -= lr * (d + mu * b if h.nesterov else b)


cdef void adagrad_step(floating* params, const floating* grads, floating* state_sum,
                       Py_ssize_t n, const AdagradHyper* h) noexcept nogil:
    """d = g + wd p; s += d²; p -= clr d / (√s + eps).
    Contract: h.clr = lr / (1 + (t - 1) lr_decay) is computed by the caller."""
    cdef floating clr = <floating> h.clr, wd = <floating> h.weight_decay
    cdef floating eps = <floating> h.eps
    cdef floating d, s
    cdef Py_ssize_t i
    for i in range(n):
        d = grads[i] + wd * params[i]
        s = state_sum[i] + d * d
        state_sum[i] = s
        params[i] -= clr * (d / (_sqrt(s) + eps))


cdef enum:
    _CENTERED = 1
    _MOMENTUM = 2


cdef inline void _rmsprop(floating* params, const floating* grads, floating* square_avg,
                          floating* grad_avg, floating* buf, Py_ssize_t n,
                          const RMSpropHyper* h, int mode) noexcept nogil:
    """The RMSprop loop for one constant ``mode`` (inlined per mode: conditional stores
    would otherwise keep GCC from vectorizing)."""
    cdef floating lr = <floating> h.lr, wd = <floating> h.weight_decay
    cdef floating alpha = <floating> h.alpha, w = <floating> (1.0 - h.alpha)
    cdef floating eps = <floating> h.eps, mu = <floating> h.momentum
    cdef floating d, v, m, a
    cdef Py_ssize_t i
    for i in range(n):
        d = grads[i] + wd * params[i]
        v = square_avg[i] * alpha + w * (d * d)
        square_avg[i] = v
        if mode & _CENTERED:
            m = _lerp(grad_avg[i], d, w)
            grad_avg[i] = m
            v = v - m * m
        a = _sqrt(v) + eps
        if mode & _MOMENTUM:
            buf[i] = mu * buf[i] + d / a
            params[i] -= lr * buf[i]
        else:
            params[i] -= lr * (d / a)


cdef void rmsprop_step(floating* params, const floating* grads, floating* square_avg,
                       floating* grad_avg, floating* buf, Py_ssize_t n,
                       const RMSpropHyper* h) noexcept nogil:
    """d = g + wd p; v = α v + (1 − α) d²; centered: m = lerp(m, d, 1 − α), v̂ = v − m²;
    a = √v̂ + eps; momentum: b = μ b + d / a, p -= lr b; else p -= lr d / a.
    Contract: no step-dependent scalars; grad_avg NULL = not centered, buf NULL = no momentum."""
    if grad_avg != NULL and buf != NULL:
        _rmsprop(params, grads, square_avg, grad_avg, buf, n, h, _CENTERED | _MOMENTUM)
    elif grad_avg != NULL:
        _rmsprop(params, grads, square_avg, grad_avg, buf, n, h, _CENTERED)
    elif buf != NULL:
        _rmsprop(params, grads, square_avg, grad_avg, buf, n, h, _MOMENTUM)
    else:
        _rmsprop(params, grads, square_avg, grad_avg, buf, n, h, 0)


cdef void adadelta_step(floating* params, const floating* grads, floating* square_avg,
                        floating* acc_delta, Py_ssize_t n,
                        const AdadeltaHyper* h) noexcept nogil:
    """d = g + wd p; v = ρ v + (1 − ρ) d²; δ = √(u + eps) / √(v + eps) · d;
    u = ρ u + (1 − ρ) δ²; p -= lr δ.  Contract: no step-dependent scalars."""
    cdef floating lr = <floating> h.lr, wd = <floating> h.weight_decay
    cdef floating rho = <floating> h.rho, w = <floating> (1.0 - h.rho)
    cdef floating eps = <floating> h.eps
    cdef floating d, v, delta
    cdef Py_ssize_t i
    for i in range(n):
        d = grads[i] + wd * params[i]
        v = square_avg[i] * rho + w * (d * d)
        square_avg[i] = v
        delta = _sqrt(acc_delta[i] + eps) / _sqrt(v + eps) * d
        acc_delta[i] = acc_delta[i] * rho + w * (delta * delta)
        params[i] -= lr * delta


cdef void adam_step(floating* params, const floating* grads, floating* exp_avg,
                    floating* exp_avg_sq, floating* max_exp_avg_sq, Py_ssize_t n,
                    const AdamHyper* h) noexcept nogil:
    """Adam: d = g + wd p.  AdamW (decoupled): d = g, p *= 1 − lr wd.
    m = lerp(m, d, 1 − β1); v = β2 v + (1 − β2) d²; amsgrad: v̄ = max(v̄, v) used for v;
    p -= step_size · m / (√v / bc2_sqrt + eps).
    Contract: h.step_size = lr / (1 − β1ᵗ), h.bc2_sqrt = √(1 − β2ᵗ) by the caller."""
    cdef floating wd = 0 if h.decoupled else <floating> h.weight_decay
    cdef floating decay = <floating> (1.0 - h.lr * h.weight_decay) if h.decoupled else 1
    cdef floating w1 = <floating> (1.0 - h.beta1), beta2 = <floating> h.beta2
    cdef floating w2 = <floating> (1.0 - h.beta2), eps = <floating> h.eps
    cdef floating step_size = <floating> h.step_size, bc2 = <floating> h.bc2_sqrt
    cdef floating d, m, v, p
    cdef Py_ssize_t i
    for i in range(n):
        p = params[i] * decay
        d = grads[i] + wd * p
        m = _lerp(exp_avg[i], d, w1)
        exp_avg[i] = m
        v = exp_avg_sq[i] * beta2 + w2 * (d * d)
        exp_avg_sq[i] = v
        if max_exp_avg_sq != NULL:
            if max_exp_avg_sq[i] > v:
                v = max_exp_avg_sq[i]
            max_exp_avg_sq[i] = v
        params[i] = p - step_size * (m / (_sqrt(v) / bc2 + eps))


cdef double sq_norm(const floating* x, Py_ssize_t n) noexcept nogil:
    """Σ x², accumulated in double over four interleaved partial sums."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        s0 += <double> x[i] * x[i]
        s1 += <double> x[i + 1] * x[i + 1]
        s2 += <double> x[i + 2] * x[i + 2]
        s3 += <double> x[i + 3] * x[i + 3]
        i += 4
    while i < n:
        s0 += <double> x[i] * x[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef void scale(floating* x, Py_ssize_t n, floating a) noexcept nogil:
    """x *= a in place."""
    cdef Py_ssize_t i
    for i in range(n):
        x[i] *= a


# --- thin wrappers (memoryviews in; the same signatures as fastmlp.reference.optim) --------

cdef int _check(Py_ssize_t n, str name, Py_ssize_t m) except -1:
    if m != n:
        raise ValueError(f"{name} has {m} elements, params has {n}")
    return 0


cdef inline floating* _ptr(floating[::1] a, Py_ssize_t n, str name) except? NULL:
    """Pointer to a state buffer of n elements; NULL when the buffer is None."""
    if a is None:
        return NULL
    _check(n, name, a.shape[0])
    return &a[0] if n > 0 else NULL


cdef int _step_check(Py_ssize_t step) except -1:
    if step < 1:
        raise ValueError(f"step must be >= 1 (steps count from 1), got {step}")
    return 0


def sgd_step_memview(floating[::1] params, const floating[::1] grads,
                     floating[::1] momentum_buffer, Py_ssize_t step, *, double lr,
                     double momentum=0.0, double dampening=0.0, bint nesterov=False,
                     double weight_decay=0.0):
    """One torch.optim.SGD step in place; momentum_buffer None means no momentum."""
    cdef Py_ssize_t n = params.shape[0]
    _step_check(step)
    _check(n, "grads", grads.shape[0])
    cdef floating* buf = _ptr(momentum_buffer, n, "momentum_buffer")
    cdef SGDHyper h = SGDHyper(lr, momentum, dampening, weight_decay, nesterov, False)
    if n == 0:
        return
    with nogil:
        sgd_prepare(&h, step)
        sgd_step(&params[0], &grads[0], buf, n, &h)


def adagrad_step_memview(floating[::1] params, const floating[::1] grads,
                         floating[::1] state_sum, Py_ssize_t step, *, double lr,
                         double lr_decay=0.0, double weight_decay=0.0, double eps=1e-10):
    """One torch.optim.Adagrad step in place (step t counts from 1)."""
    cdef Py_ssize_t n = params.shape[0]
    _step_check(step)
    _check(n, "grads", grads.shape[0])
    _check(n, "state_sum", state_sum.shape[0])
    cdef AdagradHyper h = AdagradHyper(lr, lr_decay, weight_decay, eps, lr)
    if n == 0:
        return
    with nogil:
        adagrad_prepare(&h, step)
        adagrad_step(&params[0], &grads[0], &state_sum[0], n, &h)


def rmsprop_step_memview(floating[::1] params, const floating[::1] grads,
                         floating[::1] square_avg, floating[::1] grad_avg,
                         floating[::1] momentum_buffer, Py_ssize_t step, *, double lr,
                         double alpha=0.99, double eps=1e-8, double weight_decay=0.0,
                         double momentum=0.0):
    """One torch.optim.RMSprop step in place; grad_avg None = not centered,
    momentum_buffer None = no momentum. ``step`` is unused (no bias correction)."""
    cdef Py_ssize_t n = params.shape[0]
    _step_check(step)
    _check(n, "grads", grads.shape[0])
    _check(n, "square_avg", square_avg.shape[0])
    cdef floating* ga = _ptr(grad_avg, n, "grad_avg")
    cdef floating* buf = _ptr(momentum_buffer, n, "momentum_buffer")
    cdef RMSpropHyper h = RMSpropHyper(lr, alpha, eps, weight_decay, momentum)
    if n == 0:
        return
    with nogil:
        rmsprop_step(&params[0], &grads[0], &square_avg[0], ga, buf, n, &h)


def adadelta_step_memview(floating[::1] params, const floating[::1] grads,
                          floating[::1] square_avg, floating[::1] acc_delta,
                          Py_ssize_t step, *, double lr=1.0, double rho=0.9, double eps=1e-6,
                          double weight_decay=0.0):
    """One torch.optim.Adadelta step in place. ``step`` is unused."""
    cdef Py_ssize_t n = params.shape[0]
    _step_check(step)
    _check(n, "grads", grads.shape[0])
    _check(n, "square_avg", square_avg.shape[0])
    _check(n, "acc_delta", acc_delta.shape[0])
    cdef AdadeltaHyper h = AdadeltaHyper(lr, rho, eps, weight_decay)
    if n == 0:
        return
    with nogil:
        adadelta_step(&params[0], &grads[0], &square_avg[0], &acc_delta[0], n, &h)


def adam_step_memview(floating[::1] params, const floating[::1] grads,
                      floating[::1] exp_avg, floating[::1] exp_avg_sq,
                      floating[::1] max_exp_avg_sq, Py_ssize_t step, *, double lr,
                      double beta1=0.9, double beta2=0.999, double eps=1e-8,
                      double weight_decay=0.0, bint decoupled=False):
    """One torch.optim.Adam (decoupled=False) / AdamW (decoupled=True) step in place;
    max_exp_avg_sq None = no amsgrad."""
    cdef Py_ssize_t n = params.shape[0]
    _step_check(step)
    _check(n, "grads", grads.shape[0])
    _check(n, "exp_avg", exp_avg.shape[0])
    _check(n, "exp_avg_sq", exp_avg_sq.shape[0])
    cdef floating* vmax = _ptr(max_exp_avg_sq, n, "max_exp_avg_sq")
    cdef AdamHyper h = AdamHyper(lr, beta1, beta2, eps, weight_decay, decoupled, lr, 1.0)
    if n == 0:
        return
    with nogil:
        adam_prepare(&h, step)
        adam_step(&params[0], &grads[0], &exp_avg[0], &exp_avg_sq[0], vmax, n, &h)


def sq_norm_memview(const floating[::1] x):
    """Σ x² (accumulated in double)."""
    cdef double s = 0.0
    if x.shape[0] == 0:
        return s
    with nogil:
        s = sq_norm(&x[0], x.shape[0])
    return s


def scale_memview(floating[::1] x, double a):
    """x *= a in place."""
    if x.shape[0] == 0:
        return
    with nogil:
        scale(&x[0], x.shape[0], <floating> a)
