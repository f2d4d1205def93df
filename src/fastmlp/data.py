"""Data helpers: index splits (stratified when labels are given)."""
from typing import Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


def split_indices(n, fraction, rng, labels=None):
    """Shuffle ``range(n)`` and split off ``round(fraction * n)`` rows (at least 1).

    With ``labels`` (one class per row) the split is stratified: the held-out rows are
    shared among the classes in proportion to their sizes (largest remainders, ties
    broken at random), so each class keeps its share in both parts to within one row
    and the held-out part still has exactly ``round(fraction * n)`` rows.
    Returns ``(first, second)`` as sorted int64 arrays.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_second = max(1, int(round(fraction * n)))
    if n_second >= n:
        raise ValueError(f"cannot split {n} rows: the held-out part ({n_second}) leaves no "
                         "training rows")
    if labels is None:
        perm = rng.permutation(n)
        return np.sort(perm[n_second:]).astype(np.int64), np.sort(perm[:n_second]).astype(np.int64)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    take = counts * n_second // n                      # integer shares, then the remainders
    remainder = counts * n_second % n
    order = np.lexsort((rng.random(counts.shape[0]), -remainder))
    take[order[:n_second - int(take.sum())]] += 1
    second = [rng.permutation(np.flatnonzero(inverse == k))[:t]
              for k, t in enumerate(take) if t > 0]
    second = np.sort(np.concatenate(second)).astype(np.int64)
    mask = np.ones(n, bool)
    mask[second] = False
    return np.flatnonzero(mask).astype(np.int64), second


def train_val_test_split(X: ArrayLike, y: ArrayLike,
                         sizes: Tuple[float, float, float] = (0.8, 0.1, 0.1),
                         stratify: bool = True, seed: Optional[int] = None
                         ) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """Split (X, y) into training, validation and test parts by shuffled row index.

    Parameters
    ----------
    sizes : three fractions summing to 1 (train, validation, test).
    stratify : bool
        Keep class proportions in every part (when y holds class labels: a 1-D array of
        at most 2 % distinct values or of a non-float dtype).
    seed : int or None

    Returns
    -------
    ((X_train, y_train), (X_val, y_val), (X_test, y_test))
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if len(sizes) != 3 or any(not (0 <= s <= 1) for s in sizes) or abs(sum(sizes) - 1) > 1e-9:
        raise ValueError(f"sizes must be three fractions in [0, 1] summing to 1, got {sizes}")
    rng = np.random.default_rng(seed)
    labels = y if stratify and _looks_like_labels(y) else None
    rest, test = _split_off(X.shape[0], sizes[2], rng, labels)
    sub_labels = None if labels is None else labels[rest]
    val_frac = sizes[1] / (sizes[0] + sizes[1]) if sizes[0] + sizes[1] > 0 else 0.0
    train_r, val_r = _split_off(rest.shape[0], val_frac, rng, sub_labels)
    train, val = rest[train_r], rest[val_r]
    return (X[train], y[train]), (X[val], y[val]), (X[test], y[test])


def _split_off(n, fraction, rng, labels):
    if fraction <= 0:
        return np.arange(n), np.empty(0, np.int64)
    if fraction >= 1:
        return np.empty(0, np.int64), np.arange(n)
    return split_indices(n, fraction, rng, labels)


def _looks_like_labels(y):
    if y.ndim != 1:
        return False
    if y.dtype.kind in "biuUSO":
        return True
    return bool(np.all(np.mod(y, 1) == 0) and np.unique(y).shape[0] <= max(2, 0.02 * y.shape[0]))


def one_hot(y: ArrayLike, n_classes: Optional[int] = None,
            dtype: DTypeLike = np.float32) -> np.ndarray:
    """One-hot rows for integer class labels ``y`` in [0, n_classes)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iub":
        raise ValueError(f"y must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
    if y.shape[0] and y.min() < 0:
        raise ValueError(f"y must hold labels >= 0, got {y.min()}")
    n = int(y.max()) + 1 if n_classes is None and y.shape[0] else int(n_classes or 0)
    if y.shape[0] and y.max() >= n:
        raise ValueError(f"y holds label {y.max()} but n_classes is {n}")
    out = np.zeros((y.shape[0], n), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


class Standardizer:
    """Scale features to zero mean and unit variance, with statistics from the training
    data only (``fit``), then applied to any data (``transform``). Constant features are
    left centred (scale 1)."""

    def fit(self, X: ArrayLike) -> "Standardizer":
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity")
        self.mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def _check(self, X):
        if not hasattr(self, "mean_"):
            raise ValueError("Standardizer is not fitted: call fit(X_train) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X must have shape (n, {self.mean_.shape[0]}), got {X.shape}")
        return X

    def transform(self, X: ArrayLike) -> np.ndarray:
        X = self._check(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return ((X - self.mean_) / self.scale_).astype(dtype)

    def fit_transform(self, X: ArrayLike) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        X = self._check(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return (X * self.scale_ + self.mean_).astype(dtype)
