"""Run a compiled model plan: forward and backward over a stack of library layers.

One call runs every layer with the GIL released, over preallocated buffers: the
activation workspace (each layer's Z and A for the current batch) and three gradient
scratch buffers. Layer parameters and gradients are read/written in the flat arena.
"""
import numpy as np

from cython cimport floating
from libc.string cimport memcpy, memset

from fastmlp._activations cimport act_backward, act_forward, FM_IDENTITY, FM_N_ACT
from fastmlp._augment cimport (fm_augment_backward_d, fm_augment_backward_f,
                               fm_augment_forward_d, fm_augment_forward_f)
from fastmlp._norm cimport (NormArgs, batchnorm_backward, batchnorm_backward_eval,
                            batchnorm_forward_eval, batchnorm_forward_train, layernorm_backward,
                            layernorm_forward)
from fastmlp._kernels cimport (add, dense_backward, dense_forward, dropout_forward,
                               maxout_reduce, maxout_scatter, multiply, noise_forward,
                               prelu_backward, prelu_forward, softmax_backward,
                               softmax_forward)


# --- the executor --------------------------------------------------------------------------

cdef inline floating* block(const Exec* e, Py_ssize_t col, floating* base) noexcept nogil:
    return base + e.batch * col


cdef inline void augment(const Exec* e, const LayerDesc* d, const floating* X, floating* A,
                         bint adjoint) noexcept nogil:
    """K_AUGMENT in training: the resampling of augment.h (adjoint: its transpose)."""
    if floating is float:
        if adjoint:
            fm_augment_backward_f(&d.aug, X, A, e.batch, e.seed, d.stream, e.step,
                                  e.row0)
        else:
            fm_augment_forward_f(&d.aug, X, A, e.batch, e.seed, d.stream, e.step,
                                  e.row0)
    else:
        if adjoint:
            fm_augment_backward_d(&d.aug, X, A, e.batch, e.seed, d.stream, e.step,
                                  e.row0)
        else:
            fm_augment_forward_d(&d.aug, X, A, e.batch, e.seed, d.stream, e.step,
                                  e.row0)


cdef inline void norm_args(const Exec* e, const LayerDesc* d, NormArgs* a) noexcept nogil:
    a.B, a.n, a.eps, a.momentum = e.batch, d.n_out, d.eps, d.p


cdef void norm_forward(const Exec* e, const LayerDesc* d, const floating* X,
                       floating* A) noexcept nogil:
    """Batch or layer normalization of X into A; xhat kept at z_col. Batch statistics in
    training (when the batch has >= 2 rows: the Python side refuses 1-row training
    batches), running statistics otherwise."""
    cdef NormArgs a
    norm_args(e, d, &a)
    cdef floating* P = <floating*> e.params
    cdef floating* W = <floating*> e.work
    cdef const floating* gamma = P + d.w_off if d.flags & F_AFFINE else NULL
    cdef const floating* beta = P + d.b_off if d.flags & F_AFFINE else NULL
    cdef floating* stats
    if d.kind == K_LAYERNORM:
        layernorm_forward(&a, X, gamma, beta, block(e, d.aux_col, W), block(e, d.z_col, W), A)
        return
    stats = <floating*> e.buffers + d.s_off
    if e.training and e.batch >= 2:
        batchnorm_forward_train(&a, X, gamma, beta, stats, block(e, d.z_col, W), A)
    else:
        batchnorm_forward_eval(&a, X, gamma, beta, stats, block(e, d.z_col, W), A)


cdef void norm_backward(const Exec* e, const LayerDesc* d, const floating* dA,
                        floating* dX) noexcept nogil:
    """dgamma, dbeta accumulate into the grads; dX written when not NULL."""
    cdef NormArgs a
    norm_args(e, d, &a)
    cdef floating* P = <floating*> e.params
    cdef floating* G = <floating*> e.grads
    cdef floating* W = <floating*> e.work
    cdef bint affine = d.flags & F_AFFINE
    cdef const floating* gamma = P + d.w_off if affine else NULL
    cdef floating* dgamma = G + d.w_off if affine else NULL
    cdef floating* dbeta = G + d.b_off if affine else NULL
    cdef const floating* xhat = block(e, d.z_col, W)
    cdef const floating* inv_std
    if d.kind == K_LAYERNORM:
        layernorm_backward(&a, xhat, block(e, d.aux_col, W), gamma, dA, dgamma, dbeta, dX)
        return
    inv_std = <floating*> e.buffers + d.s_off + 2 * d.n_out
    if e.training and e.batch >= 2:
        batchnorm_backward(&a, xhat, inv_std, gamma, dA, dgamma, dbeta, dX)
    else:
        batchnorm_backward_eval(&a, xhat, inv_std, gamma, dA, dgamma, dbeta, dX)


