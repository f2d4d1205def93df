"""Optimizer update kernels over the flat parameter arena (torch.optim update rules).

One kernel per family (C, ``include/fastmlp/optim.h``); Adam and AdamW are one kernel
(``decoupled``), SGD with or without momentum/Nesterov is one kernel. Every kernel is a
single fused pass over contiguous memory, split over the core's threads for large arenas;
the step-dependent scalars are computed by the caller (``*_prepare``) and passed in the
hyperparameter struct. The ``*_memview`` functions are thin wrappers used by the tests and by
``fastmlp.optim``; ``fastmlp.reference.optim`` holds their NumPy twins (same signatures).
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport sqrt, pow

from fastmlp._blas cimport num_threads, pool_run

cdef extern from "fastmlp/optim.h" nogil:
    ctypedef void (*fm_task_fn)(void* ctx, Py_ssize_t chunk, int slot) noexcept nogil
    ctypedef void (*fm_pool_run_fn)(int threads, Py_ssize_t n, fm_task_fn fn,
                                    void* ctx) noexcept nogil
    void fm_optim_use_pool(fm_pool_run_fn run)
    void fm_sgd_f32(float* p, const float* g, float* buf, Py_ssize_t n, const SGDHyper* h,
                    int threads)
    void fm_sgd_f64(double* p, const double* g, double* buf, Py_ssize_t n,
                    const SGDHyper* h, int threads)
    void fm_adagrad_f32(float* p, const float* g, float* s, Py_ssize_t n,
                        const AdagradHyper* h, int threads)
    void fm_adagrad_f64(double* p, const double* g, double* s, Py_ssize_t n,
                        const AdagradHyper* h, int threads)
    void fm_rmsprop_f32(float* p, const float* g, float* sq, float* avg, float* buf,
                        Py_ssize_t n, const RMSpropHyper* h, int threads)
    void fm_rmsprop_f64(double* p, const double* g, double* sq, double* avg, double* buf,
                        Py_ssize_t n, const RMSpropHyper* h, int threads)
    void fm_adadelta_f32(float* p, const float* g, float* sq, float* acc, Py_ssize_t n,
                         const AdadeltaHyper* h, int threads)
    void fm_adadelta_f64(double* p, const double* g, double* sq, double* acc, Py_ssize_t n,
                         const AdadeltaHyper* h, int threads)
    void fm_adam_f32(float* p, const float* g, float* m, float* v, float* vmax,
                     Py_ssize_t n, const AdamHyper* h, int threads)
    void fm_adam_f64(double* p, const double* g, double* m, double* v, double* vmax,
                     Py_ssize_t n, const AdamHyper* h, int threads)
    int fm_all_finite_f32(const float* x, Py_ssize_t n, int threads)
    int fm_all_finite_f64(const double* x, Py_ssize_t n, int threads)


fm_optim_use_pool(<fm_pool_run_fn> pool_run)   # split passes run on _blas's team


# --- step-dependent scalars (the caller's side of the kernel contract) ---------------------

cdef void sgd_prepare(SGDHyper* h, Py_ssize_t t) noexcept nogil:
    h.first = t == 1


cdef void adagrad_prepare(AdagradHyper* h, Py_ssize_t t) noexcept nogil:
    h.clr = h.lr / (1.0 + (t - 1) * h.lr_decay)


cdef void adam_prepare(AdamHyper* h, Py_ssize_t t) noexcept nogil:
    h.step_size = h.lr / (1.0 - pow(h.beta1, <double> t))
    h.bc2_sqrt = sqrt(1.0 - pow(h.beta2, <double> t))


# --- kernels (the rules are written out in include/fastmlp/optim_template.h) ----------------

cdef void sgd_step(floating* params, const floating* grads, floating* buf,
                   Py_ssize_t n, const SGDHyper* h) noexcept nogil:
    """d = g + wd p; b = d (first step) or mu b + (1 - dampening) d;
    p -= lr (d + mu b) with Nesterov, else p -= lr b. Without buf: p -= lr d.
    Contract: h.first is set by the caller (sgd_prepare)."""
    if floating is float:
        fm_sgd_f32(params, grads, buf, n, h, num_threads())
    else:
        fm_sgd_f64(params, grads, buf, n, h, num_threads())


cdef void adagrad_step(floating* params, const floating* grads, floating* state_sum,
                       Py_ssize_t n, const AdagradHyper* h) noexcept nogil:
    """d = g + wd p; s += d²; p -= clr d / (√s + eps).
    Contract: h.clr = lr / (1 + (t - 1) lr_decay) is computed by the caller."""
    if floating is float:
        fm_adagrad_f32(params, grads, state_sum, n, h, num_threads())
    else:
        fm_adagrad_f64(params, grads, state_sum, n, h, num_threads())


cdef void rmsprop_step(floating* params, const floating* grads, floating* square_avg,
                       floating* grad_avg, floating* buf, Py_ssize_t n,
                       const RMSpropHyper* h) noexcept nogil:
    """d = g + wd p; v = α v + (1 − α) d²; centered: m = lerp(m, d, 1 − α), v̂ = v − m²;
    a = √v̂ + eps; momentum: b = μ b + d / a, p -= lr b; else p -= lr d / a.
    Contract: no step-dependent scalars; grad_avg NULL = not centered, buf NULL = no momentum."""
    if floating is float:
        fm_rmsprop_f32(params, grads, square_avg, grad_avg, buf, n, h, num_threads())
    else:
        fm_rmsprop_f64(params, grads, square_avg, grad_avg, buf, n, h, num_threads())


cdef void adadelta_step(floating* params, const floating* grads, floating* square_avg,
                        floating* acc_delta, Py_ssize_t n,
                        const AdadeltaHyper* h) noexcept nogil:
    """d = g + wd p; v = ρ v + (1 − ρ) d²; δ = √(u + eps) / √(v + eps) · d;
    u = ρ u + (1 − ρ) δ²; p -= lr δ.  Contract: no step-dependent scalars."""
    if floating is float:
        fm_adadelta_f32(params, grads, square_avg, acc_delta, n, h, num_threads())
    else:
        fm_adadelta_f64(params, grads, square_avg, acc_delta, n, h, num_threads())


cdef void adam_step(floating* params, const floating* grads, floating* exp_avg,
                    floating* exp_avg_sq, floating* max_exp_avg_sq, Py_ssize_t n,
                    const AdamHyper* h) noexcept nogil:
    """Adam: d = g + wd p.  AdamW (decoupled): d = g, p *= 1 − lr wd.
    m = lerp(m, d, 1 − β1); v = β2 v + (1 − β2) d²; amsgrad: v̄ = max(v̄, v) used for v;
    p -= step_size · m / (√v · inv_bc2 + eps), inv_bc2 = 1 / bc2_sqrt rounded to the type.
    Contract: h.step_size = lr / (1 − β1ᵗ), h.bc2_sqrt = √(1 − β2ᵗ) by the caller."""
    if floating is float:
        fm_adam_f32(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, n, h, num_threads())
    else:
        fm_adam_f64(params, grads, exp_avg, exp_avg_sq, max_exp_avg_sq, n, h, num_threads())


cdef bint all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """True when no element is NaN or ±inf."""
    if floating is float:
        return fm_all_finite_f32(x, n, num_threads())
    else:
        return fm_all_finite_f64(x, n, num_threads())


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


cnp.import_array()

# Input checks below this many elements run on the calling thread. A check comes at the
# start of a fit or predict, when the core's OpenMP team is asleep: waking it costs tens
# of µs on an idle machine and milliseconds when the other core is busy, more than
# splitting a read of a few MB saves.
cdef Py_ssize_t INPUT_CHECK_SPLIT_MIN = 1 << 22


def array_is_finite(cnp.ndarray x):
    """True when the C-contiguous float32/float64 array x (any shape) has no NaN or ±inf.
    The entry point of the input checks: no memoryview, no temporary; split over the
    core's threads from INPUT_CHECK_SPLIT_MIN elements."""
    if not (cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISALIGNED(x)):
        raise ValueError("x must be C-contiguous and aligned")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef void* data = cnp.PyArray_DATA(x)
    cdef bint ok = True
    cdef int threads
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if n == 0:
        return True
    with nogil:
        threads = num_threads() if n >= INPUT_CHECK_SPLIT_MIN else 1
        if typenum == cnp.NPY_FLOAT32:
            ok = fm_all_finite_f32(<const float*> data, n, threads)
        else:
            ok = fm_all_finite_f64(<const double*> data, n, threads)
    return ok


