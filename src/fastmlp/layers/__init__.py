"""Layers: the building blocks of a Sequential model."""
from fastmlp.layers.activations import (ELU, GELU, ArcTan, Activation, HardTanh, Identity,
                                        LeakyReLU, PReLU, ReLU, SiLU, Sigmoid, Softmax,
                                        Softplus, Step, Tanh)
from fastmlp.layers.augment import ImageAugment
from fastmlp.layers.base import Layer
from fastmlp.layers.dense import Dense, Maxout
from fastmlp.layers.noise import Dropout, GaussianNoise
from fastmlp.layers.norm import BatchNorm, LayerNorm
from fastmlp.layers.residual import Chain, Residual

__all__ = ["Layer", "Dense", "Maxout", "Activation", "Identity", "Sigmoid", "Tanh", "ReLU",
           "LeakyReLU", "PReLU", "ELU", "Softplus", "ArcTan", "HardTanh", "Step", "SiLU",
           "GELU", "Softmax", "Dropout", "GaussianNoise", "Residual", "Chain",
           "BatchNorm", "LayerNorm", "ImageAugment"]