cdef void plan_forward(const Exec* e, const floating* X) noexcept nogil:
    """Run every layer on X (batch, n_in); layer i's Z and A land in the workspace.
    Training-mode layers draw their randomness from (e.seed, layer stream, e.step, element
    e.row0 * width + index in the batch): keyed by the global row."""
    cdef Py_ssize_t i, B = e.batch
    cdef const LayerDesc* d
    cdef const floating* inp = X
    cdef floating* P = <floating*> e.params
    cdef floating* W = <floating*> e.work
    cdef floating* A
    for i in range(e.n_layers):
        d = &e.layers[i]
        A = block(e, d.a_col, W)
        if d.kind == K_DENSE:
            dense_forward(d, inp, P, block(e, d.z_col, W), A, B)
        elif d.kind == K_MAXOUT:
            dense_forward(d, inp, P, block(e, d.z_col, W), A, B)
            maxout_reduce(block(e, d.z_col, W), A, B, d.n_out, d.pieces)
        elif d.kind == K_ACT:
            # act_forward only writes z when a bias is given; inp is read-only here.
            act_forward(d.act, d.alpha, <floating*> inp, NULL, A, B, d.n_out)
        elif d.kind == K_PRELU:
            prelu_forward(inp, P + d.w_off, d.pieces, A, B, d.n_out)
        elif d.kind == K_SOFTMAX:
            softmax_forward(inp, A, B, d.n_out)
        elif d.kind == K_DROPOUT and e.training and d.p > 0:
            dropout_forward(inp, block(e, d.z_col, W), A, B * d.n_out, d.p, e.seed, d.stream,
                            e.step, e.row0 * d.n_out)
        elif d.kind == K_NOISE and e.training and d.p > 0:
            noise_forward(inp, A, B * d.n_out, d.p, e.seed, d.stream, e.step,
                          e.row0 * d.n_out)
        elif d.kind == K_AUGMENT and e.training:
            augment(e, d, inp, A, False)
        elif d.kind == K_RES_END:
            add(inp, block(e, e.layers[d.link].a_col, W), A, B * d.n_out)
        elif d.kind == K_BATCHNORM or d.kind == K_LAYERNORM:
            norm_forward(e, d, inp, A)
        else:   # K_RES_BEGIN; dropout and noise outside training: the identity
            memcpy(A, inp, B * d.n_out * sizeof(floating))
        inp = A


cdef void zero_small_grads(const Exec* e, floating* G) noexcept nogil:
    """Zero the gradient slots that kernels accumulate into (PReLU slopes, normalization
    scale and shift): with fresh_grads the dense ones are overwritten by their GEMM."""
    cdef Py_ssize_t i
    cdef const LayerDesc* d
    for i in range(e.n_layers):
        d = &e.layers[i]
        if d.kind == K_PRELU:
            memset(G + d.w_off, 0, d.pieces * sizeof(floating))
        elif (d.kind == K_BATCHNORM or d.kind == K_LAYERNORM) and d.flags & F_AFFINE:
            memset(G + d.w_off, 0, d.n_out * sizeof(floating))
            memset(G + d.b_off, 0, d.n_out * sizeof(floating))


