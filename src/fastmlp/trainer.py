"""Trainer: Keras-grade ``fit`` / ``evaluate`` / ``predict`` on top of the fused core."""
import numbers
import time
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from fastmlp import _trainer_state
from fastmlp import callbacks as cbks
from fastmlp._epoch import EpochLoop, NonFiniteLoss, penalty_terms
from fastmlp._fit_checks import (check_batchnorm_batches, check_deterministic, check_int,
                                 check_ranks_agree, check_validation_freq)
from fastmlp._trainer_rows import (check_sample_weight, class_labels, class_weight_table,
                                   prepare_targets, rows_of, split_rows)
from fastmlp._output_unit import check_output_unit
from fastmlp._refit import check_refit, run_refit
from fastmlp._progress import Progress, chunk_hook
from fastmlp._serial import register_kind
from fastmlp._typing import ArrayLike, Config, MetricFn, Seed
from fastmlp._validation import as_float_matrix, contiguous
from fastmlp.distributed import Distributed, RankFailed
from fastmlp.diagnostics import Diagnostics
from fastmlp.history import History
from fastmlp.losses import Loss, get_loss, loss_value_and_grad
from fastmlp.metrics import _unique_names, call_metric, get_metrics, link
from fastmlp.optim import FULL_BATCH, MINI_BATCH, BaseOptimizer
from fastmlp.regularizers import Penalty
from fastmlp.sequential import Sequential
from fastmlp.threads import limit_threads


