"""Loss functions, each equal to PyTorch's namesake with its default ``reduction='mean'``.

A loss is called like torch's, ``loss(pred, target)``, on NumPy arrays, and also gives its
gradient with respect to ``pred``: ``loss.grad(pred, target)`` and
``loss.value_and_grad(pred, target)`` (one fused pass of a kernel). The kernel is the
backend's ``loss_value_grad``: the compiled core by default, a model's ``ops`` when given
(``ops=model.ops``, as the training loops do through :func:`loss_value_and_grad`), so a
``backend="numpy"`` model trains on the NumPy twins (``fastmlp.reference.losses``).

Sample weights (``sample_weight=``, one non-negative weight per row) follow Keras'
``sum_over_batch_size``: the weighted sum of the per-row losses is divided by what the
unweighted mean divides by (``n`` rows, times ``d`` outputs for elementwise losses). All-ones
weights give PyTorch's mean; weights are not renormalized, so a mini-batch estimate of the
weighted loss is unbiased. ``sample_weight=None`` is exactly PyTorch's default.
"""
import math
from typing import Any, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from fastmlp._codes import LossCode, Reduction
from fastmlp._ops import OPS, Ops
from fastmlp._serial import register
from fastmlp._validation import as_float_matrix, contiguous
from fastmlp._validation import as_numeric as _as_numeric
from fastmlp.reference.losses import unreduced as _unreduced

__all__ = ["Loss", "MSELoss", "L1Loss", "HuberLoss", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "MultiMarginLoss"]


def _working_dtype(pred):
    """float32 stays float32; everything else (float16, ints, bools, lists) is float64."""
    return np.float32 if getattr(pred, "dtype", None) == np.float32 else np.float64


def _check_sample_weight(sample_weight, n, dtype):
    w = _as_numeric(sample_weight, "sample_weight")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},) (one weight per row of pred), "
                         f"got {w.shape}")
    w = contiguous(w, dtype)
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or infinity")
    if (w < 0).any():
        raise ValueError(f"sample_weight must be >= 0, got {w.min()}")
    return w


_REDUCTIONS = {"mean": Reduction.REDUCTION_MEAN, "sum": Reduction.REDUCTION_SUM, "none": None}


def _check_reduction(reduction):
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid reduction value: {reduction!r} (must be 'mean', 'sum' "
                         "or 'none')")
    return reduction


