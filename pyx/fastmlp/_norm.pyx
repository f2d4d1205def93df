"""Normalization kernels exposed to Python (thin wrappers used by the tests).

The kernels themselves are ``cdef inline`` in ``_norm.pxd`` so that the plan executor calls
them without overhead. The ``*_memview`` wrappers check shapes (``ValueError``), allocate the
outputs and release the GIL around one kernel call. ``fastmlp.reference.norm`` holds the
NumPy twins.

BatchNorm (per feature j, over the B rows of a batch)::

    mean_j = Σ_i x_ij / B,   var_j = Σ_i (x_ij − mean_j)² / B,   inv_std_j = 1/sqrt(var_j + eps)
    xhat = (x − mean)·inv_std,   A = gamma·xhat + beta
    running_mean ← (1 − m)·running_mean + m·mean
    running_var  ← (1 − m)·running_var  + m·var·B/(B − 1)

LayerNorm is the same per row i, over the n features, without running statistics.
"""
import numpy as np

from cython cimport floating


cdef inline int _check_len(object v, Py_ssize_t got, Py_ssize_t want, str name) except -1:
    if v is not None and got != want:
        raise ValueError(f"{name} has {got} entries, expected {want}")
    return 0


cdef inline int _check_same(Py_ssize_t r1, Py_ssize_t c1, Py_ssize_t r2, Py_ssize_t c2,
                            str name, str ref) except -1:
    if r1 != r2 or c1 != c2:
        raise ValueError(f"{name} has shape ({r1}, {c1}), expected ({r2}, {c2}) like {ref}")
    return 0


cdef inline NormArgs _args(Py_ssize_t B, Py_ssize_t n, double eps, double momentum):
    cdef NormArgs a
    a.B, a.n, a.eps, a.momentum = B, n, eps, momentum
    return a


def batchnorm_forward_memview(floating[:, ::1] X, floating[::1] gamma, floating[::1] beta,
                              floating[::1] running_mean, floating[::1] running_var,
                              double momentum=0.1, double eps=1e-5, bint training=True,
                              bint need_xhat=True):
    """BatchNorm forward. Returns ``(A, xhat, inv_std)``.

    Parameters
    ----------
    X : (B, n) C-contiguous float32 or float64
    gamma, beta : (n,) or None
        Scale and shift (None: not affine).
    running_mean, running_var : (n,)
        Updated in place when ``training`` (B >= 2 required then), read otherwise.
    momentum, eps : float
        As in ``torch.nn.BatchNorm1d``.
    training : bool
        Batch statistics (True) or running statistics (False).
    need_xhat : bool
        False: the kernel gets xhat = NULL (inference) and xhat is returned as None.

    Returns
    -------
    A, xhat : (B, n)
    inv_std : (n,)
        1/sqrt(var + eps) of the batch (training) or of the running variance (eval).
    """
    cdef Py_ssize_t B = X.shape[0], n = X.shape[1]
    if running_mean is None or running_var is None:
        raise ValueError("running_mean and running_var are required")
    _check_len(gamma, gamma.shape[0] if gamma is not None else 0, n, "gamma")
    _check_len(beta, beta.shape[0] if beta is not None else 0, n, "beta")
    _check_len(running_mean, running_mean.shape[0], n, "running_mean")
    _check_len(running_var, running_var.shape[0], n, "running_var")
    if training and B < 2:
        raise ValueError(f"BatchNorm needs more than 1 row per batch in training, got {B}")
    dtype = np.float32 if floating is float else np.float64
    A, xhat, stats = np.empty((B, n), dtype), np.empty((B, n), dtype), np.empty(3 * n, dtype)
    stats[:n], stats[n:2 * n] = running_mean, running_var
    if n == 0:
        return A, xhat, stats[2 * n:].copy()
    cdef NormArgs a = _args(B, n, eps, momentum)
    cdef floating[::1] s = stats
    cdef floating[:, ::1] a_v = A, x_v = xhat
    cdef const floating* g = &gamma[0] if gamma is not None else NULL
    cdef const floating* b = &beta[0] if beta is not None else NULL
    cdef floating* px = &x_v[0, 0] if B > 0 and need_xhat else NULL
    cdef floating* pa = &a_v[0, 0] if B > 0 else NULL
    cdef const floating* pX = &X[0, 0] if B > 0 else NULL
    with nogil:
        if training:
            batchnorm_forward_train(&a, pX, g, b, &s[0], px, pa)
        else:
            batchnorm_forward_eval(&a, pX, g, b, &s[0], px, pa)
    if training:
        running_mean[:] = s[:n]
        running_var[:] = s[n:2 * n]
    return A, xhat if need_xhat else None, stats[2 * n:].copy()


