"""First-order optimizers over the flat parameter arena (torch.optim names and semantics).

Examples
--------
>>> from fastmlp.optim import get_optimizer
>>> get_optimizer("adam", lr=1e-2)
Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False)
"""
from typing import Any, Union

from fastmlp.optim.adadelta import Adadelta
from fastmlp.optim.adagrad import Adagrad
from fastmlp.optim.adam import Adam, AdamW
from fastmlp.optim.base import FULL_BATCH, MINI_BATCH, STRATEGIES, BaseOptimizer, Optimizer
from fastmlp.optim.clip import clip_grad_norm, clip_grad_value, grad_norm
from fastmlp.optim.lamb import LAMB
from fastmlp.optim.fullbatch import BFGS, LBFGS, FullBatchSolver, GradientDescent, make_objective
from fastmlp.optim.newton import Newton
from fastmlp.optim.rmsprop import RMSprop
from fastmlp.optim.sgd import SGD

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
              "adagrad": Adagrad, "adadelta": Adadelta, "lamb": LAMB,
              "gd": GradientDescent, "lbfgs": LBFGS, "bfgs": BFGS, "newton": Newton}

__all__ = ["BaseOptimizer", "Optimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "LAMB",
           "clip_grad_norm", "clip_grad_value", "grad_norm", "get_optimizer", "OPTIMIZERS",
           "FullBatchSolver", "GradientDescent", "LBFGS", "BFGS", "Newton", "make_objective",
           "MINI_BATCH", "FULL_BATCH", "STRATEGIES"]


def get_optimizer(name_or_obj: Union[str, type, BaseOptimizer],
                  **kwargs: Any) -> BaseOptimizer:
    """Return an optimizer (or full-batch solver) from a name, a class, or an instance.

    Parameters
    ----------
    name_or_obj : str, BaseOptimizer subclass or instance
        One of ``OPTIMIZERS`` (case-insensitive), a class to instantiate with ``kwargs``,
        or an instance, returned as is (``kwargs`` must then be empty).
    **kwargs
        Hyperparameters passed to the constructor.

    Returns
    -------
    BaseOptimizer
        An :class:`Optimizer` or a :class:`FullBatchSolver` (its ``strategy`` says which).
    """
    if isinstance(name_or_obj, BaseOptimizer):
        if kwargs:
            raise ValueError(f"hyperparameters {sorted(kwargs)} given with an optimizer "
                             f"instance {name_or_obj!r}")
        return _check_strategy(name_or_obj)
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, BaseOptimizer):
        return _check_strategy(name_or_obj(**kwargs))
    if not isinstance(name_or_obj, str):
        raise TypeError(f"optimizer must be a name, an Optimizer class or instance, got "
                        f"{type(name_or_obj).__name__}")
    cls = OPTIMIZERS.get(name_or_obj.lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name_or_obj!r}; valid names: "
                         f"{', '.join(OPTIMIZERS)}")
    return cls(**kwargs)


def _check_strategy(optimizer):
    """``optimizer``, whose class declares a known ``strategy`` (the Trainer's loop)."""
    if optimizer.strategy not in STRATEGIES:
        raise ValueError(f"{type(optimizer).__name__}.strategy must be one of {STRATEGIES}, "
                         f"got {optimizer.strategy!r}")
    return optimizer