class Loss:
    """Base class: a loss of predictions ``pred`` (n, d) against targets.

    Subclasses set ``code`` (a ``fastmlp._codes.LossCode``), ``is_classification`` and
    their hyperparameters (``_spec``); the kernel of the backend does the arithmetic.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default="mean"
        PyTorch's reduction over the batch (see the module docstring).

    Every method takes ``ops=``, the backend whose kernel computes the loss
    (``model.ops``); None, the default, is the compiled core.
    """

    code: LossCode
    is_classification: bool = False
    #: Target kind: "values" (same shape as pred), "labels" (class indices) or "either"
    #: (cross-entropy: labels when 1-D, probabilities when 2-D).
    _target_kind = "values"
    reduction = "mean"

    def __init__(self, reduction: str = "mean"):
        self.reduction = _check_reduction(reduction)

    def __call__(self, pred: ArrayLike, target: ArrayLike, *,
                 sample_weight: Optional[ArrayLike] = None,
                 ops: Optional[Ops] = None) -> Union[float, np.ndarray]:
        """Return the (weighted) loss: a Python float, or an array for ``reduction='none'``."""
        return self._evaluate(pred, target, sample_weight, False, ops)[0]

    def grad(self, pred: ArrayLike, target: ArrayLike, *,
             sample_weight: Optional[ArrayLike] = None,
             ops: Optional[Ops] = None) -> np.ndarray:
        """Return ∂loss/∂pred, shaped like pred (float32 for float32 pred, else float64);
        for ``reduction='none'`` the gradient of the sum of the unreduced values."""
        return self._evaluate(pred, target, sample_weight, True, ops)[1]

    def value_and_grad(self, pred: ArrayLike, target: ArrayLike, *,
                       sample_weight: Optional[ArrayLike] = None, ops: Optional[Ops] = None
                       ) -> Tuple[Union[float, np.ndarray], np.ndarray]:
        """Return ``(loss(pred, target), grad(pred, target))`` from one pass."""
        return self._evaluate(pred, target, sample_weight, True, ops)

    # --- for the trainer and the executor ---------------------------------------------------
    def _spec(self, n_outputs: int) -> dict:
        """The ``LossSpec`` of ``_losses.pxd`` as a dict (Cython coerces it to the struct);
        ``reduction='none'`` is given the kernels' 'sum' scale (the gradient of the sum)."""
        red = _REDUCTIONS[self.reduction]
        return {"code": int(self.code), "n_outputs": int(n_outputs), "delta": 1.0,
                "label_smoothing": 0.0, "margin": 1.0,
                "reduction": int(Reduction.REDUCTION_SUM if red is None else red)}

    def _prepare_target(self, target: ArrayLike, n_outputs: int,
                        dtype=np.float64, ops: Optional[Ops] = None) -> np.ndarray:
        """Validate and convert ``target`` once, for a model with ``n_outputs`` outputs
        (``ops``: the backend that checks it for NaN and inf).

        Returns a C-contiguous array the kernels take as is: int64 of shape (n,) for class
        labels (pass it as ``labels``), else ``dtype`` of shape (n, n_outputs) (pass it as
        ``target``). Raises ValueError/TypeError naming ``target``.
        """
        arr = _as_numeric(target, "target")
        if self._target_kind == "labels" or (self._target_kind == "either" and arr.ndim == 1):
            return _labels(arr, n_outputs)
        if arr.ndim == 1 and n_outputs == 1 and self._target_kind == "values":
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != n_outputs:
            raise ValueError(f"target has shape {arr.shape}, expected {self._expected(n_outputs)}")
        with np.errstate(over="ignore"):  # an overflow to inf is reported just below
            return as_float_matrix(arr, dtype, name="target", ops=ops)

    def _expected(self, d):
        if self._target_kind == "either":
            return f"(n,) class labels or (n, {d}) probabilities"
        return f"(n, {d})" + (" or (n,)" if d == 1 else "")

    def _evaluate(self, pred, target, sample_weight, with_grad, ops):
        ops = OPS["core"] if ops is None else ops
        p = as_float_matrix(pred, _working_dtype(pred), name="pred", ops=ops)
        n, d = p.shape
        t = self._prepare_target(target, d, p.dtype, ops)
        if t.shape[0] != n:
            raise ValueError(f"target has {t.shape[0]} rows, pred has {n}")
        w = None if sample_weight is None else _check_sample_weight(sample_weight, n, p.dtype)
        kind = "labels" if t.dtype == np.int64 else "target"
        spec = self._spec(d)
        value, grad = (None, None)
        if with_grad or self.reduction != "none":
            value, grad = ops.loss_value_grad(spec, p, row_weight=w, with_grad=with_grad,
                                              **{kind: t})
        if self.reduction == "none":
            value = _unreduced(spec, p, row_weight=w, **{kind: t})
        return value, grad

    def _repr_args(self) -> str:
        """The constructor arguments for repr (subclasses add their hyperparameters)."""
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repr_args()})"


