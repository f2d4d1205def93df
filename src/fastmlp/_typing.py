"""Type aliases of the public signatures (the package ships ``py.typed``)."""
import os
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

try:
    from typing import Protocol
except ImportError:               # pragma: no cover (Python < 3.8)
    Protocol = object

__all__ = ["ArrayLike", "Config", "Shape", "ParamSpec", "BufferSpec", "PathLike", "Logs",
           "Seed", "MetricFn", "Arena"]

#: a JSON object: a ``get_config()``, a saved file's header
Config = Dict[str, Any]
Shape = Tuple[int, ...]
#: ``(name, shape, role)`` of a trainable parameter (role "weight", "bias" or "other")
ParamSpec = Tuple[str, Shape, str]
#: ``(name, shape, initial value)`` of a non-trainable buffer
BufferSpec = Tuple[str, Shape, float]
PathLike = Union[str, "os.PathLike[str]"]
#: the ``logs`` a callback receives: metric name -> value
Logs = Optional[Dict[str, float]]
Seed = Optional[int]
#: a metric function ``(y_true, y_pred) -> float``
MetricFn = Callable[..., float]


class Arena(Protocol):
    """What optimizers, penalties and clipping need of a model: its flat parameter arena
    and the gradients of the same length (a Sequential, or any object with both)."""
    params: np.ndarray
    grads: np.ndarray
