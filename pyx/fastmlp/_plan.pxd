# The compiled model plan: layer descriptors over one parameter arena, and the
# forward/backward executor that runs a whole stack of layers without the GIL.
from cython cimport floating
from fastmlp._augment cimport AugmentSpec

cpdef enum LayerKind:
    K_DENSE = 0      # Z = X W + b, A = act(Z)
    K_ACT = 1        # A = act(X)
    K_PRELU = 2      # A = X if X > 0 else slope * X (learnable slope, shared or per unit)
    K_SOFTMAX = 3    # A = softmax(X) row-wise
    K_MAXOUT = 4     # Z = X W + b (n_out * pieces columns), A = max over each unit's pieces
    K_DROPOUT = 5    # training: A = X * M, M = 1/(1-p) or 0 (counter-based RNG); eval: A = X
    K_NOISE = 6      # training: A = X + std * N(0, 1); eval: A = X
    K_BATCHNORM = 7  # A = gamma * (X - mean) / sqrt(var + eps) + beta, per feature
    K_LAYERNORM = 8  # the same per row
    K_RES_BEGIN = 9  # A = X (remembered for the matching K_RES_END)
    K_RES_END = 10   # A = X + A[link]: the skip connection x + f(x)
    K_AUGMENT = 11   # training: A = random affine resampling of each row as an image
                     # (augment.h, counter-based RNG); eval: A = X
    K_N_KINDS = 12   # the number of kinds (not a kind): the length of the ops table

cpdef enum LayerFlag:
    F_TRANS_W = 1    # K_DENSE: the arena slot holds W transposed (a tied layer)
    F_AFFINE = 2     # K_BATCHNORM / K_LAYERNORM: learnable scale and shift
    F_ACCUM_W = 4    # K_DENSE: another use of this W slot is written first in backward

# One node of the plan. The fields above the per-kind ones mean the same for every kind; each
# per-kind field has one meaning, and kinds that do not use it leave it at its default.
# Filled from a dict of the same names by the kind's entry of the ops table (_layer_ops.pxi).
ctypedef struct LayerDesc:
    int kind
    int flags                # LayerFlag bits
    Py_ssize_t n_in
    Py_ssize_t n_out
    Py_ssize_t w_off         # arena offset of the layer's weight (W, PReLU slopes, norm
                             # scale gamma); -1 when none
    Py_ssize_t b_off         # arena offset of its bias (b, norm shift beta); -1 when none
    Py_ssize_t s_off         # offset into the model's buffers (running statistics); -1 none
    unsigned int stream      # RNG stream (the layer's index in the model)
    Py_ssize_t a_col         # workspace column of A (the layer output)
    # workspace blocks some kinds keep for backward; -1 for the other kinds
    Py_ssize_t z_col         # K_DENSE, K_MAXOUT: Z, the pre-activation (== a_col when Z is A)
    Py_ssize_t mask_col      # K_DROPOUT: the mask of the last training forward
    Py_ssize_t xhat_col      # K_BATCHNORM, K_LAYERNORM: the normalized input
    Py_ssize_t rstd_col      # K_LAYERNORM: one column, each row's 1/std
    Py_ssize_t skip_col      # K_RES_END: the skip path's gradient, read by its K_RES_BEGIN
    # per-kind parameters
    int act                  # K_DENSE, K_ACT: fm_act code (FM_IDENTITY otherwise)
    double alpha             # K_DENSE, K_ACT: activation parameter (leaky slope, ELU alpha)
    Py_ssize_t pieces        # K_MAXOUT: pieces per unit (1 for every other kind)
    Py_ssize_t n_slopes      # K_PRELU: learnable slopes, 1 (shared) or n_out
    double rate              # K_DROPOUT: probability of dropping an element, in [0, 1)
    double std               # K_NOISE: standard deviation of the noise, >= 0
    double momentum          # K_BATCHNORM: running statistics' momentum, in [0, 1]
    double eps               # K_BATCHNORM, K_LAYERNORM: added to the variance, > 0
    Py_ssize_t link          # K_RES_BEGIN / K_RES_END: index of the matching marker
    AugmentSpec aug          # K_AUGMENT: image shape and transform ranges

# Everything one pass needs; pointers are typed by the caller (float or double).
# The model's training state the core reads by pointer (one per model, in TrainingState).
ctypedef struct RngState:
    unsigned long long seed  # key of the counter-based RNG (dropout, noise, augmentation)
    unsigned long long step  # its counter: training forward passes so far

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
    void* buffers            # non-trainable state (running statistics), or NULL
    RngState* rng            # the model's RNG key and counter (its TrainingState), shared
                             # by every plan of the model: read, never copied
    unsigned long long row0  # RNG element key: global row of the batch's first row (data
                             # parallel: a rank's slice of the global batch), else 0
    bint training            # training-mode forward (dropout, noise, batch statistics)
    bint predicting          # an evaluation forward whose Z nothing reads (predict): dense
                             # layers sum in A's block and apply their activation in place
    int* input_check         # or NULL: int[2] for the first layer's product to flag a NaN or
                             # inf in X ([0]) and say it checked all of X ([1]): dense_forward
    bint fresh_grads         # backward writes the gradients instead of adding to them
    int* grad_bad            # when not NULL, backward sets *grad_bad if a parameter gradient
                             # it writes is not finite (only when every one is written by
                             # a checking kernel: Plan.grads_checkable)

cdef void plan_forward(const Exec* e, const floating* X) noexcept nogil
cdef void plan_backward(const Exec* e, const floating* X, const floating* dY,
                        floating* dX) noexcept nogil
cdef void zero_small_grads(const Exec* e, floating* G) noexcept nogil

# A prediction of many rows on several threads goes in runs of rows, each through every
# layer on one thread (Plan.predict, Graph.predict): runs are whole RUN_UNITs, as even as
# units allow (run i: RUN_UNIT (base + (i < extra)) rows, the last one cut at n).
cdef enum:
    MAX_CHAINS = 64   # the team's participants at most (pool.h: 63 workers + the caller)
    RUN_UNIT = 16     # a run of B rows lays out each block at B x its column: 64-byte aligned

cdef Py_ssize_t chain_runs(Py_ssize_t n, Py_ssize_t chunk, int threads, Py_ssize_t* base,
                           Py_ssize_t* extra) noexcept nogil

cdef inline Py_ssize_t run_rows(Py_ssize_t i, Py_ssize_t base, Py_ssize_t extra, Py_ssize_t n,
                                Py_ssize_t* start) noexcept nogil:
    """Run i's row count (<= 0: past n), its first row in start."""
    start[0] = RUN_UNIT * (i * base + (i if i < extra else extra))
    return min(RUN_UNIT * (base + (i < extra)), n - start[0])


cdef class TrainingState:
    cdef RngState s


cdef class Plan:
    cdef LayerDesc* descs
    cdef Exec ex
    cdef object params, grads, buffers, work, scratch, x_ref
    cdef object chain_work           # predict's per-thread workspaces (Plan.predict)
    cdef Py_ssize_t chain_rows, chain_threads
    cdef readonly TrainingState state
    cdef readonly Py_ssize_t n_in, n_out, capacity, n_layers
    cdef readonly object dtype
    cdef readonly bint ready
    cdef bint f32
    cdef int reserve(self, Py_ssize_t batch) except -1
    cdef bint grads_checkable(self)
    cdef int _check_input(self, X, str name, Py_ssize_t width) except -1
