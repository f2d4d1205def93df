"""NumPy twins of the penalty and constraint kernels in ``fastmlp._regularize`` (same
signatures, same math).

Penalty values are accumulated in float64; gradients are added in the arrays' dtype (scalars
are Python floats, so float32 arrays stay float32, NEP 50). ``sign(0) = 0``.
"""
import numpy as np

#: Constraint kinds, as in ``fastmlp._regularize.ConstraintKind``.
C_MAXNORM, C_NONNEG = 0, 1


def penalty_value_grad(w, grad, l1, l2):
    """l1·Σ|w| + (l2/2)·Σw²; ``grad += l1·sign(w) + l2·w`` in place unless grad is None."""
    w64 = np.asarray(w, dtype=np.float64)
    value = 0.0
    if l1 != 0:
        value += l1 * float(np.abs(w64).sum())
    if l2 != 0:
        value += 0.5 * l2 * float(np.dot(w64, w64))
    if grad is not None:
        if grad.shape != w.shape:
            raise ValueError(f"grad has {grad.size} elements, expected {w.size}")
        grad += (l1 * np.sign(w) + l2 * w) if l1 != 0 else l2 * w
    return value


def penalties_apply(ranges, params, grads):
    """Σ of penalty_value_grad over ``ranges`` (rows ``(offset, n, l1, l2)``); gradients added
    into ``grads`` unless it is None."""
    value = 0.0
    for off, n, l1, l2 in ranges:
        off, n = int(off), int(n)
        if off < 0 or n < 0 or off + n > params.shape[0]:
            raise ValueError(f"penalty range [{off}, {off + n}) is outside the arena of "
                             f"{params.shape[0]} parameters")
        sl = slice(off, off + n)
        value += penalty_value_grad(params[sl], None if grads is None else grads[sl],
                                    float(l1), float(l2))
    return value


def maxnorm_columns(W, max_value):
    """W[:, j] *= max_value / ‖W[:, j]‖₂ in place where that norm exceeds max_value."""
    if not (np.isfinite(max_value) and max_value >= 0):
        raise ValueError(f"max_value must be finite and >= 0, got {max_value}")
    norms = np.sqrt(np.square(W, dtype=np.float64).sum(axis=0))
    over = norms > max_value
    if over.any():
        W[:, over] = (W[:, over] * (max_value / norms[over])).astype(W.dtype)


def nonneg(w):
    """w = 0 where w < 0, in place."""
    w[w < 0] = 0


def constraints_apply(constraints, params):
    """Each constraint ``(kind, offset, n_in, n_out, value)`` on ``params``, in order."""
    for kind, off, n_in, n_out, value in constraints:
        off, n_in, n_out = int(off), int(n_in), int(n_out)
        if off < 0 or n_in < 0 or n_out < 0 or off + n_in * n_out > params.shape[0]:
            raise ValueError(f"constraint block ({n_in}, {n_out}) at {off} is outside the "
                             f"arena of {params.shape[0]} parameters")
        block = params[off:off + n_in * n_out]
        if kind == C_MAXNORM:
            maxnorm_columns(block.reshape(n_in, n_out), float(value))
        elif kind == C_NONNEG:
            nonneg(block)
        else:
            raise ValueError(f"unknown constraint kind {kind}")
