"""The floating-point mode of the core's training loop.

While the core runs training steps (``Trainer.fit`` and the estimators' fused loop), it
flushes subnormal numbers to zero (x86 FTZ and DAZ), as XLA's CPU backend does for JAX:
float32 optimizer moments that decay or underflow into the subnormal range otherwise cost
a microcode assist per vector instruction, and training slowed down epoch after epoch
(``include/fastmlp/fpmode.h`` has the measurements). The mode is set on the calling
thread and the core's worker threads for the duration of the steps only; NumPy, your
code and ``predict`` keep IEEE subnormals. Results differ from exact IEEE arithmetic only
where a value falls below 1.2e-38 (float32) or 2.2e-308 (float64).
"""
from fastmlp import _train


def set_flush_denormal(mode: bool) -> bool:
    """Flush subnormals to zero in training steps (``True``, the default) or keep IEEE
    subnormals (``False``: bit-exact agreement with the NumPy reference even there).

    Returns whether this CPU supports the mode, as ``torch.set_flush_denormal`` does (on
    other CPUs the setting is ignored). Process-wide.

    Examples
    --------
    >>> fm.set_flush_denormal(False)   # exact IEEE arithmetic, slower when moments underflow
    True
    """
    if not isinstance(mode, bool):
        raise TypeError(f"mode must be True or False, got {mode!r}")
    return _train.set_flush_denormal(mode)


def get_flush_denormal() -> bool:
    """Whether training steps flush subnormal numbers to zero."""
    return _train.get_flush_denormal()
