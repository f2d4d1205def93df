/* fastmlp's own GEMM: row-major C = alpha op(A) op(B) + beta C for float32 and float64.
 *
 * Why not only BLAS: the products of MLP training are thin (one side is the batch, 1 to a
 * few hundred rows). OpenBLAS spends much of such a call packing, and its thread pool
 * both spins for a long time after a call and splits products that are too small. This
 * is the BLIS design, small enough to read:
 *
 *   for jc in N by NC:            B panel  (KC x NC)  packed once, lives in L3/L2
 *     for pc in K by KC:
 *       pack B panel
 *       for ic in M by MC:        A block  (MC x KC)  packed, lives in L2
 *         pack A block
 *         for jr in NC by NR:     B micro-panel (KC x NR) stays in L1
 *           for ir in MC by MR:   micro-kernel: an MR x NR tile of C in registers
 *
 * Shortcuts for MLP shapes: an A of at most FM_A_DIRECT_MAX rows (the batch side) is read
 * in place by the micro-kernel; a product of at most MR rows reads B in place; one of at
 * most FM_ROWS_MAX rows (a prediction) streams B row by row instead (fm_gemm_rows). Every
 * path accumulates each element of C in the same order (K in the same blocks, each block
 * summed from 0 by FMAs in order, then added to C the same way), so a path or thread
 * count never changes a result. Packed panels are zero-padded to whole tiles; edge tiles
 * are computed in full and only their valid part is stored. beta == 0 never reads C.
 *
 * Threads: fm_gemm_* splits the larger of M and N into contiguous chunks, a few per
 * thread, each an independent serial GEMM (1-2 rows: whole K blocks a thread, each
 * block's sums added to C in order by the caller, so each thread's rows of B stay in its
 * cache); products of one column split their rows; the core's team (pool.h) claims them
 * dynamically, so a thread the host parks delays a product by at most one chunk. The
 * number of threads is min(requested, work / FM_GEMM_MIN_WORK): small products stay on
 * the calling thread. The packing buffers (one per participant) belong to the calling
 * thread (grown as needed, freed by a pthread key destructor when the thread ends).
 *
 * Kernels: two families, AVX2 + FMA (6 x 16 float tiles) and AVX-512 (8 x 32; float32
 * over a plain A also 12 x 32, its K loop in assembly: gemm_asm.h), each compiled
 * through function attributes, so the module itself is built for the baseline ISA. The best one this CPU runs is chosen at import (fm_gemm_set_isa; FASTMLP_GEMM_ISA
 * in the environment or fastmlp._blas.set_gemm_isa override it); both accumulate in the
 * same order, so the choice never changes a result. fm_gemm_native() says whether either
 * runs here (callers fall back to BLAS otherwise, and on other architectures).
 */
#ifndef FASTMLP_GEMM_H
#define FASTMLP_GEMM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32) \
    && !defined(FASTMLP_NO_NATIVE_GEMM)
#define FM_GEMM_X86 1
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#include "pool.h"

/* An epilogue: called once per finished block of C (at most MC x NC, once its last K
 * block is done), on the thread that computed it, with the block
 * C[r0:r0+rows, c0:c0+cols] (final values, still in that core's L2): a fused elementwise
 * pass (bias and activation, a finiteness check) that then runs in parallel and without
 * another trip through memory. Blocks are disjoint and cover C once, so an epilogue may
 * write its block; one that records into ctx must do it atomically. The call that falls
 * back to BLAS runs it once over the whole of C. */
#ifndef FM_GEMM_EPI_DEFINED
#define FM_GEMM_EPI_DEFINED
typedef void (*fm_gemm_epi_fn)(void* ctx, ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t c0,
                               ptrdiff_t cols);
#endif

/* What the tiles of a product's last K block do to C before they store it, in place of a
 * block epilogue (the dense layer's forward, fm_act_epi with identity or ReLU): C += bias
 * (one value per column; NULL: none), then with `relu` also a = max(C, 0) into `a` (C's
 * row stride; `a` may be C, when nothing reads C's pre-activation values: a prediction).
 * The same operations in the same order as that pass (rounded once
 * each), so the same bits; the products that do not tile (1-2 rows, streamed, one column)
 * run the block epilogue instead. */
