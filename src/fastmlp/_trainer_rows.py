"""What ``Trainer.fit`` makes of its targets and row weights: targets as the loss trains on
them, per-row weights from ``sample_weight`` and ``class_weight``, each row's class."""
import numbers

import numpy as np

from fastmlp._validation import contiguous


def prepare_targets(loss, y, n_out, dtype, n_rows, name="y"):
    """``y`` as ``loss`` trains on it (class labels as int64, else a float matrix of
    ``n_out`` columns), checked to have ``n_rows`` rows; errors name ``name``."""
    if loss.is_classification and n_out > 1:
        arr = np.asarray(y)            # (n, 1) class labels, as scikit-learn and Keras
        if arr.ndim == 2 and arr.shape[1] == 1:
            y = arr[:, 0]
    try:
        t = loss._prepare_target(y, n_out, dtype)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    if t.shape[0] != n_rows:
        raise ValueError(f"{name} has {t.shape[0]} rows but X has {n_rows}")
    return t


def row_weights(loss, n_out, dtype, sample_weight, class_weight, targets):
    """The weight of each row (``sample_weight`` times its class's ``class_weight``) in
    ``dtype``, or None for neither; checked, with the offending value in the message."""
    n = targets.shape[0]
    w = None
    if sample_weight is not None:
        try:
            w = np.asarray(sample_weight, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"sample_weight must be numbers, one per row: {exc}") from None
        if w.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("sample_weight must be finite and >= 0")
    if class_weight is not None:
        cw, labels = _class_weight_table(loss, n_out, class_weight, targets)
        w = cw[labels] if w is None else w * cw[labels]
    return None if w is None else contiguous(w, dtype)


def _class_weight_table(loss, n_out, class_weight, targets):
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
