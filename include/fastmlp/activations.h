/* Elementwise activations and their derivatives, float32 and float64.
 *
 * The kernels are written once in act_template.h and instantiated here for each type.
 * Codes are the fm_act enum below; Cython exposes it as fastmlp._activations.Act.
 *
 * Vectorization: the loops are `#pragma omp simd`, and exp/tanh/erf are declared
 * `omp declare simd` so GCC (with -fopenmp-simd -fno-math-errno) calls glibc's libmvec.
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

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(FASTMLP_NO_LIBMVEC)
/* glibc's libmvec has SIMD variants of these; the declarations let GCC use them. */
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern double tanh(double);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#endif

#define FM_T double
#define FM_NAME(n) n##_f64
#define FMM_EXP exp
#define FMM_EXPM1 expm1
#define FMM_LOG1P log1p
#define FMM_TANH tanh
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
#define FMM_TANH tanhf
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