typedef struct {
    const void* bias;
    void* a;
    int relu;
    int* a_bad;       /* or NULL: set to 1 when a plain op(A) holds a NaN or inf, checked
                       * block by block as the tiles first read it (the first N block) */
    int* a_checked;   /* with a_bad: set to 1 by a product that checked all of A that way;
                       * left alone by the paths that do not tile (then check A yourself) */
} fm_gemm_tile_epi;

/* Where a micro-kernel finds A(r, p) of its tile: packed (fm_pack_a: A[p rows + r]), or
 * in place with the row stride lda, down its columns (a transposed A: A[p lda + r]) or
 * along its rows (A[r lda + p]). */
enum { FM_A_PACKED = 0, FM_A_COLS = 1, FM_A_ROWS = 2 };

/* Products of at most this many rows with a non-transposed B stream B row by row
 * (fm_gemm_rows) instead of tiling it: they are bound by reading B. (fm_gemm_rows has a
 * path for 1 row and one for 2.) */
#define FM_ROWS_MAX 2

/* Streamed products: a B of at most FM_STREAM_B_BYTES (in L1 from row to row), or at most
 * FM_STREAM_K steps of K with more than FM_ROWS_MAX rows, go through fm_gemm_stream: rows
 * of A streamed FM_STREAM_GROUP at a time (then 2, then 1) against B read in place (a
 * transposed B copied plain first), no packing; split by rows over the team. The tiles'
 * packing, set-up and stores are paid per K block, and a few K steps do not pay for them:
 * on an AVX2 Zen 1, one thread, tiled -> streamed: 64 x 1024 x 1 (a one-output layer's
 * dX) 36.4 -> 8.8 us, 64 x 256 x 4 11.3 -> 4.5, 128 x 256 x 10 27.5 -> 16.2, 512 x 2048 x
 * 16 1395 -> 974, 64 x 64 x 16 5.4 -> 3.7; with a small B also at long K: 256 x 4 x 256
 * (transposed A, a dW) 106 -> 92 us. Whole epochs: the 64-1024-1 regression at batch 64
 * 172-185 -> 157-163 ms, the 20-64-32-2 table at batch 8 41 -> 37 ms. (Before, only
 * products of at most 16 rows with a B of 4 KB streamed; four rows at a time hold eight
 * FMA chains a 16-column strip, enough to cover the FMA's latency where two rows were
 * not: the tiny model's b8 step 2.34 -> 1.30 us.) Every element is summed in the same
 * order as on every other path, so the bits do not depend on the path;
 * fm_gemm_set_streaming(0) tiles these products instead (tests compare the two). */
#define FM_STREAM_B_BYTES 4096
#define FM_STREAM_K 16
#ifndef FM_STREAM_GROUP
#define FM_STREAM_GROUP 4
#endif
static int fm_gemm_streaming = 1;

/* Whether products may stream (see above); returns the previous setting. */
static int fm_gemm_set_streaming(int on) {
    int was = fm_gemm_streaming;
    fm_gemm_streaming = on != 0;
    return was;
}

/* Rows of op(A) up to which the micro-kernel reads a non-transposed A in place instead of
 * packing it (measured on Zen 3: as fast or faster for the batch side of MLP products up
 * to 1024 rows; packing wins back on larger ones). A transposed A (Xᵀ in dW = Xᵀ dZ) is
 * read in place only up to MC rows: beyond, its row stride costs a TLB miss per step;
 * except in a product of at most NR columns (an output layer's dW), where each value of A
 * is read once, packed or not: on a Zen 1 core, 256 x 10 x 128 (A transposed) 58.5 ->
 * 35 us. */
#ifndef FM_A_DIRECT_MAX
#define FM_A_DIRECT_MAX 1024
#endif

