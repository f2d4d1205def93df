/* Part of gemm_template.h (included by it once per (type, ISA), with its macros): the
 * products of thin shapes that the register tiles would waste, products with one column
 * (fm_gemv) and products of 1-2 rows on several threads (fm_gemm_rows_k). No include
 * guard, as gemm_template.h. */

/* --- one column: C[m, 1] = alpha op(A) b + beta C (a matrix-vector product) -------------
 * The tiles above would compute NR columns for the one kept. Here each element of C is
 * still summed per K block from 0 by FMAs in order and added to C as in fm_tile, so the
 * result is the one every other path gives; only the work is laid out along M. */

/* Add one K block's sums acc (VL consecutive rows of C, ldc apart) to C as fm_tile does. */
FM_TARGET static inline __attribute__((always_inline)) void FM_NAME(fm_gemv_put)(
        FMV acc, FM_T* C, ptrdiff_t ldc, FM_T alpha, FM_T bet) {
    if (ldc == 1) {
        FM_NAME(fm_put)(C, acc, alpha, bet, FM_VL);
        return;
    }
    FM_T t[FM_VL] __attribute__((aligned(64)));
    FMV_STOREU(t, acc);
    for (int l = 0; l < FM_VL; l++) {
        FM_T x = alpha * t[l];
        C[l * ldc] = bet != 0 ? FMS_FMA(bet, C[l * ldc], x) : x;
    }
}

/* Rows [s, e) of C for a transposed A (op(A)[i, p] = A[p lda + i]: each column of op(A)
 * is contiguous, so VL rows of C take one vector FMA per step). b[p sb] = op(B)[p, 0]. */
FM_TARGET static void FM_NAME(fm_gemv_t)(ptrdiff_t s, ptrdiff_t e, ptrdiff_t k, FM_T alpha,
                                         const FM_T* A, ptrdiff_t lda, const FM_T* b,
                                         ptrdiff_t sb, FM_T beta, FM_T* C, ptrdiff_t ldc) {
    const ptrdiff_t kcb = FM_NAME(fm_k_block)(k);
    ptrdiff_t i = s;
    for (; i + 4 * FM_VL <= e; i += 4 * FM_VL)    /* four vectors: four FMA chains */
        for (ptrdiff_t pc = 0; pc < k; pc += kcb) {
            ptrdiff_t pe = k - pc < kcb ? k : pc + kcb;
            FM_T bet = pc == 0 ? beta : (FM_T)1;
            FMV c0 = FMV_ZERO(), c1 = FMV_ZERO(), c2 = FMV_ZERO(), c3 = FMV_ZERO();
            for (ptrdiff_t p = pc; p < pe; p++) {
                const FM_T* a = A + p * lda + i;
                FMV x = FMV_SET1(b[p * sb]);
                c0 = FMV_FMA(FMV_LOADU(a), x, c0);
                c1 = FMV_FMA(FMV_LOADU(a + FM_VL), x, c1);
                c2 = FMV_FMA(FMV_LOADU(a + 2 * FM_VL), x, c2);
                c3 = FMV_FMA(FMV_LOADU(a + 3 * FM_VL), x, c3);
            }
            FM_NAME(fm_gemv_put)(c0, C + i * ldc, ldc, alpha, bet);
            FM_NAME(fm_gemv_put)(c1, C + (i + FM_VL) * ldc, ldc, alpha, bet);
            FM_NAME(fm_gemv_put)(c2, C + (i + 2 * FM_VL) * ldc, ldc, alpha, bet);
            FM_NAME(fm_gemv_put)(c3, C + (i + 3 * FM_VL) * ldc, ldc, alpha, bet);
        }
    for (; i + FM_VL <= e; i += FM_VL)
        for (ptrdiff_t pc = 0; pc < k; pc += kcb) {
            ptrdiff_t pe = k - pc < kcb ? k : pc + kcb;
            FMV c0 = FMV_ZERO();
            for (ptrdiff_t p = pc; p < pe; p++)
                c0 = FMV_FMA(FMV_LOADU(A + p * lda + i), FMV_SET1(b[p * sb]), c0);
            FM_NAME(fm_gemv_put)(c0, C + i * ldc, ldc, alpha, pc == 0 ? beta : (FM_T)1);
        }
    for (; i < e; i++)
        for (ptrdiff_t pc = 0; pc < k; pc += kcb) {
            ptrdiff_t pe = k - pc < kcb ? k : pc + kcb;
            FM_T acc = 0, bet = pc == 0 ? beta : (FM_T)1;
            for (ptrdiff_t p = pc; p < pe; p++) acc = FMS_FMA(A[p * lda + i], b[p * sb], acc);
            FM_T x = alpha * acc;
            C[i * ldc] = bet != 0 ? FMS_FMA(bet, C[i * ldc], x) : x;
        }
}

