"""The fused training loop: whole mini-batch steps in one GIL-free call.

For each step of a chunk: gather the batch rows (by index, from the caller's training
arrays, into a preallocated buffer), forward through the plan, loss value and gradient
in one pass, zero the gradient arena, backward, optimizer update over the flat arena.
Nothing is allocated per step; Python regains control after each chunk.
"""
import numpy as np

from cython cimport floating
from libc.math cimport NAN, isfinite
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyBUF_ANY_CONTIGUOUS, PyBuffer_Release, PyObject_GetBuffer

from fastmlp._blas cimport (num_threads, pool_run, pool_take_wait, task_fn,
                            thread_override_get, thread_override_set)
from fastmlp._losses cimport LossSpec, batch_scale, loss_value_grad
from fastmlp._optim cimport (adadelta_step, adagrad_prepare, adagrad_step, adam_prepare,
                             adam_step, all_finite, rmsprop_step, sgd_prepare, sgd_step)
from fastmlp._plan cimport Exec, Plan, plan_backward, plan_forward
from fastmlp._lamb cimport lamb_prepare, lamb_step
from fastmlp._lamb import check_ranges
from fastmlp._regularize cimport (ConstraintRange, PenaltyRange, constraints_apply,
                                  penalties_apply)
from fastmlp._regularize import constraint_table, penalty_table

cdef extern from "fastmlp/gather.h" nogil:
    ctypedef struct fm_gather_job:
        const char* X
        const char* T
        const long long* labels
        const char* W
        const long long* idx
        Py_ssize_t B, n_features, n_targets, rows_per_chunk
        size_t elem
        char* xb
        char* tb
        long long* lb
        char* wb
    void fm_gather_chunk(void* ctx, Py_ssize_t chunk, int slot)
    Py_ssize_t fm_gather_plan(Py_ssize_t B, size_t row_bytes, Py_ssize_t* rows_per_chunk)

include "_train_guard.pxi"
include "_train_dp.pxi"


cdef void opt_apply(OptSlot* o, floating* params, const floating* grads,
                    Py_ssize_t n) noexcept nogil:
    """Take step t + 1 of the bound optimizer and count it in the optimizer's own step
    count (o.t points at it); the step-dependent scalars are set here."""
    o.t[0] += 1
    if o.family == OPT_SGD:
        sgd_prepare(&o.sgd, o.t[0])
        sgd_step(params, grads, <floating*> o.s0, n, &o.sgd)
    elif o.family == OPT_ADAGRAD:
        adagrad_prepare(&o.adagrad, o.t[0])
        adagrad_step(params, grads, <floating*> o.s0, n, &o.adagrad)
    elif o.family == OPT_RMSPROP:
        rmsprop_step(params, grads, <floating*> o.s0, <floating*> o.s1, <floating*> o.s2, n,
                     &o.rmsprop)
    elif o.family == OPT_ADADELTA:
        adadelta_step(params, grads, <floating*> o.s0, <floating*> o.s1, n, &o.adadelta)
    elif o.family == OPT_ADAM:
        adam_prepare(&o.adam, o.t[0])
        adam_step(params, grads, <floating*> o.s0, <floating*> o.s1, <floating*> o.s2, n,
                  &o.adam)
    elif o.family == OPT_LAMB:
        lamb_prepare(&o.lamb, o.t[0])
        lamb_step(params, grads, <floating*> o.s0, <floating*> o.s1, o.ranges, o.n_ranges,
                  &o.lamb)


# The training data, the batch buffers and the regularization tables, as raw pointers
# (typed by the caller).
ctypedef struct Data:
    const void* X                # (n_rows, n_features)
    const void* targets          # (n_rows, n_targets) or NULL
    const long long* labels      # (n_rows,) or NULL
    const void* weights          # (n_rows,) or NULL
    void* xb                     # batch buffers: (batch, n_features), (batch, n_targets),
    void* tb                     # labels (batch,), weights (batch,), loss grad (batch, n_out)
    long long* lb
    void* wb
    void* gb
    Py_ssize_t n_features
    Py_ssize_t n_targets
    Regularization reg           # penalties and constraints
    DataParallel* dp             # NULL: one process