/* Work below which a product stays on one thread (~15 us of work per thread), counted in
 * multiply-adds plus 16 per element of B: a product of a few rows is bound by reading B.
 * Tiled products count N in whole strips of NR columns, as the tiles compute them: an
 * output layer's 256 x 10 x 256 forward (16 columns of work) now takes two threads, 64 ->
 * 37 us on a Zen 1 (its dW, A transposed, 113 -> 37 us: each half also reads A in place). */
#define FM_GEMM_MIN_WORK (1 << 19)
#define FM_GEMM_MAX_THREADS 64

/* Chunks per thread of a product split over threads (pool.h claims them dynamically),
 * for tiled products split along N (columns of W: each chunk packs only its own part of
 * B, but a transposed A again) and along M (each chunk packs all of B). One a thread:
 * every extra chunk packs again and ends in another wait, and with one the caller's
 * chunk is always chunk 0 (pool.h), so each core's caches keep the same part of W step
 * after step. Measured on 2 vCPUs of an Intel Xeon (AVX-512), MNIST-shape epochs against
 * the former 4 (N) and 2 (M) a thread: batch 32 448-461 vs 488-512 ms, batch 128
 * 252-267 vs 287-290, batch 256 221 vs 230-257, the wide shape 53.4-54.2 vs 54.8-55.6
 * ms a step; with the other core busy, equal (adaptive threads 225 ms either way). A
 * slow or parked worker can hold back at most its head chunk (pool.h lets the caller
 * take a chunk no worker claimed; the guided tail below balances a slower thread; the
 * governor drops to one thread on a busy machine). Products of
 * 1-2 rows (fm_gemm_rows) always take one chunk a thread: they stream B, and long
 * contiguous runs of each B row stream fastest. Settable for experiments
 * (fm_gemm_set_chunks). */
static int fm_gemm_chunks_n = 1, fm_gemm_chunks_m = 1;

static void fm_gemm_set_chunks(int along_n, int along_m) {
    if (along_n >= 1) fm_gemm_chunks_n = along_n;
    if (along_m >= 1) fm_gemm_chunks_m = along_m;
}

/* The guided tail of a split product: fm_gemm_tail_16ths / 16 of its work goes in up to
 * fm_gemm_tail_parts small chunks a thread, claimed after the threads' large head chunks
 * (one a thread, the caller's chunk 0 as above); 0 sixteenths: the uniform split above.
 * A thread that runs slower than the others then ends its head late and the others take
 * the tail; with static halves the slow half decides every product's time. On a KVM
 * guest one vCPU at times runs ~1.6x slower for minutes (its host core shared); with
 * that emulated (benchmarks/slow_vcpu.c: a SCHED_FIFO thread taking 25 of every ~95 us
 * of one vCPU), MNIST-shape epochs at batch 32 / 256 / 512 ran 1.25 / 1.18 / 1.31x faster
 * with a quarter in the tail. On a quiet machine the tail costs 2-3.5 % (each tail chunk
 * reads A, or packs B, again), so it is adaptive (fm_gemm_tail_adaptive): products time
 * their head chunks, which hold equal work, and the tail is used while the slowest head has
 * taken more than 1.12x the fastest's time on average (an average over the last ~16
 * timed products; off again below 1.06x). Settable for experiments (fm_gemm_set_tail). */
static int fm_gemm_tail_16ths = 4, fm_gemm_tail_parts = 2, fm_gemm_tail_adaptive = 1;
/* The smallest tail chunk: along N 64 columns (each chunk reads all of A again), along M
 * 48 rows (each chunk packs all of B again: ~5 rows' worth of FMAs). */
static int fm_gemm_tail_cols = 64, fm_gemm_tail_rows = 48;

static void fm_gemm_set_tail(int sixteenths, int parts, int cols, int rows, int adaptive) {
    if (sixteenths >= 0 && sixteenths < 16) fm_gemm_tail_16ths = sixteenths;
    if (parts >= 1) fm_gemm_tail_parts = parts;
    if (cols >= 1) fm_gemm_tail_cols = cols;
    if (rows >= 1) fm_gemm_tail_rows = rows;
    if (adaptive >= 0) fm_gemm_tail_adaptive = adaptive != 0;
}

