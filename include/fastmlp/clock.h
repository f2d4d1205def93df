/* Seconds on the monotonic clock: what the thread team (pool.h) times its callers' waits
 * and the thread governor (governor.h) its windows of steps with. */
#ifndef FASTMLP_CLOCK_H
#define FASTMLP_CLOCK_H

#include <time.h>

static double fm_clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
