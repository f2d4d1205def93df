/* Elementwise activations and their derivatives, float32 and float64.
 *
 * The kernels are written once in act_template.h and instantiated here for each type.
 * Codes are the fm_act enum below; Cython exposes it as fastmlp._activations.Act.
 *
 * Vectorization: the loops are `#pragma omp simd`, and exp is declared `omp declare simd`
 * so GCC (with -fopenmp or -fopenmp-simd, and -fno-math-errno) calls glibc's libmvec.
 * tanh is our own (fm_tanh_f64/f32 below, built on that exp), not libmvec's: libmvec's
 * tanh appeared in glibc 2.35 and would make every wheel need glibc >= 2.35
 * (manylinux_2_35); its exp is from glibc 2.22.
 */
#ifndef FASTMLP_ACTIVATIONS_H
#define FASTMLP_ACTIVATIONS_H

#include <math.h>
#include <stddef.h>

typedef enum fm_act {
    FM_IDENTITY = 0,
    FM_SIGMOID = 1,
    FM_TANH = 2,
    FM_RELU = 3,
    FM_LEAKY_RELU = 4,
    FM_ELU = 5,
    FM_SOFTPLUS = 6,
    FM_ARCTAN = 7,
    FM_HARD_TANH = 8,
    FM_STEP = 9,
    FM_SILU = 10,
    FM_GELU = 11,
    FM_N_ACT = 12
} fm_act;

/* The forward and backward kernels are compiled for AVX-512, AVX2 and the baseline
 * (target_clones; the loader picks the widest this CPU runs): a tanh layer of 64 x 1024
 * was the bound of its step with 4-wide SSE, where XLA's runs 16 wide. Each clone calls
 * the libmvec exp of its width. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) \
    && !defined(FASTMLP_NO_CLONES)
#define FM_ACT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_ACT_CLONES
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(FASTMLP_NO_LIBMVEC)
/* glibc's libmvec has SIMD variants of these; the declarations let GCC use them. */
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#endif

/* tanh from exp, written so that GCC vectorizes it (both branches computed, then selected):
 * |x| < 0.625: x + x z P(z)/Q(z), z = x^2 (Cephes tanh.c, tanhf.c: rational and polynomial
 * minimax fits); else sign(x) (1 - 2/(e^{2|x|} + 1)), which is 1 once e^{2|x|} overflows.
 * Measured against NumPy's tanh over a dense sweep (tests/test_tanh_accuracy.py): at most
 * 2 ulp in float64 and float32 with this machine's libmvec exp. */
static inline double fm_tanh_f64(double x) {
    double a = fabs(x), z = x * x;
    double p = (-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z
               - 1.61468768441708447952E3;
    double q = ((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z
               + 4.84406305325125486048E3;
    double small = x + x * z * p / q;
    double big = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    return a < 0.625 ? small : (x < 0 ? -big : big);
}

static inline float fm_tanh_f32(float x) {
    float a = fabsf(x), z = x * x;
    float p = (((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z
               + 1.33314422036E-1f) * z - 3.33332819422E-1f;
    float small = p * z * x + x;
    float big = 1.0f - 2.0f / (expf(2.0f * a) + 1.0f);
    return a < 0.625f ? small : (x < 0 ? -big : big);
}

#define FM_T double
#define FM_NAME(n) n##_f64
#define FMM_EXP exp
#define FMM_EXPM1 expm1
#define FMM_LOG1P log1p
#define FMM_TANH fm_tanh_f64
#define FMM_ATAN atan
#define FMM_ERF erf
#include "act_template.h"
#undef FM_T
#undef FM_NAME
#undef FMM_EXP
#undef FMM_EXPM1
#undef FMM_LOG1P
#undef FMM_TANH
#undef FMM_ATAN
#undef FMM_ERF

#define FM_T float
#define FM_NAME(n) n##_f32
#define FMM_EXP expf
#define FMM_EXPM1 expm1f
#define FMM_LOG1P log1pf
#define FMM_TANH fm_tanh_f32
#define FMM_ATAN atanf
#define FMM_ERF erff
#include "act_template.h"
#undef FM_T
#undef FM_NAME
#undef FMM_EXP
#undef FMM_EXPM1
#undef FMM_LOG1P
#undef FMM_TANH
#undef FMM_ATAN
#undef FMM_ERF

#endif
