"""Run a compiled model plan: forward and backward over a stack of library layers.

One call runs every layer with the GIL released, over preallocated buffers: the
activation workspace (each layer's Z and A for the current batch) and three gradient
scratch buffers. Layer parameters and gradients are read/written in the flat arena.
"""
import numpy as np

from cython cimport floating
from libc.math cimport exp, expf
from libc.string cimport memcpy, memset

from fastmlp._activations cimport act_forward, act_backward, FM_IDENTITY
from fastmlp._blas cimport gemm


# --- layer kernels ------------------------------------------------------------------------
# Each takes pointers and sizes; B is the batch size, X the layer input (B, n_in).

cdef inline void dense_forward(const LayerDesc* d, const floating* X, const floating* P,
                               floating* Z, floating* A, Py_ssize_t B) noexcept nogil:
    """Z = X W (+ b), A = act(Z); Z and A may be one buffer (identity)."""
    cdef Py_ssize_t n_cols = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
    gemm(False, False, <int> B, <int> n_cols, <int> d.n_in, <floating> 1, X, <int> d.n_in,
         P + d.w_off, <int> n_cols, <floating> 0, Z, <int> n_cols)
    cdef const floating* b = P + d.b_off if d.b_off >= 0 else NULL
    if d.kind == K_MAXOUT:
        act_forward(FM_IDENTITY, 0.0, Z, b, Z, B, n_cols)
    else:
        act_forward(d.act, d.alpha, Z, b, A, B, n_cols)


cdef inline void dense_backward(const LayerDesc* d, const floating* X, const floating* P,
                                floating* G, floating* dZ, floating* dX,
                                Py_ssize_t B) noexcept nogil:
    """From dZ (B, n_cols): dW += Xᵀ dZ, db += Σ_rows dZ, dX = dZ Wᵀ (when dX != NULL)."""
    cdef Py_ssize_t n_cols = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
    cdef Py_ssize_t i, j
    cdef floating* db
    gemm(True, False, <int> d.n_in, <int> n_cols, <int> B, <floating> 1, X, <int> d.n_in,
         dZ, <int> n_cols, <floating> 1, G + d.w_off, <int> n_cols)
    if d.b_off >= 0:
        db = G + d.b_off
        for i in range(B):
            for j in range(n_cols):
                db[j] += dZ[i * n_cols + j]
    if dX != NULL:
        gemm(False, True, <int> B, <int> d.n_in, <int> n_cols, <floating> 1, dZ,
             <int> n_cols, P + d.w_off, <int> n_cols, <floating> 0, dX, <int> d.n_in)


cdef inline void maxout_reduce(const floating* Z, floating* A, Py_ssize_t B, Py_ssize_t n_out,
                               Py_ssize_t pieces) noexcept nogil:
    """A[i, j] = max_k Z[i, j * pieces + k]."""
    cdef Py_ssize_t i, j, k
    cdef floating best
    cdef const floating* z
    for i in range(B):
        for j in range(n_out):
            z = Z + (i * n_out + j) * pieces
            best = z[0]
            for k in range(1, pieces):
                if z[k] > best:
                    best = z[k]
            A[i * n_out + j] = best


cdef inline void maxout_scatter(const floating* Z, const floating* dA, floating* dZ,
                                Py_ssize_t B, Py_ssize_t n_out, Py_ssize_t pieces) noexcept nogil:
    """dZ gets dA at each unit's winning piece (the first one on ties), 0 elsewhere."""
    cdef Py_ssize_t r, k, arg
    cdef const floating* z
    memset(dZ, 0, B * n_out * pieces * sizeof(floating))
    for r in range(B * n_out):
        z = Z + r * pieces
        arg = 0
        for k in range(1, pieces):
            if z[k] > z[arg]:
                arg = k
        dZ[r * pieces + arg] = dA[r]


