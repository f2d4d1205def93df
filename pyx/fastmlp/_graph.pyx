"""Run a compiled graph model: nodes in topological order, one GIL-free call per pass.

A node is a **segment** (a chain of library layers, one compiled ``Plan`` with its own
workspace, run by ``plan_forward`` / ``plan_backward``) or a **merge** (Add, Subtract,
Multiply, Concatenate, kernels of ``_merge.pxd``). Tensors are numbered; each one's value
lives in the caller's array (model inputs), in its segment's workspace (segment outputs) or
in a column block of this executor's workspace (merge outputs), and each gradient in a
block of the same workspace, in the caller's array (model inputs, and an output's dY when
nothing else feeds it) or nowhere. Blocks are assigned by the Python planner
(``fastmlp._graph_build.assign_slots``) from the liveness of every value and gradient over
the forward and backward pass, so dead ones share memory. Backward runs the nodes in
reverse; where a tensor fans out, the first contribution met writes its gradient and the
later ones add to it (``edge_accum``).
"""
import numpy as np

from fastmlp._aligned import aligned_empty

from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from fastmlp._blas cimport (num_threads, pool_run, task_fn, thread_override_get,
                            thread_override_set)
from fastmlp._merge cimport (add2, add_into, concat_block, mul2, mul_into, mul_others, put,
                             put_neg, split_block, sub2)
from fastmlp._plan cimport (MAX_CHAINS, RUN_UNIT, Exec, Plan, chain_runs, plan_backward,
                            plan_forward, run_rows)
from cython cimport floating



cdef inline floating* block(const GraphExec* g, Py_ssize_t col, floating* base) noexcept nogil:
    return base + g.batch * col


cdef void bind_batch(GraphExec* g, Py_ssize_t B, floating* work) noexcept nogil:
    """Set the batch size B (every workspace holds >= B rows) and point the values and
    gradients of the computed tensors at their blocks."""
    cdef Py_ssize_t i
    cdef GTensor* t
    g.batch = B
    for i in range(g.n_segs):
        g.segs[i].batch = B
    for i in range(g.n_nodes):
        t = &g.tensors[g.nodes[i].out]
        if t.home == T_SEGMENT:
            t.val = <floating*> g.segs[t.seg].work + g.batch * g.seg_col[t.seg]
        elif t.home == T_SLOT:
            t.val = block(g, t.val_col, work)
        if t.grad_col >= 0:
            t.grad = block(g, t.grad_col, work)


cdef void merge_forward(const GraphExec* g, const GNode* n, floating* work) noexcept nogil:
    """The merge's output from its inputs (``work`` only fixes the float type)."""
    cdef Py_ssize_t k, col = 0
    cdef const GTensor* out = &g.tensors[n.out]
    cdef floating* Y = <floating*> out.val
    cdef const GTensor* x0 = &g.tensors[g.edge_tensor[n.first_in]]
    cdef const GTensor* x1 = &g.tensors[g.edge_tensor[n.first_in + 1]]
    cdef Py_ssize_t size = g.batch * out.width
    if n.op == G_ADD:
        add2(<floating*> x0.val, <floating*> x1.val, Y, size)
    elif n.op == G_SUB:
        sub2(<floating*> x0.val, <floating*> x1.val, Y, size)
    elif n.op == G_MUL:
        mul2(<floating*> x0.val, <floating*> x1.val, Y, size)
    for k in range(2, n.n_in):
        x1 = &g.tensors[g.edge_tensor[n.first_in + k]]
        if n.op == G_ADD:
            add_into(<floating*> x1.val, Y, size)
        elif n.op == G_MUL:
            mul_into(<floating*> x1.val, Y, size)
    if n.op == G_CONCAT:
        for k in range(n.n_in):
            x1 = &g.tensors[g.edge_tensor[n.first_in + k]]
            concat_block(<floating*> x1.val, Y, g.batch, x1.width, out.width, col)
            col += x1.width


