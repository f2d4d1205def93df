"""The fused training loop of graph models: whole mini-batch steps in one GIL-free call.

For each step of a chunk: gather each input's rows, and each output's targets (or class
labels) and row weights, by index into preallocated buffers; forward through the graph
(``fastmlp._graph``); each output's loss value and gradient, the gradient times the
output's loss weight; seed the outputs' gradients; backward, which writes the gradient
arena as the Sequential loop does when no two layer chains share a parameter (else it adds
into the zeroed arena); then what every fused loop does after backward
(``fastmlp._train.finish_step``: penalties, the finiteness check, the optimizer update,
constraints). Nothing is allocated per step; Python regains control after each chunk.

It computes what the Python step of ``fastmlp._graph_fit`` computes, with the same kernels
in the same order, so both give the same weights bit for bit.
"""
import numpy as np

from cython cimport floating
from libc.math cimport NAN, isfinite
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from fastmlp._graph cimport (Graph, GraphExec, GTensor, bind_batch, graph_backward,
                             graph_forward, seed_grads)
from fastmlp._losses cimport (LOSS_CROSS_ENTROPY, LOSS_MULTI_MARGIN, LOSS_N_CODES, LossSpec,
                              REDUCTION_MEAN, REDUCTION_SUM, batch_scale, loss_value_grad)
from fastmlp._optim cimport all_finite
from fastmlp._plan cimport Plan, RngState
from fastmlp._train cimport (Governor, OptSlot, Progress, Regularization, RunGuard,
                             _check_array, _check_perm, _data_ptr, bind_optimizer,
                             finish_step, fm_governor, governor_tick, guard_enter,
                             guard_leave, reg_tables)


ctypedef struct Column:          # one training array, gathered by row into a batch buffer
    const char* src              # (n_rows, row_bytes)
    char* dst                    # (batch, row_bytes)
    Py_ssize_t row_bytes


ctypedef struct Head:            # one output of the model: its loss and batch buffers
    LossSpec spec
    double weight                # its loss weight
    Py_ssize_t tensor            # its tensor in the graph
    Py_ssize_t width
    void* tb                     # batch targets (batch, width), or NULL
    long long* lb                # batch class labels (batch,), or NULL
    void* wb                     # batch row weights (batch,), or NULL


ctypedef struct Steps:           # what a run reads besides the graph and the optimizer
    Column* cols                 # the inputs first (in the graph's order), then the heads'
    Py_ssize_t n_cols
    Head* heads
    Py_ssize_t n_heads
    void** dy                    # each head's loss gradient (batch, width): its output's dY
    const Py_ssize_t* out_ids    # the graph's output tensors and seed modes (seed_grads)
    const char* modes
    Regularization reg
    void* params
    void* grads
    Py_ssize_t n_params
    Py_ssize_t batch_size
    bint fresh                   # no two plans share a parameter slot: each plan's backward
                                 # writes its gradients (fresh_grads), no zeroing pass
    RngState* rng                # the model's RNG state, shared by every segment's plan


cdef void gather(const Column* c, Py_ssize_t n_cols, const long long* idx,
                 Py_ssize_t B) noexcept nogil:
    """Copy the rows idx[0:B] of every column's array into its batch buffer."""
    cdef Py_ssize_t k, i, w
    for k in range(n_cols):
        w = c[k].row_bytes
        for i in range(B):
            memcpy(c[k].dst + i * w, c[k].src + idx[i] * w, w)


cdef double head_losses(const Steps* s, const GraphExec* g, Py_ssize_t B,
                        floating* tag) noexcept nogil:
    """Σ_k weight_k · loss_k over the batch (in output order, from 0.0); head k's gradient,
    times weight_k when that is not 1, into s.dy[k]. NAN when an output is not finite (the
    loss would not take it). ``tag`` only selects the type."""
    cdef double value = 0.0
    cdef Py_ssize_t k, i, n
    cdef const Head* h
    cdef const floating* pred
    cdef floating* grad
    cdef floating lw
    for k in range(s.n_heads):
        h = &s.heads[k]
        pred = <const floating*> g.tensors[h.tensor].val
        grad = <floating*> s.dy[k]
        n = B * h.width
        if not all_finite(pred, n):
            return NAN
        value += h.weight * loss_value_grad(&h.spec, pred, <const floating*> h.tb, h.lb,
                                            <const floating*> h.wb, grad, B,
                                            batch_scale(&h.spec, B))
        if h.weight != 1.0:
            lw = <floating> h.weight
            for i in range(n):
                grad[i] = grad[i] * lw
    return value


