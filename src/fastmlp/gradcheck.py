"""Gradient check: backpropagation against central finite differences."""
from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastmlp._validation import as_float_matrix


def _rel_err(analytic, numeric, floor):
    """max |a − n| / max(max |a|, max |n|, floor): the error relative to the tensor's scale,
    or to ``floor`` for a tensor whose gradient is (close to) zero, where central
    differences only measure rounding noise."""
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0), floor)
    if scale == 0.0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def gradient_check(model: Any, loss: Any, X: ArrayLike, y: Optional[ArrayLike],
                   eps: float = 1e-6, check_input: bool = True,
                   regularizers: Sequence[Any] = ()) -> float:
    """Maximum relative error between backprop and central-difference gradients.

    For every parameter θ_i of the arena (and every input X_ij when ``check_input``), the numeric
    gradient is ``(L(θ_i + eps) − L(θ_i − eps)) / (2 eps)`` with ``L = loss(model.forward(X,
    training=True), y) + Σ_r r(model)`` (the penalties in ``regularizers``, whose ``add_grad``
    supplies their part of the analytic gradient, so a penalty is checked with the model). Errors
    are measured per parameter tensor (each W, each b, the input) relative to that tensor's
    largest gradient, ``max |analytic − numeric| / max(max |analytic|, max |numeric|, floor)``,
    and the largest over tensors is returned. The floor, ``1e-3 · max(1, |L|)``, keeps a tensor
    whose true gradient is zero (a bias right before a BatchNorm) from being judged on the
    rounding noise of the differences (about ``1e-16·|L|/eps``). Backprop is right when the
    result is small (< 1e-6 in float64 for smooth functions away from kinks such as ReLU's 0).

    Parameters
    ----------
    model : Sequential or Model
        A float64 model (float32 finite differences are too coarse to judge anything). Every
        forward of the check draws the dropout masks and noise of one training step (the next
        one, ``model.rng_step + 1``), so a stochastic model is checked as the deterministic
        function of that draw. Its parameters, buffers (running statistics) and RNG counter are
        restored exactly afterwards; its gradients hold the analytic gradient of this batch.
    loss : Loss, or list of Loss
        Any fastmlp loss (``loss(pred, y) -> float`` and ``loss.grad(pred, y)``); for a graph
        :class:`~fastmlp.Model` with several outputs, one loss per output (L is their sum).
    X, y : array-like
        One batch; keep it small: the check runs 2 forwards per parameter. For a graph
        Model, X as its ``forward`` takes it (a list for several inputs; every input is
        checked) and y one target per output (a list for several outputs).
    eps : float
        Finite-difference step.
    check_input : bool
        Also check the gradient with respect to X.
    regularizers : sequence
        Penalties (``r(model) -> float``, ``r.add_grad(model)``; e.g. ``L2Penalty``).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, fastmlp as fm
    >>> m = fm.Sequential([fm.Dense(3, 4, activation="tanh"), fm.Dense(4, 2)],
    ...                   dtype="float64", seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 3)); y = np.array([0, 1, 1, 0, 1])
    >>> fm.gradient_check(m, fm.CrossEntropyLoss(), X, y) < 1e-6
    True
    """
    Xs, losses, ys, regularizers = _validate(model, loss, X, y, eps, regularizers)
    objective = _Objective(model, Xs, losses, ys, regularizers)   # saves RNG step, buffers
    analytic, dX, floor = objective.backprop()
    errors = _tensor_errors(model, analytic, _numeric_grad(objective, model.params, eps), floor)
    if check_input:
        errors += [_rel_err(d, _numeric_grad(objective, x, eps), floor) for d, x in zip(dX, Xs)]
    objective.restore()
    return max(errors, default=0.0)


def _validate(model, loss, X, y, eps, regularizers):
    """Check the arguments of :func:`gradient_check`; return the inputs (a list of float64
    copies), the losses and targets (one per output) and the regularizers (a tuple)."""
    if model.dtype != np.float64:
        raise ValueError(f"gradient_check needs a float64 model, got {model.dtype.name}: "
                         "finite differences in float32 are too coarse to be meaningful")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite float, got {eps}")
    graph = getattr(model, "is_graph", False)
    Xs = [x.copy() for x in model._arrays(X)] if graph else \
        [as_float_matrix(X, np.float64, "X", model.n_in).copy()]
    losses, ys = _per_output(model, loss, y) if graph else ([loss], [y])
    regularizers = tuple(regularizers)
    for reg in regularizers:
        if not (callable(reg) and callable(getattr(reg, "add_grad", None))):
            raise TypeError(f"regularizers must be penalties such as L2Penalty(1e-4), "
                            f"got {reg!r}")
    return Xs, losses, ys, regularizers


