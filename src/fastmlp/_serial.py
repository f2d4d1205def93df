"""Configs as JSON: the registry of savable classes, JSON coercion and key checks.

Dependency-free (NumPy and the standard library only): every class that can be saved
imports this module and registers itself where it is defined; nothing here knows a layer,
a model or a trainer.

The config of an object is ``{"type": <registered name>, "config": {argument: value}}``:
``type(obj)(**config)`` rebuilds it, or ``cls.from_config(config, context)`` for classes
whose config refers to other objects (layers: :class:`Context`). Types are looked up in
the registry (:func:`register`, or a caller's ``custom_objects``), never imported from a
name read in a file. Everything read back is checked: a config that does not describe a
valid object raises ValueError.

The kinds of saved file (``"sequential"``, ``"trainer"``) are classes registered with
:func:`register_kind`; they implement ``__fastmlp_save__(self) -> (config, arrays)`` and
``__fastmlp_load__(cls, config, arrays, custom_objects)``.
"""
import inspect
import math
from typing import Any, Optional

import numpy as np

#: name -> class, and class -> name, of every type a config may name
_REGISTRY, _NAMES = {}, {}
#: kind of file -> class, for the library's own kinds (see :func:`register_kind`)
KINDS = {}
#: kinds of file that are not registered names
RESERVED = ("sequential", "trainer")
MAX_LAYERS = 100_000
MAX_DEPTH = 64
_SCALARS = (str, bool, int, float, type(None))


# --- the registry -----------------------------------------------------------------------------

def register(cls: Optional[type] = None, *, name: Optional[str] = None) -> Any:
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


def register_kind(name):
    """Class decorator: instances of the class (and of its subclasses that register no
    kind of their own) are saved as files of kind ``name``, one of :data:`RESERVED` (the
    names :func:`register` refuses)."""
    if name not in RESERVED:
        raise ValueError(f"invalid kind {name!r}")

    def decorate(cls):
        KINDS[name] = cls
        return cls
    return decorate


def kind_of(obj):
    """The kind of file ``obj`` is saved as: that of the most derived class of ``obj``
    registered with :func:`register_kind`, or None."""
    names = {cls: name for name, cls in KINDS.items()}
    return next((names[cls] for cls in type(obj).__mro__ if cls in names), None)


def registered_name(cls):
    """The name ``cls`` is registered under; TypeError when it is not registered."""
    try:
        return _NAMES[cls]
    except KeyError:
        raise TypeError(f"cannot save a {cls.__module__}.{cls.__qualname__}: its class is not "
                        "registered (use fastmlp.io.register)") from None


def registered(name, custom_objects=None):
    """The class registered (or in ``custom_objects``) as ``name``, or None."""
    return (custom_objects or {}).get(name, _REGISTRY.get(name))


def lookup(name, base, what, custom_objects=None):
    """The class registered (or in ``custom_objects``) as ``name``, a subclass of ``base``."""
    if not isinstance(name, str):
        raise ValueError(f"{what} type must be a string, got {type(name).__name__}")
    cls = registered(name, custom_objects)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{what}: unknown type {name[:100]!r} (not a registered "
                         f"{base.__name__ if isinstance(base, type) else base[0].__name__})")
    return cls


# --- objects -> configs ---------------------------------------------------------------------

def jsonable(value, where, nonfinite=False):
    """``value`` as plain JSON data (tuples and arrays to lists, NumPy scalars to Python
    ones); TypeError naming ``where`` for anything else. A NaN or infinity raises
    ValueError, or with ``nonfinite`` is written ``{"nonfinite": "inf"}`` (read back by
    :func:`restore_nonfinite`)."""
    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biuf":
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        if nonfinite:
            return {"nonfinite": repr(value)}
        raise ValueError(f"{where} is {value}: only finite numbers can be saved")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]", nonfinite) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: jsonable(v, f"{where}[{k!r}]", nonfinite) for k, v in value.items()}
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


# --- configs -> objects ---------------------------------------------------------------------

def restore_nonfinite(value):
    """The inverse of ``jsonable(..., nonfinite=True)``: ``{"nonfinite": "inf"}`` (also
    ``"-inf"``, ``"nan"``) back to the float, in lists and dicts at any depth."""
    if isinstance(value, dict):
        if set(value) == {"nonfinite"}:
            if value["nonfinite"] not in ("inf", "-inf", "nan"):
                raise ValueError(f"invalid non-finite number {value['nonfinite']!r:.40}")
            return float(value["nonfinite"])
        return {k: restore_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_nonfinite(v) for v in value]
    return value


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
    """``value`` is an integer (not a bool) in [low, high]; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {value!r:.100}")
    return value


def entry(config_entry, what):
    """``(type name, config dict)`` of a ``{"type", "config"}`` entry."""
    check_keys(config_entry, ("type", "config"), what=what)
    if not isinstance(config_entry["config"], dict):
        raise ValueError(f"{what} 'config' must be a JSON object")
    return config_entry["type"], config_entry["config"]


def plain_kwargs(cls, config, what, skip=()):
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


def build(cls, kwargs, what, args=()):
    """``cls(*args, **kwargs)``, its TypeError / ValueError as a ValueError naming ``what``."""
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{what}: invalid {cls.__name__} arguments: {exc}") from None


def object_from_config(config_entry, base, what, custom_objects=None):
    """Rebuild a loss, penalty, constraint or parameter-free object from its config."""
    name, config = entry(config_entry, what)
    cls = lookup(name, base, what, custom_objects)
    return build(cls, plain_kwargs(cls, config, what), what)


class Context:
    """What a ``from_config`` needs besides the config: where it is (for messages), the
    caller's ``custom_objects``, the contained objects already rebuilt (a container's
    layers) and a way to resolve references by index (``refer(index, what)``)."""

    def __init__(self, where, custom_objects=None, children=(), refer=None):
        self.where, self.custom_objects = where, custom_objects
        self.children, self._refer = list(children), refer

    def kwargs(self, cls, config, skip=()):
        """The plain constructor arguments of ``config`` (those not in ``skip``)."""
        return plain_kwargs(cls, config, self.where, skip)

    def build(self, cls, kwargs, args=()):
        return build(cls, kwargs, self.where, args)

    def nested(self, config_entry, base, key):
        """The object of the nested config ``config_entry``, an instance of ``base``."""
        return object_from_config(config_entry, base, f"{self.where}.{key}",
                                  self.custom_objects)

    def reference(self, index, key):
        """The object numbered ``index`` (a layer's ``tied_to``); ValueError without one."""
        if self._refer is None:
            raise ValueError(f"{self.where}.{key} refers to another object: rebuild the "
                             "whole model")
        return self._refer(index, f"{self.where}.{key}")


# --- arrays -----------------------------------------------------------------------------------

def take_array(arrays, name, dtype, length=None):
    """Remove and return ``arrays[name]``, checked to be 1-D of ``dtype`` (and ``length``)."""
    if name not in arrays:
        raise ValueError(f"the array {name!r} is missing")
    a = arrays.pop(name)
    if a.ndim != 1 or a.dtype != dtype or (length is not None and a.shape[0] != length):
        want = f"({length},)" if length is not None else "1-D"
        raise ValueError(f"the array {name!r} must be {want} {np.dtype(dtype).name}, got "
                         f"{a.dtype} with shape {a.shape}")
    return a