def _labels(arr, c):
    """Class labels: 1-D, integral values in [0, c) → int64 (checked before any cast)."""
    if arr.ndim != 1:
        raise ValueError(f"target must be 1-D class labels of shape (n,), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("target has no rows")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("target contains NaN or infinity")
        if (arr != np.floor(arr)).any():
            bad = arr[arr != np.floor(arr)][0]
            raise ValueError(f"target holds class labels, got a fractional value {bad}")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= c:
        raise ValueError(f"target must hold class labels in [0, {c}) (pred has {c} columns), "
                         f"got {lo if lo < 0 else hi}")
    return contiguous(arr, np.int64)


def _check_float(value, name, low=-math.inf, high=math.inf, low_open=False):
    """A real number in [low, high] (or (low, high] when low_open), as a float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not (math.isfinite(v) and (v > low if low_open else v >= low) and v <= high):
        bracket = "(" if low_open else "["
        raise ValueError(f"Invalid {name} value: {value!r} (must be in {bracket}{low}, {high}])")
    return v


@register
class MSELoss(Loss):
    """Mean squared error, ``torch.nn.MSELoss()``.

    .. math:: \\ell = \\frac{1}{n d} \\sum_{i=1}^{n} w_i \\sum_{j=1}^{d} (x_{ij} - y_{ij})^2,
              \\qquad \\frac{\\partial \\ell}{\\partial x_{ij}} = \\frac{2 w_i}{n d} (x_{ij} - y_{ij})

    The lectures' :math:`\\tfrac12 \\sum_i \\lVert x_i - y_i \\rVert^2` is
    ``0.5 * MSELoss(reduction="sum")``.

    Examples
    --------
    >>> MSELoss()([[1.0], [2.0]], [1.0, 4.0])
    2.0
    """

    code = LossCode.LOSS_MSE


@register
class L1Loss(Loss):
    """Mean absolute error, ``torch.nn.L1Loss()``.

    .. math:: \\ell = \\frac{1}{n d} \\sum_i w_i \\sum_j |x_{ij} - y_{ij}|,
              \\qquad \\frac{\\partial \\ell}{\\partial x_{ij}} = \\frac{w_i}{n d}
              \\operatorname{sign}(x_{ij} - y_{ij})

    with sign(0) = 0, as torch.

    The lectures' :math:`\\sum_i \\lVert x_i - y_i \\rVert_1` is ``L1Loss(reduction="sum")``.

    Examples
    --------
    >>> L1Loss()([[1.0, 2.0]], [[0.0, 4.0]])
    1.5
    """

    code = LossCode.LOSS_L1


@register
class HuberLoss(Loss):
    """Huber loss, ``torch.nn.HuberLoss(delta=delta)``.

    With :math:`r = x - y`:

    .. math:: h(r) = \\begin{cases} r^2 / 2 & |r| < \\delta \\\\
              \\delta (|r| - \\delta / 2) & \\text{otherwise} \\end{cases}, \\qquad
              \\ell = \\frac{1}{n d} \\sum_i w_i \\sum_j h(r_{ij}),
              \\qquad h'(r) = \\operatorname{clip}(r, -\\delta, \\delta)

    Parameters
    ----------
    delta : float, default=1.0
        Where the loss turns from quadratic to linear; > 0.

    The lectures' :math:`\\sum_{ij} h(r_{ij})` is ``HuberLoss(delta, reduction="sum")``.

    Examples
    --------
    >>> HuberLoss(delta=1.0)([[0.5, 3.0]], [[0.0, 0.0]])
    1.3125
    """

    code = LossCode.LOSS_HUBER

    def __init__(self, delta: float = 1.0, *, reduction: str = "mean"):
        super().__init__(reduction)
        self.delta = _check_float(delta, "delta", low=0.0, low_open=True)

    def _spec(self, n_outputs):
        return {**super()._spec(n_outputs), "delta": self.delta}

    def _repr_args(self):
        return ", ".join(filter(None, [f"delta={self.delta!r}", super()._repr_args()]))


@register
class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, ``torch.nn.BCEWithLogitsLoss()``.

    With logits :math:`x` and targets :math:`y` (usually in [0, 1]), computed stably as

    .. math:: \\ell = \\frac{1}{n d} \\sum_i w_i \\sum_j \\max(x_{ij}, 0) - x_{ij} y_{ij}
              + \\log(1 + e^{-|x_{ij}|}), \\qquad
              \\frac{\\partial \\ell}{\\partial x_{ij}} = \\frac{w_i}{n d}
              (\\sigma(x_{ij}) - y_{ij})

    Finite for any finite logits (e.g. ±1e4).

    The lectures' :math:`-\\sum_i t_i \\log y_i + (1 - t_i) \\log(1 - y_i)` with a sigmoid
    output :math:`y = \\sigma(x)` is ``BCEWithLogitsLoss(reduction="sum")`` on the logits
    :math:`x` (drop the Sigmoid layer).

    Examples
    --------
    >>> round(BCEWithLogitsLoss()([[0.0]], [1.0]), 6)
    0.693147
    """

    code = LossCode.LOSS_BCE_WITH_LOGITS
    is_classification = True


@register
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits, ``torch.nn.CrossEntropyLoss(label_smoothing=...)``.

    The target is either class labels :math:`y_i \\in [0, c)` of shape (n,) (ints, or
    floats with integral values) or probability rows :math:`t_i` of shape (n, c). With
    :math:`q_i = (1 - \\varepsilon)\\, \\mathrm{onehot}(y_i) + \\varepsilon / c` (labels) or
    :math:`q_i = (1 - \\varepsilon)\\, t_i + \\varepsilon / c` (probabilities):

    .. math:: \\ell = \\frac{1}{n} \\sum_i w_i \\sum_j -q_{ij} \\log \\mathrm{softmax}(x_i)_j,
              \\qquad \\frac{\\partial \\ell}{\\partial x_{ij}} = \\frac{w_i}{n}
              \\Big(\\mathrm{softmax}(x_i)_j \\sum_k q_{ik} - q_{ij}\\Big)

    computed with log-sum-exp (finite for logits of ±1e4). Probability rows are used as
    given (PyTorch does not check they sum to 1 either).

    Parameters
    ----------
    label_smoothing : float, default=0.0
        :math:`\\varepsilon \\in [0, 1]`.

    The lectures' :math:`-\\sum_i \\sum_k t_{ik} \\log y_{ik}` with a softmax output
    :math:`y = \\mathrm{softmax}(x)` is ``CrossEntropyLoss(reduction="sum")`` on the logits
    (drop the Softmax layer).

    Examples
    --------
    >>> round(CrossEntropyLoss()([[0.0, 0.0]], [1]), 6)
    0.693147
    """

    code = LossCode.LOSS_CROSS_ENTROPY
    is_classification = True
    _target_kind = "either"

    def __init__(self, label_smoothing: float = 0.0, *, reduction: str = "mean"):
        super().__init__(reduction)
        self.label_smoothing = _check_float(label_smoothing, "label_smoothing", 0.0, 1.0)

    def _spec(self, n_outputs):
        return {**super()._spec(n_outputs), "label_smoothing": self.label_smoothing}

    def _repr_args(self):
        return ", ".join(filter(None, [f"label_smoothing={self.label_smoothing!r}",
                                       super()._repr_args()]))


@register
class MultiMarginLoss(Loss):
    """Multi-class hinge loss, ``torch.nn.MultiMarginLoss(margin=margin)`` (p=1, no weight).

    With class labels :math:`y_i \\in [0, c)` of shape (n,):

    .. math:: \\ell = \\frac{1}{n} \\sum_i \\frac{w_i}{c} \\sum_{j \\ne y_i}
              \\max(0, \\mathrm{margin} - x_{i y_i} + x_{ij})

    Each active term (> 0) adds :math:`w_i / (n c)` to the gradient of :math:`x_{ij}` and
    subtracts it from that of :math:`x_{i y_i}`.

    Parameters
    ----------
    margin : float, default=1.0

    The lectures' multi-class hinge :math:`\\sum_i \\sum_{j \\ne y_i}
    \\max(0, 1 - x_{i y_i} + x_{ij})` is ``c * MultiMarginLoss(reduction="sum")``.

    Examples
    --------
    >>> MultiMarginLoss()([[0.0, 0.5]], [1])
    0.25
    """

    code = LossCode.LOSS_MULTI_MARGIN
    is_classification = True
    _target_kind = "labels"

    def __init__(self, margin: float = 1.0, *, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = _check_float(margin, "margin")

    def _spec(self, n_outputs):
        return {**super()._spec(n_outputs), "margin": self.margin}

    def _repr_args(self):
        return ", ".join(filter(None, [f"margin={self.margin!r}", super()._repr_args()]))


def loss_value_and_grad(loss: Any, pred: ArrayLike, target: ArrayLike, *,
                        sample_weight: Optional[ArrayLike] = None,
                        ops: Optional[Ops] = None, with_grad: bool = True) -> Any:
    """How the training loops call a loss: ``loss.value_and_grad(pred, target)`` (or, with
    ``with_grad=False``, ``loss(pred, target)``) on the backend ``ops`` (the model's).

    A loss with a kernel (a ``_spec``, as every :class:`Loss`) is computed by
    ``ops.loss_value_grad``; any other object with the loss protocol (``value_and_grad``
    and ``__call__`` taking ``sample_weight=``) is called as it is, since it brings its
    own arithmetic.
    """
    kwargs = {"sample_weight": sample_weight}
    if getattr(loss, "_spec", None) is not None:
        kwargs["ops"] = ops
    return loss.value_and_grad(pred, target, **kwargs) if with_grad else loss(pred, target,
                                                                                **kwargs)


#: names a loss may be given by: torch's functional names, Keras' names and aliases. The
#: Keras cross-entropies map onto the fastmlp losses that take logits (the model's last
#: layer then has no softmax/sigmoid) and accept labels or probability rows alike.
LOSSES = {"mse": MSELoss, "mean_squared_error": MSELoss, "mse_loss": MSELoss,
          "mae": L1Loss, "mean_absolute_error": L1Loss, "l1": L1Loss, "l1_loss": L1Loss,
          "huber": HuberLoss, "huber_loss": HuberLoss,
          "cross_entropy": CrossEntropyLoss, "categorical_crossentropy": CrossEntropyLoss,
          "sparse_categorical_crossentropy": CrossEntropyLoss,
          "binary_crossentropy": BCEWithLogitsLoss, "bce_with_logits": BCEWithLogitsLoss,
          "binary_cross_entropy_with_logits": BCEWithLogitsLoss,
          "multi_margin": MultiMarginLoss, "multi_margin_loss": MultiMarginLoss}


def get_loss(loss: Union[str, "Loss", type], **kwargs: Any) -> Loss:
    """A loss from an instance (returned as is, as is any object with the loss protocol,
    such as ``loss.value_and_grad(pred, target)``), a class (instantiated with
    ``kwargs``) or
    a name: a class name (``"CrossEntropyLoss"``) or one of ``LOSSES`` (Keras' and torch's
    names, case-insensitive), as :func:`fastmlp.optim.get_optimizer` takes optimizers.

    Examples
    --------
    >>> get_loss("categorical_crossentropy")
    CrossEntropyLoss()
    """
    if isinstance(loss, Loss) or (not isinstance(loss, (type, str)) and
                                  callable(getattr(loss, "value_and_grad", None))):
        if kwargs:
            raise ValueError(f"arguments {sorted(kwargs)} given with a loss instance {loss!r}")
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss) and loss is not Loss:
        return loss(**kwargs)
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a Loss, a Loss class or a name such as 'mse', got "
                        f"{loss!r:.80}")
    by_class = {name.lower(): globals()[name] for name in __all__ if name != "Loss"}
    cls = LOSSES.get(loss.lower(), by_class.get(loss.lower()))
    if cls is None:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)} or a class "
                         f"name ({', '.join(n for n in __all__ if n != 'Loss')})")
    return cls(**kwargs)