/* The adaptive tail's state, shared by the process's callers (relaxed atomics: a lost
 * update only delays a switch): the average ratio slowest / fastest head time, x 1024,
 * and whether the tail is on. */
static int fm_gemm_heads_ratio = 1024, fm_gemm_tail_on = 0;
#define FM_TAIL_ON_RATIO 1147      /* 1.12 x 1024 */
#define FM_TAIL_OFF_RATIO 1085     /* 1.06 x 1024 */

/* Fold one product's slowest / fastest head time, capped at 2, into the average (weight
 * 1/16: one head held up by a parked thread does not switch the tail, a ~1.6x slower
 * thread does within 4 products) and switch the tail; returns whether it is on. */
static int fm_gemm_heads_timed(double ratio) {
    int avg = __atomic_load_n(&fm_gemm_heads_ratio, __ATOMIC_RELAXED);
    int r = ratio > 2.0 ? 2 * 1024 : (int)(ratio * 1024.0);
    int on = __atomic_load_n(&fm_gemm_tail_on, __ATOMIC_RELAXED);
    avg += (r - avg) / 16;
    __atomic_store_n(&fm_gemm_heads_ratio, avg, __ATOMIC_RELAXED);
    if (on ? avg < FM_TAIL_OFF_RATIO : avg > FM_TAIL_ON_RATIO)
        __atomic_store_n(&fm_gemm_tail_on, on = !on, __ATOMIC_RELAXED);
    return on;
}

/* Whether split products get a tail now. */
static int fm_gemm_use_tail(void) {
    return fm_gemm_tail_16ths > 0
           && (!fm_gemm_tail_adaptive || __atomic_load_n(&fm_gemm_tail_on, __ATOMIC_RELAXED));
}

/* How `units` units of a product split over t > 1 threads: t head chunks of *head units,
 * then tail chunks of *tail units (the last one cut at `units`), a multiple of t of them
 * (a quiet machine's threads end together), at most fm_gemm_tail_parts a thread and each
 * at least `min_tail` units but the last; no tail when that leaves no head, when
 * min_tail is 0 (products of 1-2 rows) or when fm_gemm_use_tail() says so. Returns the
 * chunk count. Chunk i starts at unit i * head while i < t, at t * head + (i - t) * tail
 * after. */
static ptrdiff_t fm_gemm_plan_chunks(ptrdiff_t units, int t, ptrdiff_t per_thread,
                                     ptrdiff_t min_tail, ptrdiff_t* head, ptrdiff_t* tail) {
    ptrdiff_t chunks = (ptrdiff_t)t * per_thread;
    ptrdiff_t in_tail = units * fm_gemm_tail_16ths / 16;
    if (in_tail < min_tail * t) in_tail = min_tail * t;
    if (per_thread == 1 && min_tail > 0 && fm_gemm_use_tail() && units - in_tail >= t) {
        ptrdiff_t rest, each;
        *head = (units - in_tail) / t;
        rest = units - *head * t;                /* >= in_tail: what the heads leave */
        each = rest / (min_tail * t);            /* tail chunks a thread, >= 1 */
        if (each > fm_gemm_tail_parts) each = fm_gemm_tail_parts;
        *tail = (rest + each * t - 1) / (each * t);
        return t + (rest + *tail - 1) / *tail;
    }
    if (chunks > units) chunks = units;
    *head = *tail = (units + chunks - 1) / chunks;
    return (units + *head - 1) / *head;
}

/* Threads the core's kernels may use: this thread's override if set, else the process
 * default if set, else OpenMP's default (omp_get_max_threads(): OMP_NUM_THREADS or the
 * available cores). 0 means "not set". The process default is read from other threads,
 * hence the atomics. */
static int fm_threads_default = 0;
static __thread int fm_threads_override = 0;

static void fm_set_threads(int n, int this_thread_only) {
    if (n < 0) n = 0;
    if (this_thread_only)
        fm_threads_override = n;
    else
        __atomic_store_n(&fm_threads_default, n, __ATOMIC_RELAXED);
}

