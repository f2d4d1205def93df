"""Metrics for the Trainer: by name or as callables ``f(y_true, y_pred) -> float``.

``y_pred`` is what the network means, not its raw output: probabilities for
classification losses (softmax of the logits for cross-entropy, sigmoid for
BCE-with-logits) and the outputs themselves for regression (see :func:`link`).
``y_true`` is the target as the loss takes it (class labels, probability rows, values).
"""
from typing import Any, List, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from fastmlp._typing import MetricFn
from fastmlp.reference.activations import sigmoid
from fastmlp.reference.layers import softmax_forward


def link(loss: Any, outputs: np.ndarray) -> np.ndarray:
    """Map raw network outputs to what they predict under ``loss``."""
    name = type(loss).__name__
    if name in ("CrossEntropyLoss", "MultiMarginLoss"):
        return softmax_forward(outputs.astype(np.float64))
    if name == "BCEWithLogitsLoss":
        return sigmoid(outputs.astype(np.float64))
    return outputs


def _labels(y_true):
    y = np.asarray(y_true)
    return y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of rows predicted right: argmax for several classes, p > 0.5 for one output
    (and elementwise for multi-label 0/1 targets of several columns)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        if y_true.ndim == 2 and y_true.shape == y_pred.shape and _is_multilabel(y_true):
            return float(((y_pred > 0.5) == (y_true > 0.5)).all(axis=1).mean())
        return float((y_pred.argmax(axis=1) == _labels(y_true)).mean())
    return float(((y_pred.reshape(-1) > 0.5) == (y_true.reshape(-1) > 0.5)).mean())


def _is_multilabel(y):
    return bool(((y == 0) | (y == 1)).all() and (y.sum(axis=1) != 1).any())


def top_k_accuracy(y_true: ArrayLike, y_pred: ArrayLike, k: int = 5) -> float:
    """Share of rows whose true class is among the k highest scores."""
    y_pred = np.asarray(y_pred)
    k = min(k, y_pred.shape[1])
    top = np.argpartition(-y_pred, k - 1, axis=1)[:, :k]
    return float((top == _labels(y_true)[:, None]).any(axis=1).mean())


def mse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean squared error over all elements."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return float(((y_pred - np.asarray(y_true).reshape(y_pred.shape)) ** 2).mean())


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error over all elements."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return float(np.abs(y_pred - np.asarray(y_true).reshape(y_pred.shape)).mean())


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination, averaged uniformly over outputs (as scikit-learn)."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(scores.mean())


