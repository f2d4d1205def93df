"""The public API is typed: the package ships ``py.typed`` and every public function, and
every public method and constructor of a public class (of ``fastmlp``, ``fastmlp.io``,
the estimators and the public modules schedules, metrics, optim, losses, regularizers,
callbacks), annotates its parameters (and its return, constructors apart)."""
import inspect
import os

import pytest

import fastmlp as fm
from fastmlp import callbacks, estimators, io, losses, metrics, optim, regularizers, schedules

MODULES = (schedules, metrics, optim, losses, regularizers, callbacks)


def _public():
    names = [n for n in fm.__all__ if not inspect.ismodule(getattr(fm, n))]
    objs = {n: getattr(fm, n) for n in names}
    objs.update({f"io.{n}": getattr(io, n) for n in io.__all__})
    objs.update(MLPClassifier=estimators.MLPClassifier, MLPRegressor=estimators.MLPRegressor)
    for module in MODULES:
        listed = getattr(module, "__all__", None)
        names = listed or [n for n, obj in vars(module).items() if not n.startswith("_")
                           and getattr(obj, "__module__", None) == module.__name__]
        for n in names:
            obj = getattr(module, n)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                objs[f"{module.__name__}.{n}"] = obj
    return objs


def _functions():
    for name, obj in _public().items():
        if not inspect.isclass(obj):
            yield name, obj
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            fn = fn.fget if isinstance(fn, property) else fn
            if inspect.isfunction(fn):
                yield f"{name}.{attr}", fn


def _missing(name, fn):
    sig = inspect.signature(fn)
    params = [p.name for p in sig.parameters.values()
              if p.name not in ("self", "cls") and not p.name.startswith("_")
              and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
              and p.annotation is p.empty]
    if sig.return_annotation is sig.empty and not name.endswith("__init__"):
        params.append("return")
    return params


def test_the_package_ships_py_typed():
    assert os.path.isfile(os.path.join(os.path.dirname(fm.__file__), "py.typed"))


FUNCTIONS = sorted(_functions())


@pytest.mark.parametrize("name,fn", FUNCTIONS, ids=[name for name, _ in FUNCTIONS])
def test_public_signatures_are_annotated(name, fn):
    assert not _missing(name, fn), f"{name}: no annotation for {_missing(name, fn)}"
