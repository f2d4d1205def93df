"""Gradient clipping over the flat gradient arena."""
import math
from typing import Optional

import numpy as np

from fastmlp._ops import Ops, get_ops, ops_of
from fastmlp._typing import Arena
from fastmlp.optim.base import as_real, model_arrays

_EPS = 1e-6     # torch.nn.utils.clip_grad_norm_ adds it to the norm


def grad_norm(grads: np.ndarray, norm_type: float = 2.0, ops: Optional[Ops] = None) -> float:
    """The ``norm_type``-norm of a 1-D gradient array, as a float (accumulated in float64);
    the 2-norm with the kernel of ``ops`` (a model's ``ops``; None: the compiled one)."""
    if norm_type == 2.0:
        return math.sqrt((ops or get_ops("core")).sq_norm(grads))
    if grads.shape[0] == 0:
        return 0.0
    if norm_type == math.inf:
        return float(np.abs(grads).max())
    return float(np.sum(np.abs(grads.astype(np.float64)) ** norm_type) ** (1.0 / norm_type))


def clip_grad_norm(model: Arena, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> float:
    r"""Rescale ``model.grads`` in place so that its global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_`` over all parameters at once: with
    :math:`N = \lVert g \rVert_p` (one pass over the arena),

    .. math::  g \leftarrow g \cdot \frac{\text{max\_norm}}{N + 10^{-6}}
               \quad \text{when that factor is} < 1.

    Parameters
    ----------
    model : object
        Has ``.grads``, a 1-D C-contiguous float32/float64 array (and ``.params``).
    max_norm : float
        Largest allowed norm (>= 0).
    norm_type : float
        Order p of the norm (> 0; ``math.inf`` for the max norm). p = 2 runs in
        ``model.ops``.
    error_if_nonfinite : bool
        Raise when the norm is NaN or infinite instead of scaling by a NaN/zero factor.

    Returns
    -------
    float
        The total norm before clipping.

    Examples
    --------
    >>> total = clip_grad_norm(model, max_norm=1.0)   # doctest: +SKIP
    """
    max_norm = as_real(max_norm, "max_norm")
    norm_type = as_real(norm_type, "norm_type")
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type}")
    _, grads = model_arrays(model)
    total = grad_norm(grads, norm_type, ops_of(model))
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(f"The total norm of order {norm_type} of the gradients is "
                               f"non-finite ({total}), so it cannot be clipped")
    coef = max_norm / (total + _EPS)
    if not coef >= 1.0:     # also scales by NaN when the norm is NaN, as torch does
        ops_of(model).scale(grads, coef)
    return total


def clip_grad_value(model: Arena, clip_value: float) -> None:
    r"""Clip every gradient of ``model.grads`` in place to ``[-clip_value, clip_value]``,
    as ``torch.nn.utils.clip_grad_value_`` over all parameters at once.

    Parameters
    ----------
    model : object
        Has ``.grads``, a 1-D C-contiguous float32/float64 array (and ``.params``).
    clip_value : float
        Largest allowed magnitude of a gradient element (>= 0, finite).

    Examples
    --------
    >>> clip_grad_value(model, 0.5)       # doctest: +SKIP
    """
    clip_value = as_real(clip_value, "clip_value")
    if not 0.0 <= clip_value < math.inf:
        raise ValueError(f"clip_value must be finite and >= 0, got {clip_value}")
    _, grads = model_arrays(model)
    np.clip(grads, -clip_value, clip_value, out=grads)
