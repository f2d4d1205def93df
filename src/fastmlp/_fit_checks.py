"""Checks of ``Trainer.fit``'s arguments against the model and the optimizer, made before
any training step."""
import numbers

from fastmlp._freeze import frozen_ranges
from fastmlp.distributed import fingerprint
from fastmlp.layers.augment import ImageAugment
from fastmlp.layers.noise import Dropout, GaussianNoise
from fastmlp.layers.norm import BatchNorm
from fastmlp.optim.base import FULL_BATCH


def check_deterministic(model, optimizer):
    """Full-batch solvers search along lines of one objective: a layer drawing new noise at
    every evaluation makes it random (L-BFGS then stops early, claiming convergence). They
    move the whole parameter vector, frozen layers included: refused too."""
    if optimizer.strategy != FULL_BATCH:
        return
    if frozen_ranges(model):
        raise ValueError(f"optimizer={optimizer!r} moves every parameter, but the model has "
                         "frozen layers (trainable=False): use a mini-batch optimizer")
    for layer in model.flat_layers:
        if (isinstance(layer, Dropout) and layer.p > 0) or \
                (isinstance(layer, GaussianNoise) and layer.std > 0) or \
                isinstance(layer, ImageAugment):
            raise ValueError(f"optimizer={optimizer!r} needs a deterministic objective, but "
                             f"{layer!r} draws new noise at every evaluation: use a "
                             "mini-batch optimizer (e.g. Adam) or remove the layer")


def check_ranks_agree(trainer, error, prepared, batch_size, sharded, shuffle,
                      validation_split):
    """Distributed fit: every rank raises ``error`` (one rank's), or they all checked that
    they train alike (the same fingerprint of data and settings)."""
    params = trainer.fit_params
    trainer._dist.check_same(error, {} if error else fingerprint(
        trainer, prepared[0], prepared[1], batch_size, sharded,
        {"epochs": params["epochs"], "initial_epoch": params["initial_epoch"],
         "shuffle": bool(shuffle),
         "batch_callbacks": any(cb.wants_batches for cb in prepared[5]),
         "validation_split": validation_split,
         "validation_freq": repr(params["validation_freq"])}))


def check_batchnorm_batches(model, n_rows, batch_size, full_batch):
    """BatchNorm needs at least 2 rows per training batch (the variance of one row is
    undefined; torch refuses it too): refuse a fit whose last batch would have 1 row."""
    if n_rows == 0 or not any(isinstance(layer, BatchNorm) for layer in model.flat_layers):
        return
    size = n_rows if full_batch else min(batch_size, n_rows)
    if n_rows % size != 1 and size != 1:
        return
    if n_rows == 1:
        raise ValueError("BatchNorm needs at least 2 rows per training batch, but there is "
                         "1 training row")
    raise ValueError(f"batch_size={batch_size} leaves a training batch of 1 row "
                     f"({n_rows} training rows); BatchNorm needs at least 2 rows per "
                     f"training batch: choose another batch_size")


def check_validation_freq(freq):
    """An int >= 1, or the set of the epochs (counted from 1) to validate after."""
    if isinstance(freq, (list, tuple, set, frozenset, range)):
        for e in freq:
            check_int(e, "validation_freq entries", 1)
        return frozenset(int(e) for e in freq)
    check_int(freq, "validation_freq", 1)
    return int(freq)


def check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
