"""Weight penalties (added to the loss) and weight constraints (applied after each update).

Penalties
---------
A penalty adds :math:`R(\\theta)` to the training loss and :math:`\\nabla R` to the gradients:

.. math::

    R(\\theta) = \\ell_1 \\sum_i |\\theta_i| + \\frac{\\ell_2}{2} \\sum_i \\theta_i^2, \\qquad
    \\frac{\\partial R}{\\partial \\theta_i} = \\ell_1 \\operatorname{sign}(\\theta_i)
    + \\ell_2 \\theta_i,

with the subgradient :math:`\\operatorname{sign}(0) = 0` at the kink of :math:`|\\theta|`.
The sum runs over the parameters whose role is ``"weight"`` (the weight matrices), plus
``"bias"`` when ``include_bias=True``; parameters of role ``"other"`` (e.g. PReLU slopes) are
never penalized. L2 prefers many small weights, L1 prefers few non-zero ones.

Use them model-wide through ``Trainer(..., regularizers=[L2Penalty(1e-4)])``, or for one
layer through ``Dense(..., regularizer=...)``; the model-level calls take ``layers=`` to
restrict a penalty to some layer indices.

Constraints
-----------
A constraint projects a layer's weight matrix after the optimizer update: :class:`MaxNorm`
(the incoming weights of every unit, a column of ``W``, inside an L2 ball) and
:class:`NonNeg` (every weight >= 0).
"""
import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from fastmlp._codes import ConstraintKind
from fastmlp._ops import get_ops, ops_of
from fastmlp._serial import register

__all__ = ["Penalty", "L1Penalty", "L2Penalty", "ElasticNet", "TyingPenalty", "Constraint",
           "MaxNorm", "NonNeg", "sparsity"]