/* Set in a child process forked by a process that may have run OpenMP teams: GNU OpenMP
 * hangs in the child's first parallel region (its pool's threads were not copied), so
 * the child runs every kernel on its own thread. */
static int fm_threads_forked = 0;

static void fm_after_fork_in_child(void) { fm_threads_forked = 1; }

/* Once per process, at import (_blas): arm fm_threads_forked. */
static void fm_threads_init(void) {
#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
    static int done = 0;
    if (!done) {
        done = 1;
        (void)pthread_atfork(NULL, NULL, fm_after_fork_in_child);
    }
#endif
}

static int fm_get_threads(void) {
    if (fm_threads_forked) return 1;
    int n = fm_threads_override;
    if (n == 0) n = __atomic_load_n(&fm_threads_default, __ATOMIC_RELAXED);
#ifdef _OPENMP
    if (n == 0) n = omp_get_max_threads();
#else
    n = 1;
#endif
    return n < 1 ? 1 : (n > FM_GEMM_MAX_THREADS ? FM_GEMM_MAX_THREADS : n);
}

/* How many threads a product of m x n x k multiply-adds gets (1 without OpenMP). */
static int fm_gemm_plan_threads(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int threads) {
    double work = ((double)m + 16.0) * (double)n * (double)k;
    int by_work = (int)(work / FM_GEMM_MIN_WORK);
    int t = threads < by_work ? threads : by_work;
#ifndef _OPENMP
    t = 1;
#endif
    return t < 1 ? 1 : t;
}

#ifdef FM_GEMM_X86

#define FM_AVX2 __attribute__((target("avx2,fma")))
#define FM_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")))

/* The kernel families, best last: FM_ISA_NONE (callers use BLAS), AVX2 + FMA, AVX-512. */
enum { FM_ISA_NONE = 0, FM_ISA_AVX2 = 1, FM_ISA_AVX512 = 2 };

/* The best family this CPU (and its OS: the builtins check the saved register state)
 * runs. */
static int fm_gemm_cpu_isa(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return FM_ISA_NONE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return FM_ISA_AVX512;
    return FM_ISA_AVX2;
}

static int fm_gemm_native(void) { return fm_gemm_cpu_isa() != FM_ISA_NONE; }

/* --- the calling thread's packing buffer ------------------------------------------------ */
typedef struct { size_t bytes; void* data; } fm_gemm_buf;

static pthread_key_t fm_gemm_key;
static pthread_once_t fm_gemm_key_once = PTHREAD_ONCE_INIT;

static void fm_gemm_buf_free(void* p) {
    fm_gemm_buf* b = (fm_gemm_buf*)p;
    if (b) { free(b->data); free(b); }
}

static void fm_gemm_key_make(void) { (void)pthread_key_create(&fm_gemm_key, fm_gemm_buf_free); }

/* A 64-byte aligned buffer of at least `bytes` owned by this thread, or NULL. */
static void* fm_gemm_buffer(size_t bytes) {
    fm_gemm_buf* b;
    void* data = NULL;
    if (pthread_once(&fm_gemm_key_once, fm_gemm_key_make) != 0) return NULL;
    b = (fm_gemm_buf*)pthread_getspecific(fm_gemm_key);
    if (b && b->bytes >= bytes) return b->data;
    if (posix_memalign(&data, 64, bytes) != 0) return NULL;
    if (!b) {
        b = (fm_gemm_buf*)calloc(1, sizeof(fm_gemm_buf));
        if (!b || pthread_setspecific(fm_gemm_key, b) != 0) { free(b); free(data); return NULL; }
    }
    free(b->data);
    b->data = data;
    b->bytes = bytes;
    return data;
}

#include "gemm_pack.h"
#include "gemm_asm.h"

/* The first cnt elements at p (0 < cnt < the vector's lanes), the other lanes 0, and
 * their store: the last columns of a row (masked-out lanes are neither read nor written,
 * so they never fault). */