def log_loss(y_true: ArrayLike, y_pred: ArrayLike, eps: float = 1e-15) -> float:
    """Cross-entropy of probability predictions (clipped to [eps, 1 − eps])."""
    p = np.clip(np.asarray(y_pred, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y_true)
    if p.ndim == 2 and p.shape[1] > 1:
        if y.ndim == 2 and y.shape == p.shape:
            return float(-(y * np.log(p)).sum(axis=1).mean())
        return float(-np.log(p[np.arange(p.shape[0]), y.astype(np.int64)]).mean())
    p, y = p.reshape(-1), y.reshape(-1).astype(np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def _labels_and_scores(y_true, y_pred):
    """``(true class per row, scores (n, k) with k >= 2)``: a single output is the
    probability of class 1; targets may be labels, probability rows or 0/1 values."""
    p = np.asarray(y_pred, dtype=np.float64)
    p = p.reshape(-1, 1) if p.ndim == 1 else p
    if p.shape[1] == 1:
        p = np.hstack([1 - p, p])
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    else:
        y = y.reshape(-1)
        y = (y > 0.5) if y.dtype.kind == "f" else y
    return y.astype(np.int64), p


def _confusion_counts(y_true, y_pred):
    """Per class: (true positives, false positives, false negatives), and whether the task
    is binary (then the scores of class 1 are reported, as scikit-learn's average="binary")."""
    y, p = _labels_and_scores(y_true, y_pred)
    k = p.shape[1]
    pred = p.argmax(axis=1)
    tp = np.bincount(y[pred == y], minlength=k)[:k].astype(np.float64)
    fp = np.bincount(pred, minlength=k)[:k] - tp
    fn = np.bincount(y, minlength=k)[:k] - tp
    return tp, fp, fn, k == 2


def _ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _average(per_class, binary, macro):
    return float(per_class.mean() if macro or not binary else per_class[1])


def precision(y_true: ArrayLike, y_pred: ArrayLike, macro: bool = False) -> float:
    """tp / (tp + fp): of class 1 for a binary task, else the unweighted mean over classes
    (scikit-learn's ``average="binary"`` / ``"macro"``, 0 where nothing was predicted)."""
    tp, fp, _, binary = _confusion_counts(y_true, y_pred)
    return _average(_ratio(tp, tp + fp), binary, macro)


def recall(y_true: ArrayLike, y_pred: ArrayLike, macro: bool = False) -> float:
    """tp / (tp + fn), averaged as :func:`precision`."""
    tp, _, fn, binary = _confusion_counts(y_true, y_pred)
    return _average(_ratio(tp, tp + fn), binary, macro)


def f1(y_true: ArrayLike, y_pred: ArrayLike, macro: bool = False) -> float:
    """2 tp / (2 tp + fp + fn), averaged as :func:`precision` (the macro F1 is the mean of
    the per-class F1 scores, as scikit-learn's)."""
    tp, fp, fn, binary = _confusion_counts(y_true, y_pred)
    return _average(_ratio(2 * tp, 2 * tp + fp + fn), binary, macro)


def precision_macro(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """:func:`precision` averaged over the classes, also for a binary task."""
    return precision(y_true, y_pred, macro=True)


def recall_macro(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """:func:`recall` averaged over the classes, also for a binary task."""
    return recall(y_true, y_pred, macro=True)


def f1_macro(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """:func:`f1` averaged over the classes, also for a binary task."""
    return f1(y_true, y_pred, macro=True)


def auc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Area under the ROC curve: of class 1 for a binary task, else the unweighted mean of
    the one-vs-rest areas (scikit-learn's ``roc_auc_score(multi_class="ovr")``); ties count
    half (average ranks). NaN when a class is missing from ``y_true``."""
    from scipy.stats import rankdata
    y, p = _labels_and_scores(y_true, y_pred)
    classes = [1] if p.shape[1] == 2 else range(p.shape[1])
    areas = []
    for c in classes:
        pos = y == c
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        ranks = rankdata(p[:, c])
        areas.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(areas))


METRICS = {"accuracy": accuracy, "acc": accuracy, "top_k_accuracy": top_k_accuracy,
           "mse": mse, "mae": mae, "r2": r2, "log_loss": log_loss, "auc": auc,
           "precision": precision, "recall": recall, "f1": f1,
           "precision_macro": precision_macro, "recall_macro": recall_macro,
           "f1_macro": f1_macro}
#: scikit-learn metrics that take scores (probabilities); its others take class labels
_SKLEARN_SCORE_METRICS = {"roc_auc_score", "log_loss", "brier_score_loss",
                          "average_precision_score", "top_k_accuracy_score", "d2_log_loss_score",
                          "label_ranking_average_precision_score", "coverage_error",
                          "label_ranking_loss", "ndcg_score", "dcg_score", "hinge_loss"}


def call_metric(fn: MetricFn, y_true: ArrayLike, y_pred: ArrayLike,
                classification: bool) -> float:
    """``fn(y_true, y_pred)``, except that a scikit-learn classification metric gets what it
    takes: class labels for ``y_true``, and class predictions for ``y_pred`` (scores, with
    a single output squeezed, for those of ``_SKLEARN_SCORE_METRICS``)."""
    module = getattr(fn, "__module__", None) or ""
    if not (classification and module.startswith("sklearn.metrics")):
        return fn(y_true, y_pred)
    y, p = _labels_and_scores(y_true, y_pred)
    if getattr(fn, "__name__", "") in _SKLEARN_SCORE_METRICS:
        raw = np.asarray(y_pred)
        return fn(y, raw.reshape(-1) if raw.ndim == 2 and raw.shape[1] == 1 else raw)
    return fn(y, p.argmax(axis=1))


def get_metrics(metrics: Any) -> List[Tuple[str, MetricFn]]:
    """``[(name, function), ...]`` from what a Trainer's ``metrics`` may be: one metric (a
    name, a callable), a list of them, or a dict ``{name: metric}`` that names them (how
    a lambda gets a name that save/load can use)."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        return [get_metric(metrics)]
    if isinstance(metrics, dict):
        for name in metrics:
            if not isinstance(name, str) or not name:
                raise TypeError(f"metrics dict keys must be names (str), got {name!r}")
        return [(name, get_metric(m)[1]) for name, m in metrics.items()]
    try:
        return [get_metric(m) for m in metrics]
    except TypeError:
        raise TypeError(f"metrics must be a name, a callable, a list of them or a dict "
                        f"{{name: metric}}, got {metrics!r:.80}") from None


def get_metric(metric: Union[str, MetricFn, type]) -> Tuple[str, MetricFn]:
    """``(name, function)`` for a metric name (``"top_3_accuracy"`` sets k), a callable
    ``f(y_true, y_pred)``, or a class whose instances are such callables."""
    if isinstance(metric, type):
        try:
            metric = metric()
        except TypeError as exc:
            raise TypeError(f"metric class {metric.__name__} must be constructible without "
                            f"arguments: {exc}") from None
    if callable(metric):
        return getattr(metric, "__name__", type(metric).__name__), metric
    if isinstance(metric, str):
        if metric.startswith("top_") and metric.endswith("_accuracy") and metric[4:-9].isdigit():
            k = int(metric[4:-9])
            return metric, lambda y, p: top_k_accuracy(y, p, k=k)
        if metric in METRICS:
            return metric, METRICS[metric]
    raise ValueError(f"metrics entries must be callables or one of {sorted(METRICS)} "
                     f"(or 'top_K_accuracy'); got {metric!r}")


def _unique_names(metrics):
    """Callables without a name (lambdas) get distinct keys: metric, metric_2, ..."""
    seen, out = {}, []
    for name, fn in metrics:
        if name == "<lambda>":
            name = "metric"
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", fn))
    return out