def _check_coef(value, name):
    """A finite real number >= 0, as a float; the argument's name in the error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _layer_set(model, layers):
    """None (every layer) or the set of selected layer indices (negatives counted from the
    end when the model has ``layers``)."""
    if layers is None:
        return None
    if isinstance(layers, numbers.Integral):
        layers = [layers]
    seq = getattr(model, "flat_layers", getattr(model, "layers", None))
    n = len(seq) if seq is not None else None
    out = set()
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"layers must hold layer indices, got {i!r}")
        if n is not None:
            if not -n <= i < n:
                raise ValueError(f"layer index {i} is out of range for a model of {n} layers")
            i %= n
        out.add(int(i))
    return out


@register
class Penalty:
    """Elastic penalty :math:`\\ell_1 \\sum|\\theta| + \\frac{\\ell_2}{2}\\sum\\theta^2` over
    the weights (and the biases when ``include_bias``); the base of the named penalties.

    Parameters
    ----------
    l1, l2 : float
        Coefficients, finite and >= 0.
    include_bias : bool
        Penalize parameters of role "bias" too. Role "other" (PReLU slopes, ...) never is.
    proximal : bool
        Apply the L1 term as a proximal step after each optimizer update instead of
        adding its subgradient: :math:`\\theta_i \\leftarrow \\operatorname{sign}(\\theta_i)
        \\max(|\\theta_i| - \\eta \\ell_1, 0)` with :math:`\\eta` the optimizer's ``lr``
        (the soft threshold of the lecture's :math:`w_i = \\operatorname{sign}(w_i^*)
        \\max(|w_i^*| - \\alpha / H_{ii}, 0)`, with :math:`1/H_{ii}` the step size). Weights
        whose magnitude falls under the threshold become exactly 0 (the subgradient only
        makes them oscillate around 0). For SGD :math:`\\eta` is the step size exactly; for
        adaptive optimizers (Adam, RMSprop, Adagrad, ...) the per-weight step
        :math:`\\eta / (\\sqrt{\\hat v_i} + \\epsilon)` differs from ``lr``, and the threshold
        is still :math:`\\eta \\ell_1` (as in proximal Adam variants that do not rescale
        it): the penalty then acts with strength :math:`\\ell_1` measured in units of
        ``lr``. The value of the L1 term is still added to the loss.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0, include_bias: bool = False,
                 proximal: bool = False):
        self.l1 = _check_coef(l1, "l1")
        self.l2 = _check_coef(l2, "l2")
        self.include_bias = bool(include_bias)
        if proximal not in (True, False):
            raise TypeError(f"proximal must be True or False, got {proximal!r}")
        self.proximal = bool(proximal)

    def _roles(self):
        return ("weight", "bias") if self.include_bias else ("weight",)

    def _spans(self, model, layers=None):
        """Arena spans ``[offset, size]`` of the penalized parameters of ``model`` (of the
        layer indices ``layers`` only, when given), sorted by offset, adjacent ones merged."""
        keep, roles = _layer_set(model, layers), self._roles()
        spans = sorted((p["offset"], int(np.prod(p["shape"], dtype=np.int64)))
                       for p in model.param_info
                       if p["role"] in roles and (keep is None or p["layer"] in keep))
        ranges = []
        for off, n in spans:
            if n == 0:
                continue
            if ranges and ranges[-1][0] + ranges[-1][1] == off:
                ranges[-1][1] += n
            else:
                ranges.append([off, n])
        return ranges

    def _ranges(self, model, layers=None):
        """Rows ``(offset, size, l1, l2)`` of the core's penalty table
        (``fastmlp._regularize``); when proximal, ``(offset, size, 0, l2, l1, -1, 0)``:
        the L1 term in ``l1_prox`` (its value only)."""
        spans = self._spans(model, layers)
        if self.proximal:
            return [(off, n, 0.0, self.l2, self.l1, -1, 0.0) for off, n in spans]
        return [(off, n, self.l1, self.l2) for off, n in spans]

    def _prox_rows(self, model, layers=None):
        """``(offset, size, l1)`` of the spans soft-thresholded after each update."""
        if not (self.proximal and self.l1):
            return []
        return [(off, n, self.l1) for off, n in self._spans(model, layers)]

    def prox(self, model: Any, lr: float, layers: Optional[Sequence[int]] = None) -> None:
        """The proximal step of the L1 term: ``w ← sign(w)·max(|w| − lr·l1, 0)`` on the
        penalized parameters of ``model`` (nothing unless ``proximal``)."""
        for off, n, l1 in self._prox_rows(model, layers):
            ops_of(model).soft_threshold(model.params[off:off + n], lr * l1)

    def _run(self, model, layers, grads):
        return ops_of(model).penalties_apply(self._ranges(model, layers), model.params, grads)

    def __call__(self, model: Any, layers: Optional[Sequence[int]] = None) -> float:
        """The penalty's value :math:`R(\\theta)` at the model's current parameters.

        Parameters
        ----------
        model : Sequential
            Any object with ``params``, ``param_info`` (and ``grads`` for add_grad).
        layers : int, sequence of int or None
            Restrict the penalty to these layer indices (None: every layer).

        Returns
        -------
        float
        """
        return float(self._run(model, layers, None))

    def add_grad(self, model: Any, layers: Optional[Sequence[int]] = None) -> None:
        """Add :math:`\\nabla R(\\theta)` into ``model.grads`` (in place); ``layers`` as in
        :meth:`__call__`."""
        self._run(model, layers, model.grads)

    def _args(self):
        return f"l1={self.l1!r}, l2={self.l2!r}"

    def __repr__(self):
        bias = ", include_bias=True" if self.include_bias else ""
        prox = ", proximal=True" if self.proximal else ""
        return f"{type(self).__name__}({self._args()}{bias}{prox})"


@register
class L2Penalty(Penalty):
    """L2 penalty (weight decay in the loss): :math:`R(\\theta) = \\frac{\\lambda}{2}
    \\sum_i \\theta_i^2`, :math:`\\nabla R = \\lambda \\theta`.

    Parameters
    ----------
    lam : float
        :math:`\\lambda`, finite and >= 0.
    include_bias : bool
        Penalize the biases too (default: weights only; PReLU slopes never).

    Examples
    --------
    >>> import fastmlp
    >>> model = fastmlp.Sequential([fastmlp.Dense(3, 1, bias=False)], dtype="float64")
    >>> model[0].W[:, 0] = [0.25, 0.5, 0.25]
    >>> L2Penalty(lam=2.0)(model)   # Σθ²
    0.375
    """

    def __init__(self, lam: float, include_bias: bool = False):
        super().__init__(l2=_check_coef(lam, "lam"), include_bias=include_bias)

    @property
    def lam(self) -> float:
        return self.l2

    def _args(self):
        return f"lam={self.l2!r}"


@register
class L1Penalty(Penalty):
    """L1 penalty (lasso): :math:`R(\\theta) = \\lambda \\sum_i |\\theta_i|`,
    :math:`\\nabla R = \\lambda \\operatorname{sign}(\\theta)` with sign(0) = 0.

    Parameters
    ----------
    lam : float
        :math:`\\lambda`, finite and >= 0.
    include_bias : bool
        Penalize the biases too (default: weights only; PReLU slopes never).

    Examples
    --------
    >>> import fastmlp
    >>> model = fastmlp.Sequential([fastmlp.Dense(3, 1, bias=False)], dtype="float64")
    >>> model[0].W[:, 0] = [0.0, 0.75, 0.0]
    >>> L1Penalty(1.0)(model)
    0.75

    ``L1Penalty(lam, proximal=True)`` soft-thresholds after each update instead (exact
    zeros; see :class:`Penalty` for the step size).
    """

    def __init__(self, lam: float, include_bias: bool = False, proximal: bool = False):
        super().__init__(l1=_check_coef(lam, "lam"), include_bias=include_bias,
                         proximal=proximal)

    @property
    def lam(self) -> float:
        return self.l1

    def _args(self):
        return f"lam={self.l1!r}"


@register
class ElasticNet(Penalty):
    """Elastic net: :math:`R(\\theta) = \\ell_1 \\sum_i |\\theta_i| + \\frac{\\ell_2}{2}
    \\sum_i \\theta_i^2`, :math:`\\nabla R = \\ell_1 \\operatorname{sign}(\\theta) + \\ell_2
    \\theta`.

    Parameters
    ----------
    l1, l2 : float
        Coefficients, finite and >= 0.
    include_bias : bool
        Penalize the biases too (default: weights only; PReLU slopes never).
    proximal : bool
        The L1 term as a soft threshold after each update (see :class:`Penalty`); the L2
        term stays in the gradient.
    """

    def __init__(self, l1: float, l2: float, include_bias: bool = False,
                 proximal: bool = False):
        super().__init__(l1=l1, l2=l2, include_bias=include_bias, proximal=proximal)


@register
class TyingPenalty(Penalty):
    """Soft parameter tying: :math:`R = \\lambda \\lVert W_a - W_b \\rVert^2` (plus
    :math:`\\lambda \\lVert b_a - b_b \\rVert^2` with ``include_bias``), the lecture's
    :math:`\\Omega(w^{(A)} - w^{(B)})`: two layers are pulled towards each other instead
    of sharing their weights outright (hard sharing is ``Dense(..., tied_to=other)``).

    .. math:: \\frac{\\partial R}{\\partial W_a} = 2 \\lambda (W_a - W_b), \\qquad
              \\frac{\\partial R}{\\partial W_b} = -2 \\lambda (W_a - W_b)

    Use it in ``Trainer(..., regularizers=[...])``; it runs in the fused training step.

    Parameters
    ----------
    layer_a, layer_b : Dense
        Two distinct layers of the same model whose weights have the same shape.
    lam : float
        :math:`\\lambda`, finite and >= 0.
    include_bias : bool
        Tie the biases too (both layers need one).

    Examples
    --------
    >>> import fastmlp
    >>> a, b = fastmlp.Dense(2, 2, bias=False), fastmlp.Dense(2, 2, bias=False)
    >>> model = fastmlp.Sequential([a, b], dtype="float64")
    >>> a.W[...] = 1.0; b.W[...] = 0.5
    >>> TyingPenalty(a, b, lam=0.1)(model)   # 0.1 · 4 · 0.5²
    0.1
    """

    def __init__(self, layer_a: Any, layer_b: Any, lam: float, include_bias: bool = False):
        from fastmlp.layers.dense import Dense
        for name, layer in (("layer_a", layer_a), ("layer_b", layer_b)):
            if not isinstance(layer, Dense):
                raise TypeError(f"{name} must be a Dense layer, got {layer!r}")
            if layer.tied_to is not None:
                raise ValueError(f"{name} shares the weights of another layer (tied_to): "
                                 "tie the layer that owns them")
            if include_bias and not layer.bias:
                raise ValueError(f"include_bias=True needs biases, and {name} has none")
        if layer_a is layer_b:
            raise ValueError("layer_b must be another layer than layer_a")
        sa, sb = (layer_a.n_in, layer_a.n_out), (layer_b.n_in, layer_b.n_out)
        if sa != sb:
            raise ValueError(f"layer_a has weights of shape {sa} and layer_b of shape {sb}: "
                             "tied layers need the same shape")
        super().__init__(include_bias=include_bias)
        self.layer_a, self.layer_b = layer_a, layer_b
        self.lam = _check_coef(lam, "lam")

    def _ranges(self, model, layers=None):
        """One penalty-table row per tied tensor: ``(offset_a, size, 0, 0, 0, offset_b,
        lam)`` (``layers`` is ignored: the penalty names its layers)."""
        index = {id(layer): i for i, layer in enumerate(getattr(model, "flat_layers", ()))}
        if id(self.layer_a) not in index or id(self.layer_b) not in index:
            raise ValueError("TyingPenalty: layer_a or layer_b is not in the model")
        ia, ib = index[id(self.layer_a)], index[id(self.layer_b)]
        where = {(p["layer"], p["name"]): (p["offset"], int(np.prod(p["shape"])))
                 for p in model.param_info}
        names = ("W", "b") if self.include_bias else ("W",)
        return [(where[ia, k][0], where[ia, k][1], 0.0, 0.0, 0.0, where[ib, k][0], self.lam)
                for k in names]

    def __repr__(self):
        bias = ", include_bias=True" if self.include_bias else ""
        return f"TyingPenalty(lam={self.lam!r}{bias})"


def sparsity(model: Any, include_bias: bool = False) -> dict:
    """Fraction of exactly-zero parameters per weight tensor (and bias with
    ``include_bias``), keyed ``"<layer index>.<name>"`` (indices of ``model.flat_layers``).

    Examples
    --------
    >>> import fastmlp
    >>> model = fastmlp.Sequential([fastmlp.Dense(2, 1, bias=False)], dtype="float64")
    >>> model[0].W[:, 0] = [0.0, 1.5]
    >>> fastmlp.sparsity(model)
    {'0.W': 0.5}
    """
    info = getattr(model, "param_info", None)
    if info is None or not hasattr(model, "params"):
        raise TypeError(f"model must be a fastmlp model (params and param_info), got "
                        f"{type(model).__name__}")
    roles = ("weight", "bias") if include_bias else ("weight",)
    out = {}
    for p in info:
        size = int(np.prod(p["shape"], dtype=np.int64))
        if p["role"] in roles and size:
            w = model.params[p["offset"]:p["offset"] + size]
            out[f"{p['layer']}.{p['name']}"] = float(np.count_nonzero(w == 0) / size)
    return out


# --- constraints --------------------------------------------------------------------------

def _check_weights(W, name="W"):
    if not isinstance(W, np.ndarray) or W.dtype not in (np.float32, np.float64):
        got = f"{type(W).__name__} {getattr(W, 'dtype', '')}".rstrip()
        raise TypeError(f"{name} must be a float32 or float64 ndarray, got {got}")
    if not W.flags.c_contiguous or not W.flags.writeable:
        raise TypeError(f"{name} must be C-contiguous and writeable (it is changed in place)")
    return W


class Constraint:
    """A projection applied to a layer's weights after every optimizer update."""

    kind = None

    def apply(self, W: np.ndarray, backend: str = "core") -> np.ndarray:
        """Project ``W`` in place and return it, with the kernel of ``backend`` ("core",
        or "numpy": the reference; see :func:`fastmlp._ops.get_ops`)."""
        raise NotImplementedError

    def _value(self):
        return 0.0

    def _range(self, offset, n_in, n_out):
        """The row ``(kind, offset, n_in, n_out, value)`` of the core executor's constraint
        table for the (n_in, n_out) matrix at ``offset`` in the arena."""
        return (int(self.kind), int(offset), int(n_in), int(n_out), self._value())


@register
class MaxNorm(Constraint):
    """Max-norm on the incoming weights of every unit (Srebro & Shraibman, 2005; used with
    dropout by Srivastava et al., 2014).

    For ``W`` of shape (n_in, n_out), column :math:`w_j` = ``W[:, j]`` holds the incoming
    weights of unit j; after each update

    .. math:: w_j \\leftarrow w_j \\cdot \\frac{c}{\\lVert w_j \\rVert_2}
              \\quad \\text{if } \\lVert w_j \\rVert_2 > c,

    i.e. the projection onto the ball of radius c. Columns inside the ball are left exactly
    as they are (Keras instead multiplies every column by ``clip(‖w‖, 0, c) / (eps + ‖w‖)``,
    which also shrinks them slightly).

    Parameters
    ----------
    max_value : float
        The radius c, finite and >= 0.
    """

    kind = ConstraintKind.C_MAXNORM

    def __init__(self, max_value: float = 3.0):
        self.max_value = _check_coef(max_value, "max_value")

    def _value(self):
        return self.max_value

    def apply(self, W: np.ndarray, backend: str = "core") -> np.ndarray:
        W = _check_weights(W)
        if W.ndim != 2:
            raise ValueError(f"MaxNorm needs a 2-D weight matrix, got shape {W.shape}")
        get_ops(backend).maxnorm_columns(W, self.max_value)
        return W

    def __repr__(self):
        return f"MaxNorm(max_value={self.max_value!r})"


@register
class NonNeg(Constraint):
    """Non-negative weights: :math:`w \\leftarrow \\max(w, 0)` elementwise after each update."""

    kind = ConstraintKind.C_NONNEG

    def apply(self, W: np.ndarray, backend: str = "core") -> np.ndarray:
        W = _check_weights(W)
        flat = W.reshape(-1)
        get_ops(backend).nonneg(flat)
        return W

    def __repr__(self):
        return "NonNeg()"
