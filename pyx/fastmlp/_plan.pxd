# The compiled model plan: layer descriptors over one parameter arena, and the
# forward/backward executor that runs a whole stack of layers without the GIL.
from cython cimport floating

cpdef enum LayerKind:
    K_DENSE = 0      # Z = X W + b, A = act(Z)
    K_ACT = 1        # A = act(X)
    K_PRELU = 2      # A = X if X > 0 else slope * X (learnable slope, shared or per unit)
    K_SOFTMAX = 3    # A = softmax(X) row-wise
    K_MAXOUT = 4     # Z = X W + b (n_out * pieces columns), A = max over each unit's pieces

ctypedef struct LayerDesc:
    int kind
    int act                  # fm_act code (K_DENSE, K_ACT)
    double alpha             # activation parameter (leaky slope, ELU alpha)
    Py_ssize_t n_in
    Py_ssize_t n_out
    Py_ssize_t pieces        # K_MAXOUT: pieces per unit; K_PRELU: number of slopes
    Py_ssize_t w_off         # arena offset of W (or PReLU slopes); -1 when none
    Py_ssize_t b_off         # arena offset of b; -1 when none
    Py_ssize_t z_col         # workspace column of Z (pre-activation); == a_col when Z is A
    Py_ssize_t a_col         # workspace column of A (the layer output)

# Everything one pass needs; pointers are typed by the caller (float or double).
ctypedef struct Exec:
    const LayerDesc* layers
    Py_ssize_t n_layers
    Py_ssize_t n_params      # length of the arena
    Py_ssize_t batch
    Py_ssize_t work_cols     # row width of the activation workspace (sum of block widths)
    Py_ssize_t scratch_cols  # row width of one gradient scratch buffer
    void* params
    void* grads
    void* work               # activations: block of layer i at work + batch * col
    void* scratch            # 3 gradient buffers of batch * scratch_cols each

cdef void plan_forward(const Exec* e, const floating* X) noexcept nogil
cdef void plan_backward(const Exec* e, const floating* X, const floating* dY,
                        floating* dX) noexcept nogil


cdef class Plan:
    cdef LayerDesc* descs
    cdef Exec ex
    cdef object params, grads, work, scratch, x_ref
    cdef readonly Py_ssize_t n_in, n_out, capacity, n_layers
    cdef readonly object dtype
    cdef readonly bint ready
    cdef bint f32
    cdef int reserve(self, Py_ssize_t batch) except -1
    cdef int _check_input(self, X, str name, Py_ssize_t width) except -1
