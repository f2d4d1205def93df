/* Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011).
 *
 * A draw is a pure function of (key, counter): fm_uniform(seed, stream, step, i) gives the
 * same value for element i of layer `stream` at training step `step` whatever the thread
 * count or the order the elements are visited in. That is what makes dropout masks
 * reproducible for a seed and recomputable in backward instead of stored.
 */
#ifndef FASTMLP_RNG_H
#define FASTMLP_RNG_H

#include <stdint.h>
#include <math.h>

#define FM_PHILOX_M0 0xD2511F53u
#define FM_PHILOX_M1 0xCD9E8D57u
#define FM_PHILOX_W0 0x9E3779B9u
#define FM_PHILOX_W1 0xBB67AE85u

static inline uint32_t fm_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox-4x32-10 on counter c with key k; writes 4 random 32-bit words to out. */
static inline void fm_philox4x32(const uint32_t c_in[4], const uint32_t k_in[2],
                                 uint32_t out[4]) {
    uint32_t c0 = c_in[0], c1 = c_in[1], c2 = c_in[2], c3 = c_in[3];
    uint32_t k0 = k_in[0], k1 = k_in[1];
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = fm_mulhilo(FM_PHILOX_M0, c0, &hi0);
        uint32_t lo1 = fm_mulhilo(FM_PHILOX_M1, c2, &hi1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += FM_PHILOX_W0;
        k1 += FM_PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Four words for block `block` (= element / 4) of (seed, stream, step). */
static inline void fm_random_block(uint64_t seed, uint32_t stream, uint64_t step,
                                   uint64_t block, uint32_t out[4]) {
    uint32_t c[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)step,
                     ((uint32_t)(step >> 32) & 0xFFFFu) | (stream << 16)};
    uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    fm_philox4x32(c, k, out);
}

/* Uniform in [0, 1) with 32 random bits, for element i. */
static inline double fm_uniform(uint64_t seed, uint32_t stream, uint64_t step, uint64_t i) {
    uint32_t w[4];
    fm_random_block(seed, stream, step, i >> 2, w);
    return w[i & 3] * 2.3283064365386963e-10;   /* 2^-32 */
}

/* Standard normal for element i (Box-Muller on the block's words 0,1 or 2,3). */
static inline double fm_normal(uint64_t seed, uint32_t stream, uint64_t step, uint64_t i) {
    uint32_t w[4];
    fm_random_block(seed, stream, step, i >> 1, w);
    int j = (int)(i & 1) * 2;
    double u1 = (w[j] + 1.0) * 2.3283064365386963e-10;      /* (0, 1] */
    double u2 = w[j + 1] * 2.3283064365386963e-10;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
