# The ops table of the plan executor: one entry per LayerKind, looked up by kind (as BLIS
# looks up its kernels and block sizes in a context table). Included by _plan.pyx.
#
# The contract of an entry (every pointer is set; `tests/test_invariants.py` and the import
# of fastmlp._plan check it):
#   name                              the LayerKind member's name, for messages.
#   forward_f/_d(e, d, X, A)          A (e.batch, n_out) = the layer applied to X (e.batch,
#                                     n_in); the blocks the kind keeps for backward land in
#                                     the workspace. _f: float32, _d: float64.
#   backward_f/_d(e, d, X, dA, dX)
#                                     after forward on X: parameter gradients into e.grads
#                                     (written when e.fresh_grads, see grad_mode), dX written
#                                     when not NULL. dA may be overwritten; dX never aliases
#                                     dA. Kinds without parameters do nothing without dX.
#   sizes(d, s)                       arena entries at w_off and b_off, buffer entries at
#                                     s_off, widest gradient row in scratch.
#   layout(d, col)                    the workspace columns of the layer's blocks from col on
#                                     (a_col and the kind's own *_col); returns the next
#                                     free column.
#   read(d, spec)                     the kind's own fields popped from the dict spec and
#                                     checked (ValueError), so the kernels can trust them;
#                                     the fields of every kind are read before, a key left
#                                     over after is refused.
#   check_links(descs, n, i)          the layer against the others (residual markers); may
#                                     be NULL.
#   grad_mode                         GRADS_NONE, GRADS_WRITE (a GEMM writes W and b when
#                                     fresh; shared W slots accumulate, F_ACCUM_W) or
#                                     GRADS_ACCUMULATE (kernels add into w and b: zeroed
#                                     by zero_small_grads before a fresh backward).
from cython cimport floating
from libc.string cimport memcpy

from fastmlp._activations cimport act_backward, act_forward, FM_IDENTITY, FM_N_ACT
from fastmlp._augment cimport (fm_augment_backward_d, fm_augment_backward_f,
                               fm_augment_forward_d, fm_augment_forward_f)
from fastmlp._norm cimport (NormArgs, batchnorm_backward, batchnorm_backward_eval,
                            batchnorm_forward_eval, batchnorm_forward_train, layernorm_backward,
                            layernorm_forward)
from fastmlp._kernels cimport (act_backward_par, act_forward_par, add, dense_backward,
                               dense_forward, dropout_forward, maxout_reduce, maxout_scatter,
                               multiply, noise_forward, prelu_backward, prelu_forward,
                               softmax_backward, softmax_forward)

ctypedef void (*forward_f32)(const Exec* e, const LayerDesc* d, const float* X,
                             float* A) noexcept nogil
ctypedef void (*forward_f64)(const Exec* e, const LayerDesc* d, const double* X,
                             double* A) noexcept nogil
ctypedef void (*backward_f32)(const Exec* e, const LayerDesc* d, const float* X, float* dA,
                              float* dX) noexcept nogil
ctypedef void (*backward_f64)(const Exec* e, const LayerDesc* d, const double* X, double* dA,
                              double* dX) noexcept nogil

ctypedef struct Sizes:
    Py_ssize_t w             # arena entries at w_off
    Py_ssize_t b             # arena entries at b_off
    Py_ssize_t state         # buffer entries at s_off
    Py_ssize_t grad_cols     # widest gradient row backward keeps in scratch

cdef enum GradMode:
    GRADS_NONE = 0
    GRADS_WRITE = 1
    GRADS_ACCUMULATE = 2

ctypedef struct LayerOps:
    const char* name
    forward_f32 forward_f
    forward_f64 forward_d
    backward_f32 backward_f
    backward_f64 backward_d
    void (*sizes)(const LayerDesc* d, Sizes* s) noexcept nogil
    Py_ssize_t (*layout)(LayerDesc* d, Py_ssize_t col) noexcept nogil
    int (*read)(LayerDesc* d, dict spec) except -1
    int (*check_links)(const LayerDesc* descs, Py_ssize_t n, Py_ssize_t i) except -1
    int grad_mode

cdef LayerOps OPS[K_N_KINDS]


# --- shared pieces ---------------------------------------------------------------------------

cdef inline floating* block(const Exec* e, Py_ssize_t col, floating* base) noexcept nogil:
    return base + e.batch * col


cdef void _copy_fwd(const Exec* e, const LayerDesc* d, const floating* X,
                    floating* A) noexcept nogil:
    """The identity (residual begin; dropout, noise and augmentation outside training)."""
    memcpy(A, X, e.batch * d.n_out * sizeof(floating))


cdef void _copy_bwd(const Exec* e, const LayerDesc* d, const floating* X, floating* dA,
                    floating* dX) noexcept nogil:
    if dX != NULL:
        memcpy(dX, dA, e.batch * d.n_out * sizeof(floating))


cdef void _no_params(const LayerDesc* d, Sizes* s) noexcept nogil:
    s.w = s.b = s.state = 0
    s.grad_cols = d.n_out


cdef Py_ssize_t _out_only(LayerDesc* d, Py_ssize_t col) noexcept nogil:
    """Layout of a kind that keeps nothing but its output."""
    d.a_col = col
    return col + d.n_out


cdef object _need(const LayerDesc* d, dict spec, str key):
    """spec.pop(key) for a field the kind cannot do without."""
    if key not in spec:
        raise ValueError(f"{OPS[d.kind].name.decode()} needs {key!r}")
    return spec.pop(key)


cdef int _same_width(LayerDesc* d, dict spec) except -1:
    """read() of a kind that keeps the width and has no fields of its own."""
    if d.n_in != d.n_out:
        raise ValueError(f"{OPS[d.kind].name.decode()} must keep its width, got n_in={d.n_in}, "
                         f"n_out={d.n_out}")
    return 0


include "_ops_params.pxi"
include "_ops_elementwise.pxi"


# --- the table -------------------------------------------------------------------------------

cdef void _fill_ops() noexcept:
    """One complete entry per kind, each set next to its functions; a kind left out keeps
    NULL pointers (refused below, at import)."""
    _fill_params_ops()
    _fill_elementwise_ops()


cdef bint _entry_complete(const LayerOps* o) noexcept:
    return (o.name != NULL and o.forward_f != NULL and o.forward_d != NULL
            and o.backward_f != NULL and o.backward_d != NULL and o.sizes != NULL
            and o.layout != NULL and o.read != NULL)


def layer_ops():
    """The ops table as Python sees it: one dict per kind < K_N_KINDS (its name and which
    entries are set), for the completeness test."""
    cdef Py_ssize_t k
    cdef const LayerOps* o
    out = []
    for k in range(K_N_KINDS):
        o = &OPS[k]
        out.append(dict(
            kind=k, name=o.name.decode() if o.name != NULL else None,
            forward=o.forward_f != NULL and o.forward_d != NULL,
            backward=o.backward_f != NULL and o.backward_d != NULL, sizes=o.sizes != NULL,
            layout=o.layout != NULL, read=o.read != NULL, check_links=o.check_links != NULL,
            grad_mode=o.grad_mode, complete=_entry_complete(o)))
    return out


_fill_ops()
for _k in range(K_N_KINDS):
    if not _entry_complete(&OPS[_k]):
        raise ImportError(f"fastmlp._plan: layer kind {_k} has no complete ops-table entry "
                          f"(pyx/fastmlp/_layer_ops.pxi)")
