"""scikit-learn's MLP training schedule on the Trainer's loop.

The estimators do not run epochs of their own: :class:`SklearnTrainer` is a
:class:`~fastmlp.trainer.Trainer` with scikit-learn's epoch order (the previous order
shuffled again by the estimator's ``RandomState``), its answer to a diverging loss and,
for lbfgs, its loss scale and stopping rule; the rest of scikit-learn's
``_fit_stochastic`` is callbacks of that loop:

- :class:`SklearnRecord`: ``loss_`` in scikit-learn's scale, ``loss_curve_``,
  ``n_iter_`` and ``t_``;
- :class:`PrintLoss`: ``verbose``'s "Iteration k, loss = ..." lines;
- :class:`InvScaling`: ``learning_rate="invscaling"``,
  :math:`\\eta = \\eta_0 / (t + 1)^{p}` after each epoch (``t``: rows seen);
- :class:`NoImprovement`: the stopping rule (the training loss, or the validation score
  with ``early_stopping``, not better by ``tol`` for more than ``n_iter_no_change``
  epochs), ``learning_rate="adaptive"`` (sgd: divide the rate by 5 instead of stopping,
  until it is <= 1e-6), the best weights of early stopping, the max_iter warning.
"""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import shuffle as sk_shuffle
from sklearn.utils.optimize import _check_optimize_result

from fastmlp.callbacks import Callback
from fastmlp.optim.fullbatch import LBFGS
from fastmlp.trainer import Trainer

NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain "
              "large values and need to be preprocessed.")


class SklearnTrainer(Trainer):
    """The Trainer of one estimator fit.

    Parameters
    ----------
    est : BaseMLP
        The estimator (its network, parameters and fitted attributes).
    obj : fastmlp._estimator_fit._Objective
        The loss, the L2 penalty and the loss's scale in scikit-learn's convention.
    optimizer : Optimizer or FullBatchSolver
    rs : numpy.random.RandomState or None
        What shuffles the rows before each epoch (scikit-learn's draws).
    drop_last : bool
        Leave the epoch's last row out (BatchNorm cannot train on a batch of 1 row).
    """

    def __init__(self, est, obj, optimizer, rs=None, drop_last=False):
        super().__init__(est._model, obj.loss, optimizer,
                         regularizers=[obj.penalty] if obj.penalty is not None else [],
                         n_threads=est.n_threads)
        self.est, self.obj, self.rs, self.drop_last = est, obj, rs, drop_last
        self._order = None

    def _epoch_order(self, train_idx, epoch, sharded, shuffle):
        """scikit-learn's: the previous epoch's order shuffled again."""
        if self._order is None:
            self._order = train_idx
        if shuffle:
            self._order = sk_shuffle(self._order, random_state=self.rs)
        return self._order[:-1] if self.drop_last else self._order

    def _check_batches(self, n_rows, batch_size):
        """The estimator has checked them (a last batch of 1 row is dropped instead)."""

    def _handle_nonfinite(self, bad, epoch, before, terminate_on_nan, progress):
        """Without early stopping, scikit-learn's ValueError; with it, the epoch is
        recorded with a nan loss and score and training stops, the best weights then put
        back (scikit-learn runs on to the same end)."""
        progress.close()
        if not np.isfinite(self.model.params).all():
            self.model.set_weights(before)
        est = self.est
        if not est.early_stopping:
            raise ValueError(f"{NON_FINITE} (The loss or its gradient became non-finite at "
                             f"iteration {est.n_iter_ + 1}.)")
        self.stop_training = True
        est.n_iter_ += 1
        est.loss_ = np.nan
        est.loss_curve_.append(np.nan)
        est.validation_scores_.append(float("nan"))
        if est.verbose:
            print("Iteration %d, loss = nan: the loss diverged. Stopping." % est.n_iter_)

    def _objective(self, X, targets, weights):
        """lbfgs minimizes the loss as scikit-learn reports it (the same gradient)."""
        objective = super()._objective(X, targets, weights)
        if not isinstance(self.optimizer, SklearnLBFGS):
            return objective
        obj, model = self.obj, self.model

        def reported():
            f = objective()
            return obj.report(f, obj.penalty_value(model)) if np.isfinite(f) else f
        return reported

    def _solver_finished(self, result):
        """``n_iter_``, ``loss_`` and scikit-learn's convergence warning."""
        self.solver_result_ = result
        est = self.est
        est.loss_ = result["loss"]
        if isinstance(self.optimizer, SklearnLBFGS):
            est.n_iter_ = _check_optimize_result("lbfgs", self.optimizer.scipy_result,
                                                 est.max_iter)
            return
        est.n_iter_ = result["n_iter"]
        if not result["converged"] and result["n_iter"] >= est.max_iter:
            warnings.warn(f"{est.solver} failed to converge after {result['n_iter']} "
                          f"iteration(s): {result['message']}", ConvergenceWarning)


