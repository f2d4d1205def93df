/* Optimizer updates over the flat parameter arena (torch.optim rules), float32 and float64.
 *
 * One kernel per family, written once in optim_template.h. Each update is a single pass
 * over contiguous memory; `threads` > 1 splits it into contiguous chunks (multiples of 64
 * elements), a few per thread, claimed by the core's team (pool.h), when the arena is
 * large enough to pay for them (FM_PAR_GRAIN elements a thread). Every element is
 * computed by the same expression whatever the split, so the result does not depend on
 * the thread count.
 *
 * Vectorization: on x86-64 Linux with GCC/clang the chunk loops are compiled twice
 * (target_clones: AVX-512, AVX2 and the baseline) and the loader picks the one this CPU
 * runs. Adam's division and square root are the bound at small batches: AVX-512 does
 * twice the elements per instruction (IEEE-exact in every width, so the clones agree bit
 * for bit).
 * The module is built with -ffp-contract=off, so neither clone fuses a*b+c into an FMA:
 * both round exactly like the NumPy reference (sqrt and division are IEEE in every ISA).
 *
 * The hyperparameter structs (optim_hyper.h) hold the step-dependent scalars too, which
 * the caller computes for step t (see fastmlp/_optim.pyx).
 */
#ifndef FASTMLP_OPTIM_H
#define FASTMLP_OPTIM_H

#include <math.h>
#include <stddef.h>
#include "optim_hyper.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) \
    && (!defined(__clang__) || __clang_major__ >= 14) && !defined(FASTMLP_NO_CLONES)
#define FM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_CLONES
#endif

/* Elements a thread must get before a pass is split: ~15 us of Adam, ~15 us of reading
 * for the finiteness check (which does far less per element). */
#define FM_PAR_GRAIN (1 << 15)
#define FM_PAR_GRAIN_READ (1 << 18)

static inline int fm_par_threads_grain(ptrdiff_t n, int threads, ptrdiff_t grain) {
#ifdef _OPENMP
    ptrdiff_t by_size = n / grain;
    int t = threads < by_size ? threads : (int)by_size;
    return t < 1 ? 1 : t;
#else
    (void)n; (void)threads; (void)grain;
    return 1;
#endif
}

static inline int fm_par_threads(ptrdiff_t n, int threads) {
    return fm_par_threads_grain(n, threads, FM_PAR_GRAIN);
}

/* Pointer p + off, NULL staying NULL (offsetting NULL is undefined behaviour). */
#define FM_OFF(p, off) ((p) ? (p) + (off) : (p))

/* The core's thread team (pool.h, which lives in the _blas module: one team per
 * process), handed over at import by fm_optim_use_pool; NULL: every pass runs on the
 * caller. */
#ifndef FM_TASK_FN_DEFINED
#define FM_TASK_FN_DEFINED
typedef void (*fm_task_fn)(void* ctx, ptrdiff_t chunk, int slot);
typedef void (*fm_pool_run_fn)(int threads, ptrdiff_t n, fm_task_fn fn, void* ctx);
#endif
static fm_pool_run_fn fm_optim_pool = NULL;

static void fm_optim_use_pool(fm_pool_run_fn run) { fm_optim_pool = run; }

/* Chunks per thread of a split pass (claimed dynamically: a parked thread holds back at
 * most one). */
#define FM_PAR_CHUNKS 4

/* What a pass computes (the chunk kernel its job runs). */
enum { FM_PASS_SGD, FM_PASS_ADAGRAD, FM_PASS_RMSPROP, FM_PASS_ADADELTA, FM_PASS_ADAM,
       FM_PASS_FINITE };

#define FM_T double
#define FM_NAME(x) x##_f64
#define FMM_SQRT sqrt
#include "optim_template.h"
#undef FM_T
#undef FM_NAME
#undef FMM_SQRT

#define FM_T float
#define FM_NAME(x) x##_f32
#define FMM_SQRT sqrtf
#include "optim_template.h"
#undef FM_T
#undef FM_NAME
#undef FMM_SQRT

#endif
