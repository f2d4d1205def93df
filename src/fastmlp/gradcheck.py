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

    For every parameter θ_i of the arena (and every input X_ij when ``check_input``),
    the numeric gradient is ``(L(θ_i + eps) − L(θ_i − eps)) / (2 eps)`` with
    ``L = loss(model.forward(X, training=True), y) + Σ_r r(model)`` (the penalties in
    ``regularizers``, whose ``add_grad`` supplies their part of the analytic gradient, so
    a penalty is checked with the model). Errors are measured per parameter
    tensor (each W, each b, the input) relative to that tensor's largest gradient,
    ``max |analytic − numeric| / max(max |analytic|, max |numeric|, floor)``, and the
    largest over tensors is returned. The floor, ``1e-3 · max(1, |L|)``, keeps a tensor
    whose true gradient is zero (a bias right before a BatchNorm) from being judged on the
    rounding noise of the differences (about ``1e-16·|L|/eps``). Backprop is right when the
    result is small (< 1e-6 in float64 for smooth functions away from kinks such as
    ReLU's 0).

    Parameters
    ----------
    model : Sequential or Model
        A float64 model (float32 finite differences are too coarse to judge anything).
        Every forward of the check draws the dropout masks and noise of one training step
        (the next one, ``model.rng_step + 1``), so a stochastic model is checked as the
        deterministic function of that draw. Its parameters, buffers (running statistics)
        and RNG counter are restored exactly afterwards; its gradients hold the analytic
        gradient of this batch.
    loss : Loss, or list of Loss
        Any fastmlp loss (``loss(pred, y) -> float`` and ``loss.grad(pred, y)``); for a
        graph :class:`~fastmlp.Model` with several outputs, one loss per output (L is
        their sum).
    X, y : array-like
        One batch; keep it small: the check runs 2 forwards per parameter. For a graph
        Model, X as its ``forward`` takes it (a list for several inputs; every input is
        checked) and y one target per output (a list for several outputs).
    eps : float
        Finite-difference step.
    check_input : bool
        Also check the gradient with respect to X.
    regularizers : sequence
        Penalties (``r(model) -> float`` and ``r.add_grad(model)``), e.g. ``L2Penalty``,
        ``TyingPenalty``.

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
    if model.dtype != np.float64:
        raise ValueError(f"gradient_check needs a float64 model, got {model.dtype.name}: "
                         "finite differences in float32 are too coarse to be meaningful")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite float, got {eps}")
    graph = getattr(model, "is_graph", False)
    Xs = [x.copy() for x in model._arrays(X)] if graph else \
        [as_float_matrix(X, np.float64, "X", model.n_in).copy()]
    losses, ys = _per_output(model, loss, y) if graph else ([loss], [y])
    step, buffers = model.rng_step, model.buffers.copy()
    regularizers = tuple(regularizers)
    for reg in regularizers:
        if not (callable(reg) and callable(getattr(reg, "add_grad", None))):
            raise TypeError(f"regularizers must be penalties such as L2Penalty(1e-4), "
                            f"got {reg!r}")

    def forward():
        # every forward draws the masks and noise of one step: one deterministic function
        # (training forwards read no running statistics; they only update them)
        model.rng_step = step
        out = model.forward(Xs if graph else Xs[0], training=True)
        return out if isinstance(out, list) else [out]

    def penalty():
        return sum(float(reg(model)) for reg in regularizers)

    def data_loss(outs):
        return sum(float(f(o, t)) for f, o, t in zip(losses, outs, ys))

    def objective():
        return data_loss(forward()) + penalty()

    model.zero_grad()
    outs = forward()
    floor = 1e-3 * max(1.0, abs(data_loss(outs) + penalty()))
    dY = [f.grad(o, t) for f, o, t in zip(losses, outs, ys)]
    dX = model.backward(dY if graph else dY[0])
    dX = dX if isinstance(dX, list) else [dX]
    for reg in regularizers:
        reg.add_grad(model)
    analytic = model.grads.copy()
    numeric = _numeric_grad(objective, model.params, eps)
    errors = []
    for p in model.param_info:
        size = int(np.prod(p["shape"], dtype=np.int64))
        sl = slice(p["offset"], p["offset"] + size)
        errors.append(_rel_err(analytic[sl], numeric[sl], floor))
    if check_input:
        errors += [_rel_err(d, _numeric_grad(objective, x, eps), floor) for d, x in zip(dX, Xs)]
    forward()                        # leave caches consistent with the analytic gradient
    model.rng_step = step
    _restore_statistics(model, buffers)
    return max(errors, default=0.0)


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
