"""Ensembles: average the predictions of several models, train them in parallel threads."""
import copy
import numbers
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fastmlp.metrics import link
from fastmlp.optim import get_optimizer
from fastmlp.optim.base import BaseOptimizer
from fastmlp.sequential import Sequential

__all__ = ["Ensemble"]


class Ensemble:
    """Model averaging: the ensemble predicts the mean of its members' predictions.

    With members :math:`f_1, \\dots, f_M`,

    .. math::

        \\hat y(x) = \\frac{1}{M} \\sum_{m=1}^M f_m(x), \\qquad
        \\hat p(x) = \\frac{1}{M} \\sum_{m=1}^M \\sigma(f_m(x)),

    where σ is the softmax of the logits for ``CrossEntropyLoss`` (and
    ``MultiMarginLoss``) and the logistic sigmoid for ``BCEWithLogitsLoss``. Probabilities
    are averaged, not logits: the mean of probabilities is the ensemble's predictive
    distribution. Members trained from different seeds make different errors, so the mean
    is usually better than the average member.

    Parameters
    ----------
    models : sequence of Sequential
        The members, distinct objects with one input and one output width (their dtypes
        may differ; predictions are averaged in float64).
    loss : Loss or None
        The loss the members are (or will be) trained with; needed by
        :meth:`predict_proba` and, unless given there, by :meth:`fit`.

    Examples
    --------
    >>> import fastmlp as fm
    >>> members = [fm.Sequential([fm.Dense(4, 16, activation="relu"), fm.Dense(16, 3)],
    ...                          seed=s) for s in range(5)]
    >>> ens = fm.Ensemble(members, loss=fm.CrossEntropyLoss())
    >>> histories = ens.fit(X, y, optimizer="adam", optimizer_kwargs={"lr": 1e-2},
    ...                     epochs=20, n_jobs=2)                         # doctest: +SKIP
    >>> proba = ens.predict_proba(X_test)                                 # doctest: +SKIP
    """

    def __init__(self, models: Sequence[Sequential], loss: Any = None):
        if isinstance(models, Sequential):
            raise TypeError("models must be a sequence of Sequential models, got one model; "
                            "wrap it in a list")
        models = list(models)
        if not models:
            raise ValueError("models must hold at least one model")
        for i, m in enumerate(models):
            if not isinstance(m, Sequential):
                raise TypeError(f"models[{i}] must be a fastmlp Sequential, got "
                                f"{type(m).__name__}")
            for j in range(i):
                if models[j] is m:
                    raise ValueError(f"models[{i}] is models[{j}]: the members must be "
                                     "distinct models")
            if (m.n_in, m.n_out) != (models[0].n_in, models[0].n_out):
                raise ValueError(f"models[{i}] maps {m.n_in} inputs to {m.n_out} outputs but "
                                 f"models[0] maps {models[0].n_in} to {models[0].n_out}: the "
                                 "members must have the same n_in and n_out")
        self.models = models
        self.loss = loss

    # -- prediction -----------------------------------------------------------------------------
    def _mean(self, fn, X):
        total = None
        for m in self.models:
            out = fn(m.predict(X))
            total = out.astype(np.float64) if total is None else total + out
        return total / len(self.models)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The mean of the members' outputs (evaluation mode), shape (n_samples, n_out), in
        float64. For classification members these are mean logits; see
        :meth:`predict_proba`."""
        return self._mean(lambda out: out, X)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """The mean of the members' predicted probabilities, shape (n_samples, n_out):
        softmax rows for cross-entropy, the sigmoid of each output for BCE-with-logits (for
        one output, the probability of class 1)."""
        if self.loss is None or not getattr(self.loss, "is_classification", False):
            raise ValueError(f"predict_proba needs a classification loss (loss=...), got "
                             f"{self.loss!r}")
        return self._mean(lambda out: link(self.loss, out), X)

    # -- training -------------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike, loss: Any = None, optimizer: Any = "adam",
            optimizer_kwargs: Optional[Dict[str, Any]] = None, epochs: int = 1,
            batch_size: int = 32, n_jobs: Optional[int] = 1, regularizers: Sequence[Any] = (),
            metrics: Sequence[Any] = (), callbacks: Sequence[Any] = (),
            backend: str = "threads", **fit_kwargs: Any) -> List[Any]:
        """Train every member with its own :class:`Trainer` and its own optimizer.

        Parameters
        ----------
        X, y : array-like
            The training data (every member sees all of it, in its own order: a member's
            shuffling follows its model's seed).
        loss : Loss or None
            Default: the ensemble's ``loss`` (one of the two is required).
        optimizer : str, Optimizer class or callable
            A name (``"adam"``) or class, instantiated with ``optimizer_kwargs`` for each
            member, or a zero-argument factory returning a new optimizer per call. An
            optimizer *instance* is refused: its state cannot be shared between members.
        optimizer_kwargs : dict or None
            Hyperparameters for a name or class.
        epochs, batch_size : int
            As in :meth:`Trainer.fit`.
        n_jobs : int >= 1
            Members trained at the same time, in threads. Worth it: the core releases the
            GIL for the whole fused training loop. Results do not depend on ``n_jobs``.
        backend : {"threads", "dask"}
            ``"dask"``: every member is trained on a worker of the running
            ``dask.distributed`` client (``n_jobs`` does not apply); its trained model
            replaces the member (the members are new objects; the results equal a local fit).
        regularizers, metrics
            Passed to each member's Trainer.
        callbacks : sequence of Callback or callable
            A zero-argument factory returning each member's list of callbacks, or a
            sequence that is deep-copied for each member (callbacks keep state).
        **fit_kwargs
            Passed to :meth:`Trainer.fit` (``validation_data``, ``sample_weight``, ...);
            ``verbose`` defaults to 0.

        Returns
        -------
        list of History
            One per member, in order.
        """
        loss = self.loss if loss is None else loss
        _check_fit_args(loss, n_jobs, backend)
        make_opt = _optimizer_factory(optimizer, optimizer_kwargs)
        make_cbs = callbacks if callable(callbacks) else (lambda: copy.deepcopy(list(callbacks)))
        fit_kwargs.setdefault("verbose", 0)
        trainers = self._make_trainers(loss, make_opt, regularizers, metrics)
        cb_lists = [list(make_cbs()) for _ in trainers]
        if self.loss is None:
            self.loss = loss

        kwargs = dict(epochs=epochs, batch_size=batch_size, **fit_kwargs)
        if backend == "dask":
            return self._fit_dask(trainers, X, y, cb_lists, kwargs)
        return _fit_threads(trainers, X, y, cb_lists, kwargs, n_jobs)

    def _make_trainers(self, loss, make_opt, regularizers, metrics):
        """One Trainer per member, each with a new optimizer from ``make_opt``."""
        from fastmlp.trainer import Trainer
        trainers, opts = [], []
        for i, m in enumerate(self.models):
            opt = make_opt()
            if any(opt is o for o in opts):
                raise ValueError("optimizer must make a new optimizer for every member; "
                                 f"member {i} got the same instance as an earlier one")
            opts.append(opt)
            trainers.append(Trainer(m, loss, opt, regularizers=regularizers, metrics=metrics))
        return trainers

    def _fit_dask(self, trainers, X, y, cb_lists, kwargs):
        """Train the members on the workers of the running dask.distributed client."""
        from distributed import get_client
        from fastmlp.distributed import train
        client = get_client()
        X_f, y_f = client.scatter(X, broadcast=True), client.scatter(y, broadcast=True)
        futures = [client.submit(train, t, X_f, y_f, callbacks=cbs, pure=False, **kwargs)
                   for t, cbs in zip(trainers, cb_lists)]
        done = client.gather(futures)
        self.models = [t.model for t in done]
        return [t.history for t in done]

    # -- container ------------------------------------------------------------------------------
    def __len__(self):
        return len(self.models)

    def __iter__(self):
        return iter(self.models)

    def __getitem__(self, i):
        return self.models[i]

    def __repr__(self):
        loss = f", loss={self.loss!r}" if self.loss is not None else ""
        return f"Ensemble({len(self.models)} models, {self.models[0].n_in} → " \
               f"{self.models[0].n_out}{loss})"


def _check_fit_args(loss, n_jobs, backend):
    """Validate the arguments of :meth:`Ensemble.fit` that need no model."""
    if loss is None:
        raise ValueError("loss is required: pass loss=... here or to Ensemble(...)")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an integer >= 1, got {n_jobs!r}")
    if backend not in ("threads", "dask"):
        raise ValueError(f"backend must be 'threads' or 'dask', got {backend!r}")


def _fit_threads(trainers, X, y, cb_lists, kwargs, n_jobs):
    """Fit every trainer, up to ``n_jobs`` at a time in threads; their Histories, in order."""
    def run(i):
        return trainers[i].fit(X, y, callbacks=cb_lists[i], **kwargs)

    if n_jobs == 1 or len(trainers) == 1:
        return [run(i) for i in range(len(trainers))]
    with ThreadPoolExecutor(max_workers=min(n_jobs, len(trainers))) as pool:
        futures = [pool.submit(run, i) for i in range(len(trainers))]
        return [f.result() for f in futures]


def _optimizer_factory(optimizer, kwargs):
    """A zero-argument callable returning a new optimizer per call."""
    kwargs = dict(kwargs or {})
    if isinstance(optimizer, BaseOptimizer):
        raise ValueError(f"optimizer must be a name, a class or a factory, not the instance "
                         f"{optimizer!r}: each member needs its own optimizer state")
    if isinstance(optimizer, (str, type)):
        get_optimizer(optimizer, **kwargs)          # fail now on a bad name or argument
        return lambda: get_optimizer(optimizer, **kwargs)
    if callable(optimizer):
        if kwargs:
            raise ValueError("optimizer_kwargs apply to an optimizer name or class, not to a "
                             "factory")
        return optimizer
    raise TypeError(f"optimizer must be a name, an Optimizer class or a factory, got "
                    f"{type(optimizer).__name__}")