cdef void plan_backward(const Exec* e, const floating* X, const floating* dY,
                        floating* dX) noexcept nogil:
    """Backpropagate dY (batch, n_out of the last layer) after plan_forward on X.

    Parameter gradients accumulate into e.grads; dX (batch, n_in) is written when not NULL.
    """
    cdef Py_ssize_t i, B = e.batch
    cdef const LayerDesc* d
    cdef floating* P = <floating*> e.params
    cdef floating* G = <floating*> e.grads
    cdef floating* W = <floating*> e.work
    cdef floating* g_cur = <floating*> e.scratch
    cdef floating* g_next = g_cur + B * e.scratch_cols
    cdef floating* g_wide = g_next + B * e.scratch_cols
    cdef floating* dst
    cdef floating* tmp
    cdef const floating* inp
    cdef Py_ssize_t n
    cdef const LayerDesc* last = &e.layers[e.n_layers - 1]
    memcpy(g_cur, dY, B * last.n_out * sizeof(floating))
    if e.fresh_grads:
        zero_small_grads(e, G)
    for i in range(e.n_layers - 1, -1, -1):
        d = &e.layers[i]
        n = B * d.n_out
        inp = X if i == 0 else block(e, e.layers[i - 1].a_col, W)
        dst = dX if i == 0 else g_next
        if d.kind == K_DENSE:
            if d.act != FM_IDENTITY:
                act_backward(d.act, d.alpha, block(e, d.z_col, W), block(e, d.a_col, W),
                             g_cur, g_cur, n)
            dense_backward(d, inp, P, G, g_cur, dst, B, e.fresh_grads)
        elif d.kind == K_MAXOUT:
            maxout_scatter(block(e, d.z_col, W), g_cur, g_wide, B, d.n_out, d.pieces)
            dense_backward(d, inp, P, G, g_wide, dst, B, e.fresh_grads)
        elif d.kind == K_PRELU:
            prelu_backward(inp, P + d.w_off, G + d.w_off, d.pieces, g_cur, dst, B, d.n_out)
        elif d.kind == K_BATCHNORM or d.kind == K_LAYERNORM:
            norm_backward(e, d, g_cur, dst)
        elif dst == NULL:
            pass     # the remaining kinds have no parameters: nothing to do without dX
        elif d.kind == K_ACT:
            act_backward(d.act, d.alpha, inp, block(e, d.a_col, W), g_cur, dst, n)
        elif d.kind == K_SOFTMAX:
            softmax_backward(block(e, d.a_col, W), g_cur, dst, B, d.n_out)
        elif d.kind == K_DROPOUT and e.training and d.p > 0:
            multiply(g_cur, block(e, d.z_col, W), dst, n)
        elif d.kind == K_AUGMENT and e.training:
            augment(e, d, g_cur, dst, True)
        elif d.kind == K_RES_END:
            # the skip path's share waits in aux until the matching K_RES_BEGIN
            memcpy(block(e, d.aux_col, W), g_cur, n * sizeof(floating))
            memcpy(dst, g_cur, n * sizeof(floating))
        elif d.kind == K_RES_BEGIN:
            add(g_cur, block(e, e.layers[d.link].aux_col, W), dst, n)
        else:    # noise, and dropout outside training: the identity
            memcpy(dst, g_cur, n * sizeof(floating))
        tmp = g_cur
        g_cur = g_next
        g_next = tmp


