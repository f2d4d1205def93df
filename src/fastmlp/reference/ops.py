"""The NumPy backend as an object: the kernels the Python layer dispatches on.

A model's ``ops`` (``Sequential(..., backend="numpy").ops``) is a :class:`NumpyOps`; with
``backend="core"`` it is ``fastmlp._ops.CoreOps``, which has the same methods with the same
signatures (Thinc's ``Ops`` -> ``NumpyOps`` pattern; a test checks they agree). Code that
may run on either backend calls ``model.ops.<kernel>(...)`` and never compares backend
names. This module, like the rest of ``fastmlp.reference``, needs no compiled module.
"""
from fastmlp.reference import checks, lamb, losses, optim, regularize


class Ops:
    """A backend: one method per kernel (in its subclasses, which declare every kernel
    explicitly: a kernel missing from one is an AttributeError, never a fallback).

    Attributes
    ----------
    name : str
        The backend's name, as ``Sequential(backend=...)`` takes it.
    compiled : bool
        Whether runs of library layers are compiled into plans (else every layer runs its
        NumPy ``forward`` / ``backward``).
    """

    name = ""
    compiled = False

    def __repr__(self):
        return f"{type(self).__name__}()"


class NumpyOps(Ops):
    """The NumPy reference kernels (the oracle)."""

    name = "numpy"

    # optimizer updates: ``(params, grads, *states, step, **hyper)``, in place
    sgd_step = staticmethod(optim.sgd_step)
    adagrad_step = staticmethod(optim.adagrad_step)
    rmsprop_step = staticmethod(optim.rmsprop_step)
    adadelta_step = staticmethod(optim.adadelta_step)
    adam_step = staticmethod(optim.adam_step)
    lamb_step = staticmethod(lamb.lamb_step)
    # gradient clipping
    sq_norm = staticmethod(optim.sq_norm)
    scale = staticmethod(optim.scale)
    # penalties, their proximal step, and constraints
    penalties_apply = staticmethod(regularize.penalties_apply)
    soft_threshold = staticmethod(regularize.soft_threshold)
    maxnorm_columns = staticmethod(regularize.maxnorm_columns)
    nonneg = staticmethod(regularize.nonneg)
    # losses: ``(spec, pred, target=None, labels=None, row_weight=None, scale=None,
    # with_grad=True) -> (value, grad)``, spec a dict of ``LossSpec`` fields
    loss_value_grad = staticmethod(losses.value_and_grad)
    # input checks
    array_is_finite = staticmethod(checks.array_is_finite)
