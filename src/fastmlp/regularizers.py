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

import numpy as np

from fastmlp import _regularize
from fastmlp.reference import regularize as _reference

__all__ = ["Penalty", "L1Penalty", "L2Penalty", "ElasticNet", "Constraint", "MaxNorm",
           "NonNeg"]


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


class Penalty:
    """Elastic penalty :math:`\\ell_1 \\sum|\\theta| + \\frac{\\ell_2}{2}\\sum\\theta^2` over
    the weights (and the biases when ``include_bias``); the base of the named penalties.

    Parameters
    ----------
    l1, l2 : float
        Coefficients, finite and >= 0.
    include_bias : bool
        Penalize parameters of role "bias" too. Role "other" (PReLU slopes, ...) never is.
    """

    def __init__(self, l1=0.0, l2=0.0, include_bias=False):
        self.l1 = _check_coef(l1, "l1")
        self.l2 = _check_coef(l2, "l2")
        self.include_bias = bool(include_bias)

    def _roles(self):
        return ("weight", "bias") if self.include_bias else ("weight",)

    def _ranges(self, model, layers=None):
        """Arena ranges ``(offset, size, l1, l2)`` for the core executor: the penalized
        parameters of ``model`` (of the layer indices ``layers`` only, when given), sorted by
        offset, adjacent ones merged."""
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
        return [(off, n, self.l1, self.l2) for off, n in ranges]

    def _run(self, model, layers, grads):
        ranges = self._ranges(model, layers)
        if getattr(model, "backend", "core") == "numpy":
            return _reference.penalties_apply(ranges, model.params, grads)
        return _regularize.penalties_apply_memview(ranges, model.params, grads)

    def __call__(self, model, layers=None) -> float:
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

    def add_grad(self, model, layers=None) -> None:
        """Add :math:`\\nabla R(\\theta)` into ``model.grads`` (in place); ``layers`` as in
        :meth:`__call__`."""
        self._run(model, layers, model.grads)

    def _args(self):
        return f"l1={self.l1!r}, l2={self.l2!r}"

    def __repr__(self):
        bias = ", include_bias=True" if self.include_bias else ""
        return f"{type(self).__name__}({self._args()}{bias})"


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

    def __init__(self, lam, include_bias=False):
        super().__init__(l2=_check_coef(lam, "lam"), include_bias=include_bias)

    @property
    def lam(self):
        return self.l2

    def _args(self):
        return f"lam={self.l2!r}"


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
    """

    def __init__(self, lam, include_bias=False):
        super().__init__(l1=_check_coef(lam, "lam"), include_bias=include_bias)

    @property
    def lam(self):
        return self.l1

    def _args(self):
        return f"lam={self.l1!r}"


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
    """

    def __init__(self, l1, l2, include_bias=False):
        super().__init__(l1=l1, l2=l2, include_bias=include_bias)


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

    def apply(self, W, backend="core"):
        """Project ``W`` in place and return it; ``backend="numpy"`` uses the reference."""
        raise NotImplementedError

    def _value(self):
        return 0.0

    def _range(self, offset, n_in, n_out):
        """The row ``(kind, offset, n_in, n_out, value)`` of the core executor's constraint
        table for the (n_in, n_out) matrix at ``offset`` in the arena."""
        return (int(self.kind), int(offset), int(n_in), int(n_out), self._value())


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

    kind = _regularize.ConstraintKind.C_MAXNORM

    def __init__(self, max_value=3.0):
        self.max_value = _check_coef(max_value, "max_value")

    def _value(self):
        return self.max_value

    def apply(self, W, backend="core"):
        W = _check_weights(W)
        if W.ndim != 2:
            raise ValueError(f"MaxNorm needs a 2-D weight matrix, got shape {W.shape}")
        if backend == "numpy":
            _reference.maxnorm_columns(W, self.max_value)
        else:
            _regularize.maxnorm_columns_memview(W, self.max_value)
        return W

    def __repr__(self):
        return f"MaxNorm(max_value={self.max_value!r})"


class NonNeg(Constraint):
    """Non-negative weights: :math:`w \\leftarrow \\max(w, 0)` elementwise after each update."""

    kind = _regularize.ConstraintKind.C_NONNEG

    def apply(self, W, backend="core"):
        W = _check_weights(W)
        flat = W.reshape(-1)
        if backend == "numpy":
            _reference.nonneg(flat)
        else:
            _regularize.nonneg_memview(flat)
        return W

    def __repr__(self):
        return "NonNeg()"
