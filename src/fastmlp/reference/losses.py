"""NumPy twins of the loss kernels (pyx/fastmlp/_losses.pyx).

Each function has the kernel's meaning: for ``pred`` of shape (n, d) it returns
``(value, grad)`` with ``value = scale * Σ_i w_i ℓ_i`` (ℓ_i the loss of row i summed over
its entries, ``w_i = row_weight[i]`` or 1) and ``grad = scale * w_i * ∂ℓ_i/∂pred`` in
pred's dtype (``None`` when ``with_grad`` is False). Arithmetic is float64 throughout.
``value_and_grad(spec, ...)`` is the twin of the dispatcher ``loss_value_grad``.
"""
import numpy as np

from fastmlp._codes import LossCode, Reduction


def _prepare(pred, row_weight):
    p = np.asarray(pred)
    w = np.ones(p.shape[0]) if row_weight is None else np.asarray(row_weight, np.float64)
    return p.dtype, p.astype(np.float64), w


def _finish(rows, g, w, scale, dtype, with_grad):
    """Reduce per-row losses and scale the per-element derivatives into the gradient."""
    value = float(scale * np.sum(w * rows))
    if not with_grad:
        return value, None
    return value, (scale * w[:, None] * g).astype(dtype)


def _mse_terms(p, t):
    r = p - t
    return r * r, 2 * r


def _l1_terms(p, t):
    r = p - t
    return np.abs(r), np.sign(r)


def _huber_terms(p, t, delta):
    r = p - t
    a = np.abs(r)
    return np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta)), np.clip(r, -delta, delta)


def _bce_terms(x, y):
    return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))), sigmoid(x) - y


def mse(pred, target, row_weight=None, scale=1.0, with_grad=True):
    """ℓ_i = Σ_j (p_ij − t_ij)²."""
    dtype, p, w = _prepare(pred, row_weight)
    h, g = _mse_terms(p, np.asarray(target, np.float64))
    return _finish(h.sum(axis=1), g, w, scale, dtype, with_grad)


def l1(pred, target, row_weight=None, scale=1.0, with_grad=True):
    """ℓ_i = Σ_j |p_ij − t_ij|; gradient sign(p − t), 0 where they are equal."""
    dtype, p, w = _prepare(pred, row_weight)
    h, g = _l1_terms(p, np.asarray(target, np.float64))
    return _finish(h.sum(axis=1), g, w, scale, dtype, with_grad)


def huber(pred, target, row_weight=None, scale=1.0, with_grad=True, delta=1.0):
    """ℓ_i = Σ_j h(p_ij − t_ij), h(r) = r²/2 if |r| < δ else δ(|r| − δ/2); h' = clip(r, ±δ)."""
    dtype, p, w = _prepare(pred, row_weight)
    h, g = _huber_terms(p, np.asarray(target, np.float64), delta)
    return _finish(h.sum(axis=1), g, w, scale, dtype, with_grad)