cdef void run_graph_steps(GraphExec* g, Steps* s, OptSlot* opt, const long long* perm,
                          Py_ssize_t n_perm, Progress* out, fm_governor* gov,
                          floating* tag) noexcept nogil:
    """Steps over perm[0:n_perm] in batches of s.batch_size (the last one may be smaller).
    Stops before the update of a step whose loss or gradient is not finite. With a
    governor (not NULL), the calling thread's core thread count follows its choices."""
    cdef Py_ssize_t start = 0, B
    cdef floating* work = <floating*> g.work
    cdef floating* grads = <floating*> s.grads
    cdef double value
    while start < n_perm:
        B = min(s.batch_size, n_perm - start)
        gather(s.cols, s.n_cols, perm + start, B)
        bind_batch(g, B, work)
        s.rng.step += 1                     # as Model.forward(training=True)
        graph_forward(g, work)
        value = head_losses(s, g, B, work)
        if not isfinite(value):                 # as the Python step: before backward
            out.bad_step, out.bad_value = out.steps, value
            return
        if not s.fresh:                         # as Model.zero_grad
            memset(grads, 0, s.n_params * sizeof(floating))
        seed_grads(g, s.out_ids, s.modes, <floating**> s.dy, s.n_heads)
        graph_backward(g, work)
        if not finish_step(opt, &s.reg, <floating*> s.params, grads, s.n_params, value, B,
                           out):
            return
        start += B
        governor_tick(gov)


# --- the Python-facing runner --------------------------------------------------------------

