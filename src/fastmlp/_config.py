"""Configs: layers, losses, penalties, constraints and models as JSON-able dicts, and back.

The config of an object is ``{"type": <registered name>, "config": {argument: value}}``:
``type(obj)(**config)`` rebuilds it. Types are looked up in a registry of known classes
(the library's own and those given to :func:`register`, or a caller's ``custom_objects``),
never imported from a name read in a file. Everything read back is checked: a config that
does not describe a valid object raises ValueError.
"""
import inspect
import math
import numbers
import re

import numpy as np

#: name -> class, and class -> name, of every type a config may name
_REGISTRY, _NAMES = {}, {}
#: kinds of file that are not registered names
RESERVED = ("sequential", "trainer")
MAX_LAYERS = 100_000
MAX_DEPTH = 64
_SCALARS = (str, bool, int, float, type(None))
_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}


def register(cls=None, *, name=None):
    """Make ``cls`` known to save/load under ``name`` (default: its ``__name__``).

    Needed for user-written layers (which then describe themselves with ``get_config()``)
    and for objects implementing ``__fastmlp_save__`` / ``__fastmlp_load__``. Usable as a
    decorator, with or without ``name=``. Returns ``cls``.
    """
    if cls is None:
        return lambda c: register(c, name=name)
    if not isinstance(cls, type):
        raise TypeError(f"register needs a class, got {cls!r}")
    name = cls.__name__ if name is None else name
    if not isinstance(name, str) or not name or name in RESERVED:
        raise ValueError(f"invalid registered name {name!r}")
    if _REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"the name {name!r} is already registered for "
                         f"{_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__}")
    _REGISTRY[name] = cls
    _NAMES.setdefault(cls, name)
    return cls


def registered_name(cls):
    """The name ``cls`` is registered under; TypeError when it is not registered."""
    try:
        return _NAMES[cls]
    except KeyError:
        raise TypeError(f"cannot save a {cls.__module__}.{cls.__qualname__}: its class is not "
                        "registered (use fastmlp.io.register)") from None


def lookup(name, base, what, custom_objects=None):
    """The class registered (or in ``custom_objects``) as ``name``, a subclass of ``base``."""
    if not isinstance(name, str):
        raise ValueError(f"{what} type must be a string, got {type(name).__name__}")
    cls = (custom_objects or {}).get(name, _REGISTRY.get(name))
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{what}: unknown type {name[:100]!r} (not a registered "
                         f"{base.__name__ if isinstance(base, type) else base[0].__name__})")
    return cls


# --- objects -> configs ---------------------------------------------------------------------

def jsonable(value, where):
    """``value`` as plain JSON data (tuples and arrays to lists, NumPy scalars to Python
    ones); TypeError naming ``where`` for anything else."""
    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biuf":
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}: only finite numbers can be saved")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"{where} = {value!r} cannot be saved (not a JSON value); define "
                    "get_config() to describe the object")


def constructor_config(obj):
    """The constructor arguments of ``obj`` read back from its attributes of the same names
    (the default ``get_config``)."""
    cls = type(obj)
    out = {}
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(obj, p.name):
            raise TypeError(f"cannot describe {cls.__name__}: its constructor argument "
                            f"{p.name!r} is not an attribute; define get_config()")
        out[p.name] = jsonable(getattr(obj, p.name), f"{cls.__name__}.{p.name}")
    return out


def to_config(obj):
    """``{"type": registered name, "config": obj.get_config()}`` (constructor arguments
    read back from attributes when the object has no ``get_config``)."""
    get = getattr(obj, "get_config", None)
    config = get() if callable(get) else constructor_config(obj)
    return {"type": registered_name(type(obj)),
            "config": jsonable(config, f"{type(obj).__name__}.get_config()")}


def layer_index(layer):
    """Index of ``layer`` in its model's ``flat_layers`` (how configs refer to a layer)."""
    model = getattr(layer, "_model", None)
    if model is None:
        raise ValueError(f"{layer!r} is referred to by another layer but belongs to no model; "
                         "describe the whole Sequential")
    return next(i for i, other in enumerate(model.flat_layers) if other is layer)


def model_config(model):
    """The architecture and RNG state of a Sequential, as JSON data."""
    return {"layers": [to_config(layer) for layer in model.layers],
            "dtype": model.dtype.name,
            "seed": None if model.seed is None else int(model.seed),
            "rng_seed": int(model.rng_seed), "rng_step": int(model.rng_step),
            "backend": model.backend,
            "n_params": int(model.params.shape[0]), "n_buffers": int(model.buffers.shape[0]),
            "frozen": [i for i, layer in enumerate(model.flat_layers) if not layer.trainable]}