/* Rows [s, e) of C for a plain A (op(A)[i, p] = A[i lda + p]): a row's steps are one
 * dependent chain, so eight rows run side by side (eight chains hide the FMA latency). */
FM_TARGET static void FM_NAME(fm_gemv_n)(ptrdiff_t s, ptrdiff_t e, ptrdiff_t k, FM_T alpha,
                                         const FM_T* A, ptrdiff_t lda, const FM_T* b,
                                         ptrdiff_t sb, FM_T beta, FM_T* C, ptrdiff_t ldc) {
    const ptrdiff_t kcb = FM_NAME(fm_k_block)(k);
    for (ptrdiff_t i = s; i < e; i += 8) {
        const int rows = e - i < 8 ? (int)(e - i) : 8;
        const FM_T* a = A + i * lda;
        for (ptrdiff_t pc = 0; pc < k; pc += kcb) {
            ptrdiff_t pe = k - pc < kcb ? k : pc + kcb;
            FM_T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, bet = pc == 0 ? beta : (FM_T)1;
            if (rows == 8)
                for (ptrdiff_t p = pc; p < pe; p++) {
                    FM_T x = b[p * sb];
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) acc[r] = FMS_FMA(a[r * lda + p], x, acc[r]);
                }
            else
                for (ptrdiff_t p = pc; p < pe; p++)
                    for (int r = 0; r < rows; r++)
                        acc[r] = FMS_FMA(a[r * lda + p], b[p * sb], acc[r]);
            for (int r = 0; r < rows; r++) {
                FM_T x = alpha * acc[r], *c = C + (i + r) * ldc;
                *c = bet != 0 ? FMS_FMA(bet, *c, x) : x;
            }
        }
    }
}

typedef struct {
    int ta;
    ptrdiff_t m, k, lda, sb, ldc, chunk;
    FM_T alpha, beta;
    const FM_T* A;
    const FM_T* b;
    FM_T* C;
    fm_gemm_epi_fn epi;    /* run on each finished chunk of rows (or NULL) */
    void* epi_ctx;
} FM_NAME(fm_gemv_job);

static void FM_NAME(fm_gemv_chunk)(void* arg, ptrdiff_t i, int slot) {
    const FM_NAME(fm_gemv_job)* j = (const FM_NAME(fm_gemv_job)*)arg;
    ptrdiff_t s = i * j->chunk, e = s + j->chunk < j->m ? s + j->chunk : j->m;
    (void)slot;
    if (s >= e) return;
    if (j->ta)
        FM_NAME(fm_gemv_t)(s, e, j->k, j->alpha, j->A, j->lda, j->b, j->sb, j->beta, j->C,
                           j->ldc);
    else
        FM_NAME(fm_gemv_n)(s, e, j->k, j->alpha, j->A, j->lda, j->b, j->sb, j->beta, j->C,
                           j->ldc);
    if (j->epi) j->epi(j->epi_ctx, s, e - s, 0, 1);
}

/* fm_gemm for n == 1: the rows in one chunk a thread (whole vectors of rows). */
static void FM_NAME(fm_gemv)(int ta, int tb, ptrdiff_t m, ptrdiff_t k, FM_T alpha,
                             const FM_T* A, ptrdiff_t lda, const FM_T* B, ptrdiff_t ldb,
                             FM_T beta, FM_T* C, ptrdiff_t ldc, int threads,
                             fm_gemm_epi_fn epi, void* epi_ctx) {
    FM_NAME(fm_gemv_job) job = {ta, m, k, lda, tb ? 1 : ldb, ldc, m, alpha, beta, A, B, C,
                                epi, epi_ctx};
    const ptrdiff_t unit = 4 * FM_VL, units = (m + unit - 1) / unit;
    int t = fm_gemm_plan_threads(m, 1, k, threads);
    if (t > units) t = (int)units;
    job.chunk = (units + t - 1) / t * unit;
    fm_pool_run(t, (m + job.chunk - 1) / job.chunk, FM_NAME(fm_gemv_chunk), &job);
}

