# The graph executor (_graph.pyx): a model's nodes in topological order, each a segment (a
# chain of library layers run by its Plan) or a merge, over numbered tensors whose values and
# gradients live in blocks of one workspace planned by liveness (fastmlp/_graph_build.py).
from cython cimport floating
from fastmlp._plan cimport Exec

cpdef enum GraphOp:
    G_SEGMENT = 0    # a chain of library layers (a Plan)
    G_ADD = 1        # Y = X_0 + X_1 + ...
    G_SUB = 2        # Y = X_0 - X_1
    G_MUL = 3        # Y = X_0 * X_1 * ...
    G_CONCAT = 4     # Y = [X_0 | X_1 | ...]

cpdef enum TensorHome:
    T_INPUT = 0      # value (and gradient) in the caller's arrays
    T_SEGMENT = 1    # value: the last block of its segment's workspace
    T_SLOT = 2       # value: a block of this executor's workspace

ctypedef struct GNode:
    int op
    Py_ssize_t seg           # G_SEGMENT: index of its plan
    Py_ssize_t first_in      # index of its first input edge
    Py_ssize_t n_in
    Py_ssize_t out           # its output tensor

ctypedef struct GTensor:
    int home                 # TensorHome
    Py_ssize_t width
    Py_ssize_t seg           # T_SEGMENT: the segment computing it
    Py_ssize_t val_col       # T_SLOT: workspace column of the value
    Py_ssize_t grad_col      # workspace column of the gradient, -1: the caller's array
    void* val                # pointers for the current batch (bind_batch)
    void* grad

ctypedef struct GraphExec:
    GNode* nodes
    Py_ssize_t n_nodes
    GTensor* tensors
    Py_ssize_t* edge_tensor  # input tensor of each edge
    char* edge_accum         # backward adds into that tensor's gradient (else writes it)
    Exec** segs              # each segment's plan executor
    Py_ssize_t n_segs
    Py_ssize_t* seg_col      # workspace column (of its plan) of each segment's output
    void** ptrs              # scratch: the input pointers of one merge
    void* work
    Py_ssize_t tmp_col       # a block for a segment's dX before it is added (fan-out)
    Py_ssize_t batch


# The passes (also run by the fused training loop, fastmlp._graph_train): bind the blocks
# for a batch of B rows, forward, seed the outputs' gradients, backward.
cdef void bind_batch(GraphExec* g, Py_ssize_t B, floating* work) noexcept nogil
cdef void graph_forward(const GraphExec* g, floating* work) noexcept nogil
cdef void seed_grads(GraphExec* g, const Py_ssize_t* out_ids, const char* modes,
                     floating** dY, Py_ssize_t n_out) noexcept nogil
cdef void graph_backward(const GraphExec* g, floating* work) noexcept nogil


cdef class Graph:
    cdef GraphExec g
    cdef list plans
    cdef object work, x_refs
    cdef Py_ssize_t* in_ids
    cdef Py_ssize_t* out_ids
    cdef char* modes
    cdef void** io                       # scratch: the caller's input (or dX) arrays
    cdef void** outp                     # scratch: the caller's dY (or output) arrays
    cdef readonly Py_ssize_t n_inputs, n_outputs, work_cols, capacity
    cdef Py_ssize_t n_tensors
    cdef object chain_work               # predict's per-thread workspaces (_predict_runs)
    cdef Py_ssize_t chain_rows, chain_threads
    cdef readonly object dtype
    cdef readonly bint ready
    cdef bint f32
    cdef int typenum
    cdef _set_plans(self, list plans)
    cdef _set_tensors(self, list tensors, Py_ssize_t work_cols)
    cdef _set_nodes(self, list nodes, list edge_accum, Py_ssize_t n_tensors)
    cdef _set_io(self, list inputs, list outputs, list seed_modes, Py_ssize_t n_tensors)
    cdef Py_ssize_t _check_arrays(self, list arrays, Py_ssize_t* ids, Py_ssize_t count,
                                  str name, Py_ssize_t rows, void** ptrs) except -2
    cdef int _reserve(self, Py_ssize_t batch) except -1
    cdef int _predict_runs(self, Py_ssize_t n, Py_ssize_t chunk, int threads) except -1