# --- configs -> objects ---------------------------------------------------------------------

def check_keys(d, required, optional=(), what="config"):
    """``d`` is a dict with every key of ``required`` and no key outside ``optional``."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(d).__name__}")
    missing = set(required) - set(d)
    extra = set(d) - set(required) - set(optional)
    if missing or extra:
        raise ValueError(f"{what}: missing keys {sorted(missing)}, unexpected keys "
                         f"{sorted(map(str, extra))[:10]}")
    return d


def check_int(value, what, low=0, high=2**63 - 1):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {value!r:.100}")
    return value


def _entry(entry, what):
    check_keys(entry, ("type", "config"), what=what)
    if not isinstance(entry["config"], dict):
        raise ValueError(f"{what} 'config' must be a JSON object")
    return entry["type"], entry["config"]


def _plain_kwargs(cls, config, what, skip=()):
    """Constructor keyword arguments: names the constructor takes, plain JSON values."""
    params = inspect.signature(cls).parameters
    named = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    out = {}
    for key, value in config.items():
        if key in skip:
            continue
        if key not in named:
            raise ValueError(f"{what}: {cls.__name__} takes no argument {key[:100]!r}")
        if not (isinstance(value, _SCALARS) or
                (isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value))):
            raise ValueError(f"{what}: argument {key!r} must be a number, string, bool, null "
                             "or a list of them")
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def _build(cls, kwargs, what, args=()):
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{what}: invalid {cls.__name__} arguments: {exc}") from None


def object_from_config(entry, base, what, custom_objects=None):
    """Rebuild a loss, penalty, constraint or parameter-free object from its config."""
    name, config = _entry(entry, what)
    cls = lookup(name, base, what, custom_objects)
    return _build(cls, _plain_kwargs(cls, config, what), what)


def layers_from_config(entries, custom_objects=None):
    """``(top-level layers, all layers in flat order)`` from a list of layer configs.

    Flat order is the model's ``flat_layers`` order (containers before their children),
    which is how ``tied_to`` refers to a layer; layers are built as their references need.
    """
    from fastmlp.layers import Layer
    if not isinstance(entries, list) or not entries:
        raise ValueError("'layers' must be a non-empty list")
    nodes = []

    def walk(entry, where, depth):
        if depth > MAX_DEPTH or len(nodes) >= MAX_LAYERS:
            raise ValueError("the layer configs are nested too deeply or are too many")
        name, config = _entry(entry, where)
        cls = lookup(name, Layer, where, custom_objects)
        node = {"cls": cls, "config": config, "where": where, "children": []}
        index = len(nodes)
        nodes.append(node)
        if _is_residual(cls):
            children = config.get("layers")
            if not isinstance(children, list) or not children:
                raise ValueError(f"{where}: {cls.__name__} 'layers' must be a non-empty list")
            node["children"] = [walk(c, f"{where}.layers[{i}]", depth + 1)
                                for i, c in enumerate(children)]
        return index

    top = [walk(e, f"layers[{i}]", 0) for i, e in enumerate(entries)]
    built, busy = [None] * len(nodes), [False] * len(nodes)

    def make(i):
        if built[i] is None:
            if busy[i]:
                raise ValueError(f"{nodes[i]['where']}: tied_to forms a cycle")
            busy[i] = True
            built[i] = _make_layer(nodes[i], make, len(nodes), custom_objects)
        return built[i]

    return [make(i) for i in top], [make(i) for i in range(len(nodes))]


def _is_residual(cls):
    """A container (Residual, Chain): its config holds its layers'."""
    from fastmlp.layers import Chain
    return issubclass(cls, Chain)


