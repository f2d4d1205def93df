/* Random affine augmentation of rows seen as images (ImageAugment), float and double.
 *
 * Row r of a batch is an (h, w, c) image, row-major (pixel (i, j), channel k at
 * (i w + j) c + k). Its transform is drawn from the counter-based RNG (rng.h) at elements
 * 5r .. 5r + 4 of (seed, stream, step): u0..u4 uniform in [0, 1) give
 *   rotation  theta = (2 u0 - 1) max_rotation        (radians)
 *   scale     s     = 1 + (2 u1 - 1) max_scale
 *   shift     tx    = (2 u2 - 1) max_shift, ty = (2 u3 - 1) max_shift   (pixels)
 *   flip      left-right when flip != 0 and u4 < 0.5.
 * Output pixel (i, j) samples the input at the inverse map of its centred coordinates
 * (cx = (w - 1) / 2, cy = (h - 1) / 2; dx = j - cx - tx, dy = i - cy - ty):
 *   sx = (cos theta dx + sin theta dy) / s + cx,  sy = (-sin theta dx + cos theta dy) / s + cy,
 *   sx = (w - 1) - sx when flipped,
 * bilinearly, with zeros outside the image. Arithmetic in double; the result is the same
 * whatever the thread count (a pure function of the key, the row and the pixel).
 * fm_augment_backward is the exact adjoint (transpose of the resampling): it scatters each
 * output gradient onto the four source pixels, into dX zeroed first. */
#ifndef FASTMLP_AUGMENT_H
#define FASTMLP_AUGMENT_H

#include <math.h>
#include <string.h>
#include "fastmlp/rng.h"

typedef struct {
    long h, w, c;
    double max_shift, max_rotation, max_scale;
    int flip;
} fm_augment_spec;

/* The inverse map of row r: coefficients of sx = a0 + a1 j + a2 i, sy = b0 + b1 j + b2 i. */
static inline void fm_augment_map(const fm_augment_spec* a, uint64_t seed, uint32_t stream,
                                  uint64_t step, long r, double m[6]) {
    double u[5];
    for (int k = 0; k < 5; k++) u[k] = fm_uniform(seed, stream, step, (uint64_t)(5 * r + k));
    double th = (2 * u[0] - 1) * a->max_rotation, s = 1 + (2 * u[1] - 1) * a->max_scale;
    double tx = (2 * u[2] - 1) * a->max_shift, ty = (2 * u[3] - 1) * a->max_shift;
    double cx = (a->w - 1) * 0.5, cy = (a->h - 1) * 0.5, ct = cos(th) / s, st = sin(th) / s;
    double ox = -cx - tx, oy = -cy - ty;                 /* dx = j + ox, dy = i + oy */
    m[0] = ct * ox + st * oy + cx; m[1] = ct; m[2] = st;
    m[3] = -st * ox + ct * oy + cy; m[4] = -st; m[5] = ct;
    if (a->flip && u[4] < 0.5) {                          /* sx -> (w - 1) - sx */
        m[0] = (a->w - 1) - m[0]; m[1] = -m[1]; m[2] = -m[2];
    }
}

#define FM_AUGMENT_DEFINE(T, SUFFIX)                                                        \
static inline void fm_augment_row_##SUFFIX(const fm_augment_spec* a, const double m[6],       \
                                           const T* X, T* A, T* dX, const T* dA) {          \
    long h = a->h, w = a->w, c = a->c;                                                       \
    for (long i = 0; i < h; i++) {                                                           \
        for (long j = 0; j < w; j++) {                                                       \
            double sx = m[0] + m[1] * j + m[2] * i, sy = m[3] + m[4] * j + m[5] * i;         \
            double fx0 = floor(sx), fy0 = floor(sy), fx = sx - fx0, fy = sy - fy0;           \
            long x0 = (long)fx0, y0 = (long)fy0;                                             \
            double wt[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};     \
            long xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};        \
            for (long k = 0; k < c; k++) {                                                   \
                long o = (i * w + j) * c + k;                                                \
                double acc = 0;                                                              \
                for (int q = 0; q < 4; q++) {                                                \
                    if (xs[q] < 0 || xs[q] >= w || ys[q] < 0 || ys[q] >= h) continue;        \
                    long src = (ys[q] * w + xs[q]) * c + k;                                  \
                    if (A) acc += wt[q] * X[src];                                            \
                    else dX[src] = (T)(dX[src] + wt[q] * dA[o]);                             \
                }                                                                            \
                if (A) A[o] = (T)acc;                                                        \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
/* A (B rows) = the augmented X, row by row; row r keyed as row0 + r (the global row). */                                             \
static inline void fm_augment_forward_##SUFFIX(const fm_augment_spec* a, const T* X, T* A,  \
                                               long B, uint64_t seed, uint32_t stream,      \
                                               uint64_t step, uint64_t row0) {               \
    long n = a->h * a->w * a->c;                                                             \
    double m[6];                                                                             \
    for (long r = 0; r < B; r++) {                                                           \
        fm_augment_map(a, seed, stream, step, row0 + r, m);                                  \
        fm_augment_row_##SUFFIX(a, m, X + r * n, A + r * n, NULL, NULL);                     \
    }                                                                                        \
}                                                                                            \
/* dX (B rows) = the adjoint of the resampling applied to dA. */                            \
static inline void fm_augment_backward_##SUFFIX(const fm_augment_spec* a, const T* dA,      \
                                                T* dX, long B, uint64_t seed,               \
                                                uint32_t stream, uint64_t step,             \
                                                uint64_t row0) {                             \
    long n = a->h * a->w * a->c;                                                             \
    double m[6];                                                                             \
    memset(dX, 0, (size_t)(B * n) * sizeof(T));                                              \
    for (long r = 0; r < B; r++) {                                                           \
        fm_augment_map(a, seed, stream, step, row0 + r, m);                                  \
        fm_augment_row_##SUFFIX(a, m, NULL, NULL, dX + r * n, dA + r * n);                   \
    }                                                                                        \
}

FM_AUGMENT_DEFINE(float, f)
FM_AUGMENT_DEFINE(double, d)
#undef FM_AUGMENT_DEFINE

#endif
