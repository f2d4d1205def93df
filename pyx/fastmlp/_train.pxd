# The fused training step: gather a mini-batch by index, forward, loss, backward, update.
# The pieces after backward (penalties, finiteness check, update, constraints), the guard
# around a GIL-free run (thread count, subnormal flush) and the checks at the Python
# boundary are shared by every fused loop (this module's Runner, _graph_train's GraphRunner).
from cython cimport floating
from fastmlp._optim cimport SGDHyper, AdagradHyper, RMSpropHyper, AdadeltaHyper, AdamHyper
from fastmlp._lamb cimport LambHyper
from fastmlp._regularize cimport ConstraintRange, PenaltyRange

cdef extern from "fastmlp/governor.h" nogil:
    ctypedef struct fm_governor:
        pass

cpdef enum OptFamily:
    OPT_SGD = 0
    OPT_ADAGRAD = 1
    OPT_RMSPROP = 2
    OPT_ADADELTA = 3
    OPT_ADAM = 4
    OPT_LAMB = 5                 # per-tensor kernel (fastmlp._lamb): needs the tensor ranges

# One optimizer bound to one arena: its family, hyperparameters, state buffers, step count.
ctypedef struct OptSlot:
    int family
    Py_ssize_t* t                # the optimizer's step count (steps taken so far, its own
                                 # memory): opt_apply takes step *t + 1 and counts it there
    SGDHyper sgd
    AdagradHyper adagrad
    RMSpropHyper rmsprop
    AdadeltaHyper adadelta
    AdamHyper adam
    void* s0                     # state buffers of n elements each, NULL when unused
    void* s1
    void* s2
    LambHyper lamb
    const Py_ssize_t* ranges     # OPT_LAMB: (offset, size) of each parameter tensor
    Py_ssize_t n_ranges

# The regularization tables of a run (checked against the arena by reg_tables).
ctypedef struct Regularization:
    const PenaltyRange* pen      # weight penalties (added after backward), or NULL
    Py_ssize_t n_pen
    const ConstraintRange* con   # weight constraints (applied after the update), or NULL
    Py_ssize_t n_con

ctypedef struct Progress:
    double loss_sum              # Σ over steps of (batch loss × batch rows)
    Py_ssize_t rows              # rows seen
    Py_ssize_t steps             # steps completed
    Py_ssize_t bad_step          # index (in the chunk) of a step with a non-finite loss or
                                 # gradient, or -1; the run stops before that step's update
    double bad_value             # that step's loss

# What a run changes in the calling thread, put back by guard_leave.
ctypedef struct RunGuard:
    int threads                  # the thread override in force before the run
    unsigned fp_mode             # the floating-point mode before the run
    fm_governor* gov             # the governor steering the run's thread count, or NULL

cdef class Governor:
    cdef fm_governor g
    cdef bint ready
    cdef fm_governor* _start(self)

cdef void opt_apply(OptSlot* o, floating* params, const floating* grads,
                    Py_ssize_t n) noexcept nogil
# After backward: penalties, then (unless the loss or a gradient is not finite: returns
# False, the step recorded as out's bad step) the update, the constraints, the tally.
# grads_bad: -1 when unknown (the gradients are checked here), else whether backward found
# a non-finite gradient while writing them (Exec.grad_bad).
cdef bint finish_step(OptSlot* o, const Regularization* reg, floating* params,
                      floating* grads, Py_ssize_t n, double value, Py_ssize_t rows,
                      Progress* out, int grads_bad=*) noexcept nogil
# Start / end of a GIL-free run: the governor's thread count, the subnormal flush.
cdef int guard_enter(RunGuard* r, Governor governor) except -1
cdef void guard_leave(const RunGuard* r) noexcept
# After a step: the governor's next thread count (nothing when gov is NULL).
cdef void governor_tick(fm_governor* gov) noexcept nogil

# --- the Python boundary --------------------------------------------------------------------
cdef void* _data_ptr(object arr) except? NULL
cdef int _check_array(a, str name, dtype, int ndim, Py_ssize_t cols,
                      Py_ssize_t rows=*) except -1
cdef object _check_perm(perm, Py_ssize_t n_rows)
# Binds ``binding`` (family, hyper, states, t) into o; returns what must stay alive.
cdef tuple bind_optimizer(OptSlot* o, binding, dtype, Py_ssize_t n_params)
# Checks and points reg at the penalty and constraint tables; returns them (kept alive).
cdef tuple reg_tables(Regularization* reg, penalties, constraints, Py_ssize_t n_params)