class SklearnLBFGS(LBFGS):
    """scikit-learn's lbfgs: scipy's L-BFGS-B with ``gtol=tol``, ``maxfun=max_fun`` and
    ``maxiter``, its other options at scipy's defaults (``ftol`` among them); keeps
    scipy's result (``scipy_result``) for scikit-learn's convergence check."""

    scipy_result = None

    def _options(self, model, max_iter):
        return {"maxfun": self.max_fun, "maxiter": max_iter, "gtol": self.tol}

    def _minimize(self, fun, x0, callback, options):
        self.scipy_result = super()._minimize(fun, x0, callback, options)
        return self.scipy_result


class SklearnRecord(Callback):
    """scikit-learn's record of each epoch: the loss in its scale (``logs["loss"]``,
    ``loss_``, ``loss_curve_``; the L2 term of a multi-output squared error estimated
    from its values at the epoch's start and end), ``n_iter_`` and ``t_`` (rows seen)."""

    def __init__(self, est, obj, n_rows):
        self.est, self.obj, self.n_rows = est, obj, n_rows
        self._penalty = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._penalty = self.obj.penalty_value(self.est._model)

    def on_epoch_end(self, epoch, logs=None):
        est, obj = self.est, self.obj
        value = obj.report(logs["loss"],
                           0.5 * (self._penalty + obj.penalty_value(est._model)))
        logs["loss"] = est.loss_ = value
        est.n_iter_ += 1
        est.t_ += self.n_rows
        est.loss_curve_.append(value)


class PrintLoss(Callback):
    """``verbose``: "Iteration k, loss = ..." after each epoch (solver iteration)."""

    def on_epoch_end(self, epoch, logs=None):
        print("Iteration %d, loss = %.8f" % (epoch + 1, logs["loss"]))


class InvScaling(Callback):
    """``learning_rate="invscaling"``: ``learning_rate_init / (t_ + 1) ** power_t`` after
    each epoch."""

    def __init__(self, est):
        self.est = est

    def on_epoch_end(self, epoch, logs=None):
        est = self.est
        set_lr(self.trainer.optimizer, est.learning_rate_init / (est.t_ + 1) ** est.power_t)


class NoImprovement(Callback):
    """scikit-learn's stopping rule, adaptive learning rate and early stopping.

    Parameters
    ----------
    est : BaseMLP
    val : tuple or None
        ``(X, Y, sample_weight)`` of the held-out rows (early stopping), scored by
        ``est._score`` after each epoch; None: the rule watches the training loss.
    warn : bool
        Warn (ConvergenceWarning) when ``max_iter`` epochs end without a stop.
    """

    def __init__(self, est, val, warn):
        self.est, self.val, self.warn = est, val, warn

    def on_epoch_end(self, epoch, logs=None):
        est = self.est
        _update_no_improvement_count(est, self.val)
        if est._no_improvement_count > est.n_iter_no_change:
            if _trigger_stopping(est, self.trainer.optimizer):
                self.trainer.stop_training = True
                return
            est._no_improvement_count = 0
        if self.warn and est.n_iter_ == est.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                          "optimization hasn't converged yet." % est.max_iter,
                          ConvergenceWarning)

    def on_train_end(self, logs=None):
        """Early stopping: the weights of the best validation score."""
        if self.est.early_stopping:
            self.est._model.set_weights(self.est._best_weights)


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


def _trigger_stopping(est, opt):
    """Stop, or (sgd with learning_rate="adaptive") divide the learning rate by 5."""
    what = "Validation score" if est.early_stopping else "Training loss"
    msg = (f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} "
           f"consecutive epochs.")
    if est.solver != "sgd" or est.learning_rate != "adaptive":
        stop, note = True, " Stopping."
    elif opt.lr <= 1e-6:
        stop, note = True, " Learning rate too small. Stopping."
    else:
        set_lr(opt, opt.lr / 5.0)
        stop, note = False, " Setting learning rate to %f" % opt.lr
    if est.verbose:
        print(msg + note)
    return stop


def set_lr(opt, lr):
    """Change SGD's learning rate as scikit-learn does: its velocity holds steps already
    multiplied by the old rate, torch's momentum buffer holds gradients, so the buffer is
    rescaled by old / new to keep the pending steps."""
    buf = opt.state.get("momentum_buffer")
    if buf is not None and opt.lr > 0:
        buf *= opt.lr / lr
    opt.lr = lr
