/* The core's thread team: persistent workers that run "parallel for" jobs whose chunks
 * are claimed one at a time from a shared counter, and a caller that never waits for a
 * worker that has not started.
 *
 * Why not an OpenMP team: a parallel region splits its work statically and ends at a
 * barrier, so every region waits for its slowest member. On a shared machine a vCPU is
 * parked by the host for milliseconds at a time; a training step runs ~15 regions, and
 * each waited for the parked thread (measured on 2 vCPUs: epochs of 0.35 s turning into
 * 3-22 s for minutes). Here the caller works through the chunks itself and returns once
 * every *claimed* chunk is done: a worker that arrives late finds nothing left and goes
 * back to waiting. The cost of a parked worker is bounded by the one chunk it may hold.
 *
 * Protocol. `next` holds (generation << 32 | next chunk). The caller moves `next` to a new
 * generation, writes the job's fields, zeroes `done`, then publishes the generation in
 * `gen`; a worker claims chunk i by a compare-and-swap from (g, i) to (g, i + 1), which
 * fails once the caller has moved on to another job, so a worker never runs a chunk of a
 * job that has ended (nor one of the next job before its fields are written). The caller
 * returns when `done` == the chunk count. A chunk runs with a slot (0 for the caller,
 * 1 + the worker's index), distinct among the job's participants: callers index
 * per-participant scratch with it.
 *
 * One job at a time: a caller that finds the team busy (another thread's job, or a
 * nested call from inside a chunk) runs its chunks alone, on its own thread. Workers spin
 * for ~FM_POOL_SPIN pauses after a job (the next one of a training step follows within
 * microseconds), then sleep on a condition variable. A forked child never uses the team
 * (fm_threads_forked: its threads were not copied); the callers run alone there.
 *
 * Results never depend on which thread runs a chunk: the callers make every chunk an
 * independent computation of a fixed part of the output, and a worker computes in the
 * caller's floating-point mode (fpmode.h: MXCSR on x86), set before each chunk it runs.
 */
#ifndef FASTMLP_POOL_H
#define FASTMLP_POOL_H

#include <stddef.h>
#include <stdint.h>

#ifndef FM_TASK_FN_DEFINED
#define FM_TASK_FN_DEFINED
typedef void (*fm_task_fn)(void* ctx, ptrdiff_t chunk, int slot);
typedef void (*fm_pool_run_fn)(int threads, ptrdiff_t n, fm_task_fn fn, void* ctx);
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FM_POOL_THREADS 1
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FM_PAUSE() _mm_pause()
#else
#define FM_PAUSE() ((void)0)
#endif

#include "clock.h"
#include "fpmode.h"

#define FM_POOL_MAX_WORKERS 63
#define FM_POOL_SPIN (1 << 15)

#ifdef FM_POOL_THREADS

/* Seconds this thread, as a caller, spent waiting at the end of its jobs for chunks other
 * threads held: the thread governor's sign that a worker is parked mid-chunk (on a quiet
 * machine a few percent of a training step). fm_pool_take_wait() returns it and restarts. */
static __thread double fm_pool_wait_s = 0.0;

static double fm_pool_take_wait(void) {
    double w = fm_pool_wait_s;
    fm_pool_wait_s = 0.0;
    return w;
}

/* The team's state, its hot fields on separate cache lines: workers spin reading `gen`,
 * so a store to any field on its line costs the caller a transfer of that line from the
 * other core; with every field on one line each of a job's stores paid one (measured:
 * 0.67 us from a call to the caller's first chunk, on 2 vCPUs). */
#define FM_POOL_LINE __attribute__((aligned(64)))
typedef struct {
    uint32_t gen FM_POOL_LINE;  /* generation of the current job (workers wait for a new one) */
    int sleepers;               /* workers waiting on `wake` */
    uint64_t next FM_POOL_LINE; /* (generation << 32) | next unclaimed chunk */
    ptrdiff_t done FM_POOL_LINE;  /* chunks of the current job completed */
    ptrdiff_t n FM_POOL_LINE;   /* the current job: chunk count, function, argument, */
    fm_task_fn fn;
    void* ctx;
    unsigned fp_mode;           /* the caller's floating-point mode (fpmode.h): workers take it */
    int max_workers;            /* and how many workers may join it */
    int busy FM_POOL_LINE;      /* 1 while a caller owns the team */
    int started;                /* workers started */
    pthread_mutex_t mu;
    pthread_cond_t wake;
} fm_pool_state;

static fm_pool_state fm_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                                .wake = PTHREAD_COND_INITIALIZER};

#define FM_LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define FM_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

/* Claim and run chunks of generation g until none is left (or the job has changed). */
static void fm_pool_work(uint32_t g, int slot) {
    for (;;) {
        uint64_t v = FM_LOAD(fm_pool.next);
        ptrdiff_t i = (ptrdiff_t)(v & 0xffffffffu);
        if ((uint32_t)(v >> 32) != g || i >= FM_LOAD(fm_pool.n)) return;
        fm_task_fn fn = FM_LOAD(fm_pool.fn);
        void* ctx = FM_LOAD(fm_pool.ctx);
        if (!__atomic_compare_exchange_n(&fm_pool.next, &v, v + 1, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST))
            continue;
        /* the claim succeeded, so job g cannot have ended: fn, ctx and the mode were its
         * own; a chunk computes in the caller's floating-point mode */
        unsigned mode = FM_LOAD(fm_pool.fp_mode);
        if (slot != 0 && fm_fp_mode() != mode) fm_fp_set_mode(mode);
        fn(ctx, i, slot);
        __atomic_add_fetch(&fm_pool.done, 1, __ATOMIC_SEQ_CST);
    }
}

