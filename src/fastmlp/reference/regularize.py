"""NumPy twins of the penalty and constraint kernels in ``fastmlp._regularize`` (same
signatures, same math).

Penalty values are accumulated in float64; gradients are added in the arrays' dtype (scalars
are Python floats, so float32 arrays stay float32, NEP 50). ``sign(0) = 0``.
"""
import numpy as np

from fastmlp._codes import ConstraintKind

C_MAXNORM, C_NONNEG, C_SOFT_THRESHOLD = (ConstraintKind.C_MAXNORM, ConstraintKind.C_NONNEG,
                                        ConstraintKind.C_SOFT_THRESHOLD)


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


def tie_value_grad(a, b, ga, gb, tie):
    """tie·Σ(a − b)²; ``ga += 2·tie·(a − b)``, ``gb −= 2·tie·(a − b)`` unless ga is None."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if ga is not None:
        g = (2.0 * tie) * (a - b)
        ga += g
        gb -= g
    return tie * float(np.dot(d, d))


def _row(r):
    r = tuple(r)
    return r + (0.0, -1, 0.0) if len(r) == 4 else r


def penalties_apply(ranges, params, grads):
    """Σ over ``ranges`` (rows ``(offset, n, l1, l2[, l1_prox, partner, tie])``) of
    penalty_value_grad, ``l1_prox·Σ|w|`` (value only) and the tie term with the partner
    range; gradients added into ``grads`` unless it is None."""
    value = 0.0
    size = params.shape[0]
    for off, n, l1, l2, l1_prox, partner, tie in map(_row, ranges):
        off, n, partner = int(off), int(n), int(partner)
        if off < 0 or n < 0 or off + n > size:
            raise ValueError(f"penalty range [{off}, {off + n}) is outside the arena of "
                             f"{size} parameters")
        if partner >= 0 and (partner + n > size or abs(partner - off) < n):
            raise ValueError(f"partner range [{partner}, {partner + n}) is outside the arena "
                             f"of {size} or overlaps [{off}, {off + n})")
        sl = slice(off, off + n)
        g = None if grads is None else grads[sl]
        value += penalty_value_grad(params[sl], g, float(l1), float(l2))
        if l1_prox != 0:
            value += float(l1_prox) * float(np.abs(params[sl].astype(np.float64)).sum())
        if partner >= 0 and tie != 0:
            ps = slice(partner, partner + n)
            value += tie_value_grad(params[sl], params[ps], g,
                                    None if grads is None else grads[ps], float(tie))
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


def soft_threshold(w, threshold):
    """w = sign(w)·max(|w| − threshold, 0) in place (exact zeros; NaN stays NaN)."""
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    t = w.dtype.type(threshold)
    w[...] = np.where(w > t, w - t, np.where(w < -t, w + t, np.where(w == w, 0, w)))
    return w


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
        elif kind == C_SOFT_THRESHOLD:
            soft_threshold(block, float(value))
        else:
            raise ValueError(f"unknown constraint kind {kind}")