/* --- 1-2 rows on several threads: split along K ------------------------------------------
 * A prediction's product reads all of B once. Cut into strips of columns, each thread reads
 * a part of every row of B, and the hardware prefetchers bring the neighbouring parts too:
 * two threads each pulled most of the MNIST model's 2.1 MB through their 2 MB L2 and it
 * did not stay (measured, 784-512-256 one row: 16 us a thread for its strips alone).
 * Cut along K, each thread reads whole consecutive rows of B, its own 1.07 MB, which stays
 * in its L2 from call to call (10-11 us). Each thread owns a run of whole K blocks and
 * leaves each block's sums in its own buffer; the caller then adds the blocks to C in
 * order exactly as fm_gemm_rows does, so the result is the same bits. */
typedef struct {
    ptrdiff_t m, n, k, kcb, blocks, rs_a, cs_a, ldb;
    int parts;              /* runs of blocks (one a thread) */
    const FM_T* A;
    const FM_T* B;
    FM_T* sums;             /* blocks x m x n: block b's sums at sums + b m n */
} FM_NAME(fm_rows_k_job);

static void FM_NAME(fm_rows_k_chunk)(void* arg, ptrdiff_t i, int slot) {
    (void)slot;
    const FM_NAME(fm_rows_k_job)* j = (const FM_NAME(fm_rows_k_job)*)arg;
    for (ptrdiff_t b = i * j->blocks / j->parts; b < (i + 1) * j->blocks / j->parts; b++) {
        ptrdiff_t pc = b * j->kcb, kc = j->k - pc < j->kcb ? j->k - pc : j->kcb;
        FM_NAME(fm_gemm_rows)(j->m, j->n, kc, (FM_T)1, j->A + pc * j->cs_a, j->rs_a, j->cs_a,
                              j->B + pc * j->ldb, j->ldb, (FM_T)0, j->sums + b * j->m * j->n,
                              j->n);
    }
}

/* C = alpha (sum of the blocks' sums) + beta C, block by block as fm_gemm_rows adds them. */
FM_TARGET static void FM_NAME(fm_rows_k_add)(const FM_NAME(fm_rows_k_job)* j, FM_T alpha,
                                             FM_T beta, FM_T* C, ptrdiff_t ldc) {
    const ptrdiff_t nv = j->n / FM_VL * FM_VL;
    for (ptrdiff_t b = 0; b < j->blocks; b++) {
        FM_T bet = b == 0 ? beta : (FM_T)1;
        for (ptrdiff_t r = 0; r < j->m; r++) {
            const FM_T* t = j->sums + (b * j->m + r) * j->n;
            FM_T* c = C + r * ldc;
            for (ptrdiff_t q = 0; q < nv; q += FM_VL)
                FM_NAME(fm_put)(c + q, FMV_LOADU(t + q), alpha, bet, FM_VL);
            if (nv < j->n)
                FM_NAME(fm_put)(c + nv, FMV_LOADN(t + nv, j->n - nv), alpha, bet, j->n - nv);
        }
    }
}

/* fm_gemm for m <= FM_ROWS_MAX, a plain B, t >= 2 threads and k over >= 2 K blocks;
 * -1 when the buffer could not be allocated (nothing written). */
static int FM_NAME(fm_gemm_rows_k)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FM_T alpha,
                                   const FM_T* A, ptrdiff_t rs_a, ptrdiff_t cs_a,
                                   const FM_T* B, ptrdiff_t ldb, FM_T beta, FM_T* C,
                                   ptrdiff_t ldc, int t, fm_gemm_epi_fn epi, void* epi_ctx) {
    FM_NAME(fm_rows_k_job) job;
    job.m = m, job.n = n, job.k = k, job.kcb = FM_NAME(fm_k_block)(k);
    job.blocks = (k + job.kcb - 1) / job.kcb;
    job.parts = t < job.blocks ? t : (int)job.blocks;
    job.rs_a = rs_a, job.cs_a = cs_a, job.ldb = ldb, job.A = A, job.B = B;
    job.sums = (FM_T*)fm_gemm_buffer((size_t)job.blocks * m * n * sizeof(FM_T));
    if (!job.sums) return -1;
    fm_pool_run(job.parts, job.parts, FM_NAME(fm_rows_k_chunk), &job);
    FM_NAME(fm_rows_k_add)(&job, alpha, beta, C, ldc);
    if (epi) epi(epi_ctx, 0, m, 0, n);
    return 0;
}
