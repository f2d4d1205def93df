# First-order optimizer updates over the flat parameter arena, float32 and float64.
#
# Each family has one kernel: ``<family>_step(params, grads, <state>, n, h)`` updates params
# and its state buffers in place in one pass over contiguous memory (C kernels in
# include/fastmlp/optim.h, split over the core's threads for large arenas). ``h`` holds the
# hyperparameters (torch.optim names) plus the step-dependent scalars (bias corrections,
# effective lr), which the CALLER computes for step t (t counts from 1) before each call,
# e.g. with ``<family>_prepare(&h, t)``; the kernel never knows t. A state pointer that is
# NULL switches its feature off (documented per kernel). All buffers have n elements.
from cython cimport floating

cdef extern from "fastmlp/optim_hyper.h" nogil:
    ctypedef struct SGDHyper "fm_sgd_hyper":
        double lr
        double momentum
        double dampening
        double weight_decay
        bint nesterov
        bint first          # per step: True on step 1 (momentum buffer := grad), by the caller

    ctypedef struct AdagradHyper "fm_adagrad_hyper":
        double lr
        double lr_decay
        double weight_decay
        double eps
        double clr          # per step: lr / (1 + (t - 1) * lr_decay), by the caller

    ctypedef struct RMSpropHyper "fm_rmsprop_hyper":
        double lr
        double alpha
        double eps
        double weight_decay
        double momentum

    ctypedef struct AdadeltaHyper "fm_adadelta_hyper":
        double lr
        double rho
        double eps
        double weight_decay

    ctypedef struct AdamHyper "fm_adam_hyper":
        double lr
        double beta1
        double beta2
        double eps
        double weight_decay
        bint decoupled      # False: Adam (grad += wd * p); True: AdamW (p *= 1 - lr * wd)
        double step_size    # per step: lr / (1 - beta1**t), by the caller
        double bc2_sqrt     # per step: sqrt(1 - beta2**t), by the caller


# Step-dependent scalars for step t >= 1 (the caller's side of the contract).
cdef void sgd_prepare(SGDHyper* h, Py_ssize_t t) noexcept nogil
cdef void adagrad_prepare(AdagradHyper* h, Py_ssize_t t) noexcept nogil
cdef void adam_prepare(AdamHyper* h, Py_ssize_t t) noexcept nogil

# buf may be NULL: plain SGD (momentum unused).
cdef void sgd_step(floating* params, const floating* grads, floating* buf,
                   Py_ssize_t n, const SGDHyper* h) noexcept nogil
cdef void adagrad_step(floating* params, const floating* grads, floating* state_sum,
                       Py_ssize_t n, const AdagradHyper* h) noexcept nogil
# grad_avg NULL: not centered; buf NULL: no momentum.
cdef void rmsprop_step(floating* params, const floating* grads, floating* square_avg,
                       floating* grad_avg, floating* buf, Py_ssize_t n,
                       const RMSpropHyper* h) noexcept nogil
cdef void adadelta_step(floating* params, const floating* grads, floating* square_avg,
                        floating* acc_delta, Py_ssize_t n,
                        const AdadeltaHyper* h) noexcept nogil
# max_exp_avg_sq NULL: no amsgrad.
cdef void adam_step(floating* params, const floating* grads, floating* exp_avg,
                    floating* exp_avg_sq, floating* max_exp_avg_sq, Py_ssize_t n,
                    const AdamHyper* h) noexcept nogil

# True when no element of x is NaN or ±inf.
cdef bint all_finite(const floating* x, Py_ssize_t n) noexcept nogil

# Gradient clipping: sum of squares (accumulated in double) and in-place scaling.
cdef double sq_norm(const floating* x, Py_ssize_t n) noexcept nogil
cdef void scale(floating* x, Py_ssize_t n, floating a) noexcept nogil