def _make_layer(node, make, n_nodes, custom_objects):
    from fastmlp.layers import Activation, Dense
    from fastmlp.regularizers import Constraint, Penalty
    cls, config, where = node["cls"], node["config"], node["where"]
    if _is_residual(cls):
        kwargs = _plain_kwargs(cls, config, where, skip=("layers",))
        return _build(cls, kwargs, where, args=[make(c) for c in node["children"]])
    if not issubclass(cls, Dense):
        return _build(cls, _plain_kwargs(cls, config, where), where)
    nested = {"activation": Activation, "regularizer": Penalty, "constraint": Constraint}
    kwargs = _plain_kwargs(cls, config, where, skip=(*nested, "tied_to"))
    for key, base in nested.items():
        value = config.get(key)
        if isinstance(value, dict):
            kwargs[key] = object_from_config(value, base, f"{where}.{key}", custom_objects)
        elif value is not None and not (key == "activation" and isinstance(value, str)):
            raise ValueError(f"{where}: {key} must be a config object or null")
        elif key in config:
            kwargs[key] = value
    tied = config.get("tied_to")
    if tied is not None:
        check_int(tied, f"{where}.tied_to", 0, n_nodes - 1)
        target = make(tied)
        if not isinstance(target, Dense):
            raise ValueError(f"{where}: tied_to={tied} is not a Dense layer")
        kwargs["tied_to"] = target
    return _build(cls, kwargs, where)


def arena_sizes(top, flat):
    """``(n_params, n_buffers)`` the layers will need, from their declared shapes (Python
    integers: no overflow, nothing allocated). Fixes the layers' widths as the model will."""
    width = top[0].n_in
    if width is None:
        raise ValueError(f"the first layer ({top[0]!r}) must fix the input width")
    for i, layer in enumerate(top):
        try:
            width = layer.build(width)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"layers[{i}]: {exc}") from None
    n_params = sum(_count(shape) for layer in flat for _, shape, _ in layer.param_specs())
    n_buffers = sum(_count(shape) for layer in flat for _, shape, _ in layer.buffer_specs())
    return n_params, n_buffers


def _count(shape):
    dims = [check_int(d, "a parameter dimension") for d in shape]
    return math.prod(dims)


