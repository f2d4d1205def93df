/* The thread governor of the training loop: picks how many threads the core uses, from
 * how fast steps actually run.
 *
 * Why: on a machine whose other cores are busy, a team of threads waits at every barrier
 * for a member the scheduler has parked, and a step can get several times slower than on
 * one thread (measured on 2 cores with one busy: 6.5 ms vs 2.7 ms for an MNIST-shape step
 * at batch 32). The core's results do not depend on the thread count, so changing it in
 * the middle of training changes the speed only.
 *
 * How: steps run in windows of FM_GOV_WINDOW; each window's time per step is measured.
 * Every `interval` windows one probe window runs with a different count (half as many,
 * or twice as many when at one thread); when it is at least 1/FM_GOV_GAIN faster than the
 * mean of the windows just before and just after it (at the setting: a machine whose
 * speed drifts then cannot fake a win), that count becomes the setting. A probe that
 * loses doubles the interval (up to FM_GOV_MAX_INTERVAL): on an idle machine probing
 * costs a fraction of a percent; a probe that wins resets it, so a change of load is
 * followed within a few windows.
 *
 * After the first probe of fewer threads, the next ones run only when, over the windows
 * at the setting since the last probe, the calling thread spent on average at least
 * FM_GOV_WAIT_SHARE of its time waiting for chunks other threads held (pool.h): a team
 * whose members keep up has nothing to gain from fewer of them, and each such probe cost
 * a quiet machine a window at one thread (an MNIST epoch of one fit at batch 256 took
 * 250-260 ms instead of 220-225 when it held one). A parked worker holding a chunk is what
 * makes the caller wait: measured on 2 vCPUs, MNIST shape, 1-5 % of a window on a quiet
 * machine (batch 256 and 32), 0-54 % with the other core running a busy loop (0 % in a
 * window where the parked worker never got a chunk, hence the average and the first
 * probe, which runs whatever the waits: it is what finds a core busy from the start).
 */
#ifndef FASTMLP_GOVERNOR_H
#define FASTMLP_GOVERNOR_H

#include "clock.h"

#define FM_GOV_WINDOW 16
#define FM_GOV_MIN_INTERVAL 4
#define FM_GOV_MAX_INTERVAL 256
#define FM_GOV_GAIN 0.85
#define FM_GOV_WAIT_SHARE 0.10

typedef struct {
    int max_threads;   /* most threads it may choose (1: the governor is off) */
    int threads;       /* the current setting */
    int trial;         /* threads of the probe window in progress, 0 when none */
    int judged;        /* threads of the probe being judged (its next window runs at
                          `threads`), 0 when none */
    int up;            /* direction of the next probe from a middle setting */
    int interval;      /* windows between probes */
    int countdown;     /* windows until the next probe */
    int steps;         /* steps in the window in progress */
    double start;      /* when the window in progress started, or resumed after a pause
                          (seconds; 0: at the next step) */
    double span;       /* seconds of the window in progress before its last pause (a
                          probe's: other windows restart at a pause) */
    double last;       /* when the last step of a probe ended (its clock is read at each) */
    double base;       /* seconds per step of the last window at `threads` */
    double probe;      /* seconds per step of the last probe window */
    double wait;       /* share of the last window the caller waited for others' chunks */
    double waited;     /* seconds it waited so far in the window in progress */
    double wait_sum;   /* sum of the wait shares of the windows at the setting since the */
    int wait_windows;  /* last probe, and their count */
    int probed_down;   /* 1 once a probe of fewer threads has run */
} fm_governor;

static void fm_governor_init(fm_governor* g, int max_threads) {
    g->max_threads = max_threads < 1 ? 1 : max_threads;
    g->threads = g->max_threads;
    g->trial = g->judged = 0;
    g->up = 0;
    g->interval = g->countdown = FM_GOV_MIN_INTERVAL;
    g->steps = 0;
    g->start = g->span = g->last = 0.0;
    g->base = g->probe = g->wait = g->waited = g->wait_sum = 0.0;
    g->wait_windows = g->probed_down = 0;
}

/* The threads to use for the next window, given the seconds per step of the window that
 * just ended (which ran at g->trial threads if a probe was in progress, else g->threads)
 * and the share of it the caller spent waiting for other threads' chunks. */
