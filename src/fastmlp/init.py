"""Weight initializers (Glorot/Xavier, He, LeCun), reproducible from a numpy Generator.

For a weight matrix of shape (fan_in, fan_out):

=================  ============================================
glorot_uniform     U(−r, r),  r = sqrt(6 / (fan_in + fan_out))
glorot_normal      N(0, σ²),  σ = sqrt(2 / (fan_in + fan_out))
he_uniform         U(−r, r),  r = sqrt(6 / fan_in)
he_normal          N(0, σ²),  σ = sqrt(2 / fan_in)
lecun_normal       N(0, σ²),  σ = sqrt(1 / fan_in)
normal             N(0, 0.01²)  (small random values)
zeros              0
=================  ============================================

"auto" picks He for the ReLU family and Glorot (uniform) otherwise. Biases start at 0.
"""
import numpy as np

RELU_FAMILY = frozenset({"relu", "leaky_relu", "elu", "prelu", "silu", "gelu"})
INITIALIZERS = ("auto", "glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal",
                "he_uniform", "he_normal", "lecun_normal", "normal", "zeros")


def check_init(init):
    """Validate an ``init=`` argument; returns it."""
    if init not in INITIALIZERS:
        raise ValueError(f"init must be one of {', '.join(INITIALIZERS)}; got {init!r}")
    return init


def resolve(init, activation):
    """The concrete scheme behind ``init`` for a layer followed by ``activation``."""
    if init != "auto":
        return {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal"}.get(init, init)
    return "he_uniform" if activation in RELU_FAMILY else "glorot_uniform"


def initialize(init, out, fan_in, fan_out, rng):
    """Fill ``out`` (any shape, written in place) with the scheme ``init`` (already resolved)."""
    if init == "zeros":
        out[...] = 0
        return
    if init == "glorot_uniform":
        r = np.sqrt(6.0 / (fan_in + fan_out))
        vals = rng.uniform(-r, r, size=out.shape)
    elif init == "glorot_normal":
        vals = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=out.shape)
    elif init == "he_uniform":
        r = np.sqrt(6.0 / fan_in)
        vals = rng.uniform(-r, r, size=out.shape)
    elif init == "he_normal":
        vals = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=out.shape)
    elif init == "lecun_normal":
        vals = rng.normal(0.0, np.sqrt(1.0 / fan_in), size=out.shape)
    elif init == "normal":
        vals = rng.normal(0.0, 0.01, size=out.shape)
    else:
        raise ValueError(f"unknown initializer {init!r}")
    out[...] = vals