cdef class GraphRunner:
    """Runs training steps of one compiled graph on one training set, a loss per output.

    Parameters
    ----------
    graph : Graph
        The model's compiled executor (``Model._stages``: library layers only), with at
        least one segment; its plans share one parameter arena.
    X : list of ndarray (n_rows, width)
        One array per input of the graph, C-contiguous, of its dtype. Never copied:
        batches are gathered from them by index.
    targets : list of ndarray
        One per output: float targets (n_rows, width) of the graph's dtype, or int64 class
        labels (n_rows,) in [0, width) (cross-entropy, multi-margin).
    weights : list or None
        None, or one entry per output: None or its row weights (n_rows,), graph dtype.
    loss_specs : list of dict
        Per output, the ``LossSpec`` fields (``Loss._spec(width)``).
    loss_weights : list of float
        Per output, the weight (finite, >= 0) of its loss in the total.
    batch_size, penalties, constraints, governor
        As for ``fastmlp._train.Runner``.
    """
    cdef Graph graph
    cdef Steps s
    cdef OptSlot opt
    cdef object refs, opt_refs
    cdef readonly Governor governor
    cdef readonly Py_ssize_t batch_size, n_rows

    def __cinit__(self):
        memset(&self.s, 0, sizeof(Steps))

    def __dealloc__(self):
        free(self.s.cols)
        free(self.s.heads)
        free(self.s.dy)

    def __init__(self, Graph graph not None, list X, list targets, weights, list loss_specs,
                 list loss_weights, Py_ssize_t batch_size, penalties=None, constraints=None,
                 Governor governor=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.graph, self.governor = graph, governor
        arena = self._arena(graph)
        n_out = graph.n_outputs
        if len(X) != graph.n_inputs:
            raise ValueError(f"X must hold one array per input ({graph.n_inputs}), got {len(X)}")
        for what, given in (("targets", targets), ("loss_specs", loss_specs),
                            ("loss_weights", loss_weights), ("weights", weights)):
            if given is not None and (not isinstance(given, list) or len(given) != n_out):
                raise ValueError(f"{what} must be a list of one entry per output ({n_out})")
        _check_array(X[0], "X[0]", graph.dtype, 2, -1)
        self.n_rows = X[0].shape[0]
        self.batch_size = min(batch_size, self.n_rows)
        if self.batch_size >= 2**31:
            raise ValueError(f"batch_size must be < 2**31, got {batch_size}")
        weights = [None] * n_out if weights is None else weights
        self.s.n_cols = graph.n_inputs + n_out + sum(w is not None for w in weights)
        self.s.cols = <Column*> calloc(self.s.n_cols, sizeof(Column))
        self.s.heads = <Head*> calloc(n_out, sizeof(Head))
        self.s.dy = <void**> calloc(n_out, sizeof(void*))
        if self.s.cols == NULL or self.s.heads == NULL or self.s.dy == NULL:
            raise MemoryError()
        self.s.n_heads, self.s.batch_size = n_out, self.batch_size
        self.s.out_ids, self.s.modes = graph.out_ids, graph.modes
        bufs = [self._column(k, x, f"X[{k}]", graph.dtype, 2,
                             graph.g.tensors[graph.in_ids[k]].width)
                for k, x in enumerate(X)]
        col = graph.n_inputs
        for k in range(n_out):
            bufs += self._head(k, targets[k], weights[k], loss_specs[k], loss_weights[k], col)
            col += 1 if weights[k] is None else 2
        # the tables are built here, so their ranges are checked against this arena
        tables = reg_tables(&self.s.reg, penalties, constraints, self.s.n_params)
        self.refs = (X, targets, weights, arena, bufs, tables)

    cdef object _arena(self, Graph graph):
        """The parameter arena (params, grads) every plan of ``graph`` runs over."""
        cdef Plan p
        if not graph.plans:
            raise ValueError("the graph has no layer chain: nothing to train")
        p = <Plan> graph.plans[0]
        for obj in graph.plans:
            if (<Plan> obj).params is not p.params or (<Plan> obj).grads is not p.grads:
                raise ValueError("the graph's plans do not share one parameter arena")
            if (<Plan> obj).state is not p.state:
                raise ValueError("the graph's plans do not share one TrainingState")
        self.s.rng = &p.state.s
        self.s.params, self.s.grads = _data_ptr(p.params), _data_ptr(p.grads)
        self.s.n_params = p.ex.n_params
        self.s.fresh = not _shared_slots(graph.plans)
        return p.params, p.grads

    cdef object _column(self, Py_ssize_t k, a, str name, dtype, int ndim, Py_ssize_t cols):
        """Check ``a`` (n_rows rows) and make it column k; returns its batch buffer."""
        _check_array(a, name, dtype, ndim, cols, self.n_rows)
        buf = np.empty((self.batch_size,) + a.shape[1:], a.dtype)
        self.s.cols[k].src = <const char*> _data_ptr(a)
        self.s.cols[k].dst = <char*> _data_ptr(buf)
        self.s.cols[k].row_bytes = a.nbytes // a.shape[0]
        return buf

    cdef list _head(self, Py_ssize_t k, target, weight, dict spec, loss_weight,
                    Py_ssize_t col):
        """Check output k's target, row weights, loss spec and loss weight; make its
        head and columns (from ``col`` on); returns the buffers made."""
        cdef Head* h = &self.s.heads[k]
        dt = self.graph.dtype
        h.tensor = self.graph.out_ids[k]
        h.width = self.graph.g.tensors[h.tensor].width
        h.spec = spec
        if not (0 <= h.spec.code < LOSS_N_CODES and h.spec.n_outputs == h.width
                and h.spec.reduction in (REDUCTION_MEAN, REDUCTION_SUM)):
            raise ValueError(f"loss_specs[{k}] does not fit output {k} ({h.width} columns): "
                             f"{spec}")
        lw = float(loss_weight)
        if not (isfinite(lw) and lw >= 0):
            raise ValueError(f"loss_weights[{k}] must be finite and >= 0, got {loss_weight!r}")
        h.weight = lw
        labels = isinstance(target, np.ndarray) and target.dtype == np.int64
        takes_labels = h.spec.code == LOSS_CROSS_ENTROPY or h.spec.code == LOSS_MULTI_MARGIN
        if (labels and not takes_labels) or (not labels and h.spec.code == LOSS_MULTI_MARGIN):
            raise ValueError(f"targets[{k}]: class labels (int64) go with cross-entropy and "
                             "multi-margin losses, float targets with the others")
        gb = np.empty((self.batch_size, h.width), dt)
        self.s.dy[k] = _data_ptr(gb)
        if labels:
            tb = self._column(col, target, f"targets[{k}]", np.int64, 1, -1)
            if target.min() < 0 or target.max() >= h.width:
                raise ValueError(f"targets[{k}] must hold class labels in [0, {h.width})")
            h.lb = <long long*> _data_ptr(tb)
        else:
            tb = self._column(col, target, f"targets[{k}]", dt, 2, h.width)
            h.tb = _data_ptr(tb)
        if weight is None:
            return [gb, tb]
        wb = self._column(col + 1, weight, f"weights[{k}]", dt, 1, -1)
        h.wb = _data_ptr(wb)
        return [gb, tb, wb]

    property fresh_grads:
        """Whether backward writes the gradient arena (no two layer chains share a
        parameter) rather than adding into it after a zeroing pass."""
        def __get__(self):
            return bool(self.s.fresh)

    property rng_step:
        """Training forward passes so far: the dropout/noise counter of the plans'
        TrainingState (the model's ``rng_step``, the same memory), advanced by one per
        step."""
        def __get__(self):
            return self.s.rng.step

    def run(self, perm, binding):
        """One chunk of training, as ``fastmlp._train.Runner.run`` (one process): the rows
        ``perm`` in order, in batches of ``batch_size``, the optimizer ``binding``; returns
        ``(loss_sum, rows, steps, bad_step, bad_value)``."""
        cdef RunGuard guard
        cdef Progress prog
        cdef const long long[::1] p = _check_perm(perm, self.n_rows)
        cdef float ftag = 0
        cdef double dtag = 0
        self.opt_refs = bind_optimizer(&self.opt, binding, self.graph.dtype, self.s.n_params)
        if p.shape[0] == 0:
            return 0.0, 0, 0, -1, 0.0
        prog.loss_sum, prog.rows, prog.steps, prog.bad_step, prog.bad_value = 0.0, 0, 0, -1, 0.0
        self._prepare()
        guard_enter(&guard, self.governor)
        try:
            with nogil:
                if self.graph.f32:
                    run_graph_steps(&self.graph.g, &self.s, &self.opt, &p[0], p.shape[0],
                                    &prog, guard.gov, &ftag)
                else:
                    run_graph_steps(&self.graph.g, &self.s, &self.opt, &p[0], p.shape[0],
                                    &prog, guard.gov, &dtag)
        finally:
            guard_leave(&guard)
            for obj in self.graph.plans:         # Graph.backward adds into the arena
                (<Plan> obj).ex.fresh_grads = False
        return prog.loss_sum, prog.rows, prog.steps, prog.bad_step, prog.bad_value

    cdef int _prepare(self) except -1:
        """The graph ready for training steps: workspaces for a batch (a forward or predict
        since the last run may have moved them), the inputs read from the batch buffers,
        no input gradients, nothing left for a ``Graph.backward``."""
        cdef Plan p
        cdef GTensor* t
        cdef Py_ssize_t k
        self.graph._reserve(self.batch_size)
        self.graph.ready = False
        for obj in self.graph.plans:
            p = <Plan> obj
            p.ex.training, p.ex.fresh_grads, p.ready = True, self.s.fresh, False
        for k in range(self.graph.n_inputs):
            t = &self.graph.g.tensors[self.graph.in_ids[k]]
            t.val, t.grad = self.s.cols[k].dst, NULL
        return 0


cdef bint _shared_slots(list plans):
    """Whether two plans use one parameter slot (a layer called in two chains, or weights
    tied across them): their backward must then add into a zeroed arena."""
    cdef Plan p
    cdef Py_ssize_t i
    owner = {}
    for k, obj in enumerate(plans):
        p = <Plan> obj
        for i in range(p.n_layers):
            for off in (p.descs[i].w_off, p.descs[i].b_off):
                if off >= 0 and owner.setdefault(off, k) != k:
                    return True
    return False