static int fm_governor_next(fm_governor* g, double per_step, double wait_share) {
    if (g->max_threads <= 1) return 1;
    g->wait = wait_share;
    if (g->trial) {                     /* the probe ended: one more window at the setting */
        g->probe = per_step;
        g->judged = g->trial;
        g->trial = 0;
        return g->threads;
    }
    if (g->judged) {                    /* the window after the probe ended: decide */
        if (g->probe < FM_GOV_GAIN * 0.5 * (g->base + per_step)) {
            g->threads = g->judged;
            g->interval = FM_GOV_MIN_INTERVAL;
        } else if (g->interval < FM_GOV_MAX_INTERVAL) {
            g->interval *= 2;
        }
        g->judged = 0;
        g->countdown = g->interval;
        return g->threads;
    }
    g->base = per_step;
    g->wait_sum += wait_share;
    g->wait_windows++;
    if (--g->countdown > 0) return g->threads;
    if (g->threads == g->max_threads) g->up = 0;   /* only down from the top */
    else if (g->threads == 1) g->up = 1;           /* only up from one */
    else g->up = !g->up;                           /* alternate in between */
    double waits = g->wait_sum / g->wait_windows;
    g->wait_sum = 0.0;
    g->wait_windows = 0;
    if (!g->up && g->probed_down && waits < FM_GOV_WAIT_SHARE) {   /* the team keeps up */
        g->countdown = g->interval;
        return g->threads;
    }
    if (!g->up) g->probed_down = 1;
    g->trial = g->up ? (2 * g->threads < g->max_threads ? 2 * g->threads : g->max_threads)
                     : g->threads / 2;
    return g->trial;
}

/* Count a finished step that ended at `now` (seconds, fm_clock_now), during which the
 * caller waited `waited` seconds for other threads' chunks (pool.h's fm_pool_take_wait);
 * at the end of a window return the threads for the next one, otherwise 0 (keep the
 * current setting). The first call starts the clock.
 *
 * A probe window ends early, after fewer than FM_GOV_WINDOW steps, once it has taken as
 * long as a whole window at the setting: its steps are then slower than the setting's,
 * and it could still win only if the machine got more than a third slower right after it
 * (the rule above compares it with the mean of the windows on both sides). It is judged
 * by the same rule on the steps it ran. A losing probe of one thread on two cores ran its
 * 16 steps at about half speed; it now stops after about 8, halving the time the first
 * probe of every fit costs. Measured on 2 vCPUs of a Zen 1, MNIST shape at batch 512
 * (~20 ms a step), the epoch holding the probe: 1,048-1,182 ms before, 823-906 after,
 * against 769-929 for the next one (three fits each, alternating processes). */
static int fm_governor_step_at(fm_governor* g, double waited, double now) {
    if (g->max_threads <= 1) return 0;
    if (g->start == 0.0) {              /* (re)started: this step is not timed */
        g->start = g->last = now;
        return 0;
    }
    g->waited += waited;
    if (g->trial) g->last = now;
    double span = g->span + (now - g->start);
    if (++g->steps < FM_GOV_WINDOW
        && !(g->trial && g->base > 0.0 && span >= g->base * FM_GOV_WINDOW))
        return 0;
    const int steps = g->steps;
    g->steps = 0;
    g->span = 0.0;
    g->start = now;
    waited = g->waited;
    g->waited = 0.0;
    return fm_governor_next(g, span / steps, span > 0 ? waited / span : 0.0);
}

/* fm_governor_step_at, now. fm_governor_step_at reads `now` only when a window starts or
 * ends and at the steps of a probe, so the clock is read only then (~40 ns a read in a
 * KVM guest, measured: ~1 % of the tiny model's 4.4 us step). */
static int fm_governor_step(fm_governor* g, double waited) {
    if (g->max_threads <= 1) return 0;
    const int read = g->start == 0.0 || g->trial || g->steps + 1 >= FM_GOV_WINDOW;
    return fm_governor_step_at(g, waited, read ? fm_clock_now() : 0.0);
}

/* Drop the window in progress (its clock restarts at the next step): the time spent
 * outside the loop between two runs (callbacks, validation) is no step's. A probe keeps
 * the steps it ran and their time (its clock was read at each): it carries on in the next
 * run and ends after the same steps as without the pause. Before, it started over: a probe
 * that began in the last steps of an epoch ran those and a whole window more. */
static void fm_governor_pause(fm_governor* g) {
    if (g->start == 0.0) return;        /* not started since the last pause */
    if (g->trial && g->steps > 0) {
        g->span += g->last - g->start;
    } else {
        g->steps = 0;
        g->span = g->waited = 0.0;
    }
    g->start = 0.0;
}

/* The share of the last window the caller spent waiting for other threads' chunks. */
static double fm_governor_wait(const fm_governor* g) { return g->wait; }

/* The setting in force (the probe's while one runs). */
static int fm_governor_threads(const fm_governor* g) {
    return g->trial ? g->trial : g->threads;
}

#endif
