"""Damped Newton's method with a finite-difference Hessian, for small models."""
import math
from typing import Any, Callable, Dict, Optional

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from fastmlp._serial import register
from fastmlp._typing import Arena
from fastmlp.optim.base import check_nonneg
from fastmlp.optim.fullbatch import (FullBatchSolver, _check_int, _check_positive, _gnorm,
                                     _iteration_end, _result, check_size)

__all__ = ["Newton", "hessian"]

#: Largest damping tried, relative to the Hessian's scale (mean |H_jj|): the step is then a
#: tiny gradient step, and if even that does not lower the loss we are at a minimum to
#: working precision.
MAX_DAMPING = 1e12


def hessian(model, objective):
    r"""The Hessian of ``objective`` at ``model.params``, by central differences of the
    analytic gradient, column by column:

    .. math:: H_{:, j} = \frac{\nabla F(\theta + h_j e_j) - \nabla F(\theta - h_j e_j)}
              {2 h_j}, \qquad h_j = \epsilon^{1/3} \max(1, |\theta_j|), \qquad
              H \leftarrow (H + H^\top) / 2

    with :math:`\epsilon` the model dtype's machine epsilon (the distances actually taken
    after rounding :math:`\theta_j \pm h_j` are used). Exact up to rounding when :math:`F` is
    quadratic (the gradient is then linear); :math:`O(h^2)` otherwise. Costs :math:`2n`
    objective evaluations; ``model.params`` is restored exactly, ``model.grads`` is left
    holding a perturbed gradient.

    Returns
    -------
    ndarray of shape (n, n), float64
    """
    params, grads = model.params, model.grads
    n = params.shape[0]
    theta = params.astype(np.float64)
    h = np.finfo(params.dtype).eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(theta))
    H = np.empty((n, n))
    for j in range(n):
        params[j] = theta[j] + h[j]
        up = float(params[j]) - theta[j]
        objective()
        g_up = grads.astype(np.float64)
        params[j] = theta[j] - h[j]
        down = theta[j] - float(params[j])
        objective()
        H[:, j] = (g_up - grads) / (up + down)
        params[j] = theta[j]
    H += H.T
    H *= 0.5
    return H


@register
class Newton(FullBatchSolver):
    r"""Newton's method with Levenberg–Marquardt damping, for models of a few thousand
    parameters.

    Each iteration computes the full Hessian :math:`H` (:func:`hessian`, :math:`2n` gradient
    evaluations) and tries

    .. math:: (H + \lambda I)\, p = -\nabla F(\theta_k), \qquad
              \theta_{k+1} = \theta_k + p

    starting from the current :math:`\lambda` (0 at first: a pure Newton step). Whenever
    :math:`H + \lambda I` is not positive definite (no Cholesky factor) or the step does not
    lower the loss, :math:`\lambda \leftarrow \max(10 \lambda, \lambda_0)` and the step is
    tried again, so the loss never increases; after a successful step
    :math:`\lambda \leftarrow \lambda / 10`, and 0 once below :math:`\lambda_0` =
    ``damping`` × mean :math:`|H_{jj}|`. Near a minimum with a positive definite Hessian the
    steps are undamped Newton steps (quadratic convergence); a quadratic objective (linear
    regression with MSELoss) is solved in one iteration.

    Parameters
    ----------
    damping : float, default=1e-4
        :math:`\lambda_0` relative to the Hessian's scale (> 0).
    max_params : int, default=2000
        Largest model accepted: :math:`H` has :math:`n^2` entries and costs :math:`2n`
        full-batch gradients per iteration. ``run`` raises ValueError for bigger models.
    tol : float, default=1e-9
        Converged when :math:`\max_i |\nabla F_i| \le` tol.

    Notes
    -----
    Meant for float64 models: in float32 the finite-difference Hessian has about 3
    significant digits, and the run usually ends when no step lowers the loss
    (``converged`` False, with that message).

    Examples
    --------
    >>> Newton()
    Newton(damping=0.0001, max_params=2000, tol=1e-09)
    """

    _checks = {"damping": _check_positive, "max_params": _check_int, "tol": check_nonneg}

    def __init__(self, damping: float = 1e-4, max_params: int = 2000, tol: float = 1e-9):
        super().__init__(damping=damping, max_params=max_params, tol=tol)

    def run(self, model: Arena, objective: Callable[[], float], max_iter: int,
            on_iteration: Optional[Callable[[int, float], bool]] = None) -> Dict[str, Any]:
        params, max_iter, on_iteration = self._start(model, max_iter, on_iteration)
        check_size(self, model)
        loss, n_fev = objective(), 1
        if not math.isfinite(loss):
            return _result(0, False, f"the loss is {loss} at the initial point", loss, n_fev)
        if _gnorm(model.grads) <= self.tol:
            return _result(0, True, "gradient norm <= tol", loss, n_fev)
        lam = 0.0
        for it in range(max_iter):
            theta = params.astype(np.float64)
            g = model.grads.astype(np.float64)
            H = hessian(model, objective)
            n_fev += 2 * theta.shape[0]
            scale = float(np.mean(np.abs(np.diag(H))))
            scale = scale if 0.0 < scale < math.inf else 1.0
            lam_min = self.damping * scale
            new, lam, fev = _damped_step(model, objective, theta, g, H, loss, lam, lam_min,
                                         MAX_DAMPING * scale)
            n_fev += fev
            if new is None:
                params[...] = theta
                objective()              # model.grads back at the final point
                return _result(it, False, "no damped Newton step lowers the loss (a "
                               "minimum to working precision?)", loss, n_fev + 1)
            loss = new
            lam = lam / 10 if lam / 10 >= lam_min else 0.0
            done = _iteration_end(self, model, it, loss, n_fev, on_iteration)
            if done is not None:
                return done
        return _result(max_iter, False, "max_iter reached", loss, n_fev)


def _damped_step(model, objective, theta, g, H, loss, lam, lam_min, lam_max):
    """Try (H + λI) p = -g for growing λ from ``lam`` until the loss decreases.

    Returns ``(new loss or None, λ used, objective evaluations)``; on success
    ``model.params`` holds θ + p and ``model.grads`` its gradient.
    """
    n_fev = 0
    diag = np.diag_indices_from(H)
    while lam <= lam_max:
        A = H.copy()
        A[diag] += lam
        try:
            factor = cho_factor(A, check_finite=True)
        except (LinAlgError, ValueError):
            lam = max(10.0 * lam, lam_min)
            continue
        p = cho_solve(factor, -g)
        model.params[...] = theta + p
        new = objective()
        n_fev += 1
        if math.isfinite(new) and new < loss:
            return new, lam, n_fev
        lam = max(10.0 * lam, lam_min)
    return None, lam, n_fev
