"""The backend of a model as an object, chosen in one place.

``get_ops("core")`` is a :class:`CoreOps` (the compiled kernels), ``get_ops("numpy")`` a
:class:`fastmlp.reference.ops.NumpyOps` (their NumPy twins); both have the same methods
with the same signatures. A model holds one as ``model.ops`` (set with its ``backend``);
the optimizers, penalties, constraints, gradient clipping, the losses (``loss_value_grad``)
and the input checks (``array_is_finite``) call its kernels.
"""
from typing import Any

from fastmlp import _lamb, _losses, _optim, _regularize
from fastmlp.reference.ops import NumpyOps, Ops


class CoreOps(Ops):
    """The compiled kernels (``fastmlp._optim``, ``_lamb``, ``_regularize``, ``_losses``),
    with the methods and signatures of :class:`~fastmlp.reference.ops.NumpyOps`."""

    name = "core"
    compiled = True

    sgd_step = staticmethod(_optim.sgd_step_memview)
    adagrad_step = staticmethod(_optim.adagrad_step_memview)
    rmsprop_step = staticmethod(_optim.rmsprop_step_memview)
    adadelta_step = staticmethod(_optim.adadelta_step_memview)
    adam_step = staticmethod(_optim.adam_step_memview)
    lamb_step = staticmethod(_lamb.lamb_step_memview)
    sq_norm = staticmethod(_optim.sq_norm_memview)
    scale = staticmethod(_optim.scale_memview)
    penalties_apply = staticmethod(_regularize.penalties_apply_memview)
    soft_threshold = staticmethod(_regularize.soft_threshold_memview)
    maxnorm_columns = staticmethod(_regularize.maxnorm_columns_memview)
    nonneg = staticmethod(_regularize.nonneg_memview)
    loss_value_grad = staticmethod(_losses.value_and_grad_memview)
    array_is_finite = staticmethod(_optim.array_is_finite)


#: the backends by name, one instance each (they hold no state)
OPS = {ops.name: ops for ops in (CoreOps(), NumpyOps())}
BACKENDS = tuple(OPS)


def get_ops(backend: str) -> Ops:
    """The ops object of ``backend`` ("core" or "numpy"); ValueError naming the value
    otherwise."""
    try:
        return OPS[backend]
    except (KeyError, TypeError):
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}") from None


def ops_of(model: Any) -> Ops:
    """``model.ops``; the compiled kernels for an object without one (any object with
    the arena's ``params`` and ``grads`` steps with an optimizer)."""
    return getattr(model, "ops", OPS["core"])