FM_AVX2 static inline __m256i fm_mask_n_32(ptrdiff_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FM_AVX2 static inline __m256i fm_mask_n_64(ptrdiff_t cnt) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3));
}
FM_AVX2 static inline __m256 fm_loadn_f32_avx2(const float* p, ptrdiff_t cnt) {
    return _mm256_maskload_ps(p, fm_mask_n_32(cnt));
}
FM_AVX2 static inline void fm_storen_f32_avx2(float* p, __m256 v, ptrdiff_t cnt) {
    _mm256_maskstore_ps(p, fm_mask_n_32(cnt), v);
}
FM_AVX2 static inline __m256d fm_loadn_f64_avx2(const double* p, ptrdiff_t cnt) {
    return _mm256_maskload_pd(p, fm_mask_n_64(cnt));
}
FM_AVX2 static inline void fm_storen_f64_avx2(double* p, __m256d v, ptrdiff_t cnt) {
    _mm256_maskstore_pd(p, fm_mask_n_64(cnt), v);
}
FM_AVX512 static inline __m512 fm_loadn_f32_avx512(const float* p, ptrdiff_t cnt) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << cnt) - 1), p);
}
FM_AVX512 static inline void fm_storen_f32_avx512(float* p, __m512 v, ptrdiff_t cnt) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << cnt) - 1), v);
}
FM_AVX512 static inline __m512d fm_loadn_f64_avx512(const double* p, ptrdiff_t cnt) {
    return _mm512_maskz_loadu_pd((__mmask8)((1u << cnt) - 1), p);
}
FM_AVX512 static inline void fm_storen_f64_avx512(double* p, __m512d v, ptrdiff_t cnt) {
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << cnt) - 1), v);
}

/* Each (type, ISA) pair is one instantiation of gemm_template.h. Every pair blocks K in
 * the same KC and accumulates each element of C in the same order, so the family in use
 * never changes a result (tests compare them bit for bit). */
/* float32, AVX2: 6 x 16 tiles (two 8-float vectors per row). */
#define FM_T float
#define FM_NAME(x) x##_f32_avx2
#define FM_TNAME(x) x##_f32
#define FM_TARGET FM_AVX2
#define FM_MR 6
#define FM_ROWS_UNROLL 0
#define FM_NR 16
#define FM_KC 256
#define FM_MC 144
#define FM_NC 512
#define FM_ROWS_VECS 8
#define FMV __m256
#define FMV_ZERO _mm256_setzero_ps
#define FMV_LOAD _mm256_load_ps
#define FMV_LOADU _mm256_loadu_ps
#define FMV_STOREU _mm256_storeu_ps
#define FMV_SET1 _mm256_set1_ps
#define FMV_FMA _mm256_fmadd_ps
#define FMV_MUL _mm256_mul_ps
#define FMV_ADD _mm256_add_ps
#define FMV_SUB _mm256_sub_ps
#define FMV_MAX _mm256_max_ps
#define FMS_FMA fmaf
#define FMV_LOADN fm_loadn_f32_avx2
#define FMV_STOREN fm_storen_f32_avx2
#include "gemm_template.h"

/* float64, AVX2: 6 x 8 tiles (two 4-double vectors per row); the same bytes per panel. */
#define FM_T double
#define FM_NAME(x) x##_f64_avx2
#define FM_TNAME(x) x##_f64
#define FM_TARGET FM_AVX2
#define FM_MR 6
#define FM_ROWS_UNROLL 0
#define FM_NR 8
#define FM_KC 256
#define FM_MC 72
#define FM_NC 256
#define FM_ROWS_VECS 8
#define FMV __m256d
#define FMV_ZERO _mm256_setzero_pd
#define FMV_LOAD _mm256_load_pd
#define FMV_LOADU _mm256_loadu_pd
#define FMV_STOREU _mm256_storeu_pd
#define FMV_SET1 _mm256_set1_pd
#define FMV_FMA _mm256_fmadd_pd
#define FMV_MUL _mm256_mul_pd
#define FMV_ADD _mm256_add_pd
#define FMV_SUB _mm256_sub_pd
#define FMV_MAX _mm256_max_pd
#define FMS_FMA fma
#define FMV_LOADN fm_loadn_f64_avx2
#define FMV_STOREN fm_storen_f64_avx2
#include "gemm_template.h"