cdef void gather(const Data* d, const long long* idx, Py_ssize_t B,
                 floating* xb, floating* tb, floating* wb) noexcept nogil:
    """Copy the rows idx[0:B] of the training arrays into the batch buffers (gather.h: in
    chunks of rows, on the core's threads when the batch is large enough)."""
    cdef fm_gather_job job
    cdef Py_ssize_t chunks
    job.X, job.T = <const char*> d.X, <const char*> d.targets
    job.labels, job.W = d.labels, <const char*> d.weights
    job.idx, job.B, job.n_features, job.n_targets = idx, B, d.n_features, d.n_targets
    job.elem = sizeof(floating)
    job.xb, job.tb, job.lb, job.wb = <char*> xb, <char*> tb, d.lb, <char*> wb
    chunks = fm_gather_plan(B, (d.n_features + d.n_targets) * sizeof(floating),
                            &job.rows_per_chunk)
    pool_run(num_threads(), chunks, <task_fn> fm_gather_chunk, &job)


cdef inline Py_ssize_t next_batch(const Data* d, Exec* ex, Py_ssize_t step, Py_ssize_t start,
                                  Py_ssize_t n_perm, Py_ssize_t batch_size,
                                  Py_ssize_t* rows) noexcept nogil:
    """The local row count of step ``step`` (-1: no more steps); ``rows`` gets the step's
    global row count (the loss's mean runs over it) and ex.row0 its dropout key."""
    if d.dp == NULL:
        if start >= n_perm:
            return -1
        rows[0] = min(batch_size, n_perm - start)
        return rows[0]
    if step >= d.dp.n_steps:
        return -1
    rows[0] = d.dp.sched[3 * step + 1]
    ex.row0 = d.dp.sched[3 * step + 2]
    return d.dp.sched[3 * step]


cdef void run_steps(Exec* ex, const Data* d, const LossSpec* spec, OptSlot* opt,
                    const long long* perm, Py_ssize_t n_perm, Py_ssize_t batch_size,
                    Progress* out, fm_governor* gov, floating* tag) noexcept nogil:
    """Steps over perm[0:n_perm] in batches of batch_size (the last one may be smaller),
    or data parallel (d.dp) as its schedule says, the ranks' gradients summed after
    backward. ``tag`` only selects the type. Stops before updating on a non-finite loss.
    With a governor (not NULL), the calling thread's core thread count follows its choices."""
    cdef Py_ssize_t start, B, rows, step = 0, n_out = ex.layers[ex.n_layers - 1].n_out
    cdef Py_ssize_t n_params = ex.n_params
    cdef floating* xb = <floating*> d.xb
    cdef floating* gb = <floating*> d.gb
    cdef floating* params = <floating*> ex.params
    cdef floating* grads = <floating*> ex.grads
    cdef floating* pred
    cdef double value
    start = 0
    while True:
        B = next_batch(d, ex, step, start, n_perm, batch_size, &rows)
        if B < 0:
            break
        gather(d, perm + start, B, xb, <floating*> d.tb, <floating*> d.wb)
        ex.batch = B
        ex.rng.step += 1
        value = 0.0
        if B > 0:
            plan_forward(ex, xb)
            pred = <floating*> ex.work + B * ex.layers[ex.n_layers - 1].a_col
            value = loss_value_grad(spec, pred,
                                    <floating*> d.tb if d.targets != NULL else NULL,
                                    d.lb if d.labels != NULL else NULL,
                                    <floating*> d.wb if d.weights != NULL else NULL,
                                    gb, B, batch_scale(spec, rows))
            if not isfinite(value) and d.dp == NULL:
                out.bad_step, out.bad_value = step, value
                return
            if ex.grad_bad != NULL:
                ex.grad_bad[0] = 0
            plan_backward(ex, xb, gb, NULL)    # fresh_grads: writes, no zeroing pass
        else:                                  # a rank without rows in this step adds 0
            memset(grads, 0, n_params * sizeof(floating))
        if not after_backward(d, ex, opt, params, grads, value, rows, out):
            return
        step += 1
        start += B
        governor_tick(gov)


