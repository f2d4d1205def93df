"""The learning-rate range test (Smith, 2017; fastai's ``lr_find``).

Train on successive mini-batches while the learning rate grows exponentially from
``start`` to ``end``; record the loss; stop when it explodes. The loss curve against the
learning rate shows the range where training makes progress; a good learning rate sits
where the loss falls fastest, well before the minimum.
"""
import math
import numbers
from typing import Any, Optional

import numpy as np

from fastmlp._epoch import NonFiniteLoss
from fastmlp._typing import ArrayLike, PathLike
from fastmlp.optim.base import FULL_BATCH


class LRFinderResult:
    """What :func:`lr_find` measured.

    Attributes
    ----------
    lrs : ndarray
        The learning rate of each step taken.
    losses : ndarray
        The smoothed mini-batch loss after each step (exponential moving average with
        bias correction, ``beta = smooth``).
    raw_losses : ndarray
        The mini-batch losses as measured.
    suggestion : float
        The learning rate where the smoothed loss falls fastest against log(lr) (the
        steepest negative slope after the first tenth of the steps, before the minimum).
    """

    def __init__(self, lrs: np.ndarray, losses: np.ndarray, raw_losses: np.ndarray):
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.losses = np.asarray(losses, dtype=np.float64)
        self.raw_losses = np.asarray(raw_losses, dtype=np.float64)
        self.suggestion = _steepest(self.lrs, self.losses)

    def plot(self, path: Optional[PathLike] = None) -> Any:
        """Loss against learning rate (log axis) with the suggestion marked; saves a PNG
        to ``path`` when given; returns the matplotlib Figure (needs matplotlib)."""
        from fastmlp._plotting import finish_axes, finish_figure, new_figure
        fig = new_figure((6, 4), path, "LRFinderResult.plot")
        ax = fig.subplots()
        ax.plot(self.lrs, self.raw_losses, alpha=0.3, label="mini-batch loss")
        ax.plot(self.lrs, self.losses, label="smoothed")
        ax.axvline(self.suggestion, color="k", ls="--", lw=1,
                   label=f"suggestion {self.suggestion:.2g}")
        ax.set_xscale("log")
        finish_axes(ax, None, "learning rate", "loss")
        return finish_figure(fig, path)

    def __repr__(self):
        return f"LRFinderResult(steps={len(self.lrs)}, suggestion={self.suggestion:.3g})"


