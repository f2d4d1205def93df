/* Instantiated by activations.h once per type: FM_T is the element type, FM_NAME(n) adds
 * the type suffix, FMM_EXP & co. are the math functions of that type. No include guard. */

/* sigma(z) without overflow: e = exp(-|z|) is in (0, 1]. */
static inline FM_T FM_NAME(fm_sigmoid)(FM_T z) {
    FM_T e = FMM_EXP(-fabs(z));
    FM_T r = (FM_T)1 / ((FM_T)1 + e);
    return z >= 0 ? r : e * r;
}

/* softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|), finite for any z. */
static inline FM_T FM_NAME(fm_softplus)(FM_T z) {
    return (z > 0 ? z : (FM_T)0) + FMM_LOG1P(FMM_EXP(-fabs(z)));
}

#define FM_SQRT1_2 0.70710678118654752440
#define FM_INV_SQRT_2PI 0.39894228040143267794

/* Loop over rows x cols; pre-activation z (row stride ld) gets bias added in place when
 * bias != NULL, then a = f(z). a may alias z (in-place activation). */
#define FM_ACT_LOOP(EXPR)                                                   \
    for (ptrdiff_t i = 0; i < rows; i++) {                                  \
        FM_T* zr = z + i * ld;                                              \
        FM_T* ar = a + i * ld;                                              \
        if (bias) {                                                         \
            _Pragma("omp simd")                                             \
            for (ptrdiff_t j = 0; j < cols; j++) {                          \
                FM_T x = zr[j] + bias[j];                                   \
                zr[j] = x;                                                  \
                ar[j] = (EXPR);                                             \
            }                                                               \
        } else {                                                            \
            _Pragma("omp simd")                                             \
            for (ptrdiff_t j = 0; j < cols; j++) {                          \
                FM_T x = zr[j];                                             \
                ar[j] = (EXPR);                                             \
            }                                                               \
        }                                                                   \
    }

/* Forward over a block of rows x cols of z and a, both of row stride ld: z[i, :] += bias
 * (if given), a = act(z). Contract: rows, cols >= 0, ld >= cols. */
FM_ACT_CLONES static void FM_NAME(fm_act_forward_ld)(int act, FM_T alpha, FM_T* z,
                                                     const FM_T* bias, FM_T* a, ptrdiff_t rows,
                                                     ptrdiff_t cols, ptrdiff_t ld) {
    switch (act) {
    case FM_SIGMOID:    FM_ACT_LOOP(FM_NAME(fm_sigmoid)(x)); break;
    case FM_TANH:       FM_ACT_LOOP(FMM_TANH(x)); break;
    case FM_RELU:       FM_ACT_LOOP(x > 0 ? x : (FM_T)0); break;
    case FM_LEAKY_RELU: FM_ACT_LOOP(x > 0 ? x : alpha * x); break;
    case FM_ELU:        FM_ACT_LOOP(x > 0 ? x : alpha * FMM_EXPM1(x)); break;
    case FM_SOFTPLUS:   FM_ACT_LOOP(FM_NAME(fm_softplus)(x)); break;
    case FM_ARCTAN:     FM_ACT_LOOP(FMM_ATAN(x)); break;
    case FM_HARD_TANH:  FM_ACT_LOOP(x > 1 ? (FM_T)1 : (x < -1 ? (FM_T)-1 : x)); break;
    case FM_STEP:       FM_ACT_LOOP(x > 0 ? (FM_T)1 : (FM_T)0); break;
    case FM_SILU:       FM_ACT_LOOP(x * FM_NAME(fm_sigmoid)(x)); break;
    case FM_GELU:       FM_ACT_LOOP((FM_T)0.5 * x * ((FM_T)1 + FMM_ERF(x * (FM_T)FM_SQRT1_2))); break;
    default:            FM_ACT_LOOP(x); break;  /* FM_IDENTITY */
    }
}
#undef FM_ACT_LOOP

/* Forward over rows x cols, row stride cols: z[i, :] += bias (if given), a = act(z). */
static void FM_NAME(fm_act_forward)(int act, FM_T alpha, FM_T* z, const FM_T* bias, FM_T* a,
                                    ptrdiff_t rows, ptrdiff_t cols) {
    FM_NAME(fm_act_forward_ld)(act, alpha, z, bias, a, rows, cols, cols);
}

#define FM_DACT_LOOP(EXPR)                                                  \
    _Pragma("omp simd")                                                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                     \
        FM_T x = z[i];                                                      \
        FM_T y = a[i];                                                      \
        (void)x; (void)y;                                                   \
        dz[i] = da[i] * (EXPR);                                             \
    }

/* Backward: dz = da * act'(z), with a = act(z) at hand for the cheap forms.
 * dz may alias da. Step's derivative is 0 everywhere (0 at the jump by convention),
 * ReLU's is 0 at z = 0, HardTanh's is 0 at z = +-1: the conventions of PyTorch. */
FM_ACT_CLONES static void FM_NAME(fm_act_backward)(int act, FM_T alpha, const FM_T* z, const FM_T* a,
                                     const FM_T* da, FM_T* dz, ptrdiff_t n) {
    switch (act) {
    case FM_SIGMOID:    FM_DACT_LOOP(y * ((FM_T)1 - y)); break;
    case FM_TANH:       FM_DACT_LOOP((FM_T)1 - y * y); break;
    case FM_RELU:       FM_DACT_LOOP(x > 0 ? (FM_T)1 : (FM_T)0); break;
    case FM_LEAKY_RELU: FM_DACT_LOOP(x > 0 ? (FM_T)1 : alpha); break;
    case FM_ELU:        FM_DACT_LOOP(x > 0 ? (FM_T)1 : y + alpha); break;
    case FM_SOFTPLUS:   FM_DACT_LOOP(FM_NAME(fm_sigmoid)(x)); break;
    case FM_ARCTAN:     FM_DACT_LOOP((FM_T)1 / ((FM_T)1 + x * x)); break;
    case FM_HARD_TANH:  FM_DACT_LOOP((x > -1 && x < 1) ? (FM_T)1 : (FM_T)0); break;
    case FM_STEP:       FM_DACT_LOOP((FM_T)0); break;
    case FM_SILU: {
        FM_DACT_LOOP(FM_NAME(fm_sigmoid)(x) * ((FM_T)1 + x * ((FM_T)1 - FM_NAME(fm_sigmoid)(x))));
        break;
    }
    case FM_GELU:
        FM_DACT_LOOP((FM_T)0.5 * ((FM_T)1 + FMM_ERF(x * (FM_T)FM_SQRT1_2))
                     + x * (FM_T)FM_INV_SQRT_2PI * FMM_EXP((FM_T)-0.5 * x * x));
        break;
    default:            FM_DACT_LOOP((FM_T)1); break;  /* FM_IDENTITY */
    }
}
#undef FM_DACT_LOOP
