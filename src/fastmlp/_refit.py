"""EarlyStopping's retraining on training + validation rows (``EarlyStopping(refit=...)``).

After the early-stopped fit, the validation rows are added to the training rows, and

* ``"retrain"``: the model is re-initialized from its seed (and the optimizer's state and
  learning rate reset) and trained for ``best_epoch + 1`` epochs, as many as reached the
  best validation score;
* ``"continue"``: training goes on from the best weights until the epoch's training loss
  is no more than it was at the best epoch (``refit_target_loss``), for at most the epochs
  the fit had left.

No other callback runs during the refit; its epochs are appended to the fit's History
with ``phase`` ``"refit"``.
"""
import numpy as np

from fastmlp import callbacks as cbks
from fastmlp.optim.base import FULL_BATCH


class _StopAtLoss(cbks.Callback):
    """Stop once an epoch's training loss is <= target."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch, logs=None):
        if logs["loss"] <= self.target:
            self.trainer.stop_training = True


def refit_callback(callbacks):
    """The EarlyStopping that asks for a refit (at most one may), or None."""
    found = [cb for cb in callbacks if getattr(cb, "refit", None) is not None]
    if len(found) > 1:
        raise ValueError("only one EarlyStopping(refit=...) per fit")
    return found[0] if found else None


def check_refit(callbacks, val, optimizer):
    """Refuse a refit without validation data or with a full-batch solver (the refit runs
    mini-batch epochs)."""
    if refit_callback(callbacks) is None:
        return
    if val is None:
        raise ValueError("EarlyStopping(refit=...) needs validation data "
                         "(validation_split or validation_data)")
    if optimizer.strategy == FULL_BATCH:
        raise ValueError("EarlyStopping(refit=...) needs a mini-batch optimizer, not "
                         f"{optimizer!r}")


def reinitialize(model):
    """Parameters and buffers as ``Sequential(..., seed=model.seed)`` made them."""
    from fastmlp.sequential import _init_sequence
    for b in model.buffer_info:
        n = int(np.prod(b["shape"], dtype=np.int64))
        model.buffers[b["offset"]:b["offset"] + n] = np.asarray(b["value"]).reshape(-1)
    _init_sequence(model.layers, np.random.default_rng(model.seed))
    model.rng_step = 0


def _all_rows(X, targets, weights, train_idx, val, val_idx):
    """Training rows then validation rows, and their weights (None when all are 1): the
    rows of a split keep their sample weights, those of ``validation_data`` take its
    ``val_sample_weight``."""
    Xa = np.concatenate([X[train_idx], val[0]])
    ta = np.concatenate([targets[train_idx], val[1]])
    wv = weights[val_idx] if weights is not None and val_idx is not None else val[2]
    if weights is None and wv is None:
        return Xa, ta, None
    dtype = (weights if weights is not None else wv).dtype
    wt = weights[train_idx] if weights is not None else np.ones(train_idx.shape[0], dtype)
    wv = wv if wv is not None else np.ones(val[0].shape[0], dtype)
    return Xa, ta, np.concatenate([wt, wv])


def run_refit(trainer, callbacks, data, epochs, batch_size, shuffle, verbose, history):
    """Run the refit the callbacks ask for (if any) after a fit of ``epochs`` (its last
    epoch index + 1); ``data`` is ``(X, targets, weights, train_idx, val, val_idx)``. Sets
    ``cb.refit_epochs`` and ``cb.refit_target_loss``; extends ``history`` (which stays
    ``trainer.history``)."""
    cb = refit_callback(callbacks)
    if cb is None or cb.best_epoch is None:
        return
    Xa, ta, wa = _all_rows(*data)
    if cb.refit == "retrain":
        reinitialize(trainer.model)
        trainer.optimizer.reset()
        if cb.initial_lr is not None:
            trainer.optimizer.lr = cb.initial_lr
        n_epochs, refit_cbs = cb.best_epoch + 1, []
    else:
        if cb.best_weights is not None:
            trainer.model.set_weights(cb.best_weights)
        # epochs are numbered from fit's initial_epoch: the History holds this fit's only
        cb.refit_target_loss = history["loss"][history.epoch.index(cb.best_epoch)]
        n_epochs = epochs - (history.epoch[-1] + 1)
        refit_cbs = [_StopAtLoss(cb.refit_target_loss)]
    if n_epochs <= 0:
        return
    idx = np.arange(Xa.shape[0], dtype=np.int64)
    fit_params = trainer.fit_params          # the refit's epochs count from 0, unvalidated
    trainer.fit_params = {**fit_params, "epochs": n_epochs, "initial_epoch": 0,
                          "log_keys": trainer._log_keys(False)}
    try:
        extra = trainer._fit(Xa, ta, wa, idx, None, n_epochs, batch_size, shuffle, refit_cbs,
                             verbose)
    finally:
        trainer.fit_params = fit_params
    first = history.epoch[-1] + 1
    for i, epoch in enumerate(extra.epoch):
        history.append(first + epoch, {k: v[i] for k, v in extra.history.items()},
                       phase="refit")
    cb.refit_epochs = len(extra.epoch)
    trainer.history = history
