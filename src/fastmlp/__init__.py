"""fastmlp: fast CPU training of multilayer perceptrons.

A compiled core (Cython, GIL-free) runs dense forward/backward passes and optimizer
updates over one contiguous parameter arena; this package is the Python face of it.
"""
from fastmlp.gradcheck import gradient_check
from fastmlp.layers import (ELU, GELU, Activation, ArcTan, Dense, HardTanh, Identity, Layer,
                            LeakyReLU, Maxout, PReLU, ReLU, SiLU, Sigmoid, Softmax, Softplus,
                            Step, Tanh)
from fastmlp.sequential import Sequential

__version__ = "0.1.0"

__all__ = ["Sequential", "Layer", "Dense", "Maxout", "Activation", "Identity", "Sigmoid",
           "Tanh", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softplus", "ArcTan", "HardTanh",
           "Step", "SiLU", "GELU", "Softmax", "gradient_check"]
