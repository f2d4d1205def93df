/* The machine's floating-point peak, measured: the bound no matrix product can beat.
 *
 * Each thread of the team runs FM_PEAK_CHAINS independent chains of vector FMAs,
 * a_i = a_i x + y, on registers only (no loads, no stores inside the loop), with the
 * widest vectors the GEMM kernels use (fm_gemm_get_isa). Twelve chains cover an FMA
 * latency of up to 6 cycles on two pipes (4-5 on the x86 cores we know), so the loop
 * runs at the FMA units' throughput:
 *
 *     GFLOP/s = threads x iterations x chains x 2 x lanes / seconds / 1e9
 *
 * float32 lanes (8 with AVX2, 16 with AVX-512); float64 has half as many, so its peak is
 * half. The benchmark reports each implementation's GFLOP/s against this peak: a peer
 * running at a fraction f of it cannot be beaten by more than 1/f by any code that does
 * the same products. Included by _blas.pyx after gemm.h. */
#ifndef FASTMLP_PEAK_H
#define FASTMLP_PEAK_H

#include "gemm.h"

#define FM_PEAK_CHAINS 12

typedef struct {
    long long iters;      /* per thread */
    int isa;              /* FM_ISA_AVX2 or FM_ISA_AVX512 */
    double* sink;         /* one slot a chunk: the chains' sum, so the loop is kept */
    double* start;        /* per chunk: clock when it began / ended (fm_clock_now) */
    double* end;
} fm_peak_job;

#ifdef FM_GEMM_X86
FM_AVX2 static double fm_peak_chains_avx2(long long iters) {
    const __m256 x = _mm256_set1_ps(0.9999999f), y = _mm256_set1_ps(1e-7f);
    __m256 a[FM_PEAK_CHAINS];
    for (int i = 0; i < FM_PEAK_CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (long long n = 0; n < iters; n++)
        for (int i = 0; i < FM_PEAK_CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
    __m256 s = a[0];
    for (int i = 1; i < FM_PEAK_CHAINS; i++) s = _mm256_add_ps(s, a[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    double sum = 0;
    for (int i = 0; i < 8; i++) sum += lanes[i];
    return sum;
}

FM_AVX512 static double fm_peak_chains_avx512(long long iters) {
    const __m512 x = _mm512_set1_ps(0.9999999f), y = _mm512_set1_ps(1e-7f);
    __m512 a[FM_PEAK_CHAINS];
    for (int i = 0; i < FM_PEAK_CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (long long n = 0; n < iters; n++)
        for (int i = 0; i < FM_PEAK_CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < FM_PEAK_CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    return (double)_mm512_reduce_add_ps(s);
}
#endif

/* float32 lanes of the family's vectors (0: no kernel, nothing to measure). */
static int fm_peak_lanes(int isa) {
    return isa == FM_ISA_AVX512 ? 16 : isa == FM_ISA_AVX2 ? 8 : 0;
}

static void fm_peak_chunk(void* arg, ptrdiff_t i, int slot) {
    fm_peak_job* j = (fm_peak_job*)arg;
    (void)slot;
    j->start[i] = fm_clock_now();
#ifdef FM_GEMM_X86
    j->sink[i] = j->isa == FM_ISA_AVX512 ? fm_peak_chains_avx512(j->iters)
                                          : fm_peak_chains_avx2(j->iters);
#else
    j->sink[i] = 0;
#endif
    j->end[i] = fm_clock_now();
}

#endif