def sigmoid(x):
    """σ(x) from e^{-|x|}, so it never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def bce_with_logits(pred, target, row_weight=None, scale=1.0, with_grad=True):
    """ℓ_i = Σ_j max(x, 0) − x·y + log(1 + e^{−|x|}); gradient σ(x) − y."""
    dtype, x, w = _prepare(pred, row_weight)
    h, g = _bce_terms(x, np.asarray(target, np.float64))
    return _finish(h.sum(axis=1), g, w, scale, dtype, with_grad)


def log_softmax(x):
    """x − logsumexp(x) row-wise, shifted by the row maximum."""
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _ce_terms(x, q):
    """ℓ_i = −Σ_j q_ij log softmax(x_i)_j; gradient softmax(x_i) Σ_j q_ij − q_i."""
    logp = log_softmax(x)
    return -(q * logp).sum(axis=1), np.exp(logp) * q.sum(axis=1, keepdims=True) - q


def _q_labels(shape, labels, label_smoothing):
    q = np.full(shape, label_smoothing / shape[1])
    q[np.arange(shape[0]), np.asarray(labels)] += 1.0 - label_smoothing
    return q


def _q_probs(target, c, label_smoothing):
    return (1.0 - label_smoothing) * np.asarray(target, np.float64) + label_smoothing / c


def cross_entropy_labels(pred, labels, row_weight=None, scale=1.0, with_grad=True,
                         label_smoothing=0.0):
    """Cross-entropy against class labels, q = (1 − ε)·onehot(y) + ε/c."""
    dtype, x, w = _prepare(pred, row_weight)
    rows, g = _ce_terms(x, _q_labels(x.shape, labels, label_smoothing))
    return _finish(rows, g, w, scale, dtype, with_grad)


def cross_entropy_probs(pred, target, row_weight=None, scale=1.0, with_grad=True,
                        label_smoothing=0.0):
    """Cross-entropy against probability rows t, q = (1 − ε)·t + ε/c."""
    dtype, x, w = _prepare(pred, row_weight)
    rows, g = _ce_terms(x, _q_probs(target, x.shape[1], label_smoothing))
    return _finish(rows, g, w, scale, dtype, with_grad)


def _margin_terms(x, labels, margin):
    n, c = x.shape
    idx = np.arange(n)
    y = np.asarray(labels)
    z = margin - x[idx, y][:, None] + x
    active = z > 0
    active[idx, y] = False
    g = active / c
    g[idx, y] = -active.sum(axis=1) / c
    return np.where(active, z, 0.0).sum(axis=1) / c, g


def multi_margin(pred, labels, row_weight=None, scale=1.0, with_grad=True, margin=1.0):
    """ℓ_i = Σ_{j≠y} max(0, margin − x_y + x_j) / c (torch's MultiMarginLoss, p=1)."""
    dtype, x, w = _prepare(pred, row_weight)
    rows, g = _margin_terms(x, labels, margin)
    return _finish(rows, g, w, scale, dtype, with_grad)


def unreduced(spec, pred, target=None, labels=None, row_weight=None):
    """PyTorch's ``reduction='none'`` values, each times its row's weight: shape (n, d) for
    the elementwise losses, (n,) for cross-entropy and multi-margin; pred's dtype."""
    code = LossCode(spec["code"])
    dtype, x, w = _prepare(pred, row_weight)
    t = None if target is None else np.asarray(target, np.float64)
    if code == LossCode.LOSS_MSE:
        h = _mse_terms(x, t)[0]
    elif code == LossCode.LOSS_L1:
        h = _l1_terms(x, t)[0]
    elif code == LossCode.LOSS_HUBER:
        h = _huber_terms(x, t, spec.get("delta", 1.0))[0]
    elif code == LossCode.LOSS_BCE_WITH_LOGITS:
        h = _bce_terms(x, t)[0]
    elif code == LossCode.LOSS_CROSS_ENTROPY:
        eps = spec.get("label_smoothing", 0.0)
        q = (_q_labels(x.shape, labels, eps) if labels is not None
             else _q_probs(t, x.shape[1], eps))
        return (w * _ce_terms(x, q)[0]).astype(dtype)
    elif code == LossCode.LOSS_MULTI_MARGIN:
        return (w * _margin_terms(x, labels, spec.get("margin", 1.0))[0]).astype(dtype)
    else:
        raise ValueError(f"spec['code'] must be a LossCode, got {spec['code']!r}")
    return (w[:, None] * h).astype(dtype)


def mean_scale(spec, n):
    """PyTorch's 'mean' scale: 1/n for cross-entropy and multi-margin, else 1/(n·d)."""
    if spec["code"] in (LossCode.LOSS_CROSS_ENTROPY, LossCode.LOSS_MULTI_MARGIN):
        return 1.0 / n
    return 1.0 / (n * spec["n_outputs"])


def batch_scale(spec, n):
    """The scale of ``spec["reduction"]``: mean_scale ('mean', the default) or 1 ('sum')."""
    if spec.get("reduction", Reduction.REDUCTION_MEAN) == Reduction.REDUCTION_SUM:
        return 1.0
    return mean_scale(spec, n)


def value_and_grad(spec, pred, target=None, labels=None, row_weight=None, scale=None,
                   with_grad=True):
    """Twin of the dispatcher: ``spec`` is a dict of ``LossSpec`` fields (see _losses.pxd)."""
    code = LossCode(spec["code"])
    sc = batch_scale(spec, np.shape(pred)[0]) if scale is None else scale
    args = (row_weight, sc, with_grad)
    if code == LossCode.LOSS_MSE:
        return mse(pred, target, *args)
    if code == LossCode.LOSS_L1:
        return l1(pred, target, *args)
    if code == LossCode.LOSS_HUBER:
        return huber(pred, target, *args, delta=spec.get("delta", 1.0))
    if code == LossCode.LOSS_BCE_WITH_LOGITS:
        return bce_with_logits(pred, target, *args)
    eps = spec.get("label_smoothing", 0.0)
    if code == LossCode.LOSS_CROSS_ENTROPY and labels is not None:
        return cross_entropy_labels(pred, labels, *args, label_smoothing=eps)
    if code == LossCode.LOSS_CROSS_ENTROPY:
        return cross_entropy_probs(pred, target, *args, label_smoothing=eps)
    if code == LossCode.LOSS_MULTI_MARGIN:
        return multi_margin(pred, labels, *args, margin=spec.get("margin", 1.0))
    raise ValueError(f"spec['code'] must be a LossCode, got {spec['code']!r}")
