# The fused training step: gather a mini-batch by index, forward, loss, backward, update.
from cython cimport floating
from fastmlp._optim cimport SGDHyper, AdagradHyper, RMSpropHyper, AdadeltaHyper, AdamHyper
from fastmlp._lamb cimport LambHyper

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
    Py_ssize_t t                 # steps taken so far; opt_apply takes step t + 1
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

cdef void opt_apply(OptSlot* o, floating* params, const floating* grads,
                    Py_ssize_t n) noexcept nogil