@register_kind("trainer")
class Trainer:
    """Train a model with a loss and an optimizer.

    Parameters
    ----------
    model : Sequential or Model
        A graph :class:`~fastmlp.Model` gets the trainer of ``fastmlp._graph_fit``
        (``GraphTrainer``): a loss per output, ``loss_weights=``, metrics per output.
    loss : Loss, Loss class or str
        e.g. ``CrossEntropyLoss()`` (the model outputs logits) or ``MSELoss()``; a class or
        a name (``"mse"``, ``"categorical_crossentropy"``, ...: see
        :func:`fastmlp.losses.get_loss`).
    optimizer : Optimizer, Optimizer class or str
        e.g. ``Adam(lr=1e-3)`` or ``"adam"``; full-batch solvers (``LBFGS()``, ...) run one
        solver iteration per epoch on the whole training set.
    regularizers : sequence
        Penalties added to the loss (see ``fastmlp.regularizers``).
    metrics : str, callable, sequence of them, or dict
        Reported per epoch on the training data and, with validation data, as ``val_*``.
        A dict ``{name: metric}`` names them (a lambda is otherwise saved as "metric").
    seed : int or None
        Seed of the shuffling and of the validation split (default: the model's seed;
        the split falls back on the model's RNG key when both are None).
    n_threads : int or None
        Threads of the core (and of the BLAS pools) during fit. None: adaptive, up to the
        process setting (``fm.set_num_threads``, by default all cores): the fused loop
        measures its steps and moves to fewer threads when that is faster, as on a
        machine whose other cores are busy. The count never changes the results.
    comm : mpi4py.MPI.Intracomm or None
        Data-parallel training on every rank of ``comm`` (e.g. ``MPI.COMM_WORLD``; mpi4py
        is imported only then): ``batch_size`` is the global batch, the ranks' gradients are
        summed in the fused loop, only rank 0 prints and writes files. See
        :mod:`fastmlp.distributed` and ``fit(sharded=...)``.

    Examples
    --------
    >>> trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3),
    ...                      metrics=["accuracy"])
    >>> history = trainer.fit(X, y, epochs=50, batch_size=64, validation_split=0.1,
    ...                       callbacks=[fm.EarlyStopping(patience=5)])
    """

    def __new__(cls, model: Any = None, *args: Any, **kwargs: Any) -> "Trainer":
        # a graph model (fastmlp.Model: several inputs and outputs) gets the Trainer of
        # fastmlp._graph_fit, which adds losses per output, loss_weights and per-output metrics
        if cls is Trainer and getattr(model, "is_graph", False):
            from fastmlp._graph_fit import GraphTrainer
            cls = GraphTrainer
        return super().__new__(cls)

    def __init__(self, model: Sequential, loss: Union[str, Loss],
                 optimizer: Union[str, BaseOptimizer],
                 regularizers: Sequence[Penalty] = (),
                 metrics: Sequence[Union[str, MetricFn]] = (), seed: Seed = None,
                 n_threads: Optional[int] = None, comm: Any = None):
        self._setup(model, optimizer, regularizers, seed, n_threads, comm)
        self.loss = get_loss(loss)
        if getattr(self.loss, "reduction", "mean") == "none":
            raise ValueError(f"loss {self.loss!r}: reduction='none' gives one value per row, "
                             "training needs one number; use 'mean' or 'sum'")
        check_output_unit(model, self.loss)
        self.metrics = _unique_names(get_metrics(metrics))

    def _setup(self, model, optimizer, regularizers, seed, n_threads, comm):
        """What every Trainer sets up, whatever its losses and metrics."""
        from fastmlp.optim import get_optimizer
        self.comm = comm
        self._dist = None if comm is None else Distributed(comm)
        if n_threads is not None:
            check_int(n_threads, "n_threads", 1)
        self.n_threads = n_threads
        self.model = model
        self.optimizer = get_optimizer(optimizer)
        self.regularizers = list(regularizers)
        for reg in self.regularizers:
            if not (callable(reg) and hasattr(reg, "add_grad")):
                raise TypeError(f"regularizers must be penalties such as L2Penalty(1e-4), "
                                f"got {reg!r}")
        self.seed = model.seed if seed is None else seed
        self._rng = np.random.default_rng(self.seed)
        self.history = None
        #: what the callbacks of the current fit may read (``Callback.params``, as Keras)
        self.fit_params = {}
        self.stop_training = False
        self._thread_governor = None

    def __getstate__(self):
        """Pickle (and ``copy.deepcopy``) everything but the thread governor, which holds
        timings of this machine's run: a copy measures afresh."""
        return {**self.__dict__, "_thread_governor": None, "comm": None, "_dist": None}

    def __fastmlp_save__(self) -> Tuple[Config, Dict[str, np.ndarray]]:
        """``(config, arrays)`` for ``fastmlp.io.save`` (see :mod:`fastmlp._trainer_state`)."""
        return _trainer_state.pack_trainer(self)

    @classmethod
    def __fastmlp_load__(cls, config: Config, arrays: Dict[str, np.ndarray],
                         custom_objects: Optional[Dict[str, Any]] = None) -> "Trainer":
        """The trainer :meth:`__fastmlp_save__` described; consumes ``arrays``."""
        return _trainer_state.unpack_trainer(cls, config, arrays, custom_objects)

    @property
    def rank(self) -> int:
        """This process's rank in ``comm`` (0 without one): rank 0 prints and writes."""
        return 0 if self._dist is None else self._dist.rank

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
        return as_float_matrix(X, self.model.dtype, name, self.model.n_in, ops=self.model.ops)

    def _targets(self, y, n_rows, name="y"):
        return prepare_targets(self.loss, y, self.model.n_out, self.model.dtype, n_rows, name,
                               self.model.ops)

    def _row_weights(self, sample_weight, class_weight, targets):
        """Each row's weight: ``sample_weight`` times its class's ``class_weight``."""
        n = targets.shape[0]
        w = None if sample_weight is None else check_sample_weight(sample_weight, n)
        if class_weight is not None:
            cw, labels = class_weight_table(self.loss, self.model.n_out, class_weight, targets)
            w = cw[labels] if w is None else w * cw[labels]
        return None if w is None else contiguous(w, self.model.dtype)

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 1, batch_size: int = 32,
            shuffle: bool = True, validation_data: Optional[tuple] = None,
            validation_split: float = 0.0, callbacks: Sequence[cbks.Callback] = (),
            verbose: int = 1, sample_weight: Optional[ArrayLike] = None,
            class_weight: Union[Dict[int, float], str, None] = None, initial_epoch: int = 0,
            validation_freq: Union[int, Sequence[int]] = 1, sharded: bool = False) -> History:
        """Train for ``epochs`` passes over the data; returns the :class:`History`.

        Mini-batches sample rows without replacement: every training row is used exactly
        once per epoch (the last, partial batch included). Without metrics, the epoch's
        ``loss`` is the running mean of its batch losses (training mode: dropout on); with
        metrics, ``loss`` and the metrics are measured alike, in evaluation mode on the
        training rows at the end of the epoch (the pass the metrics need anyway).
        ``validation_split`` holds out that fraction of the rows (shuffled, and stratified
        for classification) by index, the same rows on every fit of as many rows (the split
        is fixed by the trainer's seed, or the model's RNG key, and the row count; Keras
        holds out the last rows);
        ``validation_data=(X_val, y_val)`` or ``(X_val, y_val, val_sample_weight)`` gives
        them explicitly. ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per
        epoch. As Keras, ``initial_epoch`` is the epoch to start from (the epochs run are
        ``initial_epoch, ..., epochs - 1``: resume a run with its numbering), and
        ``validation_freq`` validates every k-th epoch (an int) or after the listed epochs
        (counted from 1). ``class_weight`` is a dict ``{class index: weight}`` or
        ``"balanced"`` (scikit-learn's ``n_rows / (n_classes * count)``).
        With ``comm``, every rank calls fit: with the same data (``sharded=False``) or each
        with its own rows (``sharded=True``); see :mod:`fastmlp.distributed`.
        """
        if sharded and self._dist is None:
            raise ValueError("sharded=True needs a communicator: Trainer(..., comm=...)")
        if self._dist is not None and self.rank != 0 and verbose in (1, 2):
            verbose = 0
        error = prepared = None
        try:
            prepared = self._prepare_fit(X, y, epochs, batch_size, validation_data,
                                         validation_split, callbacks, verbose, sample_weight,
                                         class_weight, initial_epoch, validation_freq)
        except (ValueError, TypeError) as exc:
            if self._dist is None:
                raise
            error = exc
        if self._dist is not None:
            check_ranks_agree(self, error, prepared, batch_size, sharded, shuffle,
                              validation_split)
        X, targets, weights, train_idx, val, callbacks = prepared
        if not self.model._train_lock.acquire(blocking=False):
            raise RuntimeError("this model is already being trained (in another thread); "
                               "train one model from one thread at a time")
        try:
            with limit_threads(self.n_threads):
                return self._fit(X, targets, weights, train_idx, val, epochs, batch_size,
                                 shuffle, callbacks, verbose, sharded)
        except BaseException as exc:
            if self._dist is not None and not isinstance(exc, RankFailed):
                self._dist.agree(exc)       # the other ranks raise RankFailed
            raise
        finally:
            self.model._train_lock.release()

    def _prepare_fit(self, X, y, epochs, batch_size, validation_data, validation_split,
                     callbacks, verbose, sample_weight, class_weight, initial_epoch,
                     validation_freq):
        """Check fit's arguments; returns the prepared arrays and callbacks."""
        check_int(epochs, "epochs", 0)
        check_int(initial_epoch, "initial_epoch", 0)
        validation_freq = check_validation_freq(validation_freq)
        check_int(batch_size, "batch_size", 1)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if not (isinstance(validation_split, numbers.Real) and 0.0 <= validation_split < 1.0):
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        X = self._inputs(X)
        targets = self._targets(y, X.shape[0])
        weights = self._row_weights(sample_weight, class_weight, targets)
        train_idx, val = self._split(X, targets, validation_data, validation_split)
        check_refit(callbacks, val, self.optimizer)
        self._check_batches(train_idx.shape[0], batch_size)
        check_deterministic(self.model, self.optimizer)
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, cbks.Callback):
                raise TypeError(f"callbacks must be fastmlp Callback objects, got {cb!r}")
        if self._dist is not None and self.optimizer.strategy == FULL_BATCH:
            raise ValueError(f"optimizer={self.optimizer!r} is a full-batch solver: "
                             "distributed training (comm=) needs a mini-batch optimizer")
        self.fit_params = {"epochs": epochs, "initial_epoch": initial_epoch,
                           "validation_freq": validation_freq, "verbose": verbose,
                           "log_keys": self._log_keys(val is not None)}
        return X, targets, weights, train_idx, val, callbacks

    def _check_batches(self, n_rows, batch_size):
        """Refuse batches the model cannot train on (BatchNorm: a batch of 1 row)."""
        check_batchnorm_batches(self.model, n_rows, batch_size,
                                self.optimizer.strategy == FULL_BATCH)

    def _log_keys(self, validation):
        """The keys of the logs each epoch of this fit hands to the callbacks."""
        names = [name for name, _ in self.metrics]
        keys = ["loss"] + names
        if validation:
            keys += ["val_loss"] + [f"val_{name}" for name in names]
        return keys + ["lr", "epoch_time"]

    def _split(self, X, targets, validation_data, validation_split):
        """``(training row indices, (X_val, y_val, w_val) or None)``; keeps the held-out
        indices of ``validation_split`` in ``_val_idx`` (see :func:`split_rows`)."""
        train_idx, val, self._val_idx = split_rows(self, X, targets, validation_data,
                                                   validation_split)
        return train_idx, val

    def _strata(self, targets):
        """The class of each row, by which ``validation_split`` stratifies (None: none)."""
        if self.loss.is_classification:
            return class_labels(targets, self.model.n_out)[0]
        return None

    def _split_rng(self, n):
        """The generator of ``validation_split``: fixed by the seed (the trainer's, else the
        model's RNG key, which save/load keeps) and the number of rows, so every fit on the
        same data, and a fit after a resume, holds out the same rows."""
        key = self.seed if self.seed is not None else self.model.rng_seed
        return np.random.default_rng([int(key) % 2**64, n])

    def _fit(self, X, targets, weights, train_idx, val, epochs, batch_size, shuffle,
             callbacks, verbose, sharded=False):
        """The training loop of the optimizer's ``strategy``: :meth:`_fit_mini_batch` or
        :meth:`_fit_full_batch`; both end each epoch through :meth:`_epoch_end`."""
        run = {MINI_BATCH: self._fit_mini_batch, FULL_BATCH: self._fit_full_batch}
        run = run[self.optimizer.strategy]
        return run(X, targets, weights, train_idx, val, epochs, batch_size, shuffle,
                   callbacks, verbose, sharded)

    def _fit_mini_batch(self, X, targets, weights, train_idx, val, epochs, batch_size,
                        shuffle, callbacks, verbose, sharded):
        """Epochs of mini-batches, run by an :class:`EpochLoop` (fused or in Python)."""
        loop = self._epoch_loop(X, targets, weights, batch_size, sharded)
        self._sharded = sharded
        loop.probe = next((cb for cb in callbacks if isinstance(cb, Diagnostics)), None)
        progress = self._train_begin(callbacks, verbose, epochs, train_idx.shape[0])
        batch_cbs = [cb for cb in callbacks if cb.wants_batches]
        terminate_on_nan = any(isinstance(cb, cbks.TerminateOnNaN) for cb in callbacks)
        train_rows = None
        for epoch in range(self.fit_params["initial_epoch"], epochs):
            clock = self._epoch_begin(callbacks, epoch)
            perm = self._epoch_order(train_idx, epoch, sharded, shuffle)
            before = self.model.get_weights()
            bar = progress.start_epoch(epoch)
            try:
                train_loss = loop.run(perm, chunk_hook(bar, batch_cbs),
                                      1 if batch_cbs else None)
            except NonFiniteLoss as bad:
                self._handle_nonfinite(bad, epoch, before, terminate_on_nan, progress)
                break
            except BaseException:       # KeyboardInterrupt included: the bar must not linger
                progress.close()
                raise
            logs = {"loss": train_loss}
            if self.metrics:      # loss and metrics alike: evaluation mode, at the epoch's end
                train_rows = train_rows or rows_of(X, targets, weights, train_idx)
                logs.update(self._sharded_mean(self.evaluate(
                    train_rows[0], train_rows[1], _prepared=True,
                    sample_weight=train_rows[2]), train_rows[0].shape[0]))
            if self._epoch_end(callbacks, epoch, logs, val, clock, progress, bar):
                break
        self._train_end(callbacks)
        if self._dist is not None:
            self._dist.agree()
        run_refit(self, callbacks, (X, targets, weights, train_idx, val, self._val_idx),
                  epochs, batch_size, shuffle, verbose, self.history)
        return self.history

    # -- what every epoch does, mini-batch or full-batch ---------------------------------------
    def _train_begin(self, callbacks, verbose, epochs, n_rows):
        """A new History, the callbacks told; returns the progress display."""
        self.history = History()
        progress = Progress(verbose, epochs, n_rows)
        for cb in callbacks:
            cb.set_trainer(self)
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin({})
        return progress

    def _epoch_begin(self, callbacks, epoch):
        """Tell the callbacks; returns the epoch's clock ``(lr, start time)``."""
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        return float(getattr(self.optimizer, "lr", np.nan)), time.perf_counter()

    def _epoch_end(self, callbacks, epoch, logs, val, clock, progress, bar):
        """Complete the epoch's ``logs`` (``val_*``, ``lr``, ``epoch_time``) and hand them
        to the progress bar, the callbacks and the History (last, as Keras: with what the
        callbacks added). Returns whether training stops (one rank's stop stops all)."""
        logs.update(self._validation_logs(val, epoch))
        logs["lr"] = clock[0]
        logs["epoch_time"] = time.perf_counter() - clock[1]
        progress.end_epoch(bar, epoch, logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        self.history.append(epoch, logs)
        if self._dist is not None:
            self.stop_training = self._dist.agree(stop=self.stop_training)
        return self.stop_training

    def _train_end(self, callbacks):
        for cb in callbacks:
            cb.on_train_end({})

    def _epoch_loop(self, X, targets, weights, batch_size, sharded):
        """What runs the epochs of ``_fit``: the fused loop or its Python steps."""
        return EpochLoop(self, X, targets, weights, batch_size, sharded)

    def _epoch_order(self, train_idx, epoch, sharded, shuffle):
        """The epoch's order of the training rows: as given without ``shuffle``, else from
        the trainer's generator (the same on every rank of a default distributed fit), or
        sharded from (seed, rank, epoch)."""
        if not shuffle:
            return train_idx
        if not sharded:
            return self._rng.permutation(train_idx)
        key = self.seed if self.seed is not None else self.model.rng_seed
        return np.random.default_rng([int(key) % 2**64, self.rank, epoch]).permutation(train_idx)

    def _sharded_mean(self, logs, rows):
        """Sharded fits: the ranks' row-weighted mean of this rank's logs; else logs."""
        if self._dist is None or not getattr(self, "_sharded", False):
            return logs
        return self._dist.reduce_logs(logs, rows)

    def _fit_full_batch(self, X, targets, weights, train_idx, val, epochs, batch_size,
                        shuffle, callbacks, verbose, sharded):
        """One solver iteration per epoch on all training rows; the solver runs the loop
        (batch_size, shuffle and sharded do not apply) and stops early once converged."""
        Xt, tt = X[train_idx], targets[train_idx]
        objective = self._objective(Xt, tt, None if weights is None else weights[train_idx])
        progress = self._train_begin(callbacks, verbose, epochs, Xt.shape[0])
        first = self.fit_params["initial_epoch"]
        clock = [(np.nan, time.perf_counter())]

        def on_iteration(iteration, loss):
            epoch = first + iteration
            logs = {"loss": loss}          # the loss at the accepted iterate
            logs.update(self._metric_logs(Xt if self.metrics else None, tt, ""))
            if self._epoch_end(callbacks, epoch, logs, val, clock[0], progress,
                               progress.start_epoch(epoch)):
                return True
            if epoch + 1 < epochs:
                clock[0] = self._epoch_begin(callbacks, epoch + 1)
            return False

        if epochs > first:
            clock[0] = self._epoch_begin(callbacks, first)
        self._solver_finished(self.optimizer.run(self.model, objective,
                                                 max(epochs - first, 0), on_iteration))
        self._train_end(callbacks)
        return self.history

    def _objective(self, X, targets, weights):
        """The full-batch objective of the training rows (see ``make_objective``)."""
        from fastmlp.optim.fullbatch import make_objective
        return make_objective(self.model, self.loss, X, targets, weights, penalty_terms(self))

    def _solver_finished(self, result):
        """Keep the solver's result (``solver_result_``); raise on a non-finite loss."""
        self.solver_result_ = result
        if not np.isfinite(result["loss"]):
            raise FloatingPointError(f"full-batch loss is {result['loss']}")

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

    def _validation_logs(self, val, epoch):
        """``val_*`` logs of ``epoch`` (empty without validation data, or on an epoch that
        ``validation_freq`` skips)."""
        freq = self.fit_params.get("validation_freq", 1)
        if val is None or not (epoch + 1 in freq if isinstance(freq, frozenset)
                               else (epoch + 1) % freq == 0):
            return {}
        return self._sharded_mean(self.evaluate(val[0], val[1], sample_weight=val[2],
                                                _prepared=True, prefix="val_"),
                                  val[0].shape[0])

    # -- evaluation -------------------------------------------------------------------------
    def _outputs(self, X):
        """Network outputs in evaluation mode (``model.predict``: chunked, thread-safe)."""
        return self.model.predict(X)

    def _metric_logs(self, X, targets, prefix, outputs=None):
        if not self.metrics or X is None:
            return {}
        out = self._outputs(X) if outputs is None else outputs
        pred = link(self.loss, out)
        classification = self.loss.is_classification
        return {prefix + name: float(call_metric(fn, targets, pred, classification))
                for name, fn in self.metrics}

    def evaluate(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                 _prepared: bool = False, prefix: str = "") -> Dict[str, float]:
        """Loss and metrics on (X, y), in evaluation mode: ``{'loss': ..., 'accuracy': ...}``.

        The loss is the mean over all rows (plus the regularizers' penalties, as in fit).
        """
        if not _prepared:
            X = self._inputs(X)
            y = self._targets(y, X.shape[0])
        out = self._outputs(X)
        value = loss_value_and_grad(self.loss, out, y, sample_weight=sample_weight,
                                    ops=self.model.ops, with_grad=False)
        value += sum(term(self.model) for term in penalty_terms(self))
        logs = {prefix + "loss": float(value)}
        logs.update(self._metric_logs(X, y, prefix, outputs=out))
        return logs

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities (softmax of the logits for ``CrossEntropyLoss`` and
        ``MultiMarginLoss``, sigmoid for ``BCEWithLogitsLoss``) in evaluation mode, as
        Keras' ``predict`` of a softmax model. TypeError for a regression loss."""
        if not self.loss.is_classification:
            raise TypeError(f"predict_proba needs a classification loss, not "
                            f"{type(self.loss).__name__}: use predict")
        return link(self.loss, self.predict(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Network outputs (logits for classification losses) in evaluation mode; an empty
        (0, n_out) array for no rows (``model.predict`` converts and checks X)."""
        return self._outputs(X)
