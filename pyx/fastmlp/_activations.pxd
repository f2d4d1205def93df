# Elementwise activation kernels (include/fastmlp/activations.h), float32 and float64.
from cython cimport floating

cdef extern from "fastmlp/activations.h" nogil:
    cpdef enum fm_act:
        FM_IDENTITY
        FM_SIGMOID
        FM_TANH
        FM_RELU
        FM_LEAKY_RELU
        FM_ELU
        FM_SOFTPLUS
        FM_ARCTAN
        FM_HARD_TANH
        FM_STEP
        FM_SILU
        FM_GELU
        FM_N_ACT
    void fm_act_forward_f64(int act, double alpha, double* z, const double* bias,
                            double* a, Py_ssize_t rows, Py_ssize_t cols)
    void fm_act_forward_f32(int act, float alpha, float* z, const float* bias,
                            float* a, Py_ssize_t rows, Py_ssize_t cols)
    void fm_act_backward_f64(int act, double alpha, const double* z, const double* a,
                             const double* da, double* dz, Py_ssize_t n)
    void fm_act_backward_f32(int act, float alpha, const float* z, const float* a,
                             const float* da, float* dz, Py_ssize_t n)


cdef inline void act_forward(int act, double alpha, floating* z, const floating* bias,
                             floating* a, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """z[i, :] += bias (when not NULL), then a = act(z); a may alias z."""
    if floating is float:
        fm_act_forward_f32(act, <float> alpha, z, bias, a, rows, cols)
    else:
        fm_act_forward_f64(act, alpha, z, bias, a, rows, cols)


cdef inline void act_backward(int act, double alpha, const floating* z, const floating* a,
                              const floating* da, floating* dz, Py_ssize_t n) noexcept nogil:
    """dz = da * act'(z) over n elements; a = act(z); dz may alias da."""
    if floating is float:
        fm_act_backward_f32(act, <float> alpha, z, a, da, dz, n)
    else:
        fm_act_backward_f64(act, alpha, z, a, da, dz, n)