cdef void _predict(Exec* e, const floating* X, floating* out, Py_ssize_t n, Py_ssize_t chunk,
                   Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """Evaluation-mode forward of n rows, chunk rows at a time, each chunk's output copied
    to out. Contract: the workspace holds min(chunk, n) rows; e.training is False."""
    cdef Py_ssize_t start, B
    cdef const LayerDesc* last = &e.layers[e.n_layers - 1]
    start = 0
    while start < n:
        B = min(chunk, n - start)
        e.batch = B
        plan_forward(e, X + start * n_in)
        memcpy(out + start * n_out, <floating*> e.work + B * last.a_col,
               B * n_out * sizeof(floating))
        start += B


# --- the Python-facing plan ----------------------------------------------------------------
from libc.stdlib cimport malloc, free

cdef inline void* _ptr1(object arr, bint f32):
    cdef float[::1] f
    cdef double[::1] g
    if f32:
        f = arr
        return &f[0]
    g = arr
    return &g[0]


cdef class Plan:
    """A compiled stack of library layers over a model's parameter arena.

    Parameters
    ----------
    descs : list of dict
        One dict per layer with the ``LayerDesc`` fields (kind, act, alpha, n_in, n_out,
        pieces, w_off, b_off, flags, p, eps, s_off, link, stream); workspace columns are
        assigned here.
    params, grads : ndarray
        The model's arena and its gradient (1-D, C-contiguous, float32 or float64). The plan
        keeps references to both; they must never be reallocated.
    buffers : ndarray or None
        The model's non-trainable state (running statistics), same dtype.
    seed : int
        Key of the counter-based RNG (dropout masks, noise).
    """
    def __cinit__(self):
        self.descs = NULL

    def __init__(self, list descs, params, grads, buffers=None, seed=0):
        if not descs:
            raise ValueError("descs must hold at least one layer")
        self.f32 = params.dtype == np.float32
        if params.dtype not in (np.float32, np.float64) or grads.dtype != params.dtype:
            raise TypeError(f"params and grads must share a float32/float64 dtype, got "
                            f"{params.dtype} and {grads.dtype}")
        for name, arr in (("params", params), ("grads", grads), ("buffers", buffers)):
            if arr is not None and not (arr.flags.c_contiguous and arr.ndim == 1
                                        and arr.dtype == params.dtype and arr.shape[0] > 0):
                raise ValueError(f"{name} must be a non-empty 1-D C-contiguous "
                                 f"{params.dtype} array")
        if grads.shape != params.shape:
            raise ValueError("params and grads must have one length")
        self.dtype = params.dtype
        self.params, self.grads, self.buffers = params, grads, buffers
        self.n_layers = len(descs)
        self.descs = <LayerDesc*> malloc(self.n_layers * sizeof(LayerDesc))
        if self.descs == NULL:
            raise MemoryError()
        cdef Py_ssize_t n_buf = buffers.shape[0] if buffers is not None else 0
        for i, spec in enumerate(descs):
            self.descs[i] = _desc_from_dict(spec, params.shape[0], n_buf)
        _check_links(self.descs, self.n_layers)
        _mark_shared_weights(self.descs, self.n_layers)
        self.ex.layers = self.descs
        self.ex.n_layers = self.n_layers
        self.ex.n_params = params.shape[0]
        _assign_columns(&self.ex, self.descs)
        self.n_in = self.descs[0].n_in
        self.n_out = self.descs[self.n_layers - 1].n_out
        self.ex.params = _ptr1(params, self.f32)
        self.ex.grads = _ptr1(grads, self.f32)
        self.ex.buffers = _ptr1(buffers, self.f32) if buffers is not None else NULL
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        self.ex.seed = seed
        self.ex.step = 0
        self.ex.row0 = 0
        self.ex.training = False
        self.ex.fresh_grads = False
        self.capacity = 0
        self.ready = False

    property rng_step:
        """Training forward passes so far: the counter of the dropout/noise RNG."""
        def __get__(self):
            return self.ex.step

        def __set__(self, unsigned long long value):
            self.ex.step = value

    def __dealloc__(self):
        free(self.descs)

    cdef int reserve(self, Py_ssize_t batch) except -1:
        """Size the workspace for ``batch`` rows (grow only; reused for smaller batches)."""
        if batch > self.capacity:
            self.work = np.empty(batch * self.ex.work_cols, dtype=self.dtype)
            self.scratch = np.empty(3 * batch * self.ex.scratch_cols, dtype=self.dtype)
            self.ex.work = _ptr1(self.work, self.f32)
            self.ex.scratch = _ptr1(self.scratch, self.f32)
            self.capacity = batch
        self.ex.batch = batch
        return 0

    def forward(self, X, bint training=False, step=None):
        """Run the stack on X (batch, n_in), C-contiguous, of the plan's dtype; return a copy
        of the output. X is kept (not copied) for the next backward. A training pass uses
        batch statistics and draws dropout masks for RNG counter ``step`` (by default the
        plan's own counter, advanced by one)."""
        cdef const float[:, ::1] xf
        cdef const double[:, ::1] xd
        self._check_input(X, "X", self.n_in)
        self.reserve(X.shape[0])
        self.ready = False
        self.ex.training = training
        if step is not None:
            self.ex.step = step
        elif training:
            self.ex.step += 1
        if self.f32:
            xf = X
            with nogil:
                plan_forward(&self.ex, &xf[0, 0])
        else:
            xd = X
            with nogil:
                plan_forward(&self.ex, &xd[0, 0])
        self.x_ref = X
        self.ready = True
        return self.output().copy()

    def predict(self, X, Py_ssize_t chunk):
        """Evaluation-mode outputs of X (n, n_in), ``chunk`` rows at a time, in one call
        without the GIL; returns a new (n, n_out) array. Leaves nothing for backward."""
        cdef const float[:, ::1] xf
        cdef const double[:, ::1] xd
        cdef float[:, ::1] of
        cdef double[:, ::1] od
        self._check_input(X, "X", self.n_in)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        cdef Py_ssize_t n = X.shape[0]
        self.reserve(min(chunk, n))
        self.ready = False
        self.ex.training = False
        out = np.empty((n, self.n_out), dtype=self.dtype)
        if self.f32:
            xf, of = X, out
            with nogil:
                _predict(&self.ex, &xf[0, 0], &of[0, 0], n, chunk, self.n_in, self.n_out)
        else:
            xd, od = X, out
            with nogil:
                _predict(&self.ex, &xd[0, 0], &od[0, 0], n, chunk, self.n_in, self.n_out)
        return out

    def output(self):
        """The last forward's output: a view into the workspace (overwritten by the next call)."""
        cdef Py_ssize_t B = self.ex.batch
        cdef Py_ssize_t start = B * self.descs[self.n_layers - 1].a_col
        return self.work[start:start + B * self.n_out].reshape(B, self.n_out)

    def backward(self, dY, bint need_dx=True):
        """Backpropagate dY (batch, n_out) through the last forward; parameter gradients
        accumulate into the arena's grads. Returns dX (batch, n_in), or None."""
        cdef const float[:, ::1] gf
        cdef const double[:, ::1] gd
        cdef const float[:, ::1] xf
        cdef const double[:, ::1] xd
        cdef float[:, ::1] of
        cdef double[:, ::1] od
        if not self.ready:
            raise ValueError("backward called before forward: run forward(X) first")
        self._check_input(dY, "grad_out", self.n_out)
        if dY.shape[0] != self.ex.batch:
            raise ValueError(f"grad_out has {dY.shape[0]} rows but the last forward had "
                             f"{self.ex.batch}")
        out = np.empty((self.ex.batch, self.n_in), dtype=self.dtype) if need_dx else None
        if self.f32:
            gf, xf = dY, self.x_ref
            if need_dx:
                of = out
            with nogil:
                plan_backward(&self.ex, &xf[0, 0], &gf[0, 0], &of[0, 0] if need_dx else NULL)
        else:
            gd, xd = dY, self.x_ref
            if need_dx:
                od = out
            with nogil:
                plan_backward(&self.ex, &xd[0, 0], &gd[0, 0], &od[0, 0] if need_dx else NULL)
        return out

    cdef int _check_input(self, X, str name, Py_ssize_t width) except -1:
        if not isinstance(X, np.ndarray) or X.dtype != self.dtype or X.ndim != 2 \
                or not X.flags.c_contiguous or not X.flags.aligned:
            raise TypeError(f"{name} must be a C-contiguous, aligned 2-D {self.dtype} array")
        if X.shape[1] != width:
            raise ValueError(f"{name} has {X.shape[1]} columns, expected {width}")
        if X.shape[0] < 1 or X.shape[0] >= 2**31:
            raise ValueError(f"{name} must have between 1 and 2**31 - 1 rows, got {X.shape[0]}")
        return 0


cdef _assign_columns(Exec* ex, LayerDesc* descs):
    """Lay out each layer's blocks in the workspace (widths per row) and size the scratch."""
    cdef Py_ssize_t i, col = 0, widest = 0, width
    cdef LayerDesc* d
    for i in range(ex.n_layers):
        d = &descs[i]
        width = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
        d.z_col = d.aux_col = -1
        if d.kind == K_DENSE and d.act == FM_IDENTITY:
            d.z_col = d.a_col = col
            col += width
        elif d.kind in (K_DENSE, K_MAXOUT, K_DROPOUT, K_BATCHNORM, K_LAYERNORM):
            d.z_col = col                          # Z, the dropout mask or xhat
            d.a_col = col + width
            col += width + d.n_out
        else:
            d.a_col = col
            col += d.n_out
        if d.kind == K_RES_END:
            d.aux_col = col                        # the skip connection's gradient
            col += d.n_out
        elif d.kind == K_LAYERNORM:
            d.aux_col = col                        # per-row 1/std
            col += 1
        widest = max(widest, d.n_out * (d.pieces if d.kind == K_MAXOUT else 1), d.n_in)
    ex.work_cols = col
    ex.scratch_cols = widest


cdef _mark_shared_weights(LayerDesc* d, Py_ssize_t n):
    """Flag F_ACCUM_W on every dense use of a W slot but the first one backward meets."""
    seen = set()
    for i in range(n - 1, -1, -1):
        if d[i].kind == K_DENSE or d[i].kind == K_MAXOUT:
            if d[i].w_off in seen:
                d[i].flags |= F_ACCUM_W
            seen.add(d[i].w_off)


cdef _check_links(LayerDesc* d, Py_ssize_t n):
    cdef Py_ssize_t i, j
    for i in range(n):
        if i > 0 and d[i].n_in != d[i - 1].n_out:
            raise ValueError(f"layer {i} expects {d[i].n_in} inputs but layer {i - 1} gives "
                             f"{d[i - 1].n_out}")
        if d[i].kind == K_RES_END or d[i].kind == K_RES_BEGIN:
            j = d[i].link
            if not (0 <= j < n and d[j].link == i and d[j].n_out == d[i].n_out
                    and (j < i) == (d[i].kind == K_RES_END)
                    and d[j].kind == (K_RES_BEGIN if d[i].kind == K_RES_END else K_RES_END)):
                raise ValueError(f"residual markers {i} and {j} do not match")


cdef LayerDesc _desc_from_dict(dict spec, Py_ssize_t arena_size, Py_ssize_t n_buffers) except *:
    """Check one layer descriptor against the arena, so the kernels can trust it."""
    cdef LayerDesc d
    d.kind = spec["kind"]
    d.act = spec.get("act", FM_IDENTITY)
    d.alpha = spec.get("alpha", 0.0)
    d.n_in = spec["n_in"]
    d.n_out = spec["n_out"]
    d.pieces = spec.get("pieces", 1)
    d.w_off = spec.get("w_off", -1)
    d.b_off = spec.get("b_off", -1)
    d.flags = spec.get("flags", 0)
    d.p = spec.get("p", 0.0)
    d.eps = spec.get("eps", 0.0)
    d.s_off = spec.get("s_off", -1)
    d.link = spec.get("link", -1)
    d.stream = spec.get("stream", 0)
    d.aug = AugmentSpec(h=0, w=0, c=0, max_shift=0, max_rotation=0, max_scale=0, flip=0)
    if d.kind == K_AUGMENT:
        d.aug = spec["aug"]
        if d.aug.h * d.aug.w * d.aug.c != d.n_out or d.aug.h < 1 or d.aug.w < 1 \
                or not (d.aug.max_shift >= 0 and d.aug.max_rotation >= 0
                        and 0 <= d.aug.max_scale < 1):
            raise ValueError(f"bad augmentation: {spec}")
    if d.kind < K_DENSE or d.kind > K_AUGMENT:
        raise ValueError(f"unknown layer kind {d.kind}")
    if d.act < 0 or d.act >= FM_N_ACT:
        raise ValueError(f"unknown activation code {d.act}")
    if not (0 < d.n_in < 2**31 and 0 < d.n_out < 2**31 and 0 < d.pieces < 2**31):
        raise ValueError(f"layer sizes must be positive and < 2**31: {spec}")
    cdef Py_ssize_t n_w = 0, n_b = 0, n_s = 0
    if d.kind == K_DENSE or d.kind == K_MAXOUT:
        n_w = d.n_in * d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
        n_b = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
        if d.n_out * d.pieces >= 2**31 or (d.kind == K_MAXOUT and d.flags & F_TRANS_W):
            raise ValueError(f"bad dense layer: {spec}")
    elif d.kind == K_PRELU:
        n_w = d.pieces
        if d.pieces != 1 and d.pieces != d.n_out:
            raise ValueError(f"PReLU needs 1 or n_out slopes: {spec}")
    elif d.kind in (K_BATCHNORM, K_LAYERNORM):
        n_w = n_b = d.n_out if d.flags & F_AFFINE else 0
        n_s = 3 * d.n_out if d.kind == K_BATCHNORM else 0   # running mean, var, 1/std
        if not d.eps > 0:
            raise ValueError(f"eps must be > 0: {spec}")
    if d.kind != K_DENSE and d.kind != K_MAXOUT and d.n_in != d.n_out:
        raise ValueError(f"this layer must keep its width: {spec}")
    if (d.kind == K_DROPOUT and not 0 <= d.p < 1) or (d.kind == K_NOISE and not d.p >= 0) \
            or (d.kind == K_BATCHNORM and not 0 <= d.p <= 1):
        raise ValueError(f"bad rate / std / momentum: {spec}")
    cdef bint w_bad = n_w > 0 and not (0 <= d.w_off and d.w_off + n_w <= arena_size)
    cdef bint b_bad = d.b_off >= 0 and not (n_b > 0 and d.b_off + n_b <= arena_size)
    cdef bint affine_bad = (d.kind == K_BATCHNORM or d.kind == K_LAYERNORM) and n_b > 0 \
        and d.b_off < 0
    cdef bint s_bad = n_s > 0 and not (0 <= d.s_off and d.s_off + n_s <= n_buffers)
    if w_bad or b_bad or affine_bad or s_bad:
        raise ValueError(f"layer parameters fall outside the arena: {spec}")
    return d
