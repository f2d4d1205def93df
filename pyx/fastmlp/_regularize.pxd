# Weight penalties (added to the loss and its gradient after backward) and weight constraints
# (projections applied to the parameters after the optimizer update), over the flat arena,
# float32 and float64.
#
# The executor describes WHERE they apply by tables of ranges (offsets into the arena), built
# once per fit from the Python side (``fastmlp.regularizers``: ``pen._ranges(model)``,
# ``c._range(offset, n_in, n_out)``) and packed by ``penalty_table`` / ``constraint_table``
# into NumPy structured arrays whose rows are these structs. Kernels assume valid tables.
from cython cimport floating


ctypedef struct PenaltyRange:
    Py_ssize_t offset       # first arena element of the range
    Py_ssize_t n            # number of elements
    double l1               # value += l1 Σ|w|,    grad += l1 sign(w)
    double l2               # value += l2/2 Σw²,   grad += l2 w
    double l1_prox          # value += l1_prox Σ|w|, no gradient: a proximal L1, whose soft
                            # threshold is a C_SOFT_THRESHOLD constraint after the update
    Py_ssize_t partner      # arena offset of the n elements tied to these (TyingPenalty), or -1
    double tie              # value += tie Σ(w − w_p)², grad += 2 tie (w − w_p),
                            # grad_p −= 2 tie (w − w_p)   (w_p: the partner's elements)

cpdef enum ConstraintKind:
    C_MAXNORM = 0           # every column of the (n_in, n_out) block: ‖W[:, j]‖₂ <= value
    C_NONNEG = 1            # every element of the n_in · n_out block: w >= 0 (value unused)
    C_SOFT_THRESHOLD = 2    # every element of the n_in · n_out block:
                            # w = sign(w) max(|w| − value, 0)  (proximal L1; value = lr · l1)

ctypedef struct ConstraintRange:
    int kind                # a ConstraintKind
    Py_ssize_t offset       # arena offset of the row-major (n_in, n_out) block
    Py_ssize_t n_in
    Py_ssize_t n_out
    double value            # C_MAXNORM: max_value


# l1 Σ|w| + (l2/2) Σw² over w[0:n] (accumulated in double); when grad != NULL also
# grad += l1 sign(w) + l2 w, with sign(0) = 0 (the subgradient 0 at the kink of |w|).
cdef double penalty_value_grad(const floating* w, floating* grad, Py_ssize_t n,
                               double l1, double l2) noexcept nogil
# tie Σ(a − b)² over a[0:n], b[0:n] (in double); when ga != NULL also ga += 2 tie (a − b)
# and gb −= 2 tie (a − b). The ranges must not overlap.
cdef double tie_value_grad(const floating* a, const floating* b, floating* ga, floating* gb,
                           Py_ssize_t n, double tie) noexcept nogil
# Σ over the ranges of penalty_value_grad, l1_prox Σ|w| and the tie term; grads NULL: value
# only.
cdef double penalties_apply(const PenaltyRange* r, Py_ssize_t n_ranges,
                            const floating* params, floating* grads) noexcept nogil

# Columns of the row-major (n_in, n_out) W with ‖W[:, j]‖₂ > max_value are scaled by
# max_value / ‖W[:, j]‖₂ (exactly onto the ball); the other columns are not touched.
cdef void maxnorm_columns(floating* W, Py_ssize_t n_in, Py_ssize_t n_out,
                          double max_value) noexcept nogil
# w = max(w, 0) elementwise (NaN stays NaN).
cdef void nonneg(floating* w, Py_ssize_t n) noexcept nogil
# w = sign(w) max(|w| − threshold, 0) elementwise (exact zeros; NaN stays NaN).
cdef void soft_threshold(floating* w, Py_ssize_t n, double threshold) noexcept nogil
# Every constraint of the table, in order.
cdef void constraints_apply(const ConstraintRange* c, Py_ssize_t n_c,
                            floating* params) noexcept nogil