cdef inline void prelu_forward(const floating* X, const floating* slope, Py_ssize_t n_slopes,
                               floating* A, Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating x
    for i in range(B):
        for j in range(n):
            x = X[i * n + j]
            A[i * n + j] = x if x > 0 else slope[j if n_slopes > 1 else 0] * x


cdef inline void prelu_backward(const floating* X, const floating* slope, floating* dslope,
                                Py_ssize_t n_slopes, const floating* dA, floating* dX,
                                Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """dslope += Σ dA·x over x <= 0; dX = dA·(1 if x > 0 else slope) when dX != NULL."""
    cdef Py_ssize_t i, j, s
    cdef floating x
    for i in range(B):
        for j in range(n):
            x = X[i * n + j]
            s = j if n_slopes > 1 else 0
            if x <= 0:
                dslope[s] += dA[i * n + j] * x
            if dX != NULL:
                dX[i * n + j] = dA[i * n + j] if x > 0 else slope[s] * dA[i * n + j]


cdef inline void softmax_forward(const floating* X, floating* A, Py_ssize_t B,
                                 Py_ssize_t n) noexcept nogil:
    """Row-wise softmax, shifted by the row max so exp never overflows."""
    cdef Py_ssize_t i, j
    cdef floating m, s
    cdef const floating* x
    cdef floating* a
    for i in range(B):
        x = X + i * n
        a = A + i * n
        m = x[0]
        for j in range(1, n):
            if x[j] > m:
                m = x[j]
        s = 0
        for j in range(n):
            a[j] = expf(x[j] - m) if floating is float else exp(x[j] - m)
            s += a[j]
        for j in range(n):
            a[j] /= s


cdef inline void softmax_backward(const floating* S, const floating* dA, floating* dX,
                                  Py_ssize_t B, Py_ssize_t n) noexcept nogil:
    """dX = S ⊙ (dA − Σ_j dA_j S_j) row-wise."""
    cdef Py_ssize_t i, j
    cdef floating dot
    for i in range(B):
        dot = 0
        for j in range(n):
            dot += dA[i * n + j] * S[i * n + j]
        for j in range(n):
            dX[i * n + j] = S[i * n + j] * (dA[i * n + j] - dot)


# --- the executor --------------------------------------------------------------------------

cdef inline floating* block(const Exec* e, Py_ssize_t col, floating* base) noexcept nogil:
    return base + e.batch * col


cdef void plan_forward(const Exec* e, const floating* X) noexcept nogil:
    """Run every layer on X (batch, n_in); layer i's Z and A land in the workspace."""
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
        inp = A


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
    cdef const LayerDesc* last = &e.layers[e.n_layers - 1]
    memcpy(g_cur, dY, B * last.n_out * sizeof(floating))
    for i in range(e.n_layers - 1, -1, -1):
        d = &e.layers[i]
        inp = X if i == 0 else block(e, e.layers[i - 1].a_col, W)
        dst = dX if i == 0 else g_next
        if d.kind == K_DENSE:
            if d.act != FM_IDENTITY:
                act_backward(d.act, d.alpha, block(e, d.z_col, W), block(e, d.a_col, W),
                             g_cur, g_cur, B * d.n_out)
            dense_backward(d, inp, P, G, g_cur, dst, B)
        elif d.kind == K_MAXOUT:
            maxout_scatter(block(e, d.z_col, W), g_cur, g_wide, B, d.n_out, d.pieces)
            dense_backward(d, inp, P, G, g_wide, dst, B)
        elif d.kind == K_ACT:
            if dst != NULL:
                act_backward(d.act, d.alpha, inp, block(e, d.a_col, W), g_cur, dst,
                             B * d.n_out)
        elif d.kind == K_PRELU:
            prelu_backward(inp, P + d.w_off, G + d.w_off, d.pieces, g_cur, dst, B, d.n_out)
        elif d.kind == K_SOFTMAX:
            if dst != NULL:
                softmax_backward(block(e, d.a_col, W), g_cur, dst, B, d.n_out)
        tmp = g_cur
        g_cur = g_next
        g_next = tmp


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
        pieces, w_off, b_off); workspace columns are assigned here.
    params, grads : ndarray
        The model's arena and its gradient (1-D, C-contiguous, float32 or float64). The plan
        keeps references to both; they must never be reallocated.
    """
    def __cinit__(self):
        self.descs = NULL

    def __init__(self, list descs, params, grads):
        if not descs:
            raise ValueError("descs must hold at least one layer")
        self.f32 = params.dtype == np.float32
        if params.dtype not in (np.float32, np.float64) or grads.dtype != params.dtype:
            raise TypeError(f"params and grads must share a float32/float64 dtype, got "
                            f"{params.dtype} and {grads.dtype}")
        if not (params.flags.c_contiguous and grads.flags.c_contiguous and params.ndim == 1
                and grads.shape == params.shape):
            raise ValueError("params and grads must be 1-D C-contiguous arrays of one length")
        self.dtype = params.dtype
        self.params, self.grads = params, grads
        self.n_layers = len(descs)
        self.descs = <LayerDesc*> malloc(self.n_layers * sizeof(LayerDesc))
        if self.descs == NULL:
            raise MemoryError()
        cdef Py_ssize_t i, col = 0, widest = 0, width
        for i, spec in enumerate(descs):
            self.descs[i] = _desc_from_dict(spec, params.shape[0])
            width = self.descs[i].n_out
            if self.descs[i].kind in (K_DENSE, K_MAXOUT):
                width *= self.descs[i].pieces if self.descs[i].kind == K_MAXOUT else 1
                self.descs[i].z_col = col
                if self.descs[i].kind == K_DENSE and self.descs[i].act == FM_IDENTITY:
                    self.descs[i].a_col = col
                    col += width
                else:
                    self.descs[i].a_col = col + width
                    col += width + self.descs[i].n_out
            else:
                self.descs[i].z_col = -1
                self.descs[i].a_col = col
                col += width
            widest = max(widest, width, self.descs[i].n_in, self.descs[i].n_out)
            if i > 0 and self.descs[i].n_in != self.descs[i - 1].n_out:
                raise ValueError(f"layer {i} expects {self.descs[i].n_in} inputs but layer "
                                 f"{i - 1} gives {self.descs[i - 1].n_out}")
        self.n_in = self.descs[0].n_in
        self.n_out = self.descs[self.n_layers - 1].n_out
        self.ex.layers = self.descs
        self.ex.n_layers = self.n_layers
        self.ex.n_params = params.shape[0]
        self.ex.work_cols = col
        self.ex.scratch_cols = widest
        self.ex.params = _ptr1(params, self.f32)
        self.ex.grads = _ptr1(grads, self.f32)
        self.capacity = 0
        self.ready = False

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

    def forward(self, X):
        """Run the stack on X (batch, n_in), C-contiguous, of the plan's dtype; return a copy
        of the output. X is kept (not copied) for the next backward."""
        cdef const float[:, ::1] xf
        cdef const double[:, ::1] xd
        self._check_input(X, "X", self.n_in)
        self.reserve(X.shape[0])
        self.ready = False
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
                or not X.flags.c_contiguous:
            raise TypeError(f"{name} must be a C-contiguous 2-D {self.dtype} array")
        if X.shape[1] != width:
            raise ValueError(f"{name} has {X.shape[1]} columns, expected {width}")
        if X.shape[0] < 1 or X.shape[0] >= 2**31:
            raise ValueError(f"{name} must have between 1 and 2**31 - 1 rows, got {X.shape[0]}")
        return 0


cdef LayerDesc _desc_from_dict(dict spec, Py_ssize_t arena_size) except *:
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
    if d.kind < K_DENSE or d.kind > K_MAXOUT:
        raise ValueError(f"unknown layer kind {d.kind}")
    if not (0 < d.n_in < 2**31 and 0 < d.n_out < 2**31 and 0 < d.pieces < 2**31):
        raise ValueError(f"layer sizes must be positive and < 2**31: {spec}")
    cdef Py_ssize_t n_w = 0, n_b = 0
    if d.kind == K_DENSE or d.kind == K_MAXOUT:
        n_w = d.n_in * d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
        n_b = d.n_out * (d.pieces if d.kind == K_MAXOUT else 1)
        if d.n_out * d.pieces >= 2**31:
            raise ValueError(f"layer too wide: {spec}")
    elif d.kind == K_PRELU:
        n_w = d.pieces
        if d.pieces != 1 and d.pieces != d.n_out:
            raise ValueError(f"PReLU needs 1 or n_out slopes: {spec}")
    elif d.n_in != d.n_out:
        raise ValueError(f"elementwise layer must keep its width: {spec}")
    if (n_w and not (0 <= d.w_off and d.w_off + n_w <= arena_size)) or \
            (d.b_off >= 0 and d.b_off + n_b > arena_size) or \
            (d.b_off >= 0 and n_b == 0):
        raise ValueError(f"layer parameters fall outside the arena: {spec}")
    return d