/* float32, AVX-512: 8 x 32 tiles (two 16-float vectors per row: 16 of the 32 registers
 * accumulate). On a CPU with full-width 512-bit FMA pipes (Zen 5, Intel server cores) a
 * step does twice the AVX2 work; on Zen 4 (256-bit pipes) it halves the instructions.
 * Over a plain A (forward, dX, prediction), 12 x 32 tiles (24 accumulators) where the rows
 * allow (fm_tile_rows_plain), their K loop in assembly (gemm_asm.h): 94 % of the FMA peak
 * against 90 % for the 8 x 32 ones, on a 784-wide input. */
#define FM_T float
#define FM_NAME(x) x##_f32_avx512
#define FM_TNAME(x) x##_f32
#define FM_TARGET FM_AVX512
#define FM_MR 8
#define FM_ROWS_UNROLL 1
#define FM_ASM_ROWS12 fm_k12x32_rows_f32_avx512
#define FM_NR 32
#define FM_KC 256
#define FM_MC 144
#define FM_MC_PLAIN 96
#define FM_NC 512
#define FM_ROWS_VECS 16
#define FMV __m512
#define FMV_ZERO _mm512_setzero_ps
#define FMV_LOAD _mm512_load_ps
#define FMV_LOADU _mm512_loadu_ps
#define FMV_STOREU _mm512_storeu_ps
#define FMV_SET1 _mm512_set1_ps
#define FMV_FMA _mm512_fmadd_ps
#define FMV_MUL _mm512_mul_ps
#define FMV_ADD _mm512_add_ps
#define FMV_SUB _mm512_sub_ps
#define FMV_MAX _mm512_max_ps
#define FMS_FMA fmaf
#define FMV_LOADN fm_loadn_f32_avx512
#define FMV_STOREN fm_storen_f32_avx512
#include "gemm_template.h"

/* float64, AVX-512: 8 x 16 tiles (two 8-double vectors per row). */
#define FM_T double
#define FM_NAME(x) x##_f64_avx512
#define FM_TNAME(x) x##_f64
#define FM_TARGET FM_AVX512
#define FM_MR 8
#define FM_ROWS_UNROLL 1
#define FM_NR 16
#define FM_KC 256
#define FM_MC 72
#define FM_NC 256
#define FM_ROWS_VECS 16
#define FMV __m512d
#define FMV_ZERO _mm512_setzero_pd
#define FMV_LOAD _mm512_load_pd
#define FMV_LOADU _mm512_loadu_pd
#define FMV_STOREU _mm512_storeu_pd
#define FMV_SET1 _mm512_set1_pd
#define FMV_FMA _mm512_fmadd_pd
#define FMV_MUL _mm512_mul_pd
#define FMV_ADD _mm512_add_pd
#define FMV_SUB _mm512_sub_pd
#define FMV_MAX _mm512_max_pd
#define FMS_FMA fma
#define FMV_LOADN fm_loadn_f64_avx512
#define FMV_STOREN fm_storen_f64_avx512
#include "gemm_template.h"

/* --- the family in use ------------------------------------------------------------------ */
/* Chosen once at import (fm_gemm_set_isa(-1): the best this CPU runs, or the one the
 * environment variable FASTMLP_GEMM_ISA names: "avx2", "avx512"), changed only by tests
 * and benchmarks; read by every product. */
static int fm_gemm_isa = FM_ISA_NONE;

/* Use family `isa` (clamped to what this CPU runs; -1: the default); returns the one now
 * in use. */
