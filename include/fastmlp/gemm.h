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
 *           for ir in MC by MR:   micro-kernel: an MR x NR tile of C in 12 ymm registers
 *
 * Shortcuts for MLP shapes: an A of at most FM_A_DIRECT_MAX rows (the batch side) is read
 * in place by the micro-kernel; a product of at most MR rows reads B in place; one of at
 * most FM_ROWS_MAX rows (a prediction) streams B row by row instead (fm_gemm_rows). Every
 * path accumulates each element of C in the same order (K in the same blocks, each block
 * summed from 0 by FMAs in order, then added to C the same way), so a path or thread
 * count never changes a result. Packed panels are zero-padded to whole tiles; edge tiles
 * are computed in full and only their valid part is stored. beta == 0 never reads C.
 *
 * Threads: fm_gemm_* splits the larger of M and N into contiguous ranges, one per OpenMP
 * thread, each an independent serial GEMM with its own packing buffer (no barriers). The
 * number of threads is min(requested, work / FM_GEMM_MIN_WORK): small products stay on
 * the calling thread. The buffers belong to the calling thread (grown as needed, freed by
 * a pthread key destructor when the thread ends).
 *
 * The kernels use AVX2 + FMA through function attributes, so the module itself is built
 * for the baseline ISA; fm_gemm_native() says whether this CPU can run them (callers fall
 * back to BLAS otherwise, and on other architectures).
 */
#ifndef FASTMLP_GEMM_H
#define FASTMLP_GEMM_H

#include <math.h>
#include <stddef.h>
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

/* Products of at most this many rows with a non-transposed B stream B row by row
 * (fm_gemm_rows) instead of tiling it: they are bound by reading B. */
#ifndef FM_ROWS_MAX
#define FM_ROWS_MAX 2
#endif

/* Rows of op(A) up to which the micro-kernel reads a non-transposed A in place instead of
 * packing it (measured on Zen 3: as fast or faster for the batch side of MLP products up
 * to 1024 rows; packing wins back on larger ones). A transposed A (Xᵀ in dW = Xᵀ dZ) is
 * read in place only up to MC rows: beyond, its row stride costs a TLB miss per step. */
#ifndef FM_A_DIRECT_MAX
#define FM_A_DIRECT_MAX 1024
#endif

/* Work below which a product stays on one thread (~15 us of work per thread), counted in
 * multiply-adds plus 16 per element of B: a product of a few rows is bound by reading B. */
#define FM_GEMM_MIN_WORK (1 << 19)
#define FM_GEMM_MAX_THREADS 64

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

#define FM_TARGET __attribute__((target("avx2,fma")))