cdef bint after_backward(const Data* d, Exec* ex, OptSlot* opt, floating* params,
                         floating* grads, double value, Py_ssize_t rows,
                         Progress* out) noexcept nogil:
    """The rest of a step after backward (this rank's loss ``value``): one process, the
    full data-parallel path or the sharded one (_train_dp.pxi); False: stop the run."""
    cdef int grads_bad = -1                    # checked in finish_step, unless backward did
    if d.dp != NULL and d.dp.sharded:
        return shard_step(d.dp, opt, &d.reg, params, grads, value, rows, out)
    if d.dp != NULL:                           # every rank then sees the same sums
        value = reduce_step(d.dp, grads, ex.n_params, value)
    elif ex.grad_bad != NULL:
        grads_bad = ex.grad_bad[0] != 0
    return finish_step(opt, &d.reg, params, grads, ex.n_params, value, rows, out, grads_bad)


cdef inline bint step_failed(Progress* out, double value) noexcept nogil:
    """Record step out.steps as the run's bad step (its loss, or NAN for a non-finite
    gradient when the loss is finite); False."""
    out.bad_step, out.bad_value = out.steps, value if not isfinite(value) else NAN
    return False


cdef inline void step_done(Progress* out, double value, Py_ssize_t rows) noexcept nogil:
    """Count a step of loss ``value`` over ``rows`` rows."""
    out.loss_sum += value * rows
    out.rows += rows
    out.steps += 1


cdef bint finish_step(OptSlot* o, const Regularization* reg, floating* params,
                      floating* grads, Py_ssize_t n, double value, Py_ssize_t rows,
                      Progress* out, int grads_bad=-1) noexcept nogil:
    """After backward of step out.steps (loss ``value`` over ``rows`` rows): penalties
    (value and gradient), then the update and the constraints, the step counted in out.
    Unless the loss or a gradient is not finite: the update would leave finite weights for
    non-finite ones, so the step stops before it, recorded as out's bad step (False).
    ``grads_bad`` >= 0: backward already checked every gradient (and found one non-finite
    when 1); penalties, which change the gradients, make the pass here check them again."""
    if reg.n_pen:
        value += penalties_apply(reg.pen, reg.n_pen, params, grads)
        grads_bad = -1
    if grads_bad < 0:
        grads_bad = not all_finite(grads, n)
    if not isfinite(value) or grads_bad:
        return step_failed(out, value)
    opt_apply(o, params, grads, n)
    if reg.n_con:
        constraints_apply(reg.con, reg.n_con, params)
    step_done(out, value, rows)
    return True


# --- the Python-facing runner --------------------------------------------------------------

cdef void* _data_ptr(object arr) except? NULL:
    """Pointer to the first element of a non-empty C-contiguous array (checked by callers,
    who keep it alive). Through the buffer protocol: ``__array_interface__`` builds a dict
    and formats the dtype's string on every call (~3 us on a Zen 1 core, three of them a
    training run)."""
    cdef Py_buffer view
    PyObject_GetBuffer(arr, &view, PyBUF_ANY_CONTIGUOUS)
    cdef void* p = view.buf
    PyBuffer_Release(&view)
    return p


cdef void _fill_hyper(OptSlot* o, dict h) except *:
    g = lambda name, default=0.0: float(h.get(name, default))
    if o.family == OPT_SGD:
        o.sgd.lr, o.sgd.momentum, o.sgd.dampening = g("lr"), g("momentum"), g("dampening")
        o.sgd.weight_decay, o.sgd.nesterov = g("weight_decay"), bool(h.get("nesterov", False))
    elif o.family == OPT_ADAGRAD:
        o.adagrad.lr, o.adagrad.lr_decay = g("lr"), g("lr_decay")
        o.adagrad.weight_decay, o.adagrad.eps = g("weight_decay"), g("eps")
    elif o.family == OPT_RMSPROP:
        o.rmsprop.lr, o.rmsprop.alpha, o.rmsprop.eps = g("lr"), g("alpha"), g("eps")
        o.rmsprop.weight_decay, o.rmsprop.momentum = g("weight_decay"), g("momentum")
    elif o.family == OPT_ADADELTA:
        o.adadelta.lr, o.adadelta.rho, o.adadelta.eps = g("lr"), g("rho"), g("eps")
        o.adadelta.weight_decay = g("weight_decay")
    elif o.family == OPT_ADAM:
        o.adam.lr, o.adam.beta1, o.adam.beta2 = g("lr"), g("beta1"), g("beta2")
        o.adam.eps, o.adam.weight_decay = g("eps"), g("weight_decay")
        o.adam.decoupled = bool(h.get("decoupled", False))
    elif o.family == OPT_LAMB:
        o.lamb.lr, o.lamb.beta1, o.lamb.beta2 = g("lr"), g("beta1"), g("beta2")
        o.lamb.eps, o.lamb.weight_decay = g("eps"), g("weight_decay")
    else:
        raise ValueError(f"unknown optimizer family {o.family}")


