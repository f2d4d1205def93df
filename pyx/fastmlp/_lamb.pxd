# LAMB (You et al., 2020; optax.lamb): Adam's direction plus decoupled weight decay, scaled
# per parameter tensor by the trust ratio ‖p‖ / ‖u‖, over the flat arena, float32 and float64.
from cython cimport floating

ctypedef struct LambHyper:
    double lr
    double beta1
    double beta2
    double eps
    double weight_decay
    double bc1              # per step: 1 - beta1**t, by the caller (lamb_prepare)
    double bc2              # per step: 1 - beta2**t, by the caller

# The step-dependent scalars of step t >= 1.
cdef void lamb_prepare(LambHyper* h, Py_ssize_t t) noexcept nogil

# One step over the tensors ranges[2k] .. ranges[2k] + ranges[2k + 1] (arena offset, size;
# disjoint, inside the n-element buffers): for each tensor
#   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g²,
#   u = (m / bc1) / (sqrt(v / bc2) + eps) + wd p,
#   p -= lr · r · u,  r = ‖p‖ / ‖u‖ (1 when either norm is 0).
# Arithmetic in double, state stored in the buffers' type; two passes per tensor (norms,
# then the update: u is recomputed from the stored m and v, so nothing is allocated).
cdef void lamb_step(floating* params, const floating* grads, floating* exp_avg,
                    floating* exp_avg_sq, const Py_ssize_t* ranges, Py_ssize_t n_ranges,
                    const LambHyper* h) noexcept nogil