class _Objective:
    """L = Σ loss(output, target) + Σ_r r(model) as a function of the model's parameters
    and the inputs ``Xs`` (both changed in place by :func:`_numeric_grad`). Made before
    the check's first forward: it saves the RNG step and the buffers, for :meth:`restore`."""

    def __init__(self, model, Xs, losses, ys, regularizers):
        self.model, self.Xs, self.losses, self.ys = model, Xs, losses, ys
        self.regularizers = regularizers
        self.graph = getattr(model, "is_graph", False)
        self.step, self.buffers = model.rng_step, model.buffers.copy()

    def forward(self):
        # every forward draws the masks and noise of one step: one deterministic function
        # (training forwards read no running statistics; they only update them)
        self.model.rng_step = self.step
        out = self.model.forward(self.Xs if self.graph else self.Xs[0], training=True)
        return out if isinstance(out, list) else [out]

    def penalty(self):
        return sum(float(reg(self.model)) for reg in self.regularizers)

    def data_loss(self, outs):
        return sum(float(f(o, t)) for f, o, t in zip(self.losses, outs, self.ys))

    def __call__(self):
        return self.data_loss(self.forward()) + self.penalty()

    def backprop(self):
        """(the analytic gradient of the arena, the gradients of the inputs, the error
        floor ``1e-3 · max(1, |L|)``); the model's gradients hold the first."""
        model = self.model
        model.zero_grad()
        outs = self.forward()
        floor = 1e-3 * max(1.0, abs(self.data_loss(outs) + self.penalty()))
        dY = [f.grad(o, t) for f, o, t in zip(self.losses, outs, self.ys)]
        dX = model.backward(dY if self.graph else dY[0])
        dX = dX if isinstance(dX, list) else [dX]
        for reg in self.regularizers:
            reg.add_grad(model)
        return model.grads.copy(), dX, floor

    def restore(self):
        """One more forward (leaves caches consistent with the analytic gradient), then
        the RNG step and the (public) buffers as saved."""
        self.forward()
        self.model.rng_step = self.step
        _restore_statistics(self.model, self.buffers)


def _tensor_errors(model, analytic, numeric, floor):
    """:func:`_rel_err` of each parameter tensor (each W, each b) of the arena."""
    errors = []
    for p in model.param_info:
        size = int(np.prod(p["shape"], dtype=np.int64))
        sl = slice(p["offset"], p["offset"] + size)
        errors.append(_rel_err(analytic[sl], numeric[sl], floor))
    return errors


def _per_output(model, loss, y):
    """(losses, targets), one per output of a graph model: lists (or dicts by output
    name) for several outputs, as given for one."""
    n = len(model.outputs)
    if n == 1:
        return [loss], [y]
    losses, ys = ([v[name] for name in model.output_names] if isinstance(v, dict) else v
                  for v in (loss, y))
    if not (isinstance(losses, (list, tuple)) and isinstance(ys, (list, tuple))
            and len(losses) == len(ys) == n):
        raise ValueError(f"the model has {n} outputs: give one loss and one target per "
                         "output (lists or dicts by output name)")
    return list(losses), list(ys)


def _numeric_grad(objective, arr, eps):
    """Central differences of ``objective()`` w.r.t. every element of ``arr`` (in place,
    restored exactly)."""
    flat = arr.reshape(-1)
    grad = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        orig = flat[i]
        flat[i] = orig + eps
        plus = objective()
        flat[i] = orig - eps
        minus = objective()
        flat[i] = orig
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(arr.shape)


def _restore_statistics(model, saved):
    """Put back the buffers (running statistics) as ``saved``, but for the private ones
    (names starting with "_", such as the core's 1/std of the last forward), which belong
    to the last forward."""
    for b in model.buffer_info:
        if not b["name"].startswith("_"):
            sl = slice(b["offset"], b["offset"] + int(np.prod(b["shape"], dtype=np.int64)))
            model.buffers[sl] = saved[sl]