cdef tuple bind_optimizer(OptSlot* o, binding, dtype, Py_ssize_t n_params):
    """Bind ``(family, hyper, states, t)`` (``Optimizer._bind_fused``) to an arena of
    ``n_params`` values of ``dtype``: ``t`` is the optimizer's step count itself (a
    one-element intp array), which every update advances in place. Returns the arrays o
    points into (keep them alive)."""
    family, hyper, states, t = binding
    if not (isinstance(t, np.ndarray) and t.dtype == np.intp and t.shape == (1,)
            and t.flags.c_contiguous and t.flags.writeable and t[0] >= 0):
        raise TypeError("the step count must be a writeable one-element intp array >= 0, "
                        f"got {t!r}")
    o.family, o.t = family, <Py_ssize_t*> _data_ptr(t)
    _fill_hyper(o, hyper)
    ptrs = []
    for s in states:
        if s is not None:
            _check_array(s, "optimizer state", dtype, 1, -1, n_params)
        ptrs.append(s)
    ptrs += [None] * (3 - len(ptrs))
    o.s0 = _data_ptr(ptrs[0]) if ptrs[0] is not None else NULL
    o.s1 = _data_ptr(ptrs[1]) if ptrs[1] is not None else NULL
    o.s2 = _data_ptr(ptrs[2]) if ptrs[2] is not None else NULL
    if family != OPT_LAMB:
        return (tuple(states), t)
    ranges = check_ranges(hyper["ranges"], n_params)      # LAMB: the per-tensor ranges
    o.ranges = <const Py_ssize_t*> _data_ptr(ranges) if ranges.shape[0] else NULL
    o.n_ranges = ranges.shape[0] // 2
    return (tuple(states), t, ranges)


cdef tuple reg_tables(Regularization* reg, penalties, constraints, Py_ssize_t n_params):
    """Build (so check against an arena of ``n_params``) the penalty and constraint tables
    from their rows (None: none) and point reg at them; returns them (keep them alive)."""
    cdef const PenaltyRange[::1] pv
    cdef const ConstraintRange[::1] cv
    reg.pen, reg.n_pen, reg.con, reg.n_con = NULL, 0, NULL, 0
    penalties = penalty_table(penalties or [], n_params)
    constraints = constraint_table([] if constraints is None else constraints, n_params)
    if penalties.shape[0]:
        pv = penalties
        reg.pen, reg.n_pen = &pv[0], pv.shape[0]
    if constraints.shape[0]:
        cv = constraints
        reg.con, reg.n_con = &cv[0], cv.shape[0]
    return penalties, constraints


