"""How the scikit-learn estimators train: their objective, optimizer, validation split and
batch size, handed to the Trainer's loop (``fastmlp._estimator_loop`` holds scikit-learn's
schedule: shuffles, early stopping, adaptive and inverse-scaling learning rates,
convergence warnings, as callbacks of that loop).

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
from scipy.special import xlogy
from sklearn.base import is_classifier
from sklearn.model_selection import train_test_split

from fastmlp._estimator_loop import (InvScaling, NoImprovement, PrintLoss, SklearnLBFGS,
                                     SklearnRecord, SklearnTrainer)
from fastmlp._validation import contiguous
from fastmlp.layers import BatchNorm
from fastmlp.optim import FULL_BATCH, OPTIMIZERS, SGD, get_optimizer
from fastmlp.regularizers import L2Penalty


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
                                                 model.dtype, ops=model.ops)
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

    def _prepare_target(self, target, n_outputs, dtype=np.float64, ops=None):
        """``target`` as a C-contiguous (n, n_outputs) matrix (``ops`` unused: NumPy only)."""
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
    """scikit-learn's ``_fit_stochastic``: the Trainer's epochs, scikit-learn's schedule as
    its callbacks (``fastmlp._estimator_loop``)."""
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
    # BatchNorm cannot train on a batch of 1 row: such a last batch is left out
    drop_last = (n % batch or batch) == 1 and \
        any(isinstance(layer, BatchNorm) for layer in model.layers)
    if drop_last and batch == 1:
        raise ValueError(f"batch_norm=True needs at least 2 rows per batch, got batches of "
                         f"1 sample (batch_size={est.batch_size!r}, {n} training rows)")
    trainer = SklearnTrainer(est, obj, est._optimizer, rs, drop_last)
    stopping = NoImprovement(est, val, warn=not incremental)
    callbacks = [SklearnRecord(est, obj, n)] + [PrintLoss()] * bool(est.verbose) + \
        [InvScaling(est)] * (est.solver == "sgd" and est.learning_rate == "invscaling") + \
        [stopping]
    est.n_iter_ = 0
    try:
        trainer.fit(X, obj.targets, epochs=1 if incremental else est.max_iter,
                    batch_size=batch, shuffle=est.shuffle, callbacks=callbacks, verbose=0,
                    sample_weight=obj.weights)
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        stopping.on_train_end()


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


# -- full-batch solvers ---------------------------------------------------------------------------

def check_full_batch(est):
    """A full-batch solver searches along lines of one objective: dropout, which draws new
    masks at every evaluation, makes it random (the solver then stops early, claiming
    convergence); the Trainer refuses the same (BatchNorm over the whole set is
    deterministic and stays allowed)."""
    if OPTIMIZERS[est.solver].strategy == FULL_BATCH and est.dropout > 0:
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
    of fastmlp's other full-batch solvers, on the whole-training-set objective: the
    Trainer's full-batch loop, one solver iteration per epoch."""
    _, w = est._row_weights(sample_weight, X, Y)
    obj = _Objective(est, Y, w, X.shape[0])
    if est.solver == "lbfgs":
        solver = SklearnLBFGS(tol=est.tol, max_fun=est.max_fun)
    else:
        cls = OPTIMIZERS[est.solver]
        _check_dense_hessian(est, cls)
        solver = get_optimizer(est.solver, **{
            k: v for k, v in (("lr", est.learning_rate_init), ("tol", est.tol))
            if k in cls._checks})
    SklearnTrainer(est, obj, solver).fit(X, obj.targets, epochs=est.max_iter,
                                         callbacks=[PrintLoss()] * bool(est.verbose),
                                         verbose=0, sample_weight=obj.weights)
