# Data-parallel steps of the fused loop (fastmlp.distributed), part of _train.pyx.
#
# Two ways to combine the ranks' gradients after backward, chosen per run:
# - sharded (ZeRO-1 style, the default): the arena is cut into one contiguous shard per rank
#   (shard_bounds); MPI_Reduce_scatter gives each rank the summed gradient of its shard, the
#   rank applies the penalties, the finiteness check and the optimizer update to its shard
#   alone (every kernel but LAMB's is elementwise, so a shard's update equals the same
#   elements of the full update, bit for bit), and MPI_Allgatherv sends the updated shards
#   to every rank. One allreduce of (loss + penalty, non-finite count) lets every rank skip
#   a bad step alike. The constraints run on the whole gathered arena on every rank (a
#   max-norm spans whole columns of W, which a shard may cut). The optimizer state is current
#   only on each rank's shard while runs go on; gather_state (Runner.sync_state, called at
#   the end of every epoch) makes it whole, so what Python reads between epochs
#   (state_dict, checkpoints) is the full state.
# - full: MPI_Allreduce of the whole arena, then finish_step on every rank. For LAMB (its
#   trust ratios span whole tensors), tying penalties (a range and its partner may lie in
#   different shards), arenas of 2^31 elements or more (MPI counts are int), and MPI
#   libraries without the two symbols.

cdef extern from "fastmlp/reduce.h" nogil:
    ctypedef struct fm_reducer:
        void* allreduce
        void* reduce_scatter
        void* allgatherv
        int handle_bytes
        Py_ssize_t comm, op_sum, dt_float, dt_double, in_place
        int error
    int fm_allreduce_sum(fm_reducer* r, void* buf, long long n, int is_double)
    int fm_reduce_scatter_sum(fm_reducer* r, const void* send, void* recv, const int* counts,
                              int is_double)
    int fm_allgatherv(fm_reducer* r, void* buf, const int* counts, const int* displs,
                      int is_double)


# This rank's shard of the arena and what its sharded update needs.
ctypedef struct Shard:
    Py_ssize_t lo, n             # the shard: arena elements [lo, lo + n)
    const int* counts            # (ranks,) every rank's n, in rank order
    const int* displs            # (ranks,) every rank's lo
    void* grads                  # (n,) the summed gradient of the shard (reduce-scatter)
    const PenaltyRange* pen      # the penalty table cut to the shard, offsets from lo
    Py_ssize_t n_pen


# Data-parallel steps: this rank's share of each global step and how the gradients combine.
ctypedef struct DataParallel:
    fm_reducer red
    const long long* sched       # (n_steps, 3): local rows, global rows, global row of the
    Py_ssize_t n_steps           # first local row (the dropout key); rows come from perm
    bint can_shard               # the shard is set up (see shard_setup)
    bint sharded                 # this run updates by shards (can_shard, not LAMB)
    Shard shard


cdef double reduce_step(DataParallel* dp, floating* grads, Py_ssize_t n,
                        double value) noexcept nogil:
    """Full path: sum the ranks' gradients (in place) and losses; NAN when MPI fails."""
    cdef bint f64 = floating is double
    if fm_allreduce_sum(&dp.red, grads, n, f64) != 0:
        return NAN
    if fm_allreduce_sum(&dp.red, &value, 1, 1) != 0:
        return NAN
    return value


cdef inline void* _shifted(void* p, Py_ssize_t k, floating* tag) noexcept nogil:
    """p + k elements of tag's type, NULL staying NULL."""
    return <void*> (<floating*> p + k) if p != NULL else NULL


cdef bint shard_step(DataParallel* dp, OptSlot* o, const Regularization* reg,
                     floating* params, const floating* grads, double value, Py_ssize_t rows,
                     Progress* out) noexcept nogil:
    """Sharded path after backward of step out.steps (this rank's loss share ``value``,
    ``rows`` global rows): reduce-scatter, the shard's penalties, check and update, the
    shards gathered, the constraints; False (out's bad step) when any rank's shard or the
    loss is not finite, or MPI fails."""
    cdef Shard* s = &dp.shard
    cdef floating* g = <floating*> s.grads
    cdef floating* p = params + s.lo
    cdef bint f64 = floating is double
    cdef double agree[2]
    cdef OptSlot part = o[0]                # the same step count (o.t), the shard's state
    if fm_reduce_scatter_sum(&dp.red, grads, g, s.counts, f64) != 0:
        return step_failed(out, NAN)
    if s.n_pen:
        value += penalties_apply(s.pen, s.n_pen, p, g)
    agree[0], agree[1] = value, not all_finite(g, s.n)
    if fm_allreduce_sum(&dp.red, agree, 2, 1) != 0:
        return step_failed(out, NAN)
    if not isfinite(agree[0]) or agree[1] != 0:
        return step_failed(out, agree[0])
    part.s0, part.s1, part.s2 = (_shifted(o.s0, s.lo, p), _shifted(o.s1, s.lo, p),
                                 _shifted(o.s2, s.lo, p))
    opt_apply(&part, p, g, s.n)
    if fm_allgatherv(&dp.red, params, s.counts, s.displs, f64) != 0:
        return step_failed(out, NAN)
    if reg.n_con:
        constraints_apply(reg.con, reg.n_con, params)
    step_done(out, agree[0], rows)
    return True