static int fm_gemm_set_isa(int isa) {
    int best = fm_gemm_cpu_isa();
    if (isa < 0) {
        const char* env = getenv("FASTMLP_GEMM_ISA");
        isa = best;
        if (env && strcmp(env, "avx2") == 0) isa = FM_ISA_AVX2;
        else if (env && strcmp(env, "none") == 0) isa = FM_ISA_NONE;
    }
    if (isa > best) isa = best;
    __atomic_store_n(&fm_gemm_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

static int fm_gemm_get_isa(void) { return __atomic_load_n(&fm_gemm_isa, __ATOMIC_RELAXED); }

/* The register tile (rows, columns) of the family in use, for show_config; with `plain`,
 * the tile over a plain A (the 12 x 32 assembly tiles of AVX-512 float32, gemm_asm.h). */
static void fm_gemm_tile(int f64, int plain, int* mr, int* nr) {
    int isa = fm_gemm_get_isa(), wide = isa == FM_ISA_AVX512;
    if (isa == FM_ISA_NONE) {
        *mr = *nr = 0;
        return;
    }
    *mr = wide ? (plain && !f64 ? 12 : 8) : 6;
    *nr = (wide ? 32 : 16) / (f64 ? 2 : 1);
}

/* C[m, n] = alpha op(A) op(B) + beta C through the family in use (with AVX-512, products
 * narrower than its tile go to the AVX2 kernels: the same bits, less padding); -1 when
 * none runs here or the packing buffer could not be allocated (nothing written: the
 * caller uses BLAS). tile_epi: see fm_gemm_tile_epi (or NULL). */
static int fm_gemm_f32(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                       const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb,
                       float beta, float* c, ptrdiff_t ldc, int threads,
                       fm_gemm_epi_fn epi, void* epi_ctx,
                       const fm_gemm_tile_epi* tile_epi) {
    switch (fm_gemm_get_isa()) {
    case FM_ISA_AVX512:
        if (n < 32) /* narrower than one 8 x 32 tile: the 6 x 16 ones waste less */
            return fm_gemm_f32_avx2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                                    threads, epi, epi_ctx, tile_epi);
        return fm_gemm_f32_avx512(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads,
                                  epi, epi_ctx, tile_epi);
    case FM_ISA_AVX2:
        return fm_gemm_f32_avx2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads,
                                epi, epi_ctx, tile_epi);
    default:
        return -1;
    }
}

static int fm_gemm_f64(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                       const double* a, ptrdiff_t lda, const double* b, ptrdiff_t ldb,
                       double beta, double* c, ptrdiff_t ldc, int threads,
                       fm_gemm_epi_fn epi, void* epi_ctx,
                       const fm_gemm_tile_epi* tile_epi) {
    switch (fm_gemm_get_isa()) {
    case FM_ISA_AVX512:
        if (n < 16)
            return fm_gemm_f64_avx2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                                    threads, epi, epi_ctx, tile_epi);
        return fm_gemm_f64_avx512(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads,
                                  epi, epi_ctx, tile_epi);
    case FM_ISA_AVX2:
        return fm_gemm_f64_avx2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads,
                                epi, epi_ctx, tile_epi);
    default:
        return -1;
    }
}

#else  /* not x86-64 with GCC/clang: the callers use BLAS */

enum { FM_ISA_NONE = 0, FM_ISA_AVX2 = 1, FM_ISA_AVX512 = 2 };
static int fm_gemm_native(void) { return 0; }
static int fm_gemm_set_isa(int isa) { (void)isa; return FM_ISA_NONE; }
static int fm_gemm_get_isa(void) { return FM_ISA_NONE; }
static int fm_gemm_cpu_isa(void) { return FM_ISA_NONE; }
static void fm_gemm_tile(int f64, int plain, int* mr, int* nr) { (void)f64, (void)plain; *mr = *nr = 0; }
static int fm_gemm_f32(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                       const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb,
                       float beta, float* c, ptrdiff_t ldc, int threads,
                       fm_gemm_epi_fn epi, void* epi_ctx,
                       const fm_gemm_tile_epi* tile_epi) { return -1; }
static int fm_gemm_f64(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                       const double* a, ptrdiff_t lda, const double* b, ptrdiff_t ldb,
                       double beta, double* c, ptrdiff_t ldc, int threads,
                       fm_gemm_epi_fn epi, void* epi_ctx,
                       const fm_gemm_tile_epi* tile_epi) { return -1; }

#endif
#endif