def all_finite_memview(const floating[::1] x):
    """True when no element is NaN or ±inf."""
    cdef bint ok = True
    if x.shape[0] == 0:
        return ok
    with nogil:
        ok = all_finite(&x[0], x.shape[0])
    return ok


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


def matrix_ready(x, dtype, Py_ssize_t n_cols, bint finite=True):
    """True when ``x`` can go to the core as it is: a 2-D ndarray of ``dtype`` (float32 or
    float64) with at least one row and ``n_cols`` columns, C-contiguous, aligned, and (with
    ``finite``; a caller that checks later passes False) every value finite. One call
    instead of the general conversion and checks (the fast path of predict on the arrays
    users pass most often); False sends the caller to those."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray> x
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(a)
    if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIMS(a)[1] != n_cols or n == 0 \
            or not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)) \
            or (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) \
            or typenum != dtype.num or not cnp.PyArray_ISNOTSWAPPED(a):
        return False
    if not finite:
        return True
    if n >= INPUT_CHECK_SPLIT_MIN:
        return array_is_finite(a)
    if typenum == cnp.NPY_FLOAT32:
        return fm_all_finite_f32(<const float*> cnp.PyArray_DATA(a), n, 1)
    return fm_all_finite_f64(<const double*> cnp.PyArray_DATA(a), n, 1)