cdef void merge_backward(const GraphExec* g, const GNode* n, floating* work) noexcept nogil:
    """Each input's gradient (skipped when NULL: a model input without dX)."""
    cdef Py_ssize_t k, e, col = 0
    cdef const GTensor* out = &g.tensors[n.out]
    cdef const floating* dY = <floating*> out.grad
    cdef const GTensor* x
    cdef Py_ssize_t size = g.batch * out.width
    cdef floating** xs = <floating**> g.ptrs
    if n.op == G_MUL:
        for k in range(n.n_in):
            xs[k] = <floating*> g.tensors[g.edge_tensor[n.first_in + k]].val
    for k in range(n.n_in):
        e = n.first_in + k
        x = &g.tensors[g.edge_tensor[e]]
        if x.grad != NULL:
            if n.op == G_ADD or (n.op == G_SUB and k == 0):
                put(dY, <floating*> x.grad, size, g.edge_accum[e])
            elif n.op == G_SUB:
                put_neg(dY, <floating*> x.grad, size, g.edge_accum[e])
            elif n.op == G_MUL:
                mul_others(xs, n.n_in, k, dY, <floating*> x.grad, size, g.edge_accum[e])
            else:
                split_block(dY, <floating*> x.grad, g.batch, x.width, out.width, col,
                            g.edge_accum[e])
        col += x.width


cdef void graph_forward(const GraphExec* g, floating* work) noexcept nogil:
    """Every node in topological order (input pointers already bound)."""
    cdef Py_ssize_t i
    cdef const GNode* n
    for i in range(g.n_nodes):
        n = &g.nodes[i]
        if n.op == G_SEGMENT:
            plan_forward(g.segs[n.seg], <floating*> g.tensors[g.edge_tensor[n.first_in]].val)
        else:
            merge_forward(g, n, work)


cdef void graph_backward(const GraphExec* g, floating* work) noexcept nogil:
    """Every node in reverse order, after graph_forward; seeds already in place."""
    cdef Py_ssize_t i, e
    cdef const GNode* n
    cdef const GTensor* x
    cdef floating* dst
    for i in range(g.n_nodes - 1, -1, -1):
        n = &g.nodes[i]
        if n.op != G_SEGMENT:
            merge_backward(g, n, work)
            continue
        e = n.first_in
        x = &g.tensors[g.edge_tensor[e]]
        dst = <floating*> x.grad
        if dst != NULL and g.edge_accum[e]:
            dst = block(g, g.tmp_col, work)
        plan_backward(g.segs[n.seg], <floating*> x.val, <floating*> g.tensors[n.out].grad,
                      dst)
        if x.grad != NULL and g.edge_accum[e]:
            add_into(dst, <floating*> x.grad, g.batch * x.width)


cdef void seed_grads(GraphExec* g, const Py_ssize_t* out_ids, const char* modes,
                     floating** dY, Py_ssize_t n_out) noexcept nogil:
    """Each output's dY: its tensor's gradient (mode 0: that very array), copied into or
    added to the gradient block (modes 1, 2: the tensor also feeds other nodes, or is
    listed twice)."""
    cdef Py_ssize_t k
    cdef GTensor* t
    for k in range(n_out):
        t = &g.tensors[out_ids[k]]
        if modes[k] == 0:
            t.grad = dY[k]
        else:
            put(dY[k], <floating*> t.grad, g.batch * t.width, modes[k] == 2)


cdef void predict_rows(GraphExec* g, floating* work, floating** X, floating** out,
                       const Py_ssize_t* in_ids, const Py_ssize_t* out_ids, Py_ssize_t n_in,
                       Py_ssize_t n_out, Py_ssize_t start, Py_ssize_t B) noexcept nogil:
    """Evaluation-mode forward of the B rows from ``start`` (the workspaces hold B rows),
    their outputs copied out."""
    cdef Py_ssize_t k, w
    bind_batch(g, B, work)
    for k in range(n_in):
        w = g.tensors[in_ids[k]].width
        g.tensors[in_ids[k]].val = X[k] + start * w
    graph_forward(g, work)
    for k in range(n_out):
        w = g.tensors[out_ids[k]].width
        memcpy(out[k] + start * w, g.tensors[out_ids[k]].val, B * w * sizeof(floating))


cdef void predict_chunks(GraphExec* g, floating* work, floating** X, floating** out,
                         const Py_ssize_t* in_ids, const Py_ssize_t* out_ids, Py_ssize_t n_in,
                         Py_ssize_t n_out, Py_ssize_t n, Py_ssize_t chunk) noexcept nogil:
    """Evaluation-mode forward of n rows, ``chunk`` rows at a time (each segment's products
    on the core's team), outputs copied out."""
    cdef Py_ssize_t start = 0, B
    while start < n:
        B = min(chunk, n - start)
        predict_rows(g, work, X, out, in_ids, out_ids, n_in, n_out, start, B)
        start += B


