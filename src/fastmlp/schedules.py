"""Learning-rate schedules for any optimizer with an ``lr`` attribute (torch.optim.lr_scheduler).

As in torch, a schedule takes the optimizer first, records its ``lr`` as ``base_lr``, and is
stepped once per epoch: ``sched.step()`` (``sched.step(metric)`` for
:class:`ReduceLROnPlateau`). Construction counts as epoch 0 and already sets ``lr_at(0)``.

The closed-form schedules are also plain functions of the (0-based) epoch,
``sched.lr_at(epoch)`` or ``sched(epoch, lr)`` (Keras ``LearningRateScheduler`` style); they
set the learning rate absolutely from ``base_lr``, so they are not chainable (torch's
recursive forms give the same values up to rounding). Instead of an optimizer, a float may be
passed as the base learning rate: the schedule then only computes values.

Examples
--------
>>> sched = StepLR(0.1, step_size=10)
>>> sched.lr_at(25)
0.0010000000000000002
"""
import bisect
import inspect
import math
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "InverseScalingLR",
           "MultiStepLR", "LambdaLR", "LinearLR", "OneCycleLR", "ReduceLROnPlateau"]


# --- argument checks ----------------------------------------------------------------------

def _real(value, name, low=0.0, low_open=False, high=math.inf, high_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    value = float(value)
    ok = (value > low if low_open else value >= low) and \
         (value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value}")
    return value


def _int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}: {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


class _Schedule:
    """Optimizer binding and (de)serialization shared by every schedule."""

    def _bind(self, optimizer, **hyper):
        if isinstance(optimizer, numbers.Real) and not isinstance(optimizer, bool):
            self.optimizer, lr = None, optimizer
        elif hasattr(optimizer, "lr"):
            self.optimizer, lr = optimizer, optimizer.lr
        else:
            raise TypeError(f"optimizer must have an 'lr' attribute (or be a float base "
                            f"learning rate), got {type(optimizer).__name__}")
        self.__dict__.update(self.validate(**hyper))
        self.base_lr = _real(lr, "base learning rate")

    def _set_lr(self, lr):
        if self.optimizer is not None:
            self.optimizer.lr = lr
        self._last_lr = lr

    def get_last_lr(self) -> List[float]:
        """The learning rate set by the last step, as a one-element list (as torch)."""
        return [self._last_lr]

    def state_dict(self) -> Dict[str, Any]:
        """Every attribute but the optimizer, as a plain dict of scalars."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, d: Dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; ValueError on missing/unexpected keys or values."""
        if not isinstance(d, dict):
            raise ValueError(f"state dict must be a dict, got {type(d).__name__}")
        expected = set(self.state_dict())
        if set(d) != expected:
            raise ValueError(f"state dict: missing keys {sorted(expected - set(d))}, "
                             f"unexpected keys {sorted(set(d) - expected)}")
        names = inspect.signature(self.validate).parameters
        hyper = self.validate(**{k: d[k] if k in d else getattr(self, k) for k in names})
        _real(d["base_lr"], "base_lr")
        _int(d["last_epoch"], "last_epoch", -1)
        self.__dict__.update(d)
        self.__dict__.update(hyper)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.state_dict().items()
                         if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class LRScheduler(_Schedule):
    """Base of the closed-form schedules: subclasses define ``validate`` and ``lr_at``."""

    def __init__(self, optimizer: Any, **hyper: Any):
        self._bind(optimizer, **hyper)
        self.last_epoch = -1
        self.step()

    @classmethod
    def validate(cls, **hyper: Any) -> Dict[str, Any]:
        """Check the hyperparameters; return them normalized. ValueError names the argument."""
        raise NotImplementedError

    def lr_at(self, epoch: int) -> float:
        """The learning rate of (0-based) ``epoch``."""
        raise NotImplementedError

    def __call__(self, epoch, lr=None):
        """Keras style: the learning rate of ``epoch`` (``lr``, the current one, is unused)."""
        return self.lr_at(epoch)

    def step(self) -> None:
        """Advance one epoch and set the optimizer's ``lr``."""
        self.last_epoch += 1
        self._set_lr(self.lr_at(self.last_epoch))

    def _epoch(self, epoch):
        return _int(epoch, "epoch", 0)


class StepLR(LRScheduler):
    r"""Decay by ``gamma`` every ``step_size`` epochs:
    :math:`\eta_e = \eta_0 \gamma^{\lfloor e / \text{step\_size} \rfloor}`.

    Parameters
    ----------
    optimizer : Optimizer or float
        Anything with an ``lr`` attribute, or a base learning rate.
    step_size : int
        Period of the decay in epochs (>= 1).
    gamma : float
        Multiplicative factor (> 0).
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    @classmethod
    def validate(cls, step_size: int, gamma: float) -> Dict[str, Any]:
        return dict(step_size=_int(step_size, "step_size", 1),
                    gamma=_real(gamma, "gamma", low_open=True))

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (self._epoch(epoch) // self.step_size)


class ExponentialLR(LRScheduler):
    r"""Decay by ``gamma`` every epoch: :math:`\eta_e = \eta_0 \gamma^e`.

    Parameters
    ----------
    optimizer : Optimizer or float
        Anything with an ``lr`` attribute, or a base learning rate.
    gamma : float
        Multiplicative factor (> 0).
    """

    def __init__(self, optimizer: Any, gamma: float):
        super().__init__(optimizer, gamma=gamma)

    @classmethod
    def validate(cls, gamma: float) -> Dict[str, Any]:
        return dict(gamma=_real(gamma, "gamma", low_open=True))

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** self._epoch(epoch)


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from ``base_lr`` to ``eta_min`` over ``T_max`` epochs, after an
    optional linear warmup of ``warmup_epochs`` epochs (:math:`w`):

    .. math::

        \eta_e &= \eta_0 \, \frac{e + 1}{w + 1} \qquad (e < w) \\
        \eta_e &= \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})
                  \left(1 + \cos\frac{\pi (e - w)}{T_{max}}\right) \qquad (e \ge w)

    The warmup is a line from 0 (at epoch −1) to ``base_lr`` (at epoch ``w``, where the
    cosine starts), so no epoch runs with a zero learning rate; ``T_max`` counts the epochs
    of the cosine phase only. With ``warmup_epochs=0`` this is torch's CosineAnnealingLR
    (cosine continued periodically past ``T_max``).

    Parameters
    ----------
    optimizer : Optimizer or float
        Anything with an ``lr`` attribute, or a base learning rate.
    T_max : int
        Half period of the cosine, in epochs (>= 1).
    eta_min : float
        Minimum learning rate (>= 0).
    warmup_epochs : int
        Length of the linear warmup (>= 0).
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0, warmup_epochs: int = 0):
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min, warmup_epochs=warmup_epochs)

    @classmethod
    def validate(cls, T_max: int, eta_min: float, warmup_epochs: int) -> Dict[str, Any]:
        return dict(T_max=_int(T_max, "T_max", 1), eta_min=_real(eta_min, "eta_min"),
                    warmup_epochs=_int(warmup_epochs, "warmup_epochs", 0))

    def lr_at(self, epoch: int) -> float:
        e, w = self._epoch(epoch), self.warmup_epochs
        if e < w:
            return self.base_lr * (e + 1) / (w + 1)
        cos = 1.0 + math.cos(math.pi * (e - w) / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * cos / 2


class InverseScalingLR(LRScheduler):
    r"""Inverse scaling (scikit-learn's ``learning_rate='invscaling'``):
    :math:`\eta_e = \eta_0 / t^{p}` with :math:`t = e + 1`, i.e. t counts the schedule's
    steps from 1. (scikit-learn's MLP counts t in samples seen; step this schedule
    accordingly to reproduce it.)

    Parameters
    ----------
    optimizer : Optimizer or float
        Anything with an ``lr`` attribute, or a base learning rate.
    power_t : float
        Exponent p (>= 0).
    """

    def __init__(self, optimizer: Any, power_t: float = 0.5):
        super().__init__(optimizer, power_t=power_t)

    @classmethod
    def validate(cls, power_t: float) -> Dict[str, Any]:
        return dict(power_t=_real(power_t, "power_t"))

    def lr_at(self, epoch: int) -> float:
        return self.base_lr / (self._epoch(epoch) + 1) ** self.power_t


class MultiStepLR(LRScheduler):
    r"""Decay by ``gamma`` at each milestone: :math:`\eta_e = \eta_0 \gamma^{m(e)}`, m(e)
    the number of milestones <= e (torch's MultiStepLR).

    Parameters
    ----------
    optimizer : Optimizer or float
    milestones : sequence of int
        Increasing epochs (>= 1) at which the rate is multiplied by ``gamma``.
    gamma : float
        Multiplicative factor (> 0).
    """

    def __init__(self, optimizer: Any, milestones: Sequence[int], gamma: float = 0.1):
        super().__init__(optimizer, milestones=milestones, gamma=gamma)

    @classmethod
    def validate(cls, milestones: Sequence[int], gamma: float) -> Dict[str, Any]:
        try:
            ms = tuple(_int(m, "milestones entries", 1) for m in milestones)
        except TypeError:
            raise TypeError(f"milestones must be a sequence of epochs, got {milestones!r}") \
                from None
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must be increasing, got {list(ms)}")
        return dict(milestones=ms, gamma=_real(gamma, "gamma", low_open=True))

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones,
                                                                self._epoch(epoch))


class LambdaLR(LRScheduler):
    r""":math:`\eta_e = \eta_0 \cdot \text{lr\_lambda}(e)` (torch's LambdaLR). The function
    is not part of :meth:`state_dict` (as torch): a restored schedule keeps its own."""

    def __init__(self, optimizer: Any, lr_lambda: Callable[[int], float]):
        super().__init__(optimizer, lr_lambda=lr_lambda)

    @classmethod
    def validate(cls, lr_lambda: Callable[[int], float]) -> Dict[str, Any]:
        if not callable(lr_lambda):
            raise TypeError(f"lr_lambda must be a function of the epoch, got {lr_lambda!r}")
        return dict(lr_lambda=lr_lambda)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * float(self.lr_lambda(self._epoch(epoch)))

    def state_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambda"}


class LinearLR(LRScheduler):
    r"""A line from ``start_factor`` to ``end_factor`` times ``base_lr`` over ``total_iters``
    epochs, then constant (torch's LinearLR, a warmup by default):
    :math:`\eta_e = \eta_0 (s + (f - s) \min(e, T) / T)`.

    Parameters
    ----------
    optimizer : Optimizer or float
    start_factor : float
        In (0, 1].
    end_factor : float
        In [0, 1].
    total_iters : int
        Epochs of the line (>= 1).
    """

    def __init__(self, optimizer: Any, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5):
        super().__init__(optimizer, start_factor=start_factor, end_factor=end_factor,
                         total_iters=total_iters)

    @classmethod
    def validate(cls, start_factor: float, end_factor: float,
                 total_iters: int) -> Dict[str, Any]:
        return dict(start_factor=_real(start_factor, "start_factor", low_open=True, high=1.0,
                                       high_open=False),
                    end_factor=_real(end_factor, "end_factor", high=1.0, high_open=False),
                    total_iters=_int(total_iters, "total_iters", 1))

    def lr_at(self, epoch: int) -> float:
        e, s, f = min(self._epoch(epoch), self.total_iters), self.start_factor, self.end_factor
        return self.base_lr * (s + (f - s) * e / self.total_iters)


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2018; torch's OneCycleLR, its formulas and phase
    boundaries): from ``max_lr / div_factor`` up to ``max_lr`` over ``pct_start`` of the
    ``total_steps``, then down to ``max_lr / div_factor / final_div_factor`` (with
    ``three_phase``, back to the start over as many steps first), each phase a half cosine
    (or a line). Step it once per epoch (``total_steps`` = epochs) or per batch from a
    per-step callback. The optimizer's own ``lr`` is not used. ``cycle_momentum`` must be
    False: fastmlp optimizers fix their momentum at construction.
    """

    def __init__(self, optimizer: Any, max_lr: float, total_steps: Optional[int] = None,
                 epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = False, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
            total_steps = _int(epochs, "epochs", 1) * _int(steps_per_epoch, "steps_per_epoch", 1)
        super().__init__(optimizer, max_lr=max_lr, total_steps=total_steps,
                         pct_start=pct_start, anneal_strategy=anneal_strategy,
                         cycle_momentum=cycle_momentum, div_factor=div_factor,
                         final_div_factor=final_div_factor, three_phase=three_phase)

    @classmethod
    def validate(cls, max_lr: float, total_steps: int, pct_start: float, anneal_strategy: str,
                 cycle_momentum: bool, div_factor: float, final_div_factor: float,
                 three_phase: bool) -> Dict[str, Any]:
        if cycle_momentum is not False:
            raise ValueError("cycle_momentum=True is not supported (fastmlp optimizers fix "
                             "their momentum at construction): pass cycle_momentum=False")
        return dict(max_lr=_real(max_lr, "max_lr", low_open=True),
                    total_steps=_int(total_steps, "total_steps", 1),
                    pct_start=_real(pct_start, "pct_start", high=1.0, high_open=False),
                    anneal_strategy=_choice(anneal_strategy, "anneal_strategy",
                                            ("cos", "linear")),
                    cycle_momentum=False,
                    div_factor=_real(div_factor, "div_factor", low_open=True),
                    final_div_factor=_real(final_div_factor, "final_div_factor",
                                           low_open=True),
                    three_phase=_choice(three_phase, "three_phase", (False, True)))

    def _phases(self):
        start = self.max_lr / self.div_factor
        low, n, p = start / self.final_div_factor, self.total_steps, self.pct_start
        if self.three_phase:
            return [(p * n - 1, start, self.max_lr), (2 * p * n - 2, self.max_lr, start),
                    (n - 1, start, low)]
        return [(p * n - 1, start, self.max_lr), (n - 1, self.max_lr, low)]

    def lr_at(self, epoch: int) -> float:
        step = self._epoch(epoch)
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, beyond its total_steps="
                             f"{self.total_steps}")
        phases, begin = self._phases(), 0.0
        for i, (end, a, b) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                pct = (step - begin) / (end - begin)
                if self.anneal_strategy == "linear":      # >= 0 past the end of the cycle
                    return max((b - a) * pct + a, 0.0)
                return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
            begin = end
        raise AssertionError("unreachable")


class ReduceLROnPlateau(_Schedule):
    r"""Multiply the learning rate by ``factor`` when a metric stops improving (torch
    semantics).

    Each ``step(metric)``: the metric is better than ``best`` when (mode "min", threshold
    mode "rel") ``metric < best (1 − threshold)`` ("abs": ``metric < best − threshold``;
    mode "max" mirrors it). After more than ``patience`` epochs without improvement,
    :math:`\eta \leftarrow \max(\eta \cdot \text{factor}, \text{min\_lr})` (skipped when
    the change is ≤ ``eps``), then ``cooldown`` epochs are not counted as bad.

    Parameters
    ----------
    optimizer : Optimizer or float
        Anything with an ``lr`` attribute, or a starting learning rate.
    mode : {"min", "max"}
        Whether the metric should decrease or increase.
    factor : float
        Reduction factor, in [0, 1).
    patience : int
        Epochs without improvement tolerated (>= 0).
    threshold : float
        Least significant improvement (>= 0).
    threshold_mode : {"rel", "abs"}
        Relative or absolute threshold.
    cooldown : int
        Epochs to wait after a reduction before counting bad epochs again (>= 0).
    min_lr : float
        Lower bound of the learning rate (>= 0).
    eps : float
        Changes of at most eps are ignored (>= 0).
    """

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8):
        self._bind(optimizer, mode=mode, factor=factor, patience=patience,
                   threshold=threshold, threshold_mode=threshold_mode, cooldown=cooldown,
                   min_lr=min_lr, eps=eps)
        self.last_epoch = 0
        self._last_lr = self.base_lr
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    @classmethod
    def validate(cls, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> Dict[str, Any]:
        """Check the hyperparameters (also used by the ReduceLROnPlateau callback)."""
        return dict(mode=_choice(mode, "mode", ("min", "max")),
                    factor=_real(factor, "factor", high=1.0),
                    patience=_int(patience, "patience", 0),
                    threshold=_real(threshold, "threshold"),
                    threshold_mode=_choice(threshold_mode, "threshold_mode", ("rel", "abs")),
                    cooldown=_int(cooldown, "cooldown", 0),
                    min_lr=_real(min_lr, "min_lr"), eps=_real(eps, "eps"))

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric value ``a`` improves on ``best``."""
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel"
                    else best + self.threshold)

    def step(self, metrics: float) -> None:
        """Record this epoch's metric; reduce the learning rate after a plateau."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        lr = self.optimizer.lr if self.optimizer is not None else self._last_lr
        if self.num_bad_epochs > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > self.eps:
                lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._set_lr(lr)
