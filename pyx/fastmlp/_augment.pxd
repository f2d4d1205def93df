# Random affine augmentation of rows seen as (h, w, c) images (include/fastmlp/augment.h).
cdef extern from "fastmlp/augment.h" nogil:
    ctypedef struct AugmentSpec "fm_augment_spec":
        long h
        long w
        long c
        double max_shift        # pixels
        double max_rotation     # radians
        double max_scale        # fraction: s in [1 - max_scale, 1 + max_scale]
        int flip                # random left-right flips
    void fm_augment_forward_f(const AugmentSpec* a, const float* X, float* A, long B,
                              unsigned long long seed, unsigned int stream,
                              unsigned long long step, unsigned long long row0)
    void fm_augment_forward_d(const AugmentSpec* a, const double* X, double* A, long B,
                              unsigned long long seed, unsigned int stream,
                              unsigned long long step, unsigned long long row0)
    void fm_augment_backward_f(const AugmentSpec* a, const float* dA, float* dX, long B,
                               unsigned long long seed, unsigned int stream,
                               unsigned long long step, unsigned long long row0)
    void fm_augment_backward_d(const AugmentSpec* a, const double* dA, double* dX, long B,
                               unsigned long long seed, unsigned int stream,
                               unsigned long long step, unsigned long long row0)