cdef void gather_state(DataParallel* dp, const OptSlot* o, bint f64) noexcept nogil:
    """After a sharded run: every rank's shard of the optimizer state sent to all."""
    cdef void* states[3]
    cdef int k
    states[0], states[1], states[2] = o.s0, o.s1, o.s2
    for k in range(3):
        if states[k] != NULL and dp.red.error == 0:
            fm_allgatherv(&dp.red, states[k], dp.shard.counts, dp.shard.displs, f64)


# --- set up at the Python boundary -----------------------------------------------------------

def shard_bounds(Py_ssize_t n, int size):
    """``(counts, displs)`` (int32): the shards of an arena of ``n`` elements over ``size``
    ranks, contiguous in rank order, each a multiple of 16 elements (64-byte steps) but the
    last non-empty one; trailing ranks may get none."""
    block = (n + 16 * size - 1) // (16 * size) * 16        # cdivision: no negative //
    displs = np.minimum(np.arange(size, dtype=np.int64) * block, n)
    counts = np.minimum(displs + block, n) - displs
    return counts.astype(np.intc), displs.astype(np.intc)


cdef tuple shard_setup(DataParallel* dp, dict reducer, penalties, dtype, Py_ssize_t n):
    """Set up this rank's shard (dp.can_shard) when the reducer has the sharded symbols,
    no penalty ties two ranges and n < 2^31; returns the arrays dp points into."""
    dp.can_shard = False
    if not (reducer.get("reduce_scatter") and reducer.get("allgatherv")) or n >= 2 ** 31 \
            or (penalties.shape[0] and (penalties["partner"] >= 0).any()):
        return ()
    counts, displs = shard_bounds(n, reducer["size"])
    lo, m = int(displs[reducer["rank"]]), int(counts[reducer["rank"]])
    pen = penalties.copy()               # each range cut to [lo, lo + m), offsets from lo
    start = np.clip(pen["offset"], lo, lo + m)
    pen["n"] = np.clip(pen["offset"] + pen["n"], lo, lo + m) - start
    pen["offset"] = start - lo
    pen = np.ascontiguousarray(pen[pen["n"] > 0])
    grads = np.empty(max(m, 1), dtype)
    dp.red.reduce_scatter = <void*> <Py_ssize_t> reducer["reduce_scatter"]
    dp.red.allgatherv = <void*> <Py_ssize_t> reducer["allgatherv"]
    dp.shard.lo, dp.shard.n = lo, m
    dp.shard.counts = <const int*> _data_ptr(counts)
    dp.shard.displs = <const int*> _data_ptr(displs)
    dp.shard.grads = _data_ptr(grads)
    dp.shard.pen = <const PenaltyRange*> _data_ptr(pen) if pen.shape[0] else NULL
    dp.shard.n_pen = pen.shape[0]
    dp.can_shard = True
    return counts, displs, grads, pen


cdef tuple dp_setup(DataParallel* dp, dict reducer, penalties, dtype, Py_ssize_t n):
    """Point dp at the reducer's MPI functions and handles (``Runner.data_parallel``);
    returns the arrays dp points into."""
    if not reducer.get("allreduce"):
        raise ValueError("reducer['allreduce'] must be the address of MPI_Allreduce")
    if reducer["handle_bytes"] not in (4, 8):
        raise ValueError(f"MPI handles of {reducer['handle_bytes']} bytes are not supported")
    dp.red.allreduce = <void*> <Py_ssize_t> reducer["allreduce"]
    dp.red.reduce_scatter = dp.red.allgatherv = NULL
    dp.red.handle_bytes = reducer["handle_bytes"]
    dp.red.comm, dp.red.op_sum = reducer["comm"], reducer["op_sum"]
    dp.red.dt_float, dp.red.dt_double = reducer["dt_float"], reducer["dt_double"]
    dp.red.in_place, dp.red.error = reducer["in_place"], 0
    dp.sharded = False
    return shard_setup(dp, reducer, penalties, dtype, n)


cdef int dp_schedule(DataParallel* dp, schedule, Py_ssize_t n_perm,
                     Py_ssize_t batch_size) except -1:
    """Check and point the data-parallel run at ``schedule`` (see ``Runner.run``)."""
    if not (isinstance(schedule, np.ndarray) and schedule.dtype == np.int64
            and schedule.ndim == 2 and schedule.shape[1] == 3
            and schedule.flags.c_contiguous and schedule.shape[0] > 0):
        raise TypeError("a data-parallel run needs a schedule: a non-empty C-contiguous "
                        "(n_steps, 3) int64 array")
    local, glob = schedule[:, 0], schedule[:, 1]
    if (local < 0).any() or (local > batch_size).any() or (glob < 1).any() \
            or (local > glob).any() or (schedule[:, 2] < 0).any():
        raise ValueError(f"schedule rows must hold 0 <= local <= min(global, "
                         f"{batch_size}), global >= 1 and row0 >= 0")
    if int(local.sum()) != n_perm:
        raise ValueError(f"the schedule takes {int(local.sum())} rows, perm has {n_perm}")
    dp.sched = <const long long*> _data_ptr(schedule)
    dp.n_steps = schedule.shape[0]
    dp.red.error = 0
    return 0
