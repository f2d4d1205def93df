"""The training loops of the scikit-learn estimators: scikit-learn's schedule (shuffles,
early stopping, adaptive and inverse-scaling learning rates, convergence warnings) around
fastmlp's fused epochs and full-batch objective.

The objective is scikit-learn's. For rows weighted :math:`w_i` (sample_weight ×
class_weight, all ones by default), scikit-learn minimizes on each batch :math:`b`

.. math:: \\frac{\\sum_{i \\in b} w_i \\ell_i}{\\sum_{i \\in b} w_i}
          + \\frac{\\alpha}{2 \\sum_{i \\in b} w_i} \\sum_k \\lVert W_k \\rVert^2

where :math:`\\ell_i` is the row's loss as scikit-learn scales it (``½ Σ_j r²`` for squared
error, the log-loss summed over the outputs for multilabel). fastmlp's losses are means
(over the rows and, for elementwise losses, the outputs), so each row gets the weight
:math:`s\\, w_i / \\bar w` (``s`` from the estimator's ``_loss()``, :math:`\\bar w` the mean
weight of the training rows) and the L2 penalty :math:`\\lambda = \\alpha / (B \\bar w)` for
batches of :math:`B` rows: exactly scikit-learn's for unweighted (or uniformly weighted)
rows, the same in expectation otherwise, and exactly its full-batch objective for lbfgs.
"""
import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import xlogy
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle as sk_shuffle
from sklearn.utils.optimize import _check_optimize_result

from fastmlp._epoch import EpochLoop, NonFiniteLoss
from fastmlp._validation import contiguous
from fastmlp.layers import BatchNorm
from fastmlp.optim import OPTIMIZERS, SGD, get_optimizer, make_objective
from fastmlp.regularizers import L2Penalty
from fastmlp.trainer import Trainer

_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain "
               "large values and need to be preprocessed.")


def make_optimizer(est):
    """The optimizer for a stochastic ``est.solver`` (sklearn's names map onto torch's)."""
    lr = est.learning_rate_init
    if est.solver == "sgd":
        return SGD(lr=lr, momentum=est.momentum,
                   nesterov=bool(est.nesterovs_momentum and est.momentum > 0))
    if est.solver in ("adam", "adamw"):
        return get_optimizer(est.solver, lr=lr, betas=(est.beta_1, est.beta_2),
                             eps=est.epsilon)
    return get_optimizer(est.solver, lr=lr)


class _Objective:
    """What the loops need about the loss: the fastmlp loss, the training row weights, the
    L2 penalty, and how to report the loss in scikit-learn's convention."""

    def __init__(self, est, Y, weights, batch_rows):
        self.loss, scale, self.div = est._loss()
        model = est._model
        mean = 1.0
        if weights is not None:
            mean = float(weights.mean())
            if not mean > 0:
                raise ValueError("the sample weights (times class_weight) of the training "
                                 "rows must have a positive sum")
            weights = weights * (scale / mean)
        elif scale != 1.0:
            weights = np.full(Y.shape[0], scale)
        self.weights = None if weights is None else weights.astype(model.dtype)
        self.targets = self.loss._prepare_target(est._loss_targets(Y), model.n_out,
                                                 model.dtype)
        lam = est.alpha / (batch_rows * mean)
        self.penalty = L2Penalty(lam) if lam > 0 else None

    def penalty_value(self, model):
        return self.penalty(model) if self.penalty is not None and self.div != 1 else 0.0

    def report(self, value, penalty):
        """The loss in scikit-learn's convention: the data term divided by ``div`` (the
        mean over outputs of its squared error, whose gradient sums them)."""
        return value if self.div == 1 else (value - penalty) / self.div + penalty


class HalfPoissonLoss:
    """Half the Poisson deviance with a log link, as scikit-learn's
    ``MLPRegressor(loss="poisson")``: for outputs :math:`z`, :math:`\\mu = e^z`,

    .. math:: \\ell = \\frac{1}{n} \\sum_i w_i \\sum_j y_{ij} \\log\\frac{y_{ij}}{\\mu_{ij}}
              - y_{ij} + \\mu_{ij}, \\qquad
              \\frac{\\partial \\ell}{\\partial z_{ij}} = \\frac{w_i}{n} (\\mu_{ij} - y_{ij})

    In NumPy (no ``_spec``: the epochs run it through the Python step, not the fused
    loop).
    """

    is_classification = False

    def _prepare_target(self, target, n_outputs, dtype=np.float64):
        t = np.asarray(target, dtype=dtype)
        t = t.reshape(-1, 1) if t.ndim == 1 else t
        if t.ndim != 2 or t.shape[1] != n_outputs:
            raise ValueError(f"target has shape {t.shape}, expected (n, {n_outputs})")
        return contiguous(t, t.dtype)

    def value_and_grad(self, pred, target, *, sample_weight=None):
        z = np.asarray(pred)
        y = self._prepare_target(target, z.shape[1], z.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            mu = np.exp(z)
            rows = (xlogy(y, y) - y * z - y + mu).sum(axis=1)
            grad = mu - y
        n = z.shape[0]
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=z.dtype)
            rows, grad = rows * w, grad * w[:, None]
        return float(rows.sum() / n), (grad / n).astype(z.dtype, copy=False)

    def __call__(self, pred, target, *, sample_weight=None):
        return self.value_and_grad(pred, target, sample_weight=sample_weight)[0]

    def __repr__(self):
        return "HalfPoissonLoss()"