cdef class Runner:
    """Runs training steps for one plan, one training set and one loss.

    Parameters
    ----------
    plan : Plan
        The model's compiled plan (the whole model: library layers only).
    X : ndarray (n_rows, plan.n_in)
        Training inputs, C-contiguous, of the plan's dtype. Never copied: batches are
        gathered from it by index.
    targets : ndarray (n_rows, k) or None
        Float targets (regression, BCE, cross-entropy probabilities); or
    labels : int64 ndarray (n_rows,) or None
        Class labels in [0, plan.n_out) (cross-entropy, multi-margin).
    weights : ndarray (n_rows,) or None
        Per-row loss weights (sample_weight × class_weight).
    loss_spec : dict
        ``LossSpec`` fields (code, n_outputs, delta, label_smoothing, margin, reduction).
    batch_size : int
    penalties, constraints : lists or None
        Rows ``(offset, n, l1, l2)`` and ``(kind, offset, n_in, n_out, value)`` (see
        ``fastmlp._regularize``), checked against the arena here.
    governor : Governor or None
        Lets the core's thread count follow the measured step times (results do not
        depend on it); None: the count in force, fixed.
    """
    cdef Plan plan
    cdef Data data
    cdef DataParallel dp
    cdef LossSpec spec
    cdef OptSlot opt
    cdef object refs
    cdef object dp_refs      # the arrays self.dp points into
    cdef readonly Governor governor
    cdef readonly Py_ssize_t batch_size, n_rows
    cdef int grad_bad        # Exec.grad_bad's target during a run, when the plan checks
    cdef bint check_in_backward
    cdef bint state_stale    # sharded runs left the optimizer state current on shards only

    def __init__(self, Plan plan, X, targets, labels, weights, dict loss_spec,
                 Py_ssize_t batch_size, penalties=None, constraints=None,
                 Governor governor=None):
        dt = plan.dtype
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_array(X, "X", dt, 2, plan.n_in)
        n = X.shape[0]
        if (targets is None) == (labels is None):
            raise ValueError("give exactly one of targets and labels")
        if targets is not None:
            _check_array(targets, "targets", dt, 2, -1, n)
        if labels is not None:
            _check_array(labels, "labels", np.int64, 1, -1, n)
            if labels.min() < 0 or labels.max() >= plan.n_out:
                raise ValueError(f"labels must lie in [0, {plan.n_out})")
        if weights is not None:
            _check_array(weights, "weights", dt, 1, -1, n)
        if loss_spec["n_outputs"] != plan.n_out:
            raise ValueError(f"the loss expects {loss_spec['n_outputs']} outputs, the model "
                             f"gives {plan.n_out}")
        self.spec = loss_spec
        self.governor = governor
        self.plan, self.n_rows = plan, n
        self.batch_size = min(batch_size, n)
        plan.reserve(self.batch_size)
        B = self.batch_size
        n_t = targets.shape[1] if targets is not None else 0
        xb = np.empty((B, plan.n_in), dt)
        tb = np.empty((B, max(n_t, 1)), dt)
        lb = np.empty(B, np.int64)
        wb = np.empty(B, dt)
        gb = np.empty((B, plan.n_out), dt)
        # the tables are (re)built here, so their ranges are checked against this arena
        penalties, constraints = reg_tables(&self.data.reg, penalties, constraints,
                                            plan.ex.n_params)
        self.refs = (X, targets, labels, weights, xb, tb, lb, wb, gb, penalties, constraints)
        self.data.X = _data_ptr(X)
        self.data.targets = _data_ptr(targets) if targets is not None else NULL
        self.data.labels = <long long*> _data_ptr(labels) if labels is not None else NULL
        self.data.weights = _data_ptr(weights) if weights is not None else NULL
        self.data.xb, self.data.tb, self.data.wb, self.data.gb = (
            _data_ptr(xb), _data_ptr(tb), _data_ptr(wb), _data_ptr(gb))
        self.data.lb = <long long*> _data_ptr(lb)
        self.data.n_features, self.data.n_targets = plan.n_in, n_t
        self.data.dp = NULL
        self.check_in_backward = plan.grads_checkable()

    def data_parallel(self, dict reducer):
        """Make every run data parallel: ``reducer`` holds the addresses of the loaded
        library's ``MPI_Allreduce`` (and, for the sharded update, ``MPI_Reduce_scatter``
        and ``MPI_Allgatherv``), the handles, this rank and the rank count
        (``fastmlp.distributed`` builds it); every run then takes a schedule."""
        self.dp_refs = dp_setup(&self.dp, reducer, self.refs[9], self.plan.dtype,
                                self.plan.ex.n_params)
        self.data.dp = &self.dp

    cdef int _schedule(self, schedule, Py_ssize_t n_perm) except -1:
        """Check and point the data-parallel run at ``schedule`` (see ``run``)."""
        if self.data.dp == NULL:
            if schedule is not None:
                raise ValueError("a schedule needs data_parallel() first")
            return 0
        self.dp.sharded = self.dp.can_shard and self.opt.family != OPT_LAMB
        return dp_schedule(&self.dp, schedule, n_perm, self.batch_size)

    def run(self, perm, binding, schedule=None):
        """Train on the rows ``perm`` (int64, C-contiguous, values in [0, n_rows)) in order,
        in batches of ``batch_size``, with the optimizer ``binding`` (family, hyper, states, t).
        Data parallel, ``schedule`` (int64, (n_steps, 3)) gives each step's local rows (taken
        from perm in order; 0 allowed), global rows and global row of the first local row;
        rows and the loss sum are then global.

        Returns ``(loss_sum, rows, steps, bad_step, bad_value)``: Σ batch loss × batch rows,
        rows and steps done, the index of the step whose loss or gradient was not finite
        (-1 if none; the run stops before that step's update) and its loss.
        """
        cdef Progress prog
        cdef float ftag = 0
        cdef double dtag = 0
        cdef const long long[::1] p = _check_perm(perm, self.n_rows)
        cdef long long nothing = 0
        cdef const long long* first = &p[0] if p.shape[0] else &nothing
        self._bind(binding)
        self._schedule(schedule, p.shape[0])
        prog.loss_sum, prog.rows, prog.steps, prog.bad_step, prog.bad_value = 0.0, 0, 0, -1, 0.0
        if p.shape[0] == 0 and self.data.dp == NULL:
            return 0.0, 0, 0, -1, 0.0
        self.plan.ready = False
        self.plan.ex.training = True
        self.plan.ex.fresh_grads = True
        self.plan.ex.grad_bad = &self.grad_bad if self.check_in_backward else NULL
        cdef RunGuard guard
        guard_enter(&guard, self.governor)
        try:
            with nogil:
                if self.plan.f32:
                    run_steps(&self.plan.ex, &self.data, &self.spec, &self.opt, first,
                              p.shape[0], self.batch_size, &prog, guard.gov, &ftag)
                else:
                    run_steps(&self.plan.ex, &self.data, &self.spec, &self.opt, first,
                              p.shape[0], self.batch_size, &prog, guard.gov, &dtag)
        finally:
            guard_leave(&guard)
            self.plan.ex.fresh_grads = False
            self.plan.ex.grad_bad = NULL
            self.plan.ex.row0 = 0
        self.state_stale = self.state_stale or self.dp.sharded
        self._mpi_check()
        return prog.loss_sum, prog.rows, prog.steps, prog.bad_step, prog.bad_value

    def sync_state(self):
        """Data parallel, after sharded runs: make the optimizer state bound by the last run
        whole on every rank (each rank's runs keep only its shard current; _train_dp.pxi).
        A collective: every rank calls it at the same point. Nothing when nothing is stale."""
        if not self.state_stale:
            return
        with nogil:
            gather_state(&self.dp, &self.opt, not self.plan.f32)
        self.state_stale = False
        self._mpi_check()

    cdef int _mpi_check(self) except -1:
        if self.data.dp != NULL and self.dp.red.error:
            raise RuntimeError(f"an MPI reduction failed with error code {self.dp.red.error}")
        return 0

    cdef int _bind(self, binding) except -1:
        self.refs = self.refs[:11] + bind_optimizer(&self.opt, binding, self.plan.dtype,
                                                    self.plan.ex.n_params)
        return 0


