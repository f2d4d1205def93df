# Loss kernels: value and gradient of each loss over an (n, d) row-major block, fused.
#
# Common contract of every kernel (pred is (n, d) row-major, n >= 1, d >= 1):
#   returns scale * sum_i w_i * l_i, accumulated in double, where l_i is row i's loss
#   (PyTorch's reduction='none' value summed over the row) and w_i = row_weight[i], or 1
#   when row_weight is NULL;
#   when grad != NULL, overwrites grad (n, d) with scale * w_i * dl_i/dpred[i, :].
#   grad may alias pred (each row is read before it is written); it may not alias target.
# The caller picks scale: batch_scale() gives PyTorch's 'mean' (mean_scale) or 'sum' (1).
# Inputs are assumed valid (finite, labels in [0, d)): validation is done in Python.
from cython cimport floating

cpdef enum LossCode:
    LOSS_MSE = 0
    LOSS_L1 = 1
    LOSS_HUBER = 2
    LOSS_BCE_WITH_LOGITS = 3
    LOSS_CROSS_ENTROPY = 4
    LOSS_MULTI_MARGIN = 5
    LOSS_N_CODES = 6

# What the dispatcher needs to know about a loss besides the batch; built once per model
# (a Python dict with these keys coerces to it: `cdef LossSpec s = loss._spec(d)`).
ctypedef struct LossSpec:
    int code                   # a LossCode
    Py_ssize_t n_outputs       # d: columns of pred (classes for cross-entropy / margin)
    double delta               # HuberLoss
    double label_smoothing     # CrossEntropyLoss
    double margin              # MultiMarginLoss
    int reduction              # a Reduction: how a batch of n rows is scaled (batch_scale)

# PyTorch's reduction of a loss over a batch ('none' is not a kernel mode: the Python layer
# computes unreduced values, and refuses it for training).
cpdef enum Reduction:
    REDUCTION_MEAN = 0
    REDUCTION_SUM = 1

cdef double mse(const floating* pred, const floating* target, const floating* row_weight,
                floating* grad, Py_ssize_t n, Py_ssize_t d, double scale) noexcept nogil
cdef double l1(const floating* pred, const floating* target, const floating* row_weight,
               floating* grad, Py_ssize_t n, Py_ssize_t d, double scale) noexcept nogil
cdef double huber(const floating* pred, const floating* target, const floating* row_weight,
                  floating* grad, Py_ssize_t n, Py_ssize_t d, double scale,
                  double delta) noexcept nogil
cdef double bce_with_logits(const floating* pred, const floating* target,
                            const floating* row_weight, floating* grad, Py_ssize_t n,
                            Py_ssize_t d, double scale) noexcept nogil
cdef double cross_entropy_labels(const floating* pred, const long long* labels,
                                 const floating* row_weight, floating* grad, Py_ssize_t n,
                                 Py_ssize_t c, double scale,
                                 double label_smoothing) noexcept nogil
cdef double cross_entropy_probs(const floating* pred, const floating* target,
                                const floating* row_weight, floating* grad, Py_ssize_t n,
                                Py_ssize_t c, double scale,
                                double label_smoothing) noexcept nogil
cdef double multi_margin(const floating* pred, const long long* labels,
                         const floating* row_weight, floating* grad, Py_ssize_t n,
                         Py_ssize_t c, double scale, double margin) noexcept nogil

# PyTorch's 'mean' scale for n rows: 1/(n*d) for elementwise losses, 1/n for CE / margin.
cdef double mean_scale(const LossSpec* spec, Py_ssize_t n) noexcept nogil
# The scale spec.reduction asks for: mean_scale for REDUCTION_MEAN, 1 for REDUCTION_SUM.
cdef double batch_scale(const LossSpec* spec, Py_ssize_t n) noexcept nogil

# One entry point for an executor: pred/grad are (n, spec.n_outputs); pass `labels` (and
# target=NULL) for class-label targets, `target` (and labels=NULL) otherwise.
cdef double loss_value_grad(const LossSpec* spec, const floating* pred,
                            const floating* target, const long long* labels,
                            const floating* row_weight, floating* grad, Py_ssize_t n,
                            double scale) noexcept nogil
