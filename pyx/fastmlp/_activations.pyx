"""Activation kernels exposed to Python (thin wrappers used by the tests).

Activation names and codes: ``fastmlp._codes.ACT_NAMES`` (checked against ``fm_act`` at
``import fastmlp``)."""
from cython cimport floating


def forward(int act, floating[:, ::1] z, floating[::1] bias=None, double alpha=0.0):
    """Return ``(z + bias, act(z + bias))``; z is updated in place when bias is given."""
    import numpy as np
    out = np.empty_like(np.asarray(z))
    cdef floating[:, ::1] a = out
    cdef const floating* b = NULL
    if act < 0 or act >= FM_N_ACT:
        raise ValueError(f"act must be an activation code in [0, {FM_N_ACT}), got {act}")
    if bias is not None:
        if bias.shape[0] != z.shape[1]:
            raise ValueError(f"bias has {bias.shape[0]} entries, z has {z.shape[1]} columns")
        if bias.shape[0] > 0:
            b = &bias[0]
    if z.shape[0] * z.shape[1] == 0:
        return out
    with nogil:
        act_forward(act, alpha, &z[0, 0], b, &a[0, 0], z.shape[0], z.shape[1])
    return out


def backward(int act, floating[::1] z, floating[::1] a, floating[::1] da, double alpha=0.0):
    """Return ``da * act'(z)`` for flat arrays of one length (a = act(z))."""
    import numpy as np
    if act < 0 or act >= FM_N_ACT:
        raise ValueError(f"act must be an activation code in [0, {FM_N_ACT}), got {act}")
    if not (z.shape[0] == a.shape[0] == da.shape[0]):
        raise ValueError("z, a and da must have the same length")
    out = np.empty_like(np.asarray(da))
    cdef floating[::1] dz = out
    if z.shape[0] == 0:
        return out
    with nogil:
        act_backward(act, alpha, &z[0], &a[0], &da[0], &dz[0], z.shape[0])
    return out
