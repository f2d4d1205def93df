"""Trainer: Keras-grade ``fit`` / ``evaluate`` / ``predict`` on top of the fused core."""
import numbers
import time

import numpy as np

from fastmlp import callbacks as cbks
from fastmlp._epoch import EpochLoop, NonFiniteLoss, penalty_terms
from fastmlp._output_unit import check_output_unit
from fastmlp._refit import refit_callback, run_refit
from fastmlp._progress import Progress
from fastmlp._validation import as_float_matrix, contiguous
from fastmlp.data import split_indices
from fastmlp.diagnostics import Diagnostics
from fastmlp.history import History
from fastmlp.layers.augment import ImageAugment
from fastmlp.layers.noise import Dropout, GaussianNoise
from fastmlp.layers.norm import BatchNorm
from fastmlp.metrics import get_metric, link
from fastmlp.threads import limit_threads



class Trainer:
    """Train a model with a loss and an optimizer.

    Parameters
    ----------
    model : Sequential
    loss : Loss
        e.g. ``CrossEntropyLoss()`` (the model outputs logits) or ``MSELoss()``.
    optimizer : Optimizer
        e.g. ``Adam(lr=1e-3)``; full-batch solvers (``LBFGS()``, ...) run one solver
        iteration per epoch on the whole training set.
    regularizers : sequence
        Penalties added to the loss (see ``fastmlp.regularizers``).
    metrics : sequence of str or callable
        Reported per epoch on the training data and, with validation data, as ``val_*``.
    seed : int or None
        Seed of the shuffling and of the validation split (default: the model's seed).
    n_threads : int or None
        Threads of the core (and of the BLAS pools) during fit. None: adaptive, up to the
        process setting (``fm.set_num_threads``, by default all cores): the fused loop
        measures its steps and moves to fewer threads when that is faster, as on a
        machine whose other cores are busy. The count never changes the results.

    Examples
    --------
    >>> trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3),
    ...                      metrics=["accuracy"])
    >>> history = trainer.fit(X, y, epochs=50, batch_size=64, validation_split=0.1,
    ...                       callbacks=[fm.EarlyStopping(patience=5)])
    """

    def __init__(self, model, loss, optimizer, regularizers=(), metrics=(), seed=None,
                 n_threads=None):
        from fastmlp.optim import get_optimizer
        if n_threads is not None:
            _check_int(n_threads, "n_threads", 1)
        self.n_threads = n_threads
        self.model = model
        if getattr(loss, "reduction", "mean") == "none":
            raise ValueError(f"loss {loss!r}: reduction='none' gives one value per row, "
                             "training needs one number; use 'mean' or 'sum'")
        self.loss = loss
        check_output_unit(model, loss)
        self.optimizer = get_optimizer(optimizer)
        self.regularizers = list(regularizers)
        for reg in self.regularizers:
            if not (callable(reg) and hasattr(reg, "add_grad")):
                raise TypeError(f"regularizers must be penalties such as L2Penalty(1e-4), "
                                f"got {reg!r}")
        self.metrics = _unique_names([get_metric(m) for m in metrics])
        self.seed = model.seed if seed is None else seed
        self._rng = np.random.default_rng(self.seed)
        self.history = None
        self.stop_training = False
        self._thread_governor = None

    def _governor(self):
        """The thread governor of the fused loop (kept across fits), or None when
        ``n_threads`` fixes the count."""
        if self.n_threads is not None:
            return None
        if self._thread_governor is None:
            from fastmlp._train import Governor
            self._thread_governor = Governor()
        return self._thread_governor

    # -- data checks ------------------------------------------------------------------------
    def _inputs(self, X, name="X"):
        return as_float_matrix(X, self.model.dtype, name, self.model.n_in)

    def _targets(self, y, n_rows, name="y"):
        try:
            t = self.loss._prepare_target(y, self.model.n_out, self.model.dtype)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
        if t.shape[0] != n_rows:
            raise ValueError(f"{name} has {t.shape[0]} rows but X has {n_rows}")
        return t

    def _row_weights(self, sample_weight, class_weight, targets):
        n = targets.shape[0]
        w = None
        if sample_weight is not None:
            try:
                w = np.asarray(sample_weight, dtype=np.float64)
            except (ValueError, TypeError) as exc:
                raise TypeError(f"sample_weight must be numbers, one per row: {exc}") from None
            if w.shape != (n,):
                raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
            if not np.isfinite(w).all() or (w < 0).any():
                raise ValueError("sample_weight must be finite and >= 0")
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError("class_weight must be a dict {class index: weight}")
            if not self.loss.is_classification:
                raise ValueError(f"class_weight needs a classification loss, not "
                                 f"{type(self.loss).__name__}")
            labels, n_classes = _class_labels(targets, self.model.n_out)
            cw = np.ones(n_classes)
            for k, v in class_weight.items():
                if not (isinstance(k, numbers.Integral) and 0 <= k < cw.shape[0]):
                    raise ValueError(f"class_weight key {k!r} is not a class index")
                if not (np.isfinite(v) and v >= 0):
                    raise ValueError(f"class_weight[{k}] must be finite and >= 0, got {v}")
                cw[k] = v
            w = cw[labels] if w is None else w * cw[labels]
        return None if w is None else contiguous(w, self.model.dtype)

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None,
            validation_split=0.0, callbacks=(), verbose=1, sample_weight=None,
            class_weight=None):
        """Train for ``epochs`` passes over the data; returns the :class:`History`.

        Mini-batches sample rows without replacement: every training row is used exactly
        once per epoch (the last, partial batch included). ``validation_split`` holds out
        that fraction of the rows (shuffled, and stratified for classification) by index;
        ``validation_data=(X_val, y_val)`` gives them explicitly. ``verbose``: 0 silent,
        1 a progress bar per epoch, 2 one line per epoch.
        """
        _check_int(epochs, "epochs", 0)
        _check_int(batch_size, "batch_size", 1)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if not (isinstance(validation_split, numbers.Real) and 0.0 <= validation_split < 1.0):
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        X = self._inputs(X)
        targets = self._targets(y, X.shape[0])
        weights = self._row_weights(sample_weight, class_weight, targets)
        train_idx, val = self._split(X, targets, validation_data, validation_split)
        refit = refit_callback(callbacks)
        if refit is not None and val is None:
            raise ValueError("EarlyStopping(refit=...) needs validation data "
                             "(validation_split or validation_data)")
        if refit is not None and getattr(self.optimizer, "full_batch", False):
            raise ValueError("EarlyStopping(refit=...) needs a mini-batch optimizer, not "
                             f"{self.optimizer!r}")
        _check_batchnorm_batches(self.model, train_idx.shape[0], batch_size,
                                 getattr(self.optimizer, "full_batch", False))
        _check_deterministic(self.model, self.optimizer)
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, cbks.Callback):
                raise TypeError(f"callbacks must be fastmlp Callback objects, got {cb!r}")
        if not self.model._train_lock.acquire(blocking=False):
            raise RuntimeError("this model is already being trained (in another thread); "
                               "train one model from one thread at a time")
        try:
            with limit_threads(self.n_threads):
                return self._fit(X, targets, weights, train_idx, val, epochs, batch_size,
                                 shuffle, callbacks, verbose)
        finally:
            self.model._train_lock.release()

    def _split(self, X, targets, validation_data, validation_split):
        n = X.shape[0]
        self._val_idx = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            Xv = self._inputs(validation_data[0], "validation_data[0]")
            return np.arange(n, dtype=np.int64), (Xv, self._targets(validation_data[1],
                                                                    Xv.shape[0],
                                                                    "validation_data[1]"))
        if validation_split == 0.0:
            return np.arange(n, dtype=np.int64), None
        strat = None
        if self.loss.is_classification:
            strat = _class_labels(targets, self.model.n_out)[0]
        train_idx, val_idx = split_indices(n, validation_split, self._rng, strat)
        self._val_idx = val_idx           # the refit gives these rows their sample weights
        return train_idx, (X[val_idx], targets[val_idx])

    def _fit(self, X, targets, weights, train_idx, val, epochs, batch_size, shuffle,
             callbacks, verbose):
        if getattr(self.optimizer, "full_batch", False):
            return self._fit_full_batch(X, targets, weights, train_idx, val, epochs,
                                        callbacks, verbose)
        loop = EpochLoop(self, X, targets, weights, batch_size)
        loop.probe = next((cb for cb in callbacks if isinstance(cb, Diagnostics)), None)
        history = self.history = History()
        progress = Progress(verbose, epochs, train_idx.shape[0])
        batch_cbs = [cb for cb in callbacks if cb.wants_batches]
        terminate_on_nan = any(isinstance(cb, cbks.TerminateOnNaN) for cb in callbacks)
        for cb in callbacks:
            cb.set_trainer(self)
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin({})
        train_rows = None
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            lr = float(getattr(self.optimizer, "lr", np.nan))
            perm = self._rng.permutation(train_idx) if shuffle else train_idx
            before = self.model.get_weights()
            t0 = time.perf_counter()
            bar = progress.start_epoch(epoch)
            on_chunk = _chunk_hook(bar, batch_cbs, epoch)
            try:
                train_loss = loop.run(perm, on_chunk, 1 if batch_cbs else None)
            except NonFiniteLoss as bad:
                self._handle_nonfinite(bad, epoch, before, terminate_on_nan, progress)
                break
            except BaseException:       # KeyboardInterrupt included: the bar must not linger
                progress.close()
                raise
            logs = {"loss": train_loss}
            if self.metrics and train_rows is None:   # copied once per fit, when needed
                train_rows = (X, targets) if train_idx.shape[0] == X.shape[0] else \
                    (X[train_idx], targets[train_idx])
            if self.metrics:
                logs.update(self._metric_logs(train_rows[0], train_rows[1], ""))
            if val is not None:
                logs.update(self.evaluate(val[0], val[1], _prepared=True, prefix="val_"))
            logs["lr"] = lr
            logs["epoch_time"] = time.perf_counter() - t0
            progress.end_epoch(bar, epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            history.append(epoch, logs)     # last, as Keras: with what callbacks added
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end({})
        refit = refit_callback(callbacks)
        if refit is not None:
            data = (X, targets, weights, train_idx, val, self._val_idx)
            run_refit(self, refit, data, epochs - len(history.epoch), batch_size, shuffle,
                      verbose, history)
        return history

    def _fit_full_batch(self, X, targets, weights, train_idx, val, epochs, callbacks,
                        verbose):
        """One solver iteration per epoch on all training rows; the solver runs the loop
        (batch_size and shuffle do not apply) and stops early once converged."""
        from fastmlp.optim.fullbatch import make_objective
        Xt, tt = X[train_idx], targets[train_idx]
        objective = make_objective(self.model, self.loss, Xt, tt,
                                   None if weights is None else weights[train_idx],
                                   penalty_terms(self))
        history = self.history = History()
        progress = Progress(verbose, epochs, Xt.shape[0])
        for cb in callbacks:
            cb.set_trainer(self)
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin({})
        clock = {"t0": time.perf_counter(), "lr": np.nan}

        def begin(epoch):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            clock.update(t0=time.perf_counter(), lr=float(getattr(self.optimizer, "lr", np.nan)))

        def on_iteration(epoch, loss):
            logs = {"loss": loss}          # the loss at the accepted iterate
            logs.update(self._metric_logs(Xt if self.metrics else None, tt, ""))
            if val is not None:
                logs.update(self.evaluate(val[0], val[1], _prepared=True, prefix="val_"))
            logs["lr"] = clock["lr"]
            logs["epoch_time"] = time.perf_counter() - clock["t0"]
            progress.end_epoch(progress.start_epoch(epoch), epoch, logs)
            history.append(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                return True
            if epoch + 1 < epochs:
                begin(epoch + 1)
            return False

        if epochs:
            begin(0)
        self.solver_result_ = self.optimizer.run(self.model, objective, epochs, on_iteration)
        if not np.isfinite(self.solver_result_["loss"]):
            raise FloatingPointError(f"full-batch loss is {self.solver_result_['loss']}")
        for cb in callbacks:
            cb.on_train_end({})
        return history

    def _handle_nonfinite(self, bad, epoch, before, terminate_on_nan, progress):
        if not np.isfinite(self.model.params).all():
            self.model.set_weights(before)          # the last finite weights we know
        self.stop_training = True
        msg = (f"the loss or its gradient became non-finite (loss = {bad.value}) at epoch "
               f"{epoch + 1}, step {bad.step + 1}; training stopped and the model holds the "
               f"last finite weights")
        progress.close()
        if not terminate_on_nan:
            raise FloatingPointError(msg)
        print(f"TerminateOnNaN: {msg}")

    # -- evaluation -------------------------------------------------------------------------
    def _outputs(self, X):
        """Network outputs in evaluation mode (``model.predict``: chunked, thread-safe)."""
        return self.model.predict(X)

    def _metric_logs(self, X, targets, prefix, outputs=None):
        if not self.metrics or X is None:
            return {}
        out = self._outputs(X) if outputs is None else outputs
        pred = link(self.loss, out)
        return {prefix + name: float(fn(targets, pred)) for name, fn in self.metrics}

    def evaluate(self, X, y, sample_weight=None, _prepared=False, prefix=""):
        """Loss and metrics on (X, y), in evaluation mode: ``{'loss': ..., 'accuracy': ...}``.

        The loss is the mean over all rows (plus the regularizers' penalties, as in fit).
        """
        if not _prepared:
            X = self._inputs(X)
            y = self._targets(y, X.shape[0])
        out = self._outputs(X)
        value = self.loss(out, y, sample_weight=sample_weight)
        value += sum(term(self.model) for term in penalty_terms(self))
        logs = {prefix + "loss": float(value)}
        logs.update(self._metric_logs(X, y, prefix, outputs=out))
        return logs

    def predict(self, X):
        """Network outputs (logits for classification losses) in evaluation mode."""
        return self._outputs(self._inputs(X))


def _chunk_hook(bar, batch_cbs, epoch):
    if bar is None and not batch_cbs:
        return None

    def hook(steps, rows, loss_sum):
        logs = {"loss": loss_sum / max(rows, 1)}
        if bar is not None:
            bar.update_to(rows, logs)
        for cb in batch_cbs:
            cb.on_batch_end(steps - 1, logs)
    return hook


def _class_labels(targets, n_out):
    """``(one class per row, number of classes)``: labels as given, the argmax of
    probability rows, or ``p > 0.5`` for a single (binary) output."""
    if targets.dtype == np.int64:
        return targets, n_out
    if targets.shape[1] == 1:
        return (targets[:, 0] > 0.5).astype(np.int64), 2
    return targets.argmax(axis=1), targets.shape[1]


def _check_deterministic(model, optimizer):
    """Full-batch solvers search along lines of one objective: a layer drawing new noise at
    every evaluation makes it random (L-BFGS then stops early, claiming convergence)."""
    if not getattr(optimizer, "full_batch", False):
        return
    for layer in model.flat_layers:
        if (isinstance(layer, Dropout) and layer.p > 0) or \
                (isinstance(layer, GaussianNoise) and layer.std > 0) or \
                isinstance(layer, ImageAugment):
            raise ValueError(f"optimizer={optimizer!r} needs a deterministic objective, but "
                             f"{layer!r} draws new noise at every evaluation: use a "
                             "mini-batch optimizer (e.g. Adam) or remove the layer")


def _check_batchnorm_batches(model, n_rows, batch_size, full_batch):
    """BatchNorm needs at least 2 rows per training batch (the variance of one row is
    undefined; torch refuses it too): refuse a fit whose last batch would have 1 row."""
    if n_rows == 0 or not any(isinstance(layer, BatchNorm) for layer in model.flat_layers):
        return
    size = n_rows if full_batch else min(batch_size, n_rows)
    if n_rows % size != 1 and size != 1:
        return
    if n_rows == 1:
        raise ValueError("BatchNorm needs at least 2 rows per training batch, but there is "
                         "1 training row")
    raise ValueError(f"batch_size={batch_size} leaves a training batch of 1 row "
                     f"({n_rows} training rows); BatchNorm needs at least 2 rows per "
                     f"training batch: choose another batch_size")


def _unique_names(metrics):
    """Callables without a name (lambdas) get distinct keys: metric, metric_2, ..."""
    seen, out = {}, []
    for name, fn in metrics:
        if name == "<lambda>":
            name = "metric"
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", fn))
    return out


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
