"""What ``Trainer.fit`` makes of its rows: targets as the loss trains on them, per-row
weights from ``sample_weight`` and ``class_weight``, each row's class, the validation
rows."""
import numbers

import numpy as np

from fastmlp.data import split_indices


def prepare_targets(loss, y, n_out, dtype, n_rows, name="y", ops=None):
    """``y`` as ``loss`` trains on it (class labels as int64, else a float matrix of
    ``n_out`` columns), checked (on the backend ``ops``) to have ``n_rows`` rows; errors
    name ``name``."""
    if loss.is_classification and n_out > 1:
        arr = np.asarray(y)            # (n, 1) class labels, as scikit-learn and Keras
        if arr.ndim == 2 and arr.shape[1] == 1:
            y = arr[:, 0]
    try:
        t = loss._prepare_target(y, n_out, dtype, ops=ops)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    if t.shape[0] != n_rows:
        raise ValueError(f"{name} has {t.shape[0]} rows but X has {n_rows}")
    return t


def check_sample_weight(sample_weight, n):
    """``sample_weight`` as float64, checked: one finite number >= 0 per row of ``n``."""
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"sample_weight must be numbers, one per row: {exc}") from None
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and >= 0")
    return w


def class_weight_table(loss, n_out, class_weight, targets):
    """``(weight of each class, class of each row)`` from a dict or ``"balanced"``."""
    if not (isinstance(class_weight, dict) or class_weight == "balanced"):
        exc = ValueError if isinstance(class_weight, str) else TypeError
        raise exc(f"class_weight must be a dict {{class index: weight}} or "
                  f"'balanced', got {class_weight!r:.60}")
    if not loss.is_classification:
        raise ValueError(f"class_weight needs a classification loss, not "
                         f"{type(loss).__name__}")
    labels, n_classes = class_labels(targets, n_out)
    if class_weight == "balanced":     # scikit-learn's n / (k * count), present classes
        counts = np.bincount(labels, minlength=n_classes)
        present = np.flatnonzero(counts)
        class_weight = {int(k): labels.shape[0] / (present.shape[0] * counts[k])
                        for k in present}
    cw = np.ones(n_classes)
    for k, v in class_weight.items():
        if not (isinstance(k, numbers.Integral) and 0 <= k < cw.shape[0]):
            raise ValueError(f"class_weight key {k!r} is not a class index")
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"class_weight[{k}] must be finite and >= 0, got {v}")
        cw[k] = v
    return cw, labels


def class_labels(targets, n_out):
    """``(one class per row, number of classes)``: labels as given, the argmax of
    probability rows, or ``p > 0.5`` for a single (binary) output."""
    if targets.dtype == np.int64:
        return targets, n_out
    if targets.shape[1] == 1:
        return (targets[:, 0] > 0.5).astype(np.int64), 2
    return targets.argmax(axis=1), targets.shape[1]


def rows_of(X, targets, weights, train_idx):
    """``(X, targets, weights)`` of the training rows (the arrays themselves when all)."""
    if train_idx.shape[0] == X.shape[0]:
        return X, targets, weights
    return X[train_idx], targets[train_idx], None if weights is None else weights[train_idx]


def split_rows(trainer, X, targets, validation_data, validation_split):
    """``(training row indices, (X_val, y_val, w_val) or None, held-out indices or None)``
    of ``trainer.fit``: ``validation_data`` checked as the trainer checks its inputs, or
    ``validation_split`` of the rows held out (by ``trainer._split_rng``, stratified by
    ``trainer._strata``)."""
    n = X.shape[0]
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
            raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, "
                             "y_val, val_sample_weight)")
        Xv = trainer._inputs(validation_data[0], "validation_data[0]")
        yv = trainer._targets(validation_data[1], Xv.shape[0], "validation_data[1]")
        wv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            wv = trainer._row_weights(validation_data[2], None, yv)
        return np.arange(n, dtype=np.int64), (Xv, yv, wv), None
    if validation_split == 0.0:
        return np.arange(n, dtype=np.int64), None, None
    train_idx, val_idx = split_indices(n, validation_split, trainer._split_rng(n),
                                       trainer._strata(targets))
    # the held-out indices: the refit gives these rows their sample weights
    return train_idx, (X[val_idx], targets[val_idx], None), val_idx
