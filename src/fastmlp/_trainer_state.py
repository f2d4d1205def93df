"""A Trainer as JSON data and arrays and back (its save/load protocol).

Model, loss, regularizers, metrics, optimizer (hyperparameters, step count, state buffers;
:func:`pack_optimizer` / :func:`unpack_optimizer`, which the estimators use too) and the
shuffling generator's state. Below :mod:`fastmlp.trainer`, which passes its class in.
"""
import numbers
import re

import numpy as np

from fastmlp._serial import (check_int, check_keys, jsonable, lookup, object_from_config,
                             registered_name, take_array, to_config)
from fastmlp.losses import Loss
from fastmlp.metrics import METRICS, get_metric
from fastmlp.optim import BaseOptimizer
from fastmlp.regularizers import Penalty
from fastmlp.sequential import Sequential

_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}
_KEYS = ("model", "loss", "regularizers", "optimizer", "metrics", "seed", "rng",
         "stop_training")


def pack_trainer(trainer):
    """``(config, arrays)`` of a Trainer: model, loss, regularizers, metrics, optimizer
    (hyperparameters, step count, state buffers) and the shuffling generator's state."""
    config, arrays = trainer.model.__fastmlp_save__()
    opt_config, opt_arrays = pack_optimizer(trainer.optimizer)
    arrays.update(opt_arrays)
    seed = trainer.seed
    seed = int(seed) if isinstance(seed, numbers.Integral) and 0 <= seed < 2**128 else None
    config = {"model": config, "loss": to_config(trainer.loss),
              "regularizers": [to_config(r) for r in trainer.regularizers],
              "optimizer": opt_config,
              "metrics": [_pack_metric(name, fn) for name, fn in trainer.metrics],
              "seed": seed, "rng": jsonable(trainer._rng.bit_generator.state, "rng"),
              "stop_training": bool(trainer.stop_training)}
    return config, arrays


def pack_optimizer(opt):
    """``(config, arrays)`` of an optimizer (or full-batch solver): ``{"type", "step",
    "hyper", "state": names of its buffers}`` and the buffers as ``optimizer.<name>``."""
    sd = opt.state_dict()
    config = {"type": registered_name(type(opt)), "step": int(sd["step"]),
              "hyper": jsonable(sd["hyper"], "optimizer hyperparameters"),
              "state": sorted(sd["state"])}
    return config, {f"optimizer.{name}": buf for name, buf in sd["state"].items()}


def unpack_trainer(cls, config, arrays, custom_objects=None):
    """The ``cls`` (a Trainer) of :func:`pack_trainer`; consumes its arrays."""
    check_keys(config, _KEYS, what="trainer config")
    model = Sequential.__fastmlp_load__(config["model"], arrays, custom_objects)
    loss = object_from_config(config["loss"], Loss, "loss", custom_objects)
    if not isinstance(config["regularizers"], list) or not isinstance(config["metrics"], list):
        raise ValueError("'regularizers' and 'metrics' must be lists")
    regs = [object_from_config(r, Penalty, f"regularizers[{i}]", custom_objects)
            for i, r in enumerate(config["regularizers"])]
    optimizer = unpack_optimizer(config["optimizer"], arrays, model, custom_objects)
    seed = config["seed"]
    if seed is not None:
        check_int(seed, "trainer seed", 0, 2**128)
    trainer = cls(model, loss, optimizer, regularizers=regs, seed=seed)
    trainer.metrics = [_unpack_metric(m, custom_objects) for m in config["metrics"]]
    trainer._rng = np.random.Generator(_bit_generator(config["rng"]))
    trainer.stop_training = config["stop_training"] is True
    return trainer


def _pack_metric(name, fn):
    """``{"name": key in the logs, "builtin": the get_metric name, or null for a user
    function (given back through custom_objects)}``."""
    builtin = next((key for key, f in METRICS.items() if f is fn), None)
    top_k = re.match(r"top_\d+_accuracy", name)
    if top_k and getattr(fn, "__qualname__", "").startswith("get_metric."):
        builtin = top_k.group(0)
    return {"name": name, "builtin": builtin}


def _unpack_metric(entry, custom_objects):
    check_keys(entry, ("name", "builtin"), what="a metric entry")
    name, builtin = entry["name"], entry["builtin"]
    if not isinstance(name, str) or not isinstance(builtin, (str, type(None))):
        raise ValueError("a metric entry must hold strings")
    if builtin is not None:
        return name, get_metric(builtin)[1]
    fn = (custom_objects or {}).get(name)
    if not callable(fn):
        raise ValueError(f"the trainer used the custom metric {name[:100]!r}: pass it as "
                         f"load(path, custom_objects={{{name[:100]!r}: function}})")
    return name, fn


def unpack_optimizer(config, arrays, model, custom_objects=None):
    """The optimizer of :func:`pack_optimizer`, its buffers checked against ``model``;
    consumes its arrays."""
    check_keys(config, ("type", "step", "hyper", "state"), what="optimizer config")
    cls = lookup(config["type"], BaseOptimizer, "optimizer", custom_objects)
    hyper, names = config["hyper"], config["state"]
    if not isinstance(hyper, dict):
        raise ValueError("optimizer 'hyper' must be a JSON object")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("optimizer 'state' must be a list of names")
    state = {name: take_array(arrays, f"optimizer.{name}", model.dtype, model.n_params)
             for name in names}
    step = check_int(config["step"], "optimizer step", 0, 2**62)
    try:
        optimizer = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()})
        optimizer.load_state_dict({"type": cls.__name__, "step": step, "hyper": hyper,
                                   "state": state})
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"invalid optimizer state: {exc}") from None
    return optimizer


def _bit_generator(state):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ValueError(f"the trainer's rng state must name one of {sorted(_BIT_GENERATORS)}")
    bg = _BIT_GENERATORS[name]()
    try:
        bg.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"invalid rng state: {exc}") from None
    return bg
