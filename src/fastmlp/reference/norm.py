"""NumPy twins of the normalization kernels in pyx/fastmlp/_norm.pxd.

BatchNorm follows ``torch.nn.BatchNorm1d`` and LayerNorm ``torch.nn.LayerNorm`` over the last
dim. Statistics are computed in float64 whatever the input dtype (as the kernels accumulate in
double); xhat, A and the stored ``inv_std`` have the input dtype. Each forward returns
``(A, cache)``; each backward takes that cache and returns ``(dX, dgamma, dbeta)``, a
parameter gradient being None when the parameter is.
"""
from typing import NamedTuple, Optional

import numpy as np


class NormCache(NamedTuple):
    """What a normalization backward needs from its forward."""

    xhat: np.ndarray              # (B, n) normalized input
    inv_std: np.ndarray           # (n,) BatchNorm, (B,) LayerNorm: 1/sqrt(var + eps)
    gamma: Optional[np.ndarray]   # (n,) or None
    has_beta: bool
    training: bool                # BatchNorm: batch statistics (True) or running ones


def _affine(xhat, gamma, beta):
    A = xhat if gamma is None else gamma * xhat
    return A if beta is None else A + beta


def batchnorm_forward(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5,
                      training=True):
    """Batch normalization per feature (torch.nn.BatchNorm1d).

    Training uses the batch statistics over the B rows and updates the running ones in place::

        mean_j = Σ_i x_ij / B,    var_j = Σ_i (x_ij − mean_j)² / B
        xhat = (x − mean) / sqrt(var + eps),    A = gamma·xhat + beta
        running_mean ← (1 − momentum)·running_mean + momentum·mean
        running_var  ← (1 − momentum)·running_var  + momentum·var·B/(B − 1)

    Eval uses ``running_mean`` and ``running_var`` in place of mean and var.

    Parameters
    ----------
    X : ndarray (B, n)
    gamma, beta : ndarray (n,) or None
        Scale and shift (None: not affine).
    running_mean, running_var : ndarray (n,)
        Updated in place when training.
    momentum, eps : float
    training : bool

    Returns
    -------
    A : ndarray (B, n)
    cache : NormCache
    """
    X = np.asarray(X)
    B = X.shape[0]
    if training:
        if B < 2:
            raise ValueError(f"BatchNorm needs more than 1 row per batch in training, got {B}")
        mean = X.mean(axis=0, dtype=np.float64)
        var = ((X - mean) ** 2).mean(axis=0)
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * (B / (B - 1)) * var
    else:
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = ((X - mean) * inv).astype(X.dtype)
    cache = NormCache(xhat, inv.astype(X.dtype), gamma, beta is not None, training)
    return _affine(xhat, gamma, beta), cache


def batchnorm_backward(cache, dA):
    """Gradients of :func:`batchnorm_forward`. Returns ``(dX, dgamma, dbeta)``.

    With m(·) the mean over rows and s = gamma·inv_std (inv_std when not affine)::

        dgamma = Σ_rows dA·xhat,    dbeta = Σ_rows dA
        training:  dX = s·(dA − m(dA) − xhat·m(dA·xhat))
        eval:      dX = s·dA     (the running statistics are constants)
    """
    xhat, inv, gamma, has_beta, training = cache
    dA64 = np.asarray(dA, dtype=np.float64)
    dbeta = dA64.sum(axis=0)
    dgamma = (dA64 * xhat).sum(axis=0)
    s = inv.astype(np.float64) if gamma is None else gamma.astype(np.float64) * inv
    if training:
        B = dA64.shape[0]
        dX = s * (dA64 - dbeta / B - xhat * (dgamma / B))
    else:
        dX = s * dA64
    dt = xhat.dtype
    return (dX.astype(dt), None if gamma is None else dgamma.astype(dt),
            dbeta.astype(dt) if has_beta else None)


def layernorm_forward(X, gamma, beta, eps=1e-5):
    """Layer normalization of each row over its n features (torch.nn.LayerNorm((n,)))::

        mean_i = Σ_j x_ij / n,    var_i = Σ_j (x_ij − mean_i)² / n
        xhat = (x − mean) / sqrt(var + eps),    A = gamma·xhat + beta

    Parameters
    ----------
    X : ndarray (B, n)
    gamma, beta : ndarray (n,) or None (each may be None)
    eps : float

    Returns
    -------
    A : ndarray (B, n)
    cache : NormCache (inv_std has shape (B,))
    """
    X = np.asarray(X)
    mean = X.mean(axis=1, keepdims=True, dtype=np.float64)
    var = ((X - mean) ** 2).mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = ((X - mean) * inv).astype(X.dtype)
    cache = NormCache(xhat, inv[:, 0].astype(X.dtype), gamma, beta is not None, True)
    return _affine(xhat, gamma, beta), cache


def layernorm_backward(cache, dA):
    """Gradients of :func:`layernorm_forward`. Returns ``(dX, dgamma, dbeta)``.

    With g = dA·gamma (dA when not affine) and m(·) the mean over a row's features::

        dgamma = Σ_rows dA·xhat,    dbeta = Σ_rows dA
        dX = inv_std·(g − m(g) − xhat·m(g·xhat))
    """
    xhat, inv, gamma, has_beta, _ = cache
    dA64 = np.asarray(dA, dtype=np.float64)
    g = dA64 if gamma is None else dA64 * gamma
    dX = inv[:, None] * (g - g.mean(axis=1, keepdims=True)
                         - xhat * (g * xhat).mean(axis=1, keepdims=True))
    dt = xhat.dtype
    dgamma = (dA64 * xhat).sum(axis=0).astype(dt) if gamma is not None else None
    dbeta = dA64.sum(axis=0).astype(dt) if has_beta else None
    return dX.astype(dt), dgamma, dbeta
