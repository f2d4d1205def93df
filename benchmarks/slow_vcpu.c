/* Emulate a vCPU that runs slower than the others (a KVM guest whose host core is shared:
 * one vCPU ~1.6x slower for minutes at a time). Pinned to CPU `cpu`, a SCHED_FIFO thread
 * takes `busy` us out of every `busy + idle` us (plus the wake-up), finely enough that the
 * other threads on that CPU see a uniformly slower core at the millisecond scale.
 *   slow_vcpu CPU BUSY_US IDLE_US      (runs until killed; exits 2 without SCHED_FIFO) */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: slow_vcpu CPU BUSY_US IDLE_US\n");
        return 1;
    }
    const int cpu = atoi(argv[1]);
    const double busy = atof(argv[2]) * 1e-6;
    const struct timespec idle = {0, (long)(atof(argv[3]) * 1e3)};
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    struct sched_param prio = {.sched_priority = 10};
    if (sched_setaffinity(0, sizeof set, &set) != 0
            || sched_setscheduler(0, SCHED_FIFO, &prio) != 0) {
        perror("slow_vcpu");
        return 2;
    }
    for (;;) {
        const double t0 = now();
        while (now() - t0 < busy) {
        }
        nanosleep(&idle, NULL);
    }
}