# -- mini-batch solvers ---------------------------------------------------------------------------

def fit_stochastic(est, X, Y, sample_weight, incremental, rs):
    """scikit-learn's ``_fit_stochastic``, the epochs run by the fused core."""
    model = est._model
    if not incremental or est._optimizer is None:
        est._optimizer = make_optimizer(est)
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    _bookkeeping(est)
    sw, w = est._row_weights(sample_weight, X, Y)
    train, val = _split(est, Y, rs)
    if train is not None:
        val = (X[val], Y[val], None if sw is None else sw[val])
        X, Y = X[train], Y[train]
        w = None if w is None else w[train]
    n = X.shape[0]
    batch = _batch_size(est, n)
    obj = _Objective(est, Y, w, batch)
    trainer = Trainer(model, obj.loss, est._optimizer,
                      regularizers=[obj.penalty] if obj.penalty is not None else [],
                      n_threads=est.n_threads)
    loop = EpochLoop(trainer, X, obj.targets, obj.weights, batch)
    # BatchNorm cannot train on a batch of 1 row: such a last batch is left out
    drop_last = (n % batch or batch) == 1 and \
        any(isinstance(layer, BatchNorm) for layer in model.layers)
    if drop_last and batch == 1:
        raise ValueError(f"batch_norm=True needs at least 2 rows per batch, got batches of "
                         f"1 sample (batch_size={est.batch_size!r}, {n} training rows)")
    sample_idx = np.arange(n, dtype=np.int64)
    try:
        est.n_iter_ = 0
        for _ in range(est.max_iter):
            if est.shuffle:
                sample_idx = sk_shuffle(sample_idx, random_state=rs)
            p0 = obj.penalty_value(model)
            try:
                value = loop.run(sample_idx[:-1] if drop_last else sample_idx)
            except NonFiniteLoss:
                _diverged(est)
                break
            value = obj.report(value, 0.5 * (p0 + obj.penalty_value(model)))
            est.n_iter_ += 1
            est.loss_ = value
            est.t_ += n
            est.loss_curve_.append(value)
            if est.verbose:
                print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
            _update_no_improvement_count(est, val)
            if est.solver == "sgd" and est.learning_rate == "invscaling":
                _set_lr(est._optimizer, est.learning_rate_init / (est.t_ + 1) ** est.power_t)
            if est._no_improvement_count > est.n_iter_no_change:
                if _trigger_stopping(est):
                    break
                est._no_improvement_count = 0
            if incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                              "optimization hasn't converged yet." % est.max_iter,
                              ConvergenceWarning)
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
    if est.early_stopping:
        model.set_weights(est._best_weights)


def _diverged(est):
    """The loss became non-finite: with early stopping, the epoch is recorded with a nan
    score and training stops, the best weights then put back (scikit-learn runs on to the
    same end); without, ValueError as scikit-learn's check of the weights."""
    if not est.early_stopping:
        raise ValueError(f"{_NON_FINITE} (The loss or its gradient became non-finite at "
                         f"iteration {est.n_iter_ + 1}.)")
    est.n_iter_ += 1
    est.loss_ = np.nan
    est.loss_curve_.append(np.nan)
    est.validation_scores_.append(float("nan"))
    if est.verbose:
        print("Iteration %d, loss = nan: the loss diverged. Stopping." % est.n_iter_)


def _bookkeeping(est):
    """scikit-learn's per-fit state of the stochastic solvers, created on the first fit
    (and completed when a warm start switches solver or early stopping)."""
    d = est.__dict__
    if "loss_curve_" not in d:
        est.loss_curve_ = []
        est._no_improvement_count = 0
        est.best_loss_ = None if est.early_stopping else np.inf
        est.validation_scores_ = [] if est.early_stopping else None
        est.best_validation_score_ = -np.inf if est.early_stopping else None
    if est.early_stopping:
        if est.validation_scores_ is None:
            est.validation_scores_, est.best_validation_score_ = [], -np.inf
        if d.get("_best_weights") is None:
            est._best_weights = est._model.get_weights()
    elif est.best_loss_ is None:
        est.best_loss_ = np.inf


def _split(est, Y, rs):
    """``(train rows, validation rows)`` as scikit-learn splits (stratified for one-output
    classifiers), or ``(None, None)`` without early stopping."""
    if not est.early_stopping:
        return None, None
    idx = np.arange(Y.shape[0])
    stratify = Y if is_classifier(est) and est.n_outputs_ == 1 else None
    train, val = train_test_split(idx, random_state=rs, test_size=est.validation_fraction,
                                  stratify=stratify)
    if val.shape[0] < 2:
        raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                         "or the size of your dataset.")
    return train, val


