"""Callbacks for :meth:`Trainer.fit`, with Keras' names and semantics.

The trainer calls ``on_train_begin``, ``on_epoch_begin``, ``on_epoch_end`` and
``on_train_end``. ``on_batch_end`` is called only when a callback defines it: the
fused training loop then hands control back to Python after every step, which costs
speed, so only ask for it when needed. A callback stops training by setting
``trainer.stop_training = True``.
"""
import contextlib
import csv
import inspect
import math
import os
import string
import warnings
from typing import Any, Callable, Optional, Union

import numpy as np

from fastmlp import schedules
from fastmlp._typing import Logs, PathLike
from fastmlp.io import save


class Callback:
    """Base class; ``self.trainer`` is set before training begins."""

    trainer = None

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    @property
    def params(self) -> dict:
        """The current fit's parameters (Keras): ``epochs``, ``verbose`` and ``log_keys``,
        the keys of the logs ``on_epoch_end`` receives."""
        return getattr(self.trainer, "fit_params", {})

    @property
    def is_chief(self) -> bool:
        """False on the ranks other than 0 of a distributed fit, which neither print nor
        write files (their logs, weights and decisions are those of rank 0)."""
        return getattr(self.trainer, "rank", 0) == 0

    @property
    def wants_batches(self) -> bool:
        return type(self).on_batch_end is not Callback.on_batch_end

    def on_train_begin(self, logs: Logs = None) -> None:
        pass

    def on_train_end(self, logs: Logs = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        pass


def _resolve_mode(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        higher_is_better = ("acc" in monitor or monitor.endswith("r2") or "auc" in monitor)
        return "max" if higher_is_better else "min"
    return mode


class _Monitor(Callback):
    """Shared logic: compare a monitored value with the best one seen."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric name, got {monitor!r}")
        if not (min_delta >= 0):
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = float(min_delta)

    def _initial_best(self):
        return math.inf if self.mode == "min" else -math.inf

    def _improved(self, current, best):
        if self.mode == "min":
            return current < best - self.min_delta
        return current > best + self.min_delta

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: monitored metric {self.monitor!r} is not "
                          f"available; available: {sorted(logs or {})}", RuntimeWarning,
                          stacklevel=3)
        return value


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs.

    With ``restore_best_weights`` (the default here), the weights of the best epoch are
    put back at the end of training, whether or not this callback stopped it. Epochs
    before ``start_from_epoch`` are not monitored (warm-up).

    ``refit`` uses the validation rows for training afterwards (the lecture's two
    strategies; needs validation data): ``"retrain"`` re-initializes the model from its
    seed and trains on training + validation rows for ``best_epoch + 1`` epochs;
    ``"continue"`` adds the validation rows and trains on from the best weights until the
    training loss falls to its value at the best epoch (``refit_target_loss``), for at
    most the epochs the fit had left. ``refit_epochs`` counts the refit's epochs; the
    History marks them with ``phase == "refit"`` (see ``fastmlp._refit``).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 10,
                 mode: str = "auto", restore_best_weights: bool = True,
                 start_from_epoch: int = 0, verbose: int = 0, refit: Optional[str] = None):
        if refit not in (None, "retrain", "continue"):
            raise ValueError(f"refit must be None, 'retrain' or 'continue', got {refit!r}")
        self.refit = refit
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if start_from_epoch < 0:
            raise ValueError(f"start_from_epoch must be >= 0, got {start_from_epoch}")
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.verbose = verbose

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait = 0
        self.stopped_epoch = None
        self.best = self._initial_best()
        self.best_epoch = None
        self.best_weights = None
        self.refit_epochs, self.refit_target_loss = 0, None
        self.initial_lr = getattr(self.trainer.optimizer, "lr", None)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        keep = self.restore_best_weights or self.refit == "continue"
        if keep and self.best_weights is None:
            # Keras: without any improvement, the first monitored epoch counts as the best
            self.best_weights, self.best_epoch = self.trainer.model.get_weights(), epoch
        self.wait += 1
        if self._improved(current, self.best):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if keep:
                self.best_weights = self.trainer.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch is not None and self.verbose and self.is_chief:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose and self.is_chief:
                print(f"Restoring the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} = {self.best:.6g})")
            self.trainer.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model (``fastmlp.save``) after an epoch: every epoch, or only when
    ``monitor`` improved (``save_best_only``). ``path`` may contain ``{epoch}`` and
    metric names, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.fmlp"``."""

    def __init__(self, path: PathLike, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str = "auto", save_trainer: bool = False, verbose: int = 0):
        super().__init__(monitor, mode)
        self.path = os.fspath(path)
        self.save_best_only = bool(save_best_only)
        self.save_trainer = bool(save_trainer)
        self.verbose = verbose

    def on_train_begin(self, logs: Logs = None) -> None:
        self.best = self._initial_best()
        self._check_path(self.params.get("log_keys"))

    def _check_path(self, keys):
        """Fail before the first epoch trains: a field of ``path`` the logs will not hold,
        or a directory that does not exist."""
        fields = {f.split(".")[0].split("[")[0]
                  for _, f, _, _ in string.Formatter().parse(self.path) if f}
        if keys is not None:
            missing = sorted(fields - set(keys) - {"epoch"})
            if missing:
                hint = (" (val_* values need validation data: pass validation_data or "
                        "validation_split)" if any(m.startswith("val_") for m in missing)
                        else "")
                raise ValueError(f"ModelCheckpoint path {self.path!r} uses {missing}, which "
                                 f"this fit does not log{hint}; it logs "
                                 f"{['epoch'] + list(keys)}")
        directory = os.path.dirname(self.path)
        if directory and "{" not in directory and not os.path.isdir(directory):
            raise FileNotFoundError(f"ModelCheckpoint: the directory of {self.path!r} does "
                                    "not exist")

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            current = self._current(logs)
            if current is None or not self._improved(current, self.best):
                return
            self.best = current
        path = self.path.format(epoch=epoch + 1, **logs)
        if not self.is_chief:
            return
        save(self.trainer if self.save_trainer else self.trainer.model, path)
        if self.verbose and self.is_chief:
            print(f"Epoch {epoch + 1}: saved {path}")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving by more
    than ``min_delta`` (absolute) for ``patience`` epochs (Keras: with ``patience=2`` the
    second epoch in a row without improvement reduces it, as it would stop
    :class:`EarlyStopping` with the same patience). Then ``cooldown`` epochs are not
    counted. :class:`fastmlp.schedules.ReduceLROnPlateau` does the bookkeeping (its
    torch-style ``patience`` is one less)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0, verbose: int = 0):
        self.monitor = monitor
        self.kwargs = dict(mode=_resolve_mode(mode, monitor), factor=factor, patience=patience,
                           threshold=min_delta, threshold_mode="abs", cooldown=cooldown,
                           min_lr=min_lr)
        self.kwargs = schedules.ReduceLROnPlateau.validate(**self.kwargs)
        self.patience = self.kwargs["patience"]
        self.kwargs["patience"] = max(self.patience - 1, 0)      # torch counts one more
        self.verbose = verbose

    def on_train_begin(self, logs: Logs = None) -> None:
        self.schedule = schedules.ReduceLROnPlateau(self.trainer.optimizer, **self.kwargs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        value = _Monitor._current(self, logs)
        if value is None:
            return
        old = self.trainer.optimizer.lr
        self.schedule.step(value)
        if self.verbose and self.is_chief and self.trainer.optimizer.lr != old:
            print(f"Epoch {epoch + 1}: learning rate {old:.3g} -> {self.trainer.optimizer.lr:.3g}")


class LearningRateScheduler(Callback):
    """Set the learning rate before each epoch from ``schedule``: a function
    ``(epoch, lr) -> new lr`` or ``(epoch) -> new lr`` (Keras; epochs count from 0) or a
    fastmlp schedule object (its ``lr_at(epoch)``)."""

    def __init__(self, schedule: Union[Callable[[int, float], float], Any], verbose: int = 0):
        if not (callable(schedule) or hasattr(schedule, "lr_at")):
            raise TypeError("schedule must be a function (epoch, lr) -> lr or a fastmlp schedule")
        self.schedule = schedule
        self.verbose = verbose
        self._one_arg = not hasattr(schedule, "lr_at") and _takes_one_arg(schedule)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        opt = self.trainer.optimizer
        if hasattr(self.schedule, "lr_at"):
            lr = self.schedule.lr_at(epoch)
        elif self._one_arg:
            lr = self.schedule(epoch)
        else:
            lr = self.schedule(epoch, opt.lr)
        lr = float(lr)
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"schedule returned an invalid learning rate {lr} at epoch {epoch}")
        opt.lr = lr
        if self.verbose and self.is_chief:
            print(f"Epoch {epoch + 1}: learning rate {lr:.3g}")


def _takes_one_arg(fn):
    """Whether ``fn`` can only be called with one positional argument."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1


class TerminateOnNaN(Callback):
    """Stop training cleanly when the loss becomes NaN or infinite.

    The trainer notices it at the step where it happens, stops, puts back the last finite
    weights and prints which epoch and step it was (without this callback such a run
    raises FloatingPointError instead).
    """


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file (one row per epoch, header first).

    With ``append=True`` the rows go after those of the file, with its columns, and the
    epochs are numbered on from the file's last one (a resumed run continues its log); an
    ``initial_epoch`` beyond it is kept as it is."""

    def __init__(self, path: PathLike, separator: str = ",", append: bool = False):
        self.path = os.fspath(path)
        self.separator = separator
        self.append = bool(append)
        self._keys = None
        self._offset = 0

    def on_train_begin(self, logs: Logs = None) -> None:
        self._keys, self._offset = None, 0
        if not self.is_chief:
            return
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)
        last = self._last_row() if self.append else None
        if last is not None:
            self._keys = [k for k in last if k != "epoch"]
            with contextlib.suppress(TypeError, ValueError):
                first = self.params.get("initial_epoch", 0)
                self._offset = max(int(last["epoch"]) + 1 - first, 0)

    def _last_row(self):
        """The last row of the existing file (a dict), or None."""
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            return None
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=self.separator))
        return rows[-1] if rows else None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if not self.is_chief:
            return
        new_file = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if self._keys is None:
            self._keys = sorted(logs)
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator)
            if new_file:
                writer.writerow(["epoch"] + self._keys)
            writer.writerow([epoch + self._offset] + [logs.get(k, "") for k in self._keys])


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_epoch_begin: Optional[Callable] = None,
                 on_epoch_end: Optional[Callable] = None,
                 on_batch_end: Optional[Callable] = None,
                 on_train_begin: Optional[Callable] = None,
                 on_train_end: Optional[Callable] = None):
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)
        self._batch_fn = on_batch_end

    @property
    def wants_batches(self) -> bool:
        return self._batch_fn is not None

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._batch_fn is not None:
            self._batch_fn(batch, logs)
