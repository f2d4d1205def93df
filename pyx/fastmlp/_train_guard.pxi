# The guard around a GIL-free run (part of _train.pyx): the thread-count governor
# (include/fastmlp/governor.h) and the subnormal flush (include/fastmlp/fpmode.h).

cdef extern from "fastmlp/governor.h" nogil:
    void fm_governor_init(fm_governor* g, int max_threads)
    void fm_governor_pause(fm_governor* g)
    int fm_governor_next(fm_governor* g, double per_step, double wait_share)
    double fm_governor_wait(const fm_governor* g)
    int fm_governor_step(fm_governor* g, double waited)
    int fm_governor_step_at(fm_governor* g, double waited, double now)
    int fm_governor_threads(const fm_governor* g)

cdef extern from "fastmlp/fpmode.h" nogil:
    unsigned FM_FP_FLUSH
    unsigned fm_fp_mode()
    void fm_fp_set_mode(unsigned mode)
    int fm_fp_can_flush()

# Training steps flush subnormals to zero (include/fastmlp/fpmode.h); process-wide setting.
cdef bint _flush_denormal = fm_fp_can_flush()


def set_flush_denormal(bint mode):
    """Whether training steps flush subnormal numbers to zero (``fastmlp.set_flush_denormal``);
    returns False when this CPU has no such mode (the setting is then ignored)."""
    global _flush_denormal
    _flush_denormal = mode and fm_fp_can_flush()
    return bool(fm_fp_can_flush())


def get_flush_denormal():
    """Whether training steps flush subnormal numbers to zero."""
    return bool(_flush_denormal)


cdef void governor_tick(fm_governor* gov) noexcept nogil:
    """After a step: the thread count the governor (if any) picks for the next one."""
    cdef int threads
    if gov != NULL:
        threads = fm_governor_step(gov, pool_take_wait())
        if threads:
            thread_override_set(threads)


cdef class Governor:
    """Chooses the core's thread count of a training loop from its measured step times
    (``include/fastmlp/governor.h``). One lives as long as its Trainer, so what it
    learned carries over from fit to fit. Its maximum is the count in force at its first
    run."""
    def __reduce__(self):
        return Governor, ()       # what it learned is about this machine, now: not kept

    property threads:
        """The count in use (None before the first run)."""
        def __get__(self):
            return fm_governor_threads(&self.g) if self.ready else None

    property wait_share:
        """The share of the last window of steps the training thread spent waiting for
        chunks other threads held (None before the first window): a quiet machine's is a
        few percent; the governor tries fewer threads only above 10 %."""
        def __get__(self):
            return fm_governor_wait(&self.g) if self.ready else None

    cdef fm_governor* _start(self):
        """The governor for a run, its window restarted (fm_governor_pause)."""
        if not self.ready:
            fm_governor_init(&self.g, num_threads())
            self.ready = True
        fm_governor_pause(&self.g)
        return &self.g


cdef int guard_enter(RunGuard* r, Governor governor) except -1:
    """Before a GIL-free run: the governor's thread count (if any) and the subnormal flush
    (fpmode.h) for the calling thread; what they replace is kept in r for guard_leave."""
    r.gov = governor._start() if governor is not None else NULL
    r.threads = thread_override_get()
    r.fp_mode = fm_fp_mode()
    if r.gov != NULL:
        thread_override_set(fm_governor_threads(r.gov))
    if _flush_denormal:       # subnormals flushed while the steps run
        fm_fp_set_mode(r.fp_mode | FM_FP_FLUSH)
    return 0


cdef void guard_leave(const RunGuard* r) noexcept:
    """After the run (also when it raised): the calling thread as it was."""
    fm_fp_set_mode(r.fp_mode)
    thread_override_set(r.threads)


def governor_trace(int max_threads, per_step, Py_ssize_t windows):
    """Test wrapper: run the governor's decisions for ``windows`` windows on a machine
    whose seconds per step at t threads are ``per_step(window_index, t)`` (or, as a
    tuple, those seconds and the share of the window the caller waited for other
    threads' chunks; 1.0 when not given); returns the thread count of every window."""
    cdef fm_governor g
    fm_governor_init(&g, max_threads)
    trace = []
    for w in range(windows):
        t = fm_governor_threads(&g)
        trace.append(t)
        cost = per_step(w, t)
        seconds, wait = cost if isinstance(cost, tuple) else (cost, 1.0)
        fm_governor_next(&g, float(seconds), float(wait))
    return trace


def governor_step_trace(int max_threads, step_seconds, Py_ssize_t steps,
                        Py_ssize_t run_steps=0):
    """Test wrapper: run the governor step by step (fm_governor_step_at) on a simulated
    clock, where a step at t threads takes ``step_seconds(step_index, t)`` seconds (the
    caller never waits for other threads), in runs of ``run_steps`` steps (0: one run)
    with 1000 s outside the loop between runs (fm_governor_pause, as between epochs);
    returns the thread count of every step."""
    cdef fm_governor g
    cdef double now = 1.0
    fm_governor_init(&g, max_threads)
    trace = []
    for s in range(steps):
        if s == 0 or (run_steps > 0 and s % run_steps == 0):   # a run starts
            if s:
                fm_governor_pause(&g)
                now += 1000.0
            fm_governor_step_at(&g, 0.0, now)  # a run's first call (re)starts the clock
        t = fm_governor_threads(&g)
        trace.append(t)
        now += float(step_seconds(s, t))
        fm_governor_step_at(&g, 0.0, now)
    return trace