ctypedef struct GraphRuns:
    GraphExec slots[MAX_CHAINS]   # a participant's copy of the executor: its own tensors,
                                  # segment Execs and workspaces (Graph._predict_runs)
    void** X
    void** out
    const Py_ssize_t* in_ids
    const Py_ssize_t* out_ids
    Py_ssize_t n_in, n_out, n
    Py_ssize_t base, extra        # the runs (_plan.chain_runs)
    bint f32


cdef void _graph_run(void* ctx, Py_ssize_t i, int slot) noexcept nogil:
    """Run i's rows through every node on this thread alone (its products on one thread:
    the team is this job's)."""
    cdef GraphRuns* j = <GraphRuns*> ctx
    cdef GraphExec* g = &j.slots[slot]
    cdef Py_ssize_t start
    cdef Py_ssize_t B = run_rows(i, j.base, j.extra, j.n, &start)
    cdef int saved = thread_override_get()
    if B <= 0:
        return
    thread_override_set(1)
    if j.f32:
        predict_rows(g, <float*> g.work, <float**> j.X, <float**> j.out, j.in_ids, j.out_ids,
                     j.n_in, j.n_out, start, B)
    else:
        predict_rows(g, <double*> g.work, <double**> j.X, <double**> j.out, j.in_ids,
                     j.out_ids, j.n_in, j.n_out, start, B)
    thread_override_set(saved)


# --- the Python-facing executor ------------------------------------------------------------
cimport numpy as cnp
cnp.import_array()


