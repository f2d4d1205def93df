"""Full-batch solvers: deterministic optimization of the whole-training-set loss.

A full-batch solver minimizes :math:`F(\\theta)`, the mean loss over ALL training rows (plus
the regularizers' penalties), as a function of the flat parameter vector :math:`\\theta` =
``model.params``. One solver iteration is one Trainer epoch; the solver owns the loop and
reports each iteration through ``on_iteration``:

>>> objective = make_objective(model, MSELoss(), X, y)          # doctest: +SKIP
>>> LBFGS().run(model, objective, max_iter=100, on_iteration=None)  # doctest: +SKIP
{'n_iter': 23, 'converged': True, 'message': '...', 'loss': 0.0123, 'n_fev': 27}

``objective()`` evaluates :math:`F` at the current ``model.params`` and leaves
:math:`\\nabla F` in ``model.grads``. scipy's solvers work on a float64 copy of the arena:
each evaluation is one ``model.params[...] = x``, no per-layer packing. The second-order
solver :class:`~fastmlp.optim.newton.Newton` lives in ``fastmlp.optim.newton``.
"""
import math
import numbers
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
from scipy.optimize import minimize

from fastmlp._serial import register
from fastmlp._typing import Arena
from fastmlp._validation import as_float_matrix, contiguous
from fastmlp.losses import loss_value_and_grad
from fastmlp.optim.base import (FULL_BATCH, BaseOptimizer, _check_keys, _plain, check_lr,
                                check_nonneg, model_arrays)

__all__ = ["FullBatchSolver", "GradientDescent", "LBFGS", "BFGS", "make_objective"]


# --- the objective -------------------------------------------------------------------------

def make_objective(model: Arena, loss: Any, X: np.ndarray, targets: np.ndarray,
                   weights: Optional[np.ndarray] = None, regularizers: Sequence[Any] = (),
                   chunk: int = 4096) -> Callable[[], float]:
    """Return ``objective() -> float``: the full-batch loss at the current ``model.params``.

    Each call zeroes ``model.grads``, runs forward (``training=True``) and backward over
    ``X`` in chunks of ``chunk`` rows, and leaves the gradient in ``model.grads``. Every
    loss is a mean over its chunk's rows (Keras ``sum_over_batch_size`` with weights), so
    weighting chunk :math:`c` of :math:`n_c` rows by :math:`n_c / n` gives the mean over
    all :math:`n` rows exactly (MSE's :math:`1/(nd)` included); a ``reduction="sum"`` loss
    sums its chunks (weight 1):

    .. math:: F(\\theta) = \\sum_c \\frac{n_c}{n} \\ell_c(\\theta) + \\sum_r r(\\theta),
              \\qquad \\nabla F = \\sum_c \\frac{n_c}{n} \\nabla \\ell_c
              + \\sum_r \\nabla r

    Parameters
    ----------
    model : Sequential
    loss : Loss
    X : array-like of shape (n, n_in)
    targets : array-like
        As the loss takes them (class labels or (n, n_out) values); validated once here.
    weights : array-like of shape (n,), optional
        Non-negative row weights (the losses' ``sample_weight``).
    regularizers : sequence
        Objects with ``__call__(model) -> float`` (the penalty) and ``add_grad(model)``
        (adds its gradient into ``model.grads``).
    chunk : int
        Rows per forward/backward call (bounds the activations' memory, not the result).

    Returns
    -------
    callable
        ``objective() -> float``. NaN when the network's outputs are not finite (the
        parameters overflowed); ``model.grads`` is then meaningless.
    """
    X, t, w = _objective_rows(model, loss, X, targets, weights)
    n = X.shape[0]
    chunk = _check_int(chunk, "chunk")
    regularizers = tuple(regularizers)
    starts = range(0, n, chunk)
    mean_of = n if getattr(loss, "reduction", "mean") == "mean" else None

    def objective():
        model.zero_grad()
        value = 0.0
        for i in starts:
            rows = slice(i, i + chunk)
            out = model.forward(X[rows], training=True)
            if not np.isfinite(out).all():           # the parameters overflowed
                return math.nan
            value += _chunk_term(model, loss, out, t[rows],
                                 None if w is None else w[rows], mean_of)
        for reg in regularizers:
            value += float(reg(model))
            reg.add_grad(model)
        return float(value)

    return objective


def _chunk_term(model, loss, out, target, weights, mean_of):
    """One chunk's term of the objective, its gradient sent back through ``model``: the
    chunk's loss times rows / ``mean_of`` (a mean loss), or times 1 (``mean_of`` None)."""
    part, grad = loss_value_and_grad(loss, out, target, sample_weight=weights, ops=model.ops)
    scale = out.shape[0] / mean_of if mean_of is not None else 1.0
    if scale != 1.0:
        grad *= scale
    model.backward(grad)
    return part * scale


