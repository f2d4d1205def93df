"""fastmlp: fast CPU training of multilayer perceptrons.

A compiled core (Cython, GIL-free) runs dense forward/backward passes and optimizer
updates over one contiguous parameter arena; this package is the Python face of it.
"""
from fastmlp import _codes_check

_codes_check.check_compiled_codes()   # the core's enums are fastmlp._codes' (else ImportError)

from fastmlp import callbacks, metrics, reference, regularizers, schedules
from fastmlp.callbacks import (Callback, CSVLogger, EarlyStopping, LambdaCallback,
                               LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
                               TerminateOnNaN)
from fastmlp.data import Standardizer, one_hot, train_val_test_split
from fastmlp.ensemble import Ensemble
from fastmlp.gradcheck import gradient_check
from fastmlp.diagnostics import Diagnostics
from fastmlp.history import History
from fastmlp.lr_finder import LRFinderResult, lr_find
from fastmlp.layers import (ELU, GELU, Activation, ArcTan, BatchNorm, Dense, Dropout,
                            GaussianNoise, ImageAugment, LayerNorm,
                            HardTanh, Identity, Layer, LeakyReLU, Maxout, PReLU, ReLU, Residual,
                            SiLU, Sigmoid, Softmax, Softplus, Step, Tanh)
from fastmlp.regularizers import (ElasticNet, L1Penalty, L2Penalty, MaxNorm, NonNeg,
                                  TyingPenalty, sparsity)
from fastmlp.losses import (BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss,
                            MSELoss, MultiMarginLoss, get_loss)
from fastmlp.optim import (BFGS, LAMB, LBFGS, SGD, Adadelta, Adagrad, Adam, AdamW,
                           GradientDescent, Newton, Optimizer, RMSprop, clip_grad_norm,
                           clip_grad_value, get_optimizer)
from fastmlp.sequential import Sequential
from fastmlp._symbolic import Input
from fastmlp.graph import Model
from fastmlp.layers.merge import Add, Concatenate, Multiply, Subtract
from fastmlp.threads import get_num_threads, limit_threads, set_num_threads
from fastmlp.fpmode import get_flush_denormal, set_flush_denormal
from fastmlp.sysinfo import show_config
from fastmlp.trainer import Trainer
from fastmlp.io import load, save
from fastmlp.interop import from_torch, to_torch
from fastmlp.onnx_export import to_onnx
from fastmlp._version import __version__


_LAZY = ("MLPClassifier", "MLPRegressor")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name):
    # the scikit-learn estimators are imported on first use: importing scikit-learn
    # doubles the time of ``import fastmlp``
    if name in _LAZY:
        from fastmlp import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


__all__ = ["Sequential", "Model", "Input", "Add", "Subtract", "Multiply", "Concatenate",
           "Layer", "Dense", "Maxout", "Activation", "Identity", "Sigmoid",
           "Tanh", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softplus", "ArcTan", "HardTanh",
           "Step", "SiLU", "GELU", "Softmax", "Dropout", "GaussianNoise", "Residual", "BatchNorm", "LayerNorm",
           "L2Penalty", "L1Penalty", "ElasticNet", "MaxNorm", "NonNeg", "gradient_check",
           "TyingPenalty", "sparsity", "lr_find", "LRFinderResult", "Diagnostics",
           "ImageAugment",
           "Loss", "MSELoss", "L1Loss", "HuberLoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
           "MultiMarginLoss", "get_loss",
           "Optimizer", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "LAMB",
           "clip_grad_norm", "clip_grad_value", "get_optimizer", "GradientDescent", "LBFGS",
           "BFGS", "Newton",
           "Trainer", "History", "Callback", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN", "CSVLogger",
           "LambdaCallback", "Ensemble", "MLPClassifier", "MLPRegressor",
           "train_val_test_split", "one_hot", "Standardizer", "save", "load", "to_torch",
           "from_torch", "to_onnx",
           "set_num_threads", "get_num_threads", "limit_threads", "show_config",
           "set_flush_denormal", "get_flush_denormal",
           "callbacks", "interop", "io", "losses", "metrics", "optim", "reference",
           "regularizers", "schedules"]
