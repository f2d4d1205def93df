"""Run a compiled model plan: forward and backward over a stack of library layers.

One call runs every layer with the GIL released, over preallocated buffers: the
activation workspace (each layer's output and what its backward needs, for the current
batch) and three gradient scratch buffers. Layer parameters and gradients are read/written
in the flat arena. What a layer does is looked up by its kind in one ops table
(``_layer_ops.pxi``, included here).
"""
import numpy as np

from fastmlp._aligned import aligned_empty
cimport numpy as cnp

cnp.import_array()

from cython cimport floating
from libc.string cimport memcpy, memset

from fastmlp._activations cimport FM_IDENTITY
from fastmlp._optim cimport all_finite
from fastmlp._blas cimport (num_threads, pool_run, task_fn, thread_override_get,
                            thread_override_set)

include "_layer_ops.pxi"


# --- the executor: one loop over the layers, each step looked up in the ops table ----------

cdef void plan_forward(const Exec* e, const floating* X) noexcept nogil:
    """Run every layer on X (batch, n_in); layer i's output and the blocks its backward needs
    land in the workspace. Training-mode layers draw their randomness from (e.rng.seed,
    layer stream, e.rng.step, element e.row0 * width + index in the batch): keyed by the
    global row."""
    cdef Py_ssize_t i
    cdef const LayerDesc* d
    cdef const floating* inp = X
    cdef floating* A
    for i in range(e.n_layers):
        d = &e.layers[i]
        A = block(e, d.a_col, <floating*> e.work)
        if floating is float:
            OPS[d.kind].forward_f(e, d, inp, A)
        else:
            OPS[d.kind].forward_d(e, d, inp, A)
        inp = A


cdef void zero_small_grads(const Exec* e, floating* G) noexcept nogil:
    """Zero the gradient slots that kernels accumulate into (GRADS_ACCUMULATE kinds: PReLU
    slopes, normalization scale and shift): with fresh_grads the GEMM-written ones
    (GRADS_WRITE) are overwritten by their GEMM."""
    cdef Py_ssize_t i
    cdef const LayerDesc* d
    cdef Sizes s
    for i in range(e.n_layers):
        d = &e.layers[i]
        if OPS[d.kind].grad_mode == GRADS_ACCUMULATE:
            OPS[d.kind].sizes(d, &s)
            if s.w > 0:
                memset(G + d.w_off, 0, s.w * sizeof(floating))
            if s.b > 0:
                memset(G + d.b_off, 0, s.b * sizeof(floating))


cdef void plan_backward(const Exec* e, const floating* X, const floating* dY,
                        floating* dX) noexcept nogil:
    """Backpropagate dY (batch, n_out of the last layer) after plan_forward on X.

    Parameter gradients accumulate into e.grads (are written with e.fresh_grads); dX (batch,
    n_in) is written when not NULL. The gradient ping-pongs between two scratch buffers.
    """
    cdef Py_ssize_t i, B = e.batch
    cdef const LayerDesc* d
    cdef floating* g_cur = <floating*> e.scratch
    cdef floating* g_next = g_cur + B * e.scratch_cols
    cdef floating* dst
    cdef floating* tmp
    cdef const floating* inp
    memcpy(g_cur, dY, B * e.layers[e.n_layers - 1].n_out * sizeof(floating))
    if e.fresh_grads:
        zero_small_grads(e, <floating*> e.grads)
    for i in range(e.n_layers - 1, -1, -1):
        d = &e.layers[i]
        inp = X if i == 0 else block(e, e.layers[i - 1].a_col, <floating*> e.work)
        dst = dX if i == 0 else g_next
        if floating is float:
            OPS[d.kind].backward_f(e, d, inp, g_cur, dst)
        else:
            OPS[d.kind].backward_d(e, d, inp, g_cur, dst)
        tmp = g_cur
        g_cur = g_next
        g_next = tmp


cdef bint _predict_rows(Exec* e, const floating* X, floating* out, Py_ssize_t B,
                       Py_ssize_t n_in, Py_ssize_t n_out, bint check) noexcept nogil:
    """Evaluation-mode forward of B rows (the workspace holds them), their outputs copied to
    out. With ``check``, returns False when X holds a NaN or inf: checked by the first
    layer's tiles as they first read each block of X (Exec.input_check), so X is read from
    memory once, or else by a pass over the rows."""
    cdef const LayerDesc* last = &e.layers[e.n_layers - 1]
    cdef int flags[2]
    e.batch = B
    flags[0] = flags[1] = 0
    e.input_check = flags if check else NULL
    plan_forward(e, X)
    e.input_check = NULL
    if check and (flags[0] or (not flags[1] and not all_finite(X, B * n_in))):
        return False
    memcpy(out, <floating*> e.work + B * last.a_col, B * n_out * sizeof(floating))
    return True