def _objective_rows(model, loss, X, targets, weights):
    """``(X, targets, weights)`` of :func:`make_objective`, checked on the model's backend."""
    X = as_float_matrix(X, model.dtype, "X", model.n_in, ops=model.ops)
    n = X.shape[0]
    if n == 0:
        raise ValueError("X has no rows")
    t = loss._prepare_target(targets, model.n_out, model.dtype, ops=model.ops)
    if t.shape[0] != n:
        raise ValueError(f"targets has {t.shape[0]} rows but X has {n}")
    return X, t, None if weights is None else _row_weights(weights, n, model.dtype)


def _row_weights(weights, n, dtype):
    w = np.asarray(weights)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {w.shape}")
    w = contiguous(w, dtype)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    return w


# --- validation ----------------------------------------------------------------------------

def _check_int(value, name, low=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value < low:
        raise ValueError(f"Invalid {name} value: {value} (must be >= {low})")
    return int(value)


def _check_positive(value, name):
    value = check_nonneg(value, name)
    if value == 0.0:
        raise ValueError(f"Invalid {name} value: {value} (must be > 0)")
    return value


def _iteration_end(solver, model, it, loss, n_fev, on_iteration):
    """Count iteration ``it``, report it, and return the run's result when it should end
    (gradient norm <= tol, or on_iteration asked to stop); None to go on."""
    solver.step_count += 1
    gnorm = _gnorm(model.grads)
    stop = on_iteration(it, loss)
    if gnorm <= solver.tol:
        return _result(it + 1, True, "gradient norm <= tol", loss, n_fev)
    if stop:
        return _result(it + 1, False, "stopped by on_iteration", loss, n_fev)
    return None


def _gnorm(grads):
    """max |g_i| (scipy's ``gtol`` norm), in float64."""
    return float(np.max(np.abs(grads), initial=0.0))


# --- the base class ------------------------------------------------------------------------

class FullBatchSolver(BaseOptimizer):
    """Base class of the full-batch solvers.

    Subclasses list their hyperparameters in ``_checks`` (name -> validator, in constructor
    order; every assignment is validated, so ``solver.tol = -1`` raises) and implement
    :meth:`run`. ``step_count`` counts the iterations taken over all runs.
    """

    strategy = FULL_BATCH
    _checks = {}

    def __init__(self, **hyper: Any):
        for name, value in hyper.items():
            setattr(self, name, value)
        self.step_count = 0

    def __setattr__(self, name, value):
        check = type(self)._checks.get(name)
        object.__setattr__(self, name, value if check is None else check(value, name))

    @property
    def hyperparameters(self) -> Dict[str, Any]:
        """All hyperparameters, as the constructor takes them."""
        return {name: getattr(self, name) for name in self._checks}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}({args})"

    def run(self, model: Arena, objective: Callable[[], float], max_iter: int,
            on_iteration: Optional[Callable[[int, float], bool]] = None) -> Dict[str, Any]:
        """Minimize ``objective`` over ``model.params`` for at most ``max_iter`` iterations.

        Parameters
        ----------
        model : Sequential
        objective : callable
            ``objective() -> float``: the loss at the current ``model.params``, leaving its
            gradient in ``model.grads`` (see :func:`make_objective`).
        max_iter : int
            Iterations (Trainer epochs) at most; 0 only evaluates the loss.
        on_iteration : callable, optional
            ``on_iteration(iteration, loss) -> bool``, called after each iteration
            (0-based, ``model.params`` then holds the new iterate, whose loss is ``loss``);
            returning True stops the solver. It must not change ``model.params``.

        Returns
        -------
        dict
            ``n_iter`` (iterations taken), ``converged`` (the solver's own criterion was
            met), ``message``, ``loss`` (at the final point, which ``model.params`` holds)
            and ``n_fev`` (objective evaluations).
        """
        raise NotImplementedError

    def _start(self, model, max_iter, on_iteration):
        params, _ = model_arrays(model)
        max_iter = _check_int(max_iter, "max_iter", 0)
        if on_iteration is not None and not callable(on_iteration):
            raise TypeError(f"on_iteration must be callable or None, got {on_iteration!r}")
        return params, max_iter, on_iteration or (lambda iteration, loss: False)

    # -- serialization ------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """``{"type", "step", "hyper", "state"}`` as :meth:`Optimizer.state_dict`; ``state``
        is empty (a solver's memory lives within one :meth:`run`)."""
        return {"type": type(self).__name__, "step": self.step_count,
                "hyper": dict(self.hyperparameters), "state": {}}

    def load_state_dict(self, d: Dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; ValueError on any mismatch (nothing is changed)."""
        _check_keys(d, {"type", "step", "hyper", "state"}, "state dict")
        if _plain(d["type"]) != type(self).__name__:
            raise ValueError(f"state dict is for {d['type']!r}, not {type(self).__name__!r}")
        step = _check_int(_plain(d["step"]), "state dict 'step'", 0)
        if not isinstance(d["hyper"], dict):
            raise ValueError("state dict 'hyper' must be a dict")
        _check_keys(d["hyper"], set(self._checks), "state dict 'hyper'")
        if d["state"]:
            raise ValueError(f"state dict 'state' must be empty for {type(self).__name__}")
        other = type(self)(**{k: _plain(v) for k, v in d["hyper"].items()})
        for name in self._checks:
            setattr(self, name, getattr(other, name))
        self.step_count = step


def _result(n_iter, converged, message, loss, n_fev):
    return {"n_iter": int(n_iter), "converged": bool(converged), "message": message,
            "loss": float(loss), "n_fev": int(n_fev)}


# --- steepest descent ----------------------------------------------------------------------

@register
class GradientDescent(FullBatchSolver):
    r"""Full-batch steepest descent with a fixed step.

    .. math:: \theta_{k+1} = \theta_k - \gamma \nabla F(\theta_k)

    computed in the model's dtype. Each iteration costs one objective evaluation (the loss
    reported for iteration :math:`k` is :math:`F(\theta_{k+1})`). Converged when
    :math:`\max_i |\nabla F(\theta)_i| \le` ``tol``. If the loss becomes NaN or infinite
    (a step too large), the step is undone and the run stops.

    Parameters
    ----------
    lr : float, default=0.01
        Step size :math:`\gamma` (>= 0); may be changed between iterations (schedules and
        ``ReduceLROnPlateau`` do).
    tol : float, default=1e-6
        Gradient tolerance (max-abs norm, scipy's ``gtol``). Steepest descent converges
        linearly, so a tighter default would rarely be reached.

    Examples
    --------
    >>> GradientDescent(lr=0.1)
    GradientDescent(lr=0.1, tol=1e-06)
    """

    _checks = {"lr": lambda v, name: check_lr(v), "tol": check_nonneg}

    def __init__(self, lr: float = 0.01, tol: float = 1e-6):
        super().__init__(lr=lr, tol=tol)

    def run(self, model: Arena, objective: Callable[[], float], max_iter: int,
            on_iteration: Optional[Callable[[int, float], bool]] = None) -> Dict[str, Any]:
        params, max_iter, on_iteration = self._start(model, max_iter, on_iteration)
        loss, n_fev = objective(), 1
        if not math.isfinite(loss):
            return _result(0, False, f"the loss is {loss} at the initial point", loss, n_fev)
        if _gnorm(model.grads) <= self.tol:
            return _result(0, True, "gradient norm <= tol", loss, n_fev)
        for it in range(max_iter):
            previous = params.copy()
            with np.errstate(over="ignore", invalid="ignore"):   # caught just below
                params -= self.lr * model.grads
            new, n_fev = objective(), n_fev + 1
            if not math.isfinite(new):
                params[...] = previous
                return _result(it, False, f"the loss became {new}: step undone (lr too "
                               f"large?)", loss, n_fev)
            loss = new
            done = _iteration_end(self, model, it, loss, n_fev, on_iteration)
            if done is not None:
                return done
        return _result(max_iter, False, "max_iter reached", loss, n_fev)


# --- scipy's quasi-Newton methods ------------------------------------------------------------

class _ScipySolver(FullBatchSolver):
    """``scipy.optimize.minimize(method=_method, jac=True)`` on a float64 copy of the arena."""

    _method = None

    def _options(self, model, max_iter):
        raise NotImplementedError

    def _minimize(self, fun, x0, callback, options):
        """scipy's ``OptimizeResult`` of one run (a subclass may keep it)."""
        return minimize(fun, x0, jac=True, method=self._method, callback=callback,
                        options=options)

    def run(self, model: Arena, objective: Callable[[], float], max_iter: int,
            on_iteration: Optional[Callable[[int, float], bool]] = None) -> Dict[str, Any]:
        params, max_iter, on_iteration = self._start(model, max_iter, on_iteration)
        options = self._options(model, max_iter)
        x0 = params.astype(np.float64)
        if max_iter == 0:
            return _result(0, False, "max_iter reached", objective(), 1)
        grads = model.grads
        count = {"fev": 0, "it": 0, "stopped": False}

        def fun(x):
            params[...] = x
            f = objective()
            count["fev"] += 1
            if not math.isfinite(f):     # line searches backtrack on +inf, not on NaN
                return math.inf, np.zeros_like(x)
            return f, grads.astype(np.float64)

        def callback(intermediate_result):
            params[...] = intermediate_result.x      # on_iteration sees the accepted iterate
            self.step_count += 1
            count["it"] += 1
            if on_iteration(count["it"] - 1, float(intermediate_result.fun)):
                count["stopped"] = True
                raise StopIteration

        res = self._minimize(fun, x0, callback, options)
        x = res.x if np.isfinite(res.x).all() else x0
        params[...] = x
        if count["stopped"]:
            converged, message = False, "stopped by on_iteration"
        else:
            converged, message = bool(res.success), str(res.message)
        return _result(count["it"], converged, message, res.fun, count["fev"])


@register
class LBFGS(_ScipySolver):
    r"""Limited-memory BFGS: ``scipy.optimize.minimize(method="L-BFGS-B")``, no bounds.

    Each iteration approximates the inverse Hessian from the last ``history_size`` pairs
    :math:`s_k = \theta_{k+1} - \theta_k`, :math:`y_k = \nabla F_{k+1} - \nabla F_k` (the
    two-loop recursion), takes :math:`p_k = -H_k \nabla F(\theta_k)` and a line search
    satisfying the strong Wolfe conditions, :math:`\theta_{k+1} = \theta_k + \alpha_k p_k`.
    Memory: :math:`O(m\,n)` for :math:`n` parameters. The hyperparameter names follow
    scikit-learn's ``MLPRegressor(solver="lbfgs")``.

    Parameters
    ----------
    tol : float, default=1e-9
        Converged when :math:`\max_i |\nabla F_i| \le` tol or the relative decrease
        :math:`(F_k - F_{k+1}) / \max(|F_k|, |F_{k+1}|, 1) \le` tol (scipy's ``gtol`` and
        ``ftol``, as ``minimize(tol=...)`` sets them).
    history_size : int, default=10
        Correction pairs kept, :math:`m` (scipy's ``maxcor``).
    max_fun : int, default=15000
        Objective evaluations at most per run (scipy's ``maxfun``).

    Examples
    --------
    >>> LBFGS(history_size=20)
    LBFGS(tol=1e-09, history_size=20, max_fun=15000)
    """

    _method = "L-BFGS-B"
    _checks = {"tol": check_nonneg, "history_size": _check_int, "max_fun": _check_int}

    def __init__(self, tol: float = 1e-9, history_size: int = 10, max_fun: int = 15000):
        super().__init__(tol=tol, history_size=history_size, max_fun=max_fun)

    def _options(self, model, max_iter):
        return {"maxiter": max_iter, "maxfun": self.max_fun, "maxcor": self.history_size,
                "ftol": self.tol, "gtol": self.tol}


@register
class BFGS(_ScipySolver):
    r"""BFGS with a dense inverse Hessian: ``scipy.optimize.minimize(method="BFGS")``.

    .. math:: p_k = -H_k \nabla F_k, \quad \theta_{k+1} = \theta_k + \alpha_k p_k, \quad
              H_{k+1} = (I - \rho_k s_k y_k^\top) H_k (I - \rho_k y_k s_k^\top)
              + \rho_k s_k s_k^\top, \quad \rho_k = 1 / (y_k^\top s_k)

    with :math:`s_k = \theta_{k+1} - \theta_k`, :math:`y_k = \nabla F_{k+1} - \nabla F_k`
    and a Wolfe line search for :math:`\alpha_k`. :math:`H_k` is a dense :math:`n \times n`
    matrix updated with :math:`O(n^3)` products, hence ``max_params``; use :class:`LBFGS`
    for larger models.

    Parameters
    ----------
    tol : float, default=1e-9
        Converged when :math:`\max_i |\nabla F_i| \le` tol (scipy's ``gtol``).
    max_params : int, default=4000
        Largest model accepted (:math:`H_k` alone then takes 128 MB).

    Examples
    --------
    >>> BFGS()
    BFGS(tol=1e-09, max_params=4000)
    """

    _method = "BFGS"
    _checks = {"tol": check_nonneg, "max_params": _check_int}

    def __init__(self, tol: float = 1e-9, max_params: int = 4000):
        super().__init__(tol=tol, max_params=max_params)

    def _options(self, model, max_iter):
        check_size(self, model)
        return {"maxiter": max_iter, "gtol": self.tol}


def check_size(solver, model):
    """ValueError when ``model`` has more than ``solver.max_params`` parameters."""
    n = model.params.shape[0]
    if n > solver.max_params:
        raise ValueError(f"{type(solver).__name__} stores a dense {n}x{n} matrix, but the "
                         f"model has {n:,} parameters, more than max_params="
                         f"{solver.max_params:,}; use LBFGS() or raise max_params")
