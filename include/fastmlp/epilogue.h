/* Epilogues of the dense layer's products (gemm.h's fm_gemm_epi_fn): elementwise passes
 * run by each chunk of a product on the block it has just written, while that block is
 * in its core's cache, instead of one more pass over the whole output on one thread.
 *
 *   fm_act_epi_*     forward:  Z[block] += b, A[block] = act(Z[block])
 *   fm_finite_epi_*  backward: flags a non-finite value in the block of dW just written
 *
 * The forward epilogue only serves activations whose value does not depend on how a row
 * is cut into blocks (fm_act_exact: no exp or log, whose vector and scalar versions may
 * round differently at a block's edge): the fused forward then equals the separate pass
 * bit for bit, on every thread count. The others keep the separate pass.
 */
#ifndef FASTMLP_EPILOGUE_H
#define FASTMLP_EPILOGUE_H

#include <stddef.h>
#include "activations.h"

/* The forward epilogue's operands: Z and A of row stride ld (A may be Z), bias or NULL. */
typedef struct {
    int act;
    double alpha;
    const void* bias;
    void* z;
    void* a;
    ptrdiff_t ld;
} fm_act_epi;

/* 1 when act's forward is computed without exp/log (the same bits however a row is cut). */
static int fm_act_exact(int act) {
    return act == FM_IDENTITY || act == FM_RELU || act == FM_LEAKY_RELU || act == FM_HARD_TANH
           || act == FM_STEP;
}

static void fm_act_epi_f32(void* ctx, ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t c0,
                           ptrdiff_t cols) {
    const fm_act_epi* e = (const fm_act_epi*)ctx;
    const float* b = (const float*)e->bias;
    fm_act_forward_ld_f32(e->act, (float)e->alpha, (float*)e->z + r0 * e->ld + c0,
                          b ? b + c0 : NULL, (float*)e->a + r0 * e->ld + c0, rows, cols, e->ld);
}

static void fm_act_epi_f64(void* ctx, ptrdiff_t r0, ptrdiff_t rows, ptrdiff_t c0,
                           ptrdiff_t cols) {
    const fm_act_epi* e = (const fm_act_epi*)ctx;
    const double* b = (const double*)e->bias;
    fm_act_forward_ld_f64(e->act, e->alpha, (double*)e->z + r0 * e->ld + c0,
                          b ? b + c0 : NULL, (double*)e->a + r0 * e->ld + c0, rows, cols, e->ld);
}

/* The finiteness epilogue's operands: C of row stride ld, and the flag it sets. */
typedef struct {
    const void* c;
    ptrdiff_t ld;
    int* bad;
} fm_finite_epi;

/* x - x is 0 exactly for a finite x and NaN otherwise; the sums (in any order) stay 0 or
 * become NaN. They are kept in FM_FINITE_LANES lanes across the rows of the block (one or
 * two vector registers): a reduction per row would cost a horizontal sum per 32 values. */
#define FM_FINITE_LANES 16
#define FM_FINITE_EPI(T, SUFFIX)                                                             \
    FM_ACT_CLONES static void fm_finite_epi_##SUFFIX(void* ctx, ptrdiff_t r0, ptrdiff_t rows, \
                                                     ptrdiff_t c0, ptrdiff_t cols) {         \
        const fm_finite_epi* e = (const fm_finite_epi*)ctx;                                  \
        T lane[FM_FINITE_LANES] = {0}, acc = 0;                                              \
        if (cols == e->ld && c0 == 0) /* whole rows: one run (a 16 x 4 dW, not 16 tails) */  \
            cols *= rows, rows = 1;                                                          \
        ptrdiff_t full = cols / FM_FINITE_LANES * FM_FINITE_LANES;                           \
        for (ptrdiff_t i = r0; i < r0 + rows; i++) {                                         \
            const T* x = (const T*)e->c + i * e->ld + c0;                                    \
            for (ptrdiff_t j = 0; j < full; j += FM_FINITE_LANES)                            \
                for (int u = 0; u < FM_FINITE_LANES; u++) lane[u] += x[j + u] - x[j + u];    \
            for (ptrdiff_t j = full; j < cols; j++) acc += x[j] - x[j];                      \
        }                                                                                    \
        for (int u = 0; u < FM_FINITE_LANES; u++) acc += lane[u];                            \
        if (acc != 0) __atomic_store_n(e->bad, 1, __ATOMIC_RELAXED);                         \
    }
FM_FINITE_EPI(float, f32)
FM_FINITE_EPI(double, f64)
#undef FM_FINITE_EPI
#undef FM_FINITE_LANES

/* The bias gradient: db[j] = (fresh ? 0 : db[j]) + dZ[0, j] + dZ[1, j] + ... over `rows` rows
 * of `cols` values, each column summed in row order (vectorized along the columns, so
 * the order, and the result, is the scalar loop's). */
#define FM_COL_SUM(T, SFX)                                                                    \
    FM_ACT_CLONES static void fm_col_sum_##SFX(T* restrict db, const T* restrict dz,          \
                                               ptrdiff_t rows, ptrdiff_t cols, int fresh) {   \
        if (fresh)                                                                            \
            for (ptrdiff_t j = 0; j < cols; j++) db[j] = 0;                                   \
        for (ptrdiff_t i = 0; i < rows; i++)                                                  \
            for (ptrdiff_t j = 0; j < cols; j++) db[j] += dz[i * cols + j];                   \
    }
FM_COL_SUM(float, f32)
FM_COL_SUM(double, f64)
#undef FM_COL_SUM

#endif