static int fm_gemm_native(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

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

/* Transposed-B micro-panels: dst[p NR + j] = src[j lds + p] for NR rows j of the source
 * and kc steps p, through 8x8 (float) / 4x4 (double) register transposes. */
FM_TARGET static void fm_pack_bt_panel_f32(const float* src, ptrdiff_t lds, ptrdiff_t kc,
                                           float* restrict dst) {
    ptrdiff_t p = 0;
    for (; p + 8 <= kc; p += 8)
        for (int h = 0; h < 16; h += 8) {
            const float* s = src + h * lds + p;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
            __m256 r2 = _mm256_loadu_ps(s + 2 * lds), r3 = _mm256_loadu_ps(s + 3 * lds);
            __m256 r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds);
            __m256 r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float* d = dst + p * 16 + h;
            _mm256_store_ps(d + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(d + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(d + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(d + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(d + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(d + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(d + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(d + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    for (; p < kc; p++)
        for (int j = 0; j < 16; j++) dst[p * 16 + j] = src[j * lds + p];
}

FM_TARGET static void fm_pack_bt_panel_f64(const double* src, ptrdiff_t lds, ptrdiff_t kc,
                                           double* restrict dst) {
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4)
        for (int h = 0; h < 8; h += 4) {
            const double* s = src + h * lds + p;
            __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
            __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double* d = dst + p * 8 + h;
            _mm256_store_pd(d + 0 * 8, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_store_pd(d + 1 * 8, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_store_pd(d + 2 * 8, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_store_pd(d + 3 * 8, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    for (; p < kc; p++)
        for (int j = 0; j < 8; j++) dst[p * 8 + j] = src[j * lds + p];
}

/* op(A) row panels of h <= 6 rows (element (r, p) at dst[p h + r]): src is op(A)(0, 0),
 * row r at src + r lda (ta = 0) or step p at src + p lda (ta = 1). float32 goes through
 * 8x8 register transposes; each group of h values is written with a full 8-wide store
 * whose 8 - h extra lanes the next store overwrites (the very last one is masked, so
 * nothing past the panel is touched). */
FM_TARGET static inline void fm_tr8x8_ps(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

FM_TARGET static void fm_pack_a_panel_f32(int ta, const float* src, ptrdiff_t lda,
                                          ptrdiff_t h, ptrdiff_t kc, float* restrict dst) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)h),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    ptrdiff_t p = 0;
    if (ta) {
        for (; p + 1 < kc; p++) _mm256_storeu_ps(dst + p * h, _mm256_maskload_ps(src + p * lda, mask));
        _mm256_maskstore_ps(dst + p * h, mask, _mm256_maskload_ps(src + p * lda, mask));
        return;
    }
    for (; p + 8 <= kc; p += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; q++)
            r[q] = q < h ? _mm256_loadu_ps(src + q * lda + p) : _mm256_setzero_ps();
        fm_tr8x8_ps(r);
        for (int q = 0; q < 8; q++) {
            if (p + q + 1 < kc)
                _mm256_storeu_ps(dst + (p + q) * h, r[q]);
            else
                _mm256_maskstore_ps(dst + (p + q) * h, mask, r[q]);
        }
    }
    for (; p < kc; p++)
        for (ptrdiff_t r = 0; r < h; r++) dst[p * h + r] = src[r * lda + p];
}

FM_TARGET static void fm_pack_a_panel_f64(int ta, const double* src, ptrdiff_t lda,
                                          ptrdiff_t h, ptrdiff_t kc, double* restrict dst) {
    for (ptrdiff_t p = 0; p < kc; p++)
        for (ptrdiff_t r = 0; r < h; r++) dst[p * h + r] = ta ? src[p * lda + r] : src[r * lda + p];
}

/* float32: 6 x 16 tiles (two 8-float vectors per row). */
#define FM_T float
#define FM_NAME(x) x##_f32
#define FM_MR 6
#define FM_NR 16
#define FM_KC 256
#define FM_MC 144
#define FM_NC 512
#define FMV __m256
#define FMV_ZERO _mm256_setzero_ps
#define FMV_LOAD _mm256_load_ps
#define FMV_LOADU _mm256_loadu_ps
#define FMV_STOREU _mm256_storeu_ps
#define FMV_SET1 _mm256_set1_ps
#define FMV_FMA _mm256_fmadd_ps
#define FMV_MUL _mm256_mul_ps
#define FMS_FMA fmaf
#include "gemm_template.h"

/* float64: 6 x 8 tiles (two 4-double vectors per row); the same bytes per panel. */
#define FM_T double
#define FM_NAME(x) x##_f64
#define FM_MR 6
#define FM_NR 8
#define FM_KC 256
#define FM_MC 72
#define FM_NC 256
#define FMV __m256d
#define FMV_ZERO _mm256_setzero_pd
#define FMV_LOAD _mm256_load_pd
#define FMV_LOADU _mm256_loadu_pd
#define FMV_STOREU _mm256_storeu_pd
#define FMV_SET1 _mm256_set1_pd
#define FMV_FMA _mm256_fmadd_pd
#define FMV_MUL _mm256_mul_pd
#define FMS_FMA fma
#include "gemm_template.h"

#else  /* not x86-64 with GCC/clang: the callers use BLAS */

static int fm_gemm_native(void) { return 0; }
static int fm_gemm_f32(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                       const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb,
                       float beta, float* c, ptrdiff_t ldc, int threads) { return -1; }
static int fm_gemm_f64(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                       const double* a, ptrdiff_t lda, const double* b, ptrdiff_t ldb,
                       double beta, double* c, ptrdiff_t ldc, int threads) { return -1; }

#endif
#endif
