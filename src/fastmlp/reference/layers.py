"""NumPy twins of the layer kernels (pyx/fastmlp/_kernels.pxd) that the plan runs.

Each forward returns what the backward needs; each backward returns
``(dX, parameter gradients...)``. Shapes: X (batch, n_in), W (n_in, n_out).
"""
import numpy as np

from fastmlp.reference import activations


def dense_forward(X, W, b, act, alpha=0.0):
    """Z = X W + b, A = act(Z). Returns (Z, A)."""
    Z = X @ W
    if b is not None:
        Z += b
    return Z, activations.forward(act, Z, alpha)


def dense_backward(X, W, Z, A, dA, act, alpha=0.0):
    """dZ = dA ⊙ act'(Z); dW = Xᵀ dZ; db = Σ_rows dZ; dX = dZ Wᵀ. Returns (dX, dW, db)."""
    dZ = activations.backward(act, Z, A, dA, alpha)
    return dZ @ W.T, X.T @ dZ, dZ.sum(axis=0)


def prelu_forward(X, slope):
    """A = X where X > 0, slope ⊙ X elsewhere (slope broadcasts over rows)."""
    return np.where(X > 0, X, slope * X)


def prelu_backward(X, slope, dA):
    """Returns (dX, dslope); dslope sums over rows (and over units when shared)."""
    dX = np.where(X > 0, dA, slope * dA)
    contrib = np.where(X > 0, 0, dA * X)
    dslope = contrib.sum(axis=0) if slope.size > 1 else np.atleast_1d(contrib.sum())
    return dX, dslope.astype(X.dtype)


def softmax_forward(X):
    """Row-wise softmax, shifted by the row max."""
    e = np.exp(X - X.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(S, dA):
    """dX = S ⊙ (dA − Σ_j dA_j S_j)."""
    return S * (dA - (dA * S).sum(axis=1, keepdims=True))


def maxout_forward(X, W, b, pieces):
    """Z = X W + b with n_out * pieces columns (unit j owns columns j*pieces ... +pieces-1);
    A = max over each unit's pieces. Returns (Z, A)."""
    Z = X @ W
    if b is not None:
        Z += b
    return Z, Z.reshape(X.shape[0], -1, pieces).max(axis=2)


def maxout_backward(X, W, Z, dA, pieces):
    """The gradient flows to each unit's winning piece (the first on ties).
    Returns (dX, dW, db)."""
    B = X.shape[0]
    Z3 = Z.reshape(B, -1, pieces)
    arg = Z3.argmax(axis=2)
    dZ = np.zeros_like(Z3)
    np.put_along_axis(dZ, arg[:, :, None], dA[:, :, None], axis=2)
    dZ = dZ.reshape(B, -1)
    return dZ @ W.T, X.T @ dZ, dZ.sum(axis=0)
