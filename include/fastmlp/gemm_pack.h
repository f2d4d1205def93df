/* Packing of GEMM operands into the micro-kernels' panel layouts (see gemm.h), shared by
 * the AVX2 and the AVX-512 kernels: written with AVX2 intrinsics, which every CPU that
 * runs either kernel has; the panel width nr is the kernel's NR. Included by gemm.h only. */
#ifndef FASTMLP_GEMM_PACK_H
#define FASTMLP_GEMM_PACK_H

/* Transposed-B micro-panels: dst[p nr + j] = src[j lds + p] for nr rows j of the source
 * (nr: the kernel's NR, a multiple of 8 floats / 4 doubles) and kc steps p, through 8x8
 * (float) / 4x4 (double) register transposes. */
FM_AVX2 static void fm_pack_bt_panel_f32(const float* src, ptrdiff_t lds, ptrdiff_t kc,
                                         float* restrict dst, const int nr) {
    ptrdiff_t p = 0;
    for (; p + 8 <= kc; p += 8)
        for (int h = 0; h < nr; h += 8) {
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
            float* d = dst + p * nr + h;
            _mm256_store_ps(d + 0 * nr, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(d + 1 * nr, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(d + 2 * nr, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(d + 3 * nr, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(d + 4 * nr, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(d + 5 * nr, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(d + 6 * nr, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(d + 7 * nr, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    for (; p < kc; p++)
        for (int j = 0; j < nr; j++) dst[p * nr + j] = src[j * lds + p];
}

FM_AVX2 static void fm_pack_bt_panel_f64(const double* src, ptrdiff_t lds, ptrdiff_t kc,
                                         double* restrict dst, const int nr) {
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4)
        for (int h = 0; h < nr; h += 4) {
            const double* s = src + h * lds + p;
            __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
            __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double* d = dst + p * nr + h;
            _mm256_store_pd(d + 0 * nr, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_store_pd(d + 1 * nr, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_store_pd(d + 2 * nr, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_store_pd(d + 3 * nr, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    for (; p < kc; p++)
        for (int j = 0; j < nr; j++) dst[p * nr + j] = src[j * lds + p];
}

/* op(A) row panels of h <= 8 rows (element (r, p) at dst[p h + r]): src is op(A)(0, 0),
 * row r at src + r lda (ta = 0) or step p at src + p lda (ta = 1). float32 goes through
 * 8x8 register transposes; each group of h values is written with a full 8-wide store
 * whose 8 - h extra lanes the next store overwrites (the very last one is masked, so
 * nothing past the panel is touched). */
FM_AVX2 static inline void fm_tr8x8_ps(__m256 r[8]) {
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

FM_AVX2 static void fm_pack_a_panel_f32(int ta, const float* src, ptrdiff_t lda,
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

FM_AVX2 static void fm_pack_a_panel_f64(int ta, const double* src, ptrdiff_t lda,
                                          ptrdiff_t h, ptrdiff_t kc, double* restrict dst) {
    for (ptrdiff_t p = 0; p < kc; p++)
        for (ptrdiff_t r = 0; r < h; r++) dst[p * h + r] = ta ? src[p * lda + r] : src[r * lda + p];
}

#endif