cdef object _check_perm(perm, Py_ssize_t n_rows):
    """``perm`` checked: a 1-D C-contiguous int64 array of row indices in [0, n_rows).
    One pass in C (NumPy's min and max cost two reductions' set-up a run)."""
    if not (isinstance(perm, np.ndarray) and perm.dtype == np.int64 and perm.ndim == 1
            and perm.flags.c_contiguous and perm.flags.aligned):
        raise TypeError("perm must be a 1-D C-contiguous, aligned int64 array")
    cdef const long long[::1] p = perm
    cdef Py_ssize_t i
    cdef bint outside = False
    with nogil:
        for i in range(p.shape[0]):
            outside |= p[i] < 0 or p[i] >= n_rows
    if outside:
        raise ValueError(f"perm holds row indices outside [0, {n_rows})")
    return perm


cdef int _check_array(a, str name, dtype, int ndim, Py_ssize_t cols,
                      Py_ssize_t rows=-1) except -1:
    """TypeError unless ``a`` is a non-empty C-contiguous, aligned ndarray of ``dtype`` and
    ``ndim``; ValueError unless it has ``rows`` rows and ``cols`` columns (-1: any)."""
    if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim
            and a.flags.c_contiguous and a.flags.aligned and a.size > 0):
        raise TypeError(f"{name} must be a non-empty C-contiguous, aligned {ndim}-D "
                        f"{np.dtype(dtype)} array")
    if rows >= 0 and a.shape[0] != rows:
        raise ValueError(f"{name} has {a.shape[0]} rows, expected {rows}")
    if cols >= 0 and a.shape[1] != cols:
        raise ValueError(f"{name} has {a.shape[1]} columns, expected {cols}")
    return 0