def _steepest(lrs, losses):
    """The lr of the steepest descent of the smoothed loss against log(lr), searched after
    the first tenth of the steps (the moving average is still settling there) and up to
    the minimum of the loss."""
    finite = np.isfinite(losses)
    lrs, losses = lrs[finite], losses[finite]
    if lrs.shape[0] < 3:
        return float(lrs[0]) if lrs.shape[0] else math.nan
    slope = np.gradient(losses, np.log(lrs))
    lo = max(1, lrs.shape[0] // 10)
    hi = max(int(np.argmin(losses)), lo + 1)
    return float(lrs[lo + int(np.argmin(slope[lo:hi]))])


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class _Snapshot:
    """Everything a range test changes: weights, gradients, the RNG counter, the
    optimizer's attributes and state, the trainer's shuffling RNG."""

    def __init__(self, trainer):
        self.trainer = trainer
        model, opt = trainer.model, trainer.optimizer
        self.weights, self.grads, self.rng_step = (model.get_weights(), model.grads.copy(),
                                                   model.rng_step)
        # arrays copied: the state buffers and the step count change in place
        self.opt = {k: v.copy() if isinstance(v, np.ndarray) else v
                    for k, v in opt.__dict__.items()}
        self.opt["state"] = {k: v.copy() for k, v in opt.state.items()}
        self.rng = trainer._rng.bit_generator.state

    def restore(self):
        model, opt = self.trainer.model, self.trainer.optimizer
        model.set_weights(self.weights)
        model.grads[...] = self.grads
        model.rng_step = self.rng_step
        opt.__dict__.clear()
        opt.__dict__.update(self.opt)
        self.trainer._rng.bit_generator.state = self.rng


def lr_find(trainer: Any, X: ArrayLike, y: ArrayLike, start: float = 1e-7, end: float = 10.0,
            steps: int = 100, batch_size: int = 32, smooth: float = 0.9, diverge: float = 4.0,
            sample_weight: Optional[ArrayLike] = None) -> LRFinderResult:
    """The learning-rate range test: leaves the model, optimizer and trainer as they were.

    Step :math:`i` (of ``steps``) trains one mini-batch with learning rate
    :math:`\\eta_i = \\eta_0 (\\eta_1 / \\eta_0)^{i / (\\mathrm{steps} - 1)}`, the batches
    taken in a fresh random order, epoch after epoch; the fused core runs each step when the
    model allows it. The smoothed loss :math:`\\bar\\ell_i = m_i / (1 - \\beta^{i+1})`,
    :math:`m_i = \\beta m_{i-1} + (1 - \\beta) \\ell_i`, is recorded; the test stops early once
    :math:`\\bar\\ell_i > \\mathrm{diverge} \\cdot \\min_{j<i} \\bar\\ell_j` or a loss is
    not finite.

    Parameters
    ----------
    trainer : Trainer
        With a mini-batch optimizer (the one whose ``lr`` is swept).
    X, y : array-like
        Training data, as for ``Trainer.fit``.
    start, end : float
        The first and last learning rates, 0 < start < end.
    steps : int
        Number of mini-batch steps (>= 2).
    batch_size : int
    smooth : float
        :math:`\\beta \\in [0, 1)` of the moving average.
    diverge : float
        Stop when the smoothed loss exceeds this multiple of its minimum (> 1).
    sample_weight : array-like, optional

    Returns
    -------
    LRFinderResult
        ``.lrs``, ``.losses``, ``.suggestion`` and ``.plot()``.

    Examples
    --------
    >>> res = fm.lr_find(trainer, X, y, start=1e-6, end=1.0)        # doctest: +SKIP
    >>> trainer.optimizer.lr = res.suggestion                       # doctest: +SKIP
    """
    start, end = _check_args(trainer, start, end, steps, batch_size, smooth, diverge)
    Xc = trainer._inputs(X)
    targets = trainer._targets(y, Xc.shape[0])
    weights = trainer._row_weights(sample_weight, None, targets)
    snap = _Snapshot(trainer)
    try:
        return _sweep(trainer, trainer._epoch_loop(Xc, targets, weights, batch_size, False),
                      Xc.shape[0], start, end, steps, smooth, diverge)
    finally:
        snap.restore()


def _check_args(trainer, start, end, steps, batch_size, smooth, diverge):
    """Validate the arguments of :func:`lr_find`; return ``start`` and ``end`` as floats."""
    from fastmlp._fit_checks import check_int
    from fastmlp.trainer import Trainer
    if not isinstance(trainer, Trainer):
        raise TypeError(f"trainer must be a fastmlp Trainer, got {type(trainer).__name__}")
    if trainer.optimizer.strategy == FULL_BATCH:
        raise ValueError(f"lr_find needs a mini-batch optimizer, got {trainer.optimizer!r}")
    start, end = _positive(start, "start"), _positive(end, "end")
    if end <= start:
        raise ValueError(f"end must be > start, got start={start}, end={end}")
    check_int(steps, "steps", 2)
    check_int(batch_size, "batch_size", 1)
    if not (isinstance(smooth, numbers.Real) and 0 <= smooth < 1):
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    if not (isinstance(diverge, numbers.Real) and diverge > 1):
        raise ValueError(f"diverge must be a number > 1, got {diverge!r}")
    return start, end


def _sweep(trainer, loop, n, start, end, steps, smooth, diverge):
    lrs, losses, raw = [], [], []
    B = min(loop.batch_size, n)
    perm, pos, avg, best = trainer._rng.permutation(n), 0, 0.0, math.inf
    for i in range(steps):
        if pos + B > n:
            perm, pos = trainer._rng.permutation(n), 0
        lr = start * (end / start) ** (i / (steps - 1))
        trainer.optimizer.lr = lr
        try:
            value = loop.run(perm[pos:pos + B])
        except NonFiniteLoss:
            value = math.nan
        pos += B
        avg = smooth * avg + (1 - smooth) * value
        lrs.append(lr)
        raw.append(value)
        losses.append(avg / (1 - smooth ** (i + 1)))
        if not math.isfinite(losses[-1]) or losses[-1] > diverge * best:
            break
        best = min(best, losses[-1])
    return LRFinderResult(lrs, losses, raw)
