"""A Sequential as JSON data and back (``Sequential.get_config`` / ``from_config`` and its
save/load protocol ``__fastmlp_save__`` / ``__fastmlp_load__``).

Below :mod:`fastmlp.sequential` (which passes its class in): imports layers and
:mod:`fastmlp._serial` only.
"""
from fastmlp._serial import check_int, check_keys, take_array, to_config
from fastmlp.layers._tree import arena_sizes, layers_from_config

_OPTIONAL = ("seed", "rng_seed", "rng_step", "backend", "n_params", "n_buffers", "frozen")


def model_config(model):
    """The architecture and RNG state of a Sequential, as JSON data."""
    return {"layers": [to_config(layer) for layer in model.layers],
            "dtype": model.dtype.name,
            "seed": None if model.seed is None else int(model.seed),
            "rng_seed": int(model.rng_seed), "rng_step": int(model.rng_step),
            "backend": model.backend,
            "n_params": int(model.params.shape[0]), "n_buffers": int(model.buffers.shape[0]),
            "frozen": [i for i, layer in enumerate(model.flat_layers) if not layer.trainable]}


def model_from_config(cls, config, custom_objects=None, sizes=None):
    """Rebuild a ``cls`` (a Sequential) from :func:`model_config` (fresh initial weights).

    ``sizes=(n_params, n_buffers)``: the lengths the arena must have (those of the arrays
    about to be loaded into it), checked before anything is allocated.
    """
    check_keys(config, ("layers", "dtype"), _OPTIONAL, "model config")
    top, flat = layers_from_config(config["layers"], custom_objects)
    _check_sizes(config, arena_sizes(top, flat), sizes)
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
    model.rng_step = check_int(config.get("rng_step", 0), "rng_step")
    frozen = config.get("frozen", [])
    if not isinstance(frozen, list):
        raise ValueError("'frozen' must be a list of layer indices")
    for i in frozen:
        check_int(i, "a frozen layer index", 0, len(flat) - 1)
        model.flat_layers[i].trainable = False
    return model


def _check_sizes(config, need, sizes):
    for i, key in enumerate(("n_params", "n_buffers")):
        declared = config.get(key, need[i])
        if declared != need[i]:
            raise ValueError(f"the model config declares {key}={declared!r:.40} but its "
                             f"layers need {need[i]}")
        if sizes is not None and sizes[i] != need[i]:
            raise ValueError(f"the layers need {need[i]} {key[2:]} but the file holds "
                             f"{sizes[i]}")


def pack_model(model):
    """``(config, arrays)`` of a Sequential; the arrays are the live arenas (not copies)."""
    return model_config(model), {"params": model.params, "buffers": model.buffers}


def unpack_model(cls, config, arrays, custom_objects=None):
    """The ``cls`` of :func:`pack_model`; consumes its arrays from ``arrays``."""
    if not isinstance(config, dict):
        raise ValueError("the model config must be a JSON object")
    dtype = config.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"the model dtype must be 'float32' or 'float64', got {dtype!r:.40}")
    params = take_array(arrays, "params", dtype)
    buffers = take_array(arrays, "buffers", dtype)
    model = model_from_config(cls, config, custom_objects,
                              sizes=(params.shape[0], buffers.shape[0]))
    model.params[...] = params
    model.buffers[...] = buffers
    return model
