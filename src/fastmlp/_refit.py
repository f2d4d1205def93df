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


def reinitialize(model):
    """Parameters and buffers as ``Sequential(..., seed=model.seed)`` made them."""
    from fastmlp.sequential import _init_sequence
    for b in model.buffer_info:
        n = int(np.prod(b["shape"], dtype=np.int64))
        model.buffers[b["offset"]:b["offset"] + n] = np.asarray(b["value"]).reshape(-1)
    _init_sequence(model.layers, np.random.default_rng(model.seed))
    model.rng_step = 0


def _all_rows(X, targets, weights, train_idx, val, val_idx):
    """Training rows then validation rows (validation weights: theirs from a split, 1 for
    validation_data)."""
    Xa = np.concatenate([X[train_idx], val[0]])
    ta = np.concatenate([targets[train_idx], val[1]])
    wa = None
    if weights is not None:
        wv = weights[val_idx] if val_idx is not None else np.ones(val[0].shape[0],
                                                                   weights.dtype)
        wa = np.concatenate([weights[train_idx], wv])
    return Xa, ta, wa


def run_refit(trainer, cb, data, epochs_left, batch_size, shuffle, verbose, history):
    """Run ``cb.refit`` after the fit; ``data`` is ``(X, targets, weights, train_idx, val,
    val_idx)``. Sets ``cb.refit_epochs`` and ``cb.refit_target_loss``; extends
    ``history`` (which stays ``trainer.history``)."""
    if cb.best_epoch is None:
        return
    Xa, ta, wa = _all_rows(*data)
    if cb.refit == "retrain":
        reinitialize(trainer.model)
        trainer.optimizer.reset()
        if cb.initial_lr is not None:
            trainer.optimizer.lr = cb.initial_lr
        epochs, callbacks = cb.best_epoch + 1, []
    else:
        if cb.best_weights is not None:
            trainer.model.set_weights(cb.best_weights)
        cb.refit_target_loss = history["loss"][cb.best_epoch]
        epochs, callbacks = epochs_left, [_StopAtLoss(cb.refit_target_loss)]
    if epochs <= 0:
        return
    idx = np.arange(Xa.shape[0], dtype=np.int64)
    extra = trainer._fit(Xa, ta, wa, idx, None, epochs, batch_size, shuffle, callbacks,
                         verbose)
    first = history.epoch[-1] + 1 if history.epoch else 0
    for i, epoch in enumerate(extra.epoch):
        history.append(first + epoch, {k: v[i] for k, v in extra.history.items()},
                       phase="refit")
    cb.refit_epochs = len(extra.epoch)
    trainer.history = history