cdef bint _predict(Exec* e, const floating* X, floating* out, Py_ssize_t n, Py_ssize_t chunk,
                   Py_ssize_t n_in, Py_ssize_t n_out, bint check) noexcept nogil:
    """Evaluation-mode forward of n rows, chunk rows at a time (each layer's products on
    the core's team), each chunk's output copied to out. Contract: the workspace holds
    min(chunk, n) rows; e.training is False. Nothing reads the layers' Z after a
    prediction (Exec.predicting), so dense layers write their output once, in A's block,
    instead of Z and then A. With ``check``, returns False at the first chunk whose rows
    hold a NaN or inf (see _predict_rows)."""
    cdef Py_ssize_t start = 0, B
    cdef bint ok = True
    e.predicting = True
    while start < n:
        B = min(chunk, n - start)
        if not _predict_rows(e, X + start * n_in, out + start * n_out, B, n_in, n_out, check):
            ok = False
            break
        start += B
    e.predicting = False
    return ok


cdef Py_ssize_t chain_runs(Py_ssize_t n, Py_ssize_t chunk, int threads, Py_ssize_t* base,
                           Py_ssize_t* extra) noexcept nogil:
    """How many runs n rows go in (see _plan.pxd), setting base and extra: runs of about
    chunk / threads rows (a chunk's share of a thread), as many as a multiple of the
    threads and as even as whole RUN_UNITs allow, so that on a quiet machine every thread
    ends with the others (measured: 500-row runs whose blocks were not 64-byte aligned, or
    19 runs of 512 rows and one of 272, cost 1-2.5 % of a 10,000-row prediction)."""
    cdef Py_ssize_t rows = (chunk + threads - 1) // threads
    cdef Py_ssize_t runs = (n + rows - 1) // rows
    cdef Py_ssize_t units = (n + RUN_UNIT - 1) // RUN_UNIT
    runs = min((runs + threads - 1) // threads * threads, units)
    base[0], extra[0] = units // runs, units % runs
    return runs


ctypedef struct ChainJob:
    Exec slots[MAX_CHAINS]   # a participant's copy of the plan's Exec, its own workspace
    int bad[MAX_CHAINS]      # a participant found a NaN or inf
    const void* X
    void* out
    Py_ssize_t n, n_in, n_out
    Py_ssize_t base, extra   # run i: RUN_UNIT (base + (i < extra)) rows (the last one cut
                             # at n): as even as whole units allow
    bint check, f32


cdef void _chain_chunk(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    """Run i's rows through every layer on this thread alone (its products on one thread:
    the team is this job's)."""
    cdef ChainJob* j = <ChainJob*> ctx
    cdef Exec* e = &j.slots[slot]
    cdef Py_ssize_t start
    cdef Py_ssize_t B = run_rows(i, j.base, j.extra, j.n, &start)
    cdef int saved = thread_override_get()
    cdef bint ok
    if B <= 0:
        return
    thread_override_set(1)
    if j.f32:
        ok = _predict_rows(e, <const float*> j.X + start * j.n_in,
                           <float*> j.out + start * j.n_out, B, j.n_in, j.n_out, j.check)
    else:
        ok = _predict_rows(e, <const double*> j.X + start * j.n_in,
                           <double*> j.out + start * j.n_out, B, j.n_in, j.n_out, j.check)
    thread_override_set(saved)
    if not ok:
        j.bad[slot] = 1


cdef bint _predict_chains(ChainJob* j, const Exec* e, char* work, Py_ssize_t slot_bytes,
                          int threads, Py_ssize_t chunks) noexcept nogil:
    """Evaluation-mode forward of j.n rows in ``chunks`` runs (see ChainJob), each through
    every layer on one thread, claimed from the team's shared counter: a thread the host
    parks holds up at most its one run, not every layer's product of every chunk (see
    Plan.predict). Participant s computes in work + s slot_bytes."""
    cdef int s
    cdef bint ok = True
    for s in range(threads):
        j.slots[s] = e[0]
        j.slots[s].work = work + s * slot_bytes
        j.slots[s].predicting = True
        j.bad[s] = 0
    pool_run(threads, chunks, <task_fn> _chain_chunk, j)
    for s in range(threads):
        ok = ok and not j.bad[s]
    return ok


from fastmlp._kernels cimport fm_finite_epi, fm_finite_epi_f32, fm_finite_epi_f64


def finite_block_for_tests(floating[:, ::1] c, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0,
                           Py_ssize_t cols):
    """Test wrapper of backward's finiteness check (epilogue.h's fm_finite_epi) on the
    block c[r0:r0+rows, c0:c0+cols]: True when it holds no NaN or inf."""
    if not (0 <= r0 and 0 <= rows and r0 + rows <= c.shape[0] and 0 <= c0 and 0 <= cols
            and c0 + cols <= c.shape[1]):
        raise ValueError(f"block ({r0}, {rows}, {c0}, {cols}) outside c of shape "
                         f"({c.shape[0]}, {c.shape[1]})")
    cdef fm_finite_epi check
    cdef int bad = 0
    if c.shape[0] == 0 or c.shape[1] == 0:
        return True
    check.c, check.ld, check.bad = &c[0, 0], c.shape[1], &bad
    if floating is float:
        fm_finite_epi_f32(&check, r0, rows, c0, cols)
    else:
        fm_finite_epi_f64(&check, r0, rows, c0, cols)
    return not bad


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


cdef class TrainingState:
    """The training state a model shares with the core: the key and the counter of its
    counter-based RNG (dropout, noise, augmentation). One object per model, owned by the
    model; every compiled plan of the model (and the fused loops through them) reads and
    advances it by pointer, so no copy of it exists to be synchronized.

    Parameters
    ----------
    seed : int
        The RNG key, in [0, 2**64).
    rng_step : int
        Training forward passes so far (the counter), in [0, 2**64).
    """
    def __init__(self, seed=0, rng_step=0):
        self.seed, self.rng_step = seed, rng_step

    property seed:
        """The key of the counter-based RNG."""
        def __get__(self):
            return self.s.seed

        def __set__(self, value):
            self.s.seed = _u64(value, "seed")

    property rng_step:
        """Training forward passes so far: the counter of the RNG."""
        def __get__(self):
            return self.s.step

        def __set__(self, value):
            self.s.step = _u64(value, "rng_step")

    def __reduce__(self):
        return TrainingState, (self.s.seed, self.s.step)

    def __repr__(self):
        return f"TrainingState(seed={self.s.seed}, rng_step={self.s.step})"


cdef unsigned long long _u64(value, str name) except? 0:
    """``value`` as an unsigned 64-bit integer; ValueError outside [0, 2**64)."""
    if not 0 <= value < 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


cdef class Plan:
    """A compiled stack of library layers over a model's parameter arena.

    Parameters
    ----------
    descs : list of dict
        One dict per layer with the ``LayerDesc`` fields: those of every kind (kind, n_in,
        n_out, w_off, b_off, s_off, flags, stream) and the kind's own (act, alpha, pieces,
        n_slopes, rate, std, momentum, eps, link, aug: see ``_plan.pxd``); a key the kind
        does not take is refused. Workspace columns are assigned here.
    params, grads : ndarray
        The model's arena and its gradient (1-D, C-contiguous, float32 or float64). The plan
        keeps references to both; they must never be reallocated.
    buffers : ndarray or None
        The model's non-trainable state (running statistics), same dtype.
    state : TrainingState or int
        The model's RNG key and counter, read by pointer (the model advances the counter);
        an int is the key of a state of the plan's own, counter at 0.
    """
    def __cinit__(self):
        self.descs = NULL

    def __init__(self, list descs, params, grads, buffers=None, state=0):
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
        self.state = state if isinstance(state, TrainingState) else TrainingState(state)
        self.ex.rng = &self.state.s
        self.ex.row0 = 0
        self.ex.training = False
        self.ex.predicting = False
        self.ex.input_check = NULL
        self.ex.fresh_grads = False
        self.ex.grad_bad = NULL
        self.capacity = 0
        self.ready = False

    def __dealloc__(self):
        free(self.descs)

    cdef bint grads_checkable(self):
        """True when backward writes every parameter gradient of the arena through a
        kernel that checks it (Exec.grad_bad): the arena is exactly the untied weights and
        biases of K_DENSE / K_MAXOUT layers."""
        cdef Py_ssize_t i, covered = 0
        cdef Sizes s
        cdef LayerDesc* d
        for i in range(self.n_layers):
            d = &self.descs[i]
            OPS[d.kind].sizes(d, &s)
            if s.w == 0 and s.b == 0:
                continue
            if (d.kind != K_DENSE and d.kind != K_MAXOUT) or d.flags & (F_TRANS_W | F_ACCUM_W):
                return False
            covered += s.w + (s.b if d.b_off >= 0 else 0)
        return covered == self.ex.n_params

    def grads_checkable_for_tests(self):
        """:meth:`grads_checkable`, for tests."""
        return self.grads_checkable()

    cdef int reserve(self, Py_ssize_t batch) except -1:
        """Size the workspace for ``batch`` rows (grow only; reused for smaller batches)."""
        if batch > self.capacity:
            self.work = aligned_empty(batch * self.ex.work_cols, self.dtype)   # see _aligned
            self.scratch = aligned_empty(3 * batch * self.ex.scratch_cols, self.dtype)
            self.ex.work = _ptr1(self.work, self.f32)
            self.ex.scratch = _ptr1(self.scratch, self.f32)
            self.capacity = batch
        self.ex.batch = batch
        return 0

    def forward(self, X, bint training=False):
        """Run the stack on X (batch, n_in), C-contiguous, of the plan's dtype; return a copy
        of the output. X is kept (not copied) for the next backward. A training pass uses
        batch statistics and draws dropout masks for the counter ``state.rng_step`` as it
        is (the caller advances it: one model forward, one step, whatever its stages)."""
        cdef const float[:, ::1] xf
        cdef const double[:, ::1] xd
        self._check_input(X, "X", self.n_in)
        self.reserve(X.shape[0])
        self.ready = False
        self.ex.training = training
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

    def predict(self, X, Py_ssize_t chunk, bint check_finite=False):
        """Evaluation-mode outputs of X (n, n_in), ``chunk`` rows at a time, in one call
        without the GIL; returns a new (n, n_out) array. Leaves nothing for backward.
        With ``check_finite``, X may hold NaN or inf: ValueError then (checked as the first
        layer reads X, see _predict_rows). (NumPy's C API throughout: a one-row call costs
        microseconds, each one counts.)

        On several threads and at least ``chunk`` rows, the rows go in runs of about
        chunk / threads, each through every layer on one thread, the runs claimed from the
        team's counter (_predict_chains); fewer rows go chunk by chunk, each layer's
        product split over the team (_predict). The work is the same (a product split
        along its rows packs all of W on each thread either way); the runs wait for no
        one between layers: with another process keeping a core busy, 10,000 rows of the
        MNIST shape took 38 ms a call against 57-61 ms chunk by chunk (and 55 ms on one
        thread), on a quiet machine the same time. A row's output does not depend on the
        run it is in, nor on the threads (the kernels' sums are per row and in one order)."""
        self._check_input(X, "X", self.n_in)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        cdef cnp.npy_intp dims[2]
        cdef Py_ssize_t n = cnp.PyArray_DIMS(<cnp.ndarray> X)[0]
        cdef int threads = min(num_threads(), MAX_CHAINS)
        cdef Py_ssize_t runs, rows
        cdef ChainJob job
        cdef char* work
        self.ready = False
        self.ex.training = False
        dims[0], dims[1] = n, self.n_out
        out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32 if self.f32 else cnp.NPY_FLOAT64, 0)
        cdef void* xp = cnp.PyArray_DATA(<cnp.ndarray> X)
        cdef void* op = cnp.PyArray_DATA(<cnp.ndarray> out)
        cdef bint ok
        if threads > 1 and n >= chunk:
            runs = chain_runs(n, chunk, threads, &job.base, &job.extra)
            rows = RUN_UNIT * (job.base + (job.extra > 0))
            if self.chain_rows < rows or self.chain_threads < threads:
                self.chain_work = aligned_empty(threads * rows * self.ex.work_cols, self.dtype)
                self.chain_rows, self.chain_threads = rows, threads
            job.X, job.out, job.n = xp, op, n
            job.n_in, job.n_out, job.check, job.f32 = self.n_in, self.n_out, check_finite, self.f32
            work = <char*> _ptr1(self.chain_work, self.f32)
            with nogil:
                ok = _predict_chains(&job, &self.ex, work,
                                     self.chain_rows * self.ex.work_cols
                                     * (4 if self.f32 else 8), threads, runs)
        else:
            self.reserve(min(chunk, n))
            with nogil:
                if self.f32:
                    ok = _predict(&self.ex, <const float*> xp, <float*> op, n, chunk,
                                  self.n_in, self.n_out, check_finite)
                else:
                    ok = _predict(&self.ex, <const double*> xp, <double*> op, n, chunk,
                                  self.n_in, self.n_out, check_finite)
        if not ok:
            raise ValueError("X contains NaN or infinity")
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
        cdef cnp.ndarray a
        if not cnp.PyArray_Check(X):
            raise TypeError(f"{name} must be a C-contiguous, aligned 2-D {self.dtype} array")
        a = <cnp.ndarray> X
        if cnp.PyArray_TYPE(a) != (cnp.NPY_FLOAT32 if self.f32 else cnp.NPY_FLOAT64) \
                or not cnp.PyArray_ISNOTSWAPPED(a) or cnp.PyArray_NDIM(a) != 2 \
                or not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
            raise TypeError(f"{name} must be a C-contiguous, aligned 2-D {self.dtype} array")
        if cnp.PyArray_DIMS(a)[1] != width:
            raise ValueError(f"{name} has {X.shape[1]} columns, expected {width}")
        if cnp.PyArray_DIMS(a)[0] < 1 or cnp.PyArray_DIMS(a)[0] >= 2**31:
            raise ValueError(f"{name} must have between 1 and 2**31 - 1 rows, got {X.shape[0]}")
        return 0


cdef _assign_columns(Exec* ex, LayerDesc* descs):
    """Lay out each layer's blocks in the workspace (widths per row) and size the scratch."""
    cdef Py_ssize_t i, col = 0, widest = 0
    cdef Sizes s
    cdef LayerDesc* d
    for i in range(ex.n_layers):
        d = &descs[i]
        col = OPS[d.kind].layout(d, col)
        OPS[d.kind].sizes(d, &s)
        widest = max(widest, s.grad_cols, d.n_in)
    ex.work_cols = col
    ex.scratch_cols = widest


cdef _mark_shared_weights(LayerDesc* d, Py_ssize_t n):
    """Flag F_ACCUM_W on every GEMM-written (GRADS_WRITE) use of a W slot but the first one
    backward meets."""
    seen = set()
    for i in range(n - 1, -1, -1):
        if OPS[d[i].kind].grad_mode == GRADS_WRITE:
            if d[i].w_off in seen:
                d[i].flags |= F_ACCUM_W
            seen.add(d[i].w_off)


cdef _check_links(LayerDesc* d, Py_ssize_t n):
    """Each layer's input is its predecessor's output; the kinds' own checks of the others."""
    cdef Py_ssize_t i
    for i in range(n):
        if i > 0 and d[i].n_in != d[i - 1].n_out:
            raise ValueError(f"layer {i} expects {d[i].n_in} inputs but layer {i - 1} gives "
                             f"{d[i - 1].n_out}")
        if OPS[d[i].kind].check_links != NULL:
            OPS[d[i].kind].check_links(d, n, i)


cdef LayerDesc _desc_from_dict(dict spec, Py_ssize_t arena_size, Py_ssize_t n_buffers) except *:
    """Check one layer descriptor against the arena, so the kernels can trust it: the fields
    every kind has here, the kind's own ones by its ``read``; a key nobody reads is refused."""
    cdef LayerDesc d
    memset(&d, 0, sizeof(LayerDesc))
    rest = dict(spec)
    d.kind = rest.pop("kind")
    if not 0 <= d.kind < K_N_KINDS:
        raise ValueError(f"unknown layer kind {d.kind}")
    d.n_in, d.n_out = rest.pop("n_in"), rest.pop("n_out")
    d.w_off, d.b_off, d.s_off = rest.pop("w_off", -1), rest.pop("b_off", -1), rest.pop("s_off", -1)
    d.flags, d.stream = rest.pop("flags", 0), rest.pop("stream", 0)
    d.a_col = d.z_col = d.mask_col = d.xhat_col = d.rstd_col = d.skip_col = d.link = -1
    d.act, d.pieces = FM_IDENTITY, 1
    if not (0 < d.n_in < 2**31 and 0 < d.n_out < 2**31):
        raise ValueError(f"layer sizes must be positive and < 2**31: {spec}")
    OPS[d.kind].read(&d, rest)
    if rest:
        raise ValueError(f"{OPS[d.kind].name.decode()} takes no {sorted(rest)}: {spec}")
    cdef Sizes s
    OPS[d.kind].sizes(&d, &s)
    cdef bint w_bad = s.w > 0 and not (0 <= d.w_off and d.w_off + s.w <= arena_size)
    cdef bint b_bad = d.b_off >= 0 and not (s.b > 0 and d.b_off + s.b <= arena_size)
    cdef bint s_bad = s.state > 0 and not (0 <= d.s_off and d.s_off + s.state <= n_buffers)
    if w_bad or b_bad or s_bad:
        raise ValueError(f"layer parameters fall outside the arena: {spec}")
    return d