def model_from_config(config, custom_objects=None, sizes=None, cls=None):
    """Rebuild a Sequential from :func:`model_config` (fresh initial weights).

    ``sizes=(n_params, n_buffers)``: the lengths the arena must have (those of the arrays
    about to be loaded into it), checked before anything is allocated.
    """
    if cls is None:
        from fastmlp.sequential import Sequential as cls
    check_keys(config, ("layers", "dtype"),
               ("seed", "rng_seed", "rng_step", "backend", "n_params", "n_buffers", "frozen"),
               "model config")
    top, flat = layers_from_config(config["layers"], custom_objects)
    need = arena_sizes(top, flat)
    for i, key in enumerate(("n_params", "n_buffers")):
        declared = config.get(key, need[i])
        if declared != need[i]:
            raise ValueError(f"the model config declares {key}={declared!r:.40} but its "
                             f"layers need {need[i]}")
        if sizes is not None and sizes[i] != need[i]:
            raise ValueError(f"the layers need {need[i]} {key[2:]} but the file holds "
                             f"{sizes[i]}")
    if config["dtype"] not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {config['dtype']!r:.40}")
    seed = config.get("seed")
    if seed is not None:
        check_int(seed, "seed")
    try:
        model = cls(top, dtype=config["dtype"], seed=seed,
                    backend=config.get("backend", "core"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid model config: {exc}") from None
    if "rng_seed" in config:
        model.rng_seed = check_int(config["rng_seed"], "rng_seed")
        model.backend = model.backend           # recompile with the restored RNG key
    model.rng_step = check_int(config.get("rng_step", 0), "rng_step")
    frozen = config.get("frozen", [])
    if not isinstance(frozen, list):
        raise ValueError("'frozen' must be a list of layer indices")
    for i in frozen:
        check_int(i, "a frozen layer index", 0, len(flat) - 1)
        model.flat_layers[i].trainable = False
    return model


# --- Sequential and Trainer with their arrays ----------------------------------------------

def pack_model(model):
    """``(config, arrays)`` of a Sequential; the arrays are the live arenas (not copies)."""
    return model_config(model), {"params": model.params, "buffers": model.buffers}


def _take(arrays, name, dtype, length=None):
    if name not in arrays:
        raise ValueError(f"the array {name!r} is missing")
    a = arrays.pop(name)
    if a.ndim != 1 or a.dtype != dtype or (length is not None and a.shape[0] != length):
        want = f"({length},)" if length is not None else "1-D"
        raise ValueError(f"the array {name!r} must be {want} {np.dtype(dtype).name}, got "
                         f"{a.dtype} with shape {a.shape}")
    return a


def unpack_model(config, arrays, custom_objects):
    """The Sequential of :func:`pack_model`; consumes its arrays from ``arrays``."""
    if not isinstance(config, dict):
        raise ValueError("the model config must be a JSON object")
    dtype = config.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"the model dtype must be 'float32' or 'float64', got {dtype!r:.40}")
    params = _take(arrays, "params", dtype)
    buffers = _take(arrays, "buffers", dtype)
    model = model_from_config(config, custom_objects, sizes=(params.shape[0], buffers.shape[0]))
    model.params[...] = params
    model.buffers[...] = buffers
    return model


def pack_trainer(trainer):
    """``(config, arrays)`` of a Trainer: model, loss, regularizers, metrics, optimizer
    (hyperparameters, step count, state buffers) and the shuffling generator's state."""
    opt = trainer.optimizer
    sd = opt.state_dict()
    config, arrays = pack_model(trainer.model)
    seed = trainer.seed
    seed = int(seed) if isinstance(seed, numbers.Integral) and 0 <= seed < 2**128 else None
    config = {"model": config, "loss": to_config(trainer.loss),
              "regularizers": [to_config(r) for r in trainer.regularizers],
              "optimizer": {"type": registered_name(type(opt)), "step": int(sd["step"]),
                            "hyper": jsonable(sd["hyper"], "optimizer hyperparameters"),
                            "state": sorted(sd["state"])},
              "metrics": [_pack_metric(name, fn) for name, fn in trainer.metrics],
              "seed": seed, "rng": jsonable(trainer._rng.bit_generator.state, "rng"),
              "stop_training": bool(trainer.stop_training)}
    for name, buf in sd["state"].items():
        arrays[f"optimizer.{name}"] = buf
    return config, arrays


def _pack_metric(name, fn):
    """``{"name": key in the logs, "builtin": the get_metric name, or null for a user
    function (given back through custom_objects)}``."""
    from fastmlp.metrics import METRICS
    builtin = next((key for key, f in METRICS.items() if f is fn), None)
    top_k = re.match(r"top_\d+_accuracy", name)
    if top_k and getattr(fn, "__qualname__", "").startswith("get_metric."):
        builtin = top_k.group(0)
    return {"name": name, "builtin": builtin}


def _unpack_metric(entry, custom_objects):
    from fastmlp.metrics import get_metric
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


def unpack_trainer(config, arrays, custom_objects):
    from fastmlp.losses import Loss
    from fastmlp.optim import Optimizer
    from fastmlp.optim.fullbatch import FullBatchSolver
    from fastmlp.regularizers import Penalty
    from fastmlp.trainer import Trainer
    check_keys(config, ("model", "loss", "regularizers", "optimizer", "metrics", "seed", "rng",
                        "stop_training"), what="trainer config")
    model = unpack_model(config["model"], arrays, custom_objects)
    loss = object_from_config(config["loss"], Loss, "loss", custom_objects)
    if not isinstance(config["regularizers"], list) or not isinstance(config["metrics"], list):
        raise ValueError("'regularizers' and 'metrics' must be lists")
    regs = [object_from_config(r, Penalty, f"regularizers[{i}]", custom_objects)
            for i, r in enumerate(config["regularizers"])]
    optimizer = _unpack_optimizer(config["optimizer"], arrays, model,
                                  (Optimizer, FullBatchSolver), custom_objects)
    seed = config["seed"]
    if seed is not None:
        check_int(seed, "trainer seed", 0, 2**128)
    trainer = Trainer(model, loss, optimizer, regularizers=regs, seed=seed)
    trainer.metrics = [_unpack_metric(m, custom_objects) for m in config["metrics"]]
    trainer._rng = np.random.Generator(_bit_generator(config["rng"]))
    trainer.stop_training = config["stop_training"] is True
    return trainer


def _unpack_optimizer(config, arrays, model, bases, custom_objects):
    check_keys(config, ("type", "step", "hyper", "state"), what="optimizer config")
    cls = lookup(config["type"], bases, "optimizer", custom_objects)
    hyper, names = config["hyper"], config["state"]
    if not isinstance(hyper, dict):
        raise ValueError("optimizer 'hyper' must be a JSON object")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("optimizer 'state' must be a list of names")
    state = {name: _take(arrays, f"optimizer.{name}", model.dtype, model.n_params)
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


def _register_library():
    from fastmlp import layers, losses, regularizers
    from fastmlp.optim import OPTIMIZERS
    abstract = {"Layer", "Loss", "Constraint"}        # nothing to rebuild from their configs
    for module in (layers, losses, regularizers):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and name not in abstract:
                register(obj)
    for cls in OPTIMIZERS.values():
        register(cls)


_register_library()