cdef class Graph:
    """A compiled graph over a model's arena (built by ``fastmlp.graph.Model``).

    Parameters
    ----------
    plans : list of Plan
        One per segment (each over the model's params, grads and buffers).
    nodes : list of (op, seg, input tensor ids, output tensor id)
        In topological order; ``seg`` is -1 for merges.
    tensors : list of (home, width, seg, val_col, grad_col)
        See ``GTensor``; ``seg``/``val_col`` -1 when they do not apply.
    edge_accum : list of bool
        Per input edge (nodes' inputs in order): backward adds instead of writing.
    inputs, outputs : list of int
        Tensor ids of the model's inputs and outputs.
    seed_modes : list of int
        Per output: 0 its tensor's gradient is dY itself, 1 dY is copied in, 2 added.
    work_cols, tmp_col : int
        Row width of the workspace; column of the fan-out block (-1: none).
    dtype : numpy dtype
    """
    def __cinit__(self):
        memset(&self.g, 0, sizeof(GraphExec))
        self.io = self.outp = NULL
        self.in_ids = self.out_ids = NULL
        self.modes = NULL

    def __init__(self, list plans, list nodes, list tensors, list edge_accum, list inputs,
                 list outputs, list seed_modes, Py_ssize_t work_cols, Py_ssize_t tmp_col,
                 dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.f32 = self.dtype == np.float32
        self.typenum = cnp.NPY_FLOAT32 if self.f32 else cnp.NPY_FLOAT64
        self.plans = plans
        self.n_inputs, self.n_outputs = len(inputs), len(outputs)
        self.n_tensors = len(tensors)
        self.chain_rows = self.chain_threads = 0
        n_edges = sum(len(node[2]) for node in nodes)
        if not inputs or not outputs or len(seed_modes) != len(outputs) or \
                len(edge_accum) != n_edges:
            raise ValueError("a graph needs inputs, outputs, one seed mode per output and one "
                             "accumulation flag per edge")
        self.work_cols = work_cols
        self.g.n_nodes, self.g.n_segs = len(nodes), len(plans)
        self.g.nodes = <GNode*> calloc(max(len(nodes), 1), sizeof(GNode))
        self.g.tensors = <GTensor*> calloc(max(len(tensors), 1), sizeof(GTensor))
        self.g.edge_tensor = <Py_ssize_t*> calloc(max(n_edges, 1), sizeof(Py_ssize_t))
        self.g.edge_accum = <char*> calloc(max(n_edges, 1), 1)
        self.g.segs = <Exec**> calloc(max(len(plans), 1), sizeof(Exec*))
        self.g.seg_col = <Py_ssize_t*> calloc(max(len(plans), 1), sizeof(Py_ssize_t))
        self.g.ptrs = <void**> calloc(max(n_edges, 1), sizeof(void*))
        self.io = <void**> calloc(len(inputs) + 1, sizeof(void*))
        self.outp = <void**> calloc(len(outputs) + 1, sizeof(void*))
        self.in_ids = <Py_ssize_t*> calloc(len(inputs) + 1, sizeof(Py_ssize_t))
        self.out_ids = <Py_ssize_t*> calloc(len(outputs) + 1, sizeof(Py_ssize_t))
        self.modes = <char*> calloc(len(outputs) + 1, 1)
        if (self.g.nodes == NULL or self.g.tensors == NULL or self.g.edge_tensor == NULL
                or self.g.edge_accum == NULL or self.g.segs == NULL or self.g.seg_col == NULL
                or self.g.ptrs == NULL or self.io == NULL or self.outp == NULL or self.in_ids == NULL
                or self.out_ids == NULL or self.modes == NULL):
            raise MemoryError()
        self.g.tmp_col = tmp_col
        self._set_plans(plans)
        self._set_tensors(tensors, work_cols)
        self._set_nodes(nodes, edge_accum, len(tensors))
        self._set_io(inputs, outputs, seed_modes, len(tensors))
        self.g.work = NULL
        self.capacity = 0
        self.ready = False

    def __dealloc__(self):
        free(self.g.nodes)
        free(self.g.tensors)
        free(self.g.edge_tensor)
        free(self.g.edge_accum)
        free(self.g.segs)
        free(self.g.seg_col)
        free(self.g.ptrs)
        free(self.io)
        free(self.outp)
        free(self.in_ids)
        free(self.out_ids)
        free(self.modes)

    # -- construction: everything the kernels will trust is checked here ----------------------
    cdef _set_plans(self, list plans):
        cdef Plan p
        for k, obj in enumerate(plans):
            p = <Plan?> obj
            if p.dtype != self.dtype:
                raise TypeError(f"plan {k} has dtype {p.dtype}, the graph {self.dtype}")
            self.g.segs[k] = &p.ex
            self.g.seg_col[k] = p.descs[p.n_layers - 1].a_col

    cdef _set_tensors(self, list tensors, Py_ssize_t work_cols):
        cdef GTensor* t
        for i, (home, width, seg, val_col, grad_col) in enumerate(tensors):
            t = &self.g.tensors[i]
            t.home, t.width, t.seg, t.val_col, t.grad_col = home, width, seg, val_col, grad_col
            t.val = t.grad = NULL
            if not 0 < width < 2**31 or home not in (T_INPUT, T_SEGMENT, T_SLOT):
                raise ValueError(f"tensor {i}: bad width or home {tensors[i]}")
            if home == T_SEGMENT and not 0 <= seg < self.g.n_segs:
                raise ValueError(f"tensor {i}: segment {seg} out of range")
            for col in ((val_col,) if home == T_SLOT else ()) + \
                    ((grad_col,) if grad_col >= 0 else ()):
                if not 0 <= col <= work_cols - width:
                    raise ValueError(f"tensor {i}: block at column {col} outside the "
                                     f"workspace ({work_cols} columns)")
            if home == T_INPUT and grad_col >= 0:
                raise ValueError(f"tensor {i}: an input's gradient is the caller's array")

    cdef _set_nodes(self, list nodes, list edge_accum, Py_ssize_t n_tensors):
        cdef Py_ssize_t e = 0
        cdef Plan p
        cdef GNode* n
        made = set()
        for i, (op, seg, ins, out) in enumerate(nodes):
            n = &self.g.nodes[i]
            n.op, n.seg, n.first_in, n.n_in, n.out = op, seg, e, len(ins), out
            if not (0 <= out < n_tensors) or out in made:
                raise ValueError(f"node {i}: bad output tensor {out}")
            for x in ins:
                if not 0 <= x < n_tensors or (self.g.tensors[x].home != T_INPUT
                                               and x not in made):
                    raise ValueError(f"node {i}: input tensor {x} is not computed before it")
                self.g.edge_tensor[e] = x
                self.g.edge_accum[e] = bool(edge_accum[e])
                if self.g.edge_accum[e] and op == G_SEGMENT and not \
                        0 <= self.g.tmp_col <= self.work_cols - self.g.tensors[x].width:
                    raise ValueError(f"node {i}: no fan-out block for its input")
                e += 1
            made.add(out)
            widths = [self.g.tensors[x].width for x in ins]
            wout = self.g.tensors[out].width
            if op == G_SEGMENT:
                if not 0 <= seg < self.g.n_segs or len(ins) != 1:
                    raise ValueError(f"node {i}: bad segment")
                p = self.plans[seg]
                if (p.n_in, p.n_out) != (widths[0], wout) or \
                        self.g.tensors[out].home != T_SEGMENT or self.g.tensors[out].seg != seg:
                    raise ValueError(f"node {i}: segment {seg} does not map {widths[0]} to "
                                     f"{wout} columns into its own workspace")
            elif op in (G_ADD, G_SUB, G_MUL, G_CONCAT):
                ok = len(ins) >= 2 and (op != G_SUB or len(ins) == 2) and \
                    (sum(widths) == wout if op == G_CONCAT else set(widths) == {wout})
                if not ok or self.g.tensors[out].home != T_SLOT:
                    raise ValueError(f"node {i}: merge {op} of widths {widths} cannot give "
                                     f"{wout}")
            else:
                raise ValueError(f"node {i}: unknown op {op}")
            if self.g.tensors[out].grad_col < 0:
                self.g.tensors[out].grad_col = -2      # must be an output's dY (checked below)

    cdef _set_io(self, list inputs, list outputs, list seed_modes, Py_ssize_t n_tensors):
        homes = [self.g.tensors[i].home for i in range(n_tensors)]
        if sorted(inputs) != [i for i in range(n_tensors) if homes[i] == T_INPUT]:
            raise ValueError("inputs must list every input tensor once")
        for k, x in enumerate(inputs):
            self.in_ids[k] = x
        made = {self.g.nodes[i].out for i in range(self.g.n_nodes)}
        for k, (x, mode) in enumerate(zip(outputs, seed_modes)):
            if x not in made or mode not in (0, 1, 2):
                raise ValueError(f"output {k}: bad tensor {x} or seed mode {mode}")
            if (mode == 0) != (self.g.tensors[x].grad_col < 0):
                raise ValueError(f"output {k}: seed mode {mode} does not fit its gradient")
            if mode == 0:
                self.g.tensors[x].grad_col = -1
            self.out_ids[k], self.modes[k] = x, mode
        if any(self.g.tensors[i].grad_col == -2 for i in range(n_tensors)):
            raise ValueError("a computed tensor has no gradient block")
        for k in range(len(outputs)):
            if self.modes[k] == 0 and (list(outputs).count(outputs[k]) > 1 or any(
                    self.g.edge_tensor[e] == outputs[k]
                    for e in range(sum(self.g.nodes[i].n_in for i in range(self.g.n_nodes))))):
                raise ValueError(f"output {k} feeds other nodes: its dY must be copied")

    # -- running ---------------------------------------------------------------------------------
    cdef Py_ssize_t _check_arrays(self, list arrays, Py_ssize_t* ids, Py_ssize_t count,
                                  str name, Py_ssize_t rows, void** ptrs) except -2:
        """Check the caller's arrays (``count``, one per id, of those tensors' widths and one
        row count: ``rows``, or any when -1); put their data pointers in ``ptrs``; return
        the row count."""
        cdef cnp.ndarray a
        if len(arrays) != count:
            raise ValueError(f"{name} must hold {count} arrays, got {len(arrays)}")
        for k, obj in enumerate(arrays):
            if not isinstance(obj, cnp.ndarray):
                raise TypeError(f"{name}[{k}] must be an ndarray")
            a = <cnp.ndarray> obj
            if cnp.PyArray_TYPE(a) != self.typenum or cnp.PyArray_NDIM(a) != 2 or \
                    not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a):
                raise TypeError(f"{name}[{k}] must be a C-contiguous, aligned 2-D "
                                f"{self.dtype} array")
            if a.shape[1] != self.g.tensors[ids[k]].width:
                raise ValueError(f"{name}[{k}] has {a.shape[1]} columns, expected "
                                 f"{self.g.tensors[ids[k]].width}")
            if rows == -1:
                rows = a.shape[0]
            if a.shape[0] != rows or not 1 <= rows < 2**31:
                raise ValueError(f"{name}[{k}] has {a.shape[0]} rows, expected {rows} (>= 1)")
            ptrs[k] = cnp.PyArray_DATA(a)
        return rows

    cdef int _reserve(self, Py_ssize_t batch) except -1:
        """Workspaces for ``batch`` rows (grow only), then bind the blocks."""
        cdef Plan p
        if batch > self.capacity:
            self.work = aligned_empty(max(batch * self.work_cols, 1), self.dtype)  # _aligned
            self.g.work = cnp.PyArray_DATA(<cnp.ndarray> self.work)
            self.capacity = batch
        for obj in self.plans:
            p = <Plan> obj
            p.reserve(batch)
        if self.f32:
            bind_batch(&self.g, batch, <float*> self.g.work)
        else:
            bind_batch(&self.g, batch, <double*> self.g.work)
        return 0

    def forward(self, list X, bint training=False):
        """Run every node on the inputs X (one array per input, one row count). The
        arrays are kept, not copied, for :meth:`backward`; read outputs with
        :meth:`output`. A training pass (dropout, noise) draws for the RNG counter of the
        plans' TrainingState as it is (the model advances it)."""
        cdef Plan p
        cdef Py_ssize_t k, B = self._check_arrays(X, self.in_ids, self.n_inputs, "X", -1, self.io)
        self.ready = False
        self._reserve(B)
        for obj in self.plans:
            p = <Plan> obj
            p.ex.training = training
        for k in range(self.n_inputs):
            self.g.tensors[self.in_ids[k]].val = self.io[k]
        if self.f32:
            with nogil:
                graph_forward(&self.g, <float*> self.g.work)
        else:
            with nogil:
                graph_forward(&self.g, <double*> self.g.work)
        self.x_refs = X
        self.ready = True

    def output(self, Py_ssize_t k):
        """Output k of the last forward: a view into a workspace (overwritten by the next
        call)."""
        if not self.ready or not 0 <= k < self.n_outputs:
            raise ValueError("output(k) needs a forward first and 0 <= k < n_outputs")
        cdef GTensor* t = &self.g.tensors[self.out_ids[k]]
        cdef Plan p
        B = self.g.batch
        if t.home == T_SEGMENT:
            p = self.plans[t.seg]
            base, col = p.work, self.g.seg_col[t.seg]
        else:
            base, col = self.work, t.val_col
        return base[B * col:B * (col + t.width)].reshape(B, t.width)

    def backward(self, list dY, list dX=None):
        """Backpropagate dY (one array per output) through the last forward: parameter
        gradients are added into the arena's grads; dX (one array per input, or None) is
        written with the gradient w.r.t. each input."""
        cdef Py_ssize_t k
        if not self.ready:
            raise ValueError("backward called before forward: run forward(X) first")
        self._check_arrays(dY, self.out_ids, self.n_outputs, "dY", self.g.batch, self.outp)
        if dX is not None:
            self._check_arrays(dX, self.in_ids, self.n_inputs, "dX", self.g.batch, self.io)
        for k in range(self.n_inputs):
            self.g.tensors[self.in_ids[k]].grad = self.io[k] if dX is not None else NULL
            self.g.tensors[self.in_ids[k]].val = cnp.PyArray_DATA(
                <cnp.ndarray> self.x_refs[k])
        if self.f32:
            with nogil:
                seed_grads(&self.g, self.out_ids, self.modes, <float**> self.outp,
                           self.n_outputs)
                graph_backward(&self.g, <float*> self.g.work)
        else:
            with nogil:
                seed_grads(&self.g, self.out_ids, self.modes, <double**> self.outp,
                           self.n_outputs)
                graph_backward(&self.g, <double*> self.g.work)

    def predict(self, list X, list out, Py_ssize_t chunk):
        """Evaluation-mode outputs of X into ``out`` (one (n, width) array per output),
        in one call without the GIL. Leaves nothing for backward.

        As Plan.predict: on several threads and at least ``chunk`` rows, the rows go in
        runs of about chunk / threads, each through every node on one thread, the runs
        claimed from the team's counter (_predict_runs); fewer rows go ``chunk`` at a time,
        each segment's products split over the team. Either way the dense layers write
        their output once (Exec.predicting) and a row's outputs do not depend on the run
        or the threads."""
        cdef Plan p
        cdef Py_ssize_t n = self._check_arrays(X, self.in_ids, self.n_inputs, "X", -1, self.io)
        cdef int threads = min(num_threads(), MAX_CHAINS)
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self._check_arrays(out, self.out_ids, self.n_outputs, "out", n, self.outp)
        self.ready = False
        for obj in self.plans:
            p = <Plan> obj
            p.ex.training = False
        if threads > 1 and n >= chunk:
            self._predict_runs(n, chunk, threads)
            return
        self._reserve(min(chunk, n))
        for obj in self.plans:
            (<Plan> obj).ex.predicting = True
        if self.f32:
            with nogil:
                predict_chunks(&self.g, <float*> self.g.work, <float**> self.io,
                               <float**> self.outp, self.in_ids, self.out_ids,
                               self.n_inputs, self.n_outputs, n, chunk)
        else:
            with nogil:
                predict_chunks(&self.g, <double*> self.g.work, <double**> self.io,
                               <double**> self.outp, self.in_ids, self.out_ids,
                               self.n_inputs, self.n_outputs, n, chunk)
        for obj in self.plans:
            (<Plan> obj).ex.predicting = False

    cdef int _predict_runs(self, Py_ssize_t n, Py_ssize_t chunk, int threads) except -1:
        """Graph.predict's runs: participant s gets a copy of the executor whose tensors,
        segment Execs and workspaces are its own, all in one slot of ``chain_work``: this
        executor's workspace, then each segment's, ``chain_rows`` rows each."""
        cdef Py_ssize_t n_t = self.n_tensors, n_s = self.g.n_segs, runs, rows, k, at
        cdef Py_ssize_t cols = self.work_cols, size = 4 if self.f32 else 8
        cdef int s
        cdef char* slot
        cdef Exec* e
        cdef GraphRuns* j = <GraphRuns*> malloc(sizeof(GraphRuns))
        cdef GTensor* tensors = <GTensor*> malloc(threads * max(n_t, 1) * sizeof(GTensor))
        cdef Exec* execs = <Exec*> malloc(threads * max(n_s, 1) * sizeof(Exec))
        cdef Exec** segs = <Exec**> malloc(threads * max(n_s, 1) * sizeof(Exec*))
        try:
            if j == NULL or tensors == NULL or execs == NULL or segs == NULL:
                raise MemoryError()
            runs = chain_runs(n, chunk, threads, &j.base, &j.extra)
            rows = RUN_UNIT * (j.base + (j.extra > 0))
            for k in range(n_s):
                cols += self.g.segs[k].work_cols
            if self.chain_rows < rows or self.chain_threads < threads:
                self.chain_work = aligned_empty(threads * rows * cols, self.dtype)
                self.chain_rows, self.chain_threads = rows, threads
            for s in range(threads):
                slot = <char*> cnp.PyArray_DATA(<cnp.ndarray> self.chain_work) \
                    + s * self.chain_rows * cols * size
                j.slots[s] = self.g
                j.slots[s].tensors = tensors + s * n_t
                memcpy(j.slots[s].tensors, self.g.tensors, n_t * sizeof(GTensor))
                j.slots[s].segs = segs + s * n_s
                j.slots[s].work = slot
                at = self.work_cols
                for k in range(n_s):
                    e = &execs[s * n_s + k]
                    e[0] = self.g.segs[k][0]
                    e.work = slot + at * self.chain_rows * size
                    e.predicting = True
                    segs[s * n_s + k] = e
                    at += e.work_cols
            j.X, j.out, j.in_ids, j.out_ids = self.io, self.outp, self.in_ids, self.out_ids
            j.n_in, j.n_out, j.n, j.f32 = self.n_inputs, self.n_outputs, n, self.f32
            with nogil:
                pool_run(threads, runs, <task_fn> _graph_run, j)
        finally:
            free(j)
            free(tensors)
            free(execs)
            free(segs)
        return 0