def _batch_size(est, n):
    if est.batch_size == "auto":
        return min(200, n)
    if est.batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                      "to be clipped")
    return int(np.clip(est.batch_size, 1, n))


def _update_no_improvement_count(est, val):
    if val is not None:
        score = est._score(*val)
        est.validation_scores_.append(score)
        if est.verbose:
            print("Validation score: %f" % score)
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_weights = est._model.get_weights()
    else:
        if est.loss_curve_[-1] > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if est.loss_curve_[-1] < est.best_loss_:
            est.best_loss_ = est.loss_curve_[-1]


def _trigger_stopping(est):
    """Stop, or (sgd with learning_rate="adaptive") divide the learning rate by 5."""
    what = "Validation score" if est.early_stopping else "Training loss"
    msg = (f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
           f"consecutive epochs.")
    opt = est._optimizer
    if est.solver != "sgd" or est.learning_rate != "adaptive":
        stop, note = True, " Stopping."
    elif opt.lr <= 1e-6:
        stop, note = True, " Learning rate too small. Stopping."
    else:
        _set_lr(opt, opt.lr / 5.0)
        stop, note = False, " Setting learning rate to %f" % opt.lr
    if est.verbose:
        print(msg + note)
    return stop


def _set_lr(opt, lr):
    """Change SGD's learning rate as scikit-learn does: its velocity holds steps already
    multiplied by the old rate, torch's momentum buffer holds gradients, so the buffer is
    rescaled by old / new to keep the pending steps."""
    buf = opt.state.get("momentum_buffer")
    if buf is not None and opt.lr > 0:
        buf *= opt.lr / lr
    opt.lr = lr


# -- full-batch solvers ---------------------------------------------------------------------------

def check_full_batch(est):
    """A full-batch solver searches along lines of one objective: dropout, which draws new
    masks at every evaluation, makes it random (the solver then stops early, claiming
    convergence); the Trainer refuses the same (BatchNorm over the whole set is
    deterministic and stays allowed)."""
    if getattr(OPTIMIZERS[est.solver], "full_batch", False) and est.dropout > 0:
        raise ValueError(f"dropout={est.dropout} draws new masks at every evaluation, but "
                         f"solver={est.solver!r} needs a deterministic objective: use a "
                         "mini-batch solver (solver='adam' or 'sgd') or dropout=0")


def _check_dense_hessian(est, cls):
    """Estimator-level advice for the solvers that store an n x n matrix."""
    limit = getattr(cls(), "max_params", None)
    n = est._model.n_params
    if limit is not None and n > limit:
        raise ValueError(f"solver={est.solver!r} stores a dense {n}x{n} matrix, but the "
                         f"network has {n:,} parameters (at most {limit:,}): use "
                         "solver='lbfgs', or fewer or smaller hidden_layer_sizes")


def fit_full_batch(est, X, Y, sample_weight):
    """lbfgs as scikit-learn runs it (scipy's L-BFGS-B, gtol=tol, maxiter, maxfun), or one
    of fastmlp's other full-batch solvers, on the whole-training-set objective."""
    model = est._model
    _, w = est._row_weights(sample_weight, X, Y)
    obj = _Objective(est, Y, w, X.shape[0])
    objective = make_objective(model, obj.loss, X, obj.targets, obj.weights,
                               [obj.penalty] if obj.penalty is not None else [])
    if est.solver == "lbfgs":
        _lbfgs(est, objective, obj)
        return
    cls = OPTIMIZERS[est.solver]
    _check_dense_hessian(est, cls)
    hyper = {k: v for k, v in (("lr", est.learning_rate_init), ("tol", est.tol))
             if k in cls._checks}
    verbose = (lambda it, loss: print("Iteration %d, loss = %.8f" % (it + 1, loss)) or False) \
        if est.verbose else None
    res = get_optimizer(est.solver, **hyper).run(model, objective, est.max_iter, verbose)
    est.n_iter_, est.loss_ = res["n_iter"], res["loss"]
    if not res["converged"] and res["n_iter"] >= est.max_iter:
        warnings.warn(f"{est.solver} failed to converge after {res['n_iter']} iteration(s): "
                      f"{res['message']}", ConvergenceWarning)


def _lbfgs(est, objective, obj):
    model = est._model
    params, grads = model.params, model.grads

    def fun(x):
        params[...] = x
        f = objective()
        if not np.isfinite(f):          # the line search backtracks on +inf, not on NaN
            return np.inf, np.zeros_like(x)
        return obj.report(f, obj.penalty_value(model)), grads.astype(np.float64)

    def show(intermediate_result):
        print("Iteration %d, loss = %.8f" % (show.it, intermediate_result.fun))
        show.it += 1
    show.it = 1

    res = minimize(fun, params.astype(np.float64), method="L-BFGS-B", jac=True,
                   callback=show if est.verbose else None,
                   options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol})
    est.n_iter_ = _check_optimize_result("lbfgs", res, est.max_iter)
    est.loss_ = float(res.fun)
    params[...] = res.x