/* The generation before a worker's first job (set before it starts: it must not miss a
 * job published while it was starting). */
static uint32_t fm_pool_first_gen[FM_POOL_MAX_WORKERS];

static void* fm_pool_worker(void* arg) {
    const int id = (int)(intptr_t)arg;
    uint32_t seen = fm_pool_first_gen[id];
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = FM_LOAD(fm_pool.gen)) == seen && spins < FM_POOL_SPIN) {
            FM_PAUSE();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&fm_pool.mu);
            __atomic_add_fetch(&fm_pool.sleepers, 1, __ATOMIC_SEQ_CST);
            while ((g = FM_LOAD(fm_pool.gen)) == seen) pthread_cond_wait(&fm_pool.wake, &fm_pool.mu);
            __atomic_sub_fetch(&fm_pool.sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&fm_pool.mu);
        }
        seen = g;
        if (id < FM_LOAD(fm_pool.max_workers)) fm_pool_work(g, 1 + id);
    }
    return NULL;
}

/* Start workers until `want` run (called by the owner of the team); returns how many do. */
static int fm_pool_grow(int want) {
    if (want > FM_POOL_MAX_WORKERS) want = FM_POOL_MAX_WORKERS;
    while (fm_pool.started < want) {
        pthread_t t;
        pthread_attr_t attr;
        int ok;
        if (pthread_attr_init(&attr) != 0) break;
        fm_pool_first_gen[fm_pool.started] = fm_pool.gen;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&t, &attr, fm_pool_worker, (void*)(intptr_t)fm_pool.started) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        fm_pool.started++;
    }
    return fm_pool.started;
}

/* Run fn(ctx, i, slot) for every chunk i in [0, n) on up to `threads` threads (the caller
 * included) with slots in [0, threads); returns when all have run. */
static void fm_pool_run(int threads, ptrdiff_t n, fm_task_fn fn, void* ctx) {
    int expected = 0, workers;
    if (n <= 0) return;
    if (threads > n) threads = (int)n;
    if (threads <= 1 || n > 0xffffffffL
        || !__atomic_compare_exchange_n(&fm_pool.busy, &expected, 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
        for (ptrdiff_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    workers = fm_pool_grow(threads - 1);
    uint32_t g = fm_pool.gen + 1;
    /* `next` moves to the new generation first: from then on a late worker of the last
     * job (one that read its generation before) cannot claim anything, whatever it reads
     * of the fields written next. Chunk 0 is the caller's before the job is published: a
     * product's parts then go to the same threads call after call (a spinning worker
     * could otherwise win chunk 0), so each core's cache keeps the part of the weights
     * it reads, e.g. half of the MNIST model's 2.1 MB each in two 2 MB L2s when
     * predicting one row */
    FM_STORE(fm_pool.next, ((uint64_t)g << 32) | 1u);
    /* the job's fields: plain stores, published by the store of `gen` (a release) */
    __atomic_store_n(&fm_pool.n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&fm_pool.fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&fm_pool.ctx, ctx, __ATOMIC_RELAXED);
    __atomic_store_n(&fm_pool.fp_mode, fm_fp_mode(), __ATOMIC_RELAXED);
    __atomic_store_n(&fm_pool.max_workers, workers < threads - 1 ? workers : threads - 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&fm_pool.done, 0, __ATOMIC_RELAXED);
    FM_STORE(fm_pool.gen, g);
    if (FM_LOAD(fm_pool.sleepers) > 0) {
        pthread_mutex_lock(&fm_pool.mu);
        pthread_cond_broadcast(&fm_pool.wake);
        pthread_mutex_unlock(&fm_pool.mu);
    }
    fn(ctx, 0, 0);
    __atomic_add_fetch(&fm_pool.done, 1, __ATOMIC_SEQ_CST);
    fm_pool_work(g, 0);
    if (FM_LOAD(fm_pool.done) < n) {                 /* only chunks that others hold */
        double t0 = fm_clock_now();
        while (FM_LOAD(fm_pool.done) < n) FM_PAUSE();
        fm_pool_wait_s += fm_clock_now() - t0;
    }
    FM_STORE(fm_pool.busy, 0);
}

/* Workers started so far (for show_config and tests). */
static int fm_pool_workers(void) { return FM_LOAD(fm_pool.started); }

#undef FM_LOAD
#undef FM_STORE

#else  /* no threads here: every job runs on the caller */

static void fm_pool_run(int threads, ptrdiff_t n, fm_task_fn fn, void* ctx) {
    (void)threads;
    for (ptrdiff_t i = 0; i < n; i++) fn(ctx, i, 0);
}

static int fm_pool_workers(void) { return 0; }

static double fm_pool_take_wait(void) { return 0.0; }

#endif
#endif