def batchnorm_backward_memview(floating[:, ::1] xhat, floating[::1] inv_std,
                               floating[::1] gamma, floating[:, ::1] dA,
                               floating[::1] dgamma=None, floating[::1] dbeta=None,
                               bint training=True, bint need_dX=True,
                               floating[:, ::1] out=None):
    """BatchNorm backward after :func:`batchnorm_forward_memview` (same ``training``).

    ``dgamma += Σ_rows dA·xhat`` and ``dbeta += Σ_rows dA`` in place (when given). Training::

        dX = gamma·inv_std·(dA − mean_rows(dA) − xhat·mean_rows(dA·xhat))

    Eval (running statistics are constants): ``dX = dA·gamma·inv_std``.

    Returns
    -------
    dX : (B, n) or None
        None when not ``need_dX``; written into ``out`` when given (``out`` may be ``dA``).
    """
    cdef Py_ssize_t B = dA.shape[0], n = dA.shape[1]
    _check_same(xhat.shape[0], xhat.shape[1], B, n, "xhat", "dA")
    _check_len(inv_std, inv_std.shape[0], n, "inv_std")
    _check_len(gamma, gamma.shape[0] if gamma is not None else 0, n, "gamma")
    _check_len(dgamma, dgamma.shape[0] if dgamma is not None else 0, n, "dgamma")
    _check_len(dbeta, dbeta.shape[0] if dbeta is not None else 0, n, "dbeta")
    if out is not None:
        _check_same(out.shape[0], out.shape[1], B, n, "out", "dA")
    elif need_dX:
        out = np.empty((B, n), np.float32 if floating is float else np.float64)
    if B == 0 or n == 0:
        return np.asarray(out) if need_dX else None
    cdef NormArgs a = _args(B, n, 0.0, 0.0)
    cdef const floating* g = &gamma[0] if gamma is not None else NULL
    cdef floating* dg = &dgamma[0] if dgamma is not None else NULL
    cdef floating* db = &dbeta[0] if dbeta is not None else NULL
    cdef floating* dx = &out[0, 0] if need_dX else NULL
    with nogil:
        if training:
            batchnorm_backward(&a, &xhat[0, 0], &inv_std[0], g, &dA[0, 0], dg, db, dx)
        else:
            batchnorm_backward_eval(&a, &xhat[0, 0], &inv_std[0], g, &dA[0, 0], dg, db, dx)
    return np.asarray(out) if need_dX else None


def layernorm_forward_memview(floating[:, ::1] X, floating[::1] gamma, floating[::1] beta,
                              double eps=1e-5, bint need_xhat=True):
    """LayerNorm over the last dim. Returns ``(A, xhat, inv_std)``, inv_std of shape (B,).

    Per row: ``xhat = (x − mean)/sqrt(var + eps)`` (biased var), ``A = gamma·xhat + beta``;
    gamma and beta may each be None. ``need_xhat=False`` passes NULL for xhat and inv_std
    (inference) and returns None for both.
    """
    cdef Py_ssize_t B = X.shape[0], n = X.shape[1]
    _check_len(gamma, gamma.shape[0] if gamma is not None else 0, n, "gamma")
    _check_len(beta, beta.shape[0] if beta is not None else 0, n, "beta")
    if n == 0 and B > 0:
        raise ValueError("LayerNorm needs at least one feature")
    dtype = np.float32 if floating is float else np.float64
    A, xhat, inv_std = np.empty((B, n), dtype), np.empty((B, n), dtype), np.empty(B, dtype)
    if B == 0:
        return A, xhat, inv_std
    cdef NormArgs a = _args(B, n, eps, 0.0)
    cdef floating[:, ::1] a_v = A, x_v = xhat
    cdef floating[::1] s = inv_std
    cdef const floating* g = &gamma[0] if gamma is not None else NULL
    cdef const floating* b = &beta[0] if beta is not None else NULL
    cdef floating* ps = &s[0] if need_xhat else NULL
    cdef floating* px = &x_v[0, 0] if need_xhat else NULL
    with nogil:
        layernorm_forward(&a, &X[0, 0], g, b, ps, px, &a_v[0, 0])
    return (A, xhat, inv_std) if need_xhat else (A, None, None)


def layernorm_backward_memview(floating[:, ::1] xhat, floating[::1] inv_std,
                               floating[::1] gamma, floating[:, ::1] dA,
                               floating[::1] dgamma=None, floating[::1] dbeta=None,
                               bint need_dX=True, floating[:, ::1] out=None):
    """LayerNorm backward. ``dgamma += Σ_rows dA·xhat``, ``dbeta += Σ_rows dA`` in place
    (when given); per row, with ``g = dA·gamma``::

        dX = inv_std·(g − mean_j(g) − xhat·mean_j(g·xhat))

    Returns dX (B, n), written into ``out`` when given (``out`` may be ``dA``), or None.
    """
    cdef Py_ssize_t B = dA.shape[0], n = dA.shape[1]
    _check_same(xhat.shape[0], xhat.shape[1], B, n, "xhat", "dA")
    _check_len(inv_std, inv_std.shape[0], B, "inv_std")
    _check_len(gamma, gamma.shape[0] if gamma is not None else 0, n, "gamma")
    _check_len(dgamma, dgamma.shape[0] if dgamma is not None else 0, n, "dgamma")
    _check_len(dbeta, dbeta.shape[0] if dbeta is not None else 0, n, "dbeta")
    if out is not None:
        _check_same(out.shape[0], out.shape[1], B, n, "out", "dA")
    elif need_dX:
        out = np.empty((B, n), np.float32 if floating is float else np.float64)
    if B == 0 or n == 0:
        return np.asarray(out) if need_dX else None
    cdef NormArgs a = _args(B, n, 0.0, 0.0)
    cdef const floating* g = &gamma[0] if gamma is not None else NULL
    cdef floating* dg = &dgamma[0] if dgamma is not None else NULL
    cdef floating* db = &dbeta[0] if dbeta is not None else NULL
    cdef floating* dx = &out[0, 0] if need_dX else NULL
    with nogil:
        layernorm_backward(&a, &xhat[0, 0], &inv_std[0], g, &dA[0, 0], dg, db, dx)
    return np.asarray(out) if need_dX else None
