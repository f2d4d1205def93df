"""The backend as an object (``fastmlp._ops``): the two ops objects expose the same kernels
with the same signatures, a model's ``ops`` follows its ``backend``, and no code outside
``fastmlp._ops`` chooses a kernel by comparing backend names."""
import inspect
import pathlib
import pickle
import re

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._ops import BACKENDS, OPS, CoreOps, get_ops, ops_of
from fastmlp.reference.ops import NumpyOps


def _kernels(cls):
    return {name: value for name, value in vars(cls).items()
            if isinstance(value, staticmethod)}


def test_both_ops_expose_the_same_kernels_with_the_same_signatures():
    core, ref = _kernels(CoreOps), _kernels(NumpyOps)
    assert set(core) == set(ref), set(core) ^ set(ref)
    for name in core:
        a = inspect.signature(getattr(CoreOps, name))
        b = inspect.signature(getattr(NumpyOps, name))
        assert [(p.name, p.kind) for p in a.parameters.values()] == \
            [(p.name, p.kind) for p in b.parameters.values()], (name, a, b)
        assert getattr(CoreOps, name).__module__.startswith("fastmlp._"), name
        assert getattr(NumpyOps, name).__module__.startswith("fastmlp.reference."), name


def test_the_backend_is_chosen_in_one_place():
    assert BACKENDS == ("core", "numpy")
    assert isinstance(get_ops("core"), CoreOps) and isinstance(get_ops("numpy"), NumpyOps)
    assert all(OPS[name].name == name for name in BACKENDS)
    with pytest.raises(ValueError, match="backend must be one of .* got 'torch'"):
        get_ops("torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        fm.Sequential(fm.Dense(2, 1), backend="torch")


@pytest.mark.parametrize("make", [
    lambda backend: fm.Sequential(fm.Dense(3, 2), backend=backend),
    lambda backend: fm.Model(*_graph(), backend=backend),
], ids=["sequential", "graph"])
def test_a_model_holds_the_ops_of_its_backend(make):
    model = make("numpy")
    assert model.ops is OPS["numpy"] and model.plan is None
    model.backend = "core"
    assert model.ops is OPS["core"] and model.plan is not None
    copy = pickle.loads(pickle.dumps(model))
    assert copy.ops is OPS["core"] and copy.plan is not None
    assert ops_of(object()) is OPS["core"]      # a bare arena steps with the core


def _graph():
    x = fm.Input(3)
    return x, fm.Dense(3, 2)(x)


def test_an_optimizer_step_runs_the_kernel_of_the_models_ops():
    rng = np.random.default_rng(0)
    models = [fm.Sequential(fm.Dense(4, 3), seed=1, backend=b, dtype="float64")
              for b in BACKENDS]
    grads = rng.normal(size=models[0].n_params)
    for model in models:
        opt = fm.Adam(lr=0.1)
        model.grads[...] = grads
        opt.step(model)
    np.testing.assert_allclose(models[0].params, models[1].params, rtol=1e-12)


def test_no_backend_name_is_compared_outside_the_ops_module():
    src = pathlib.Path(fm.__file__).parent
    pattern = re.compile(r"""backend\)?\s*[!=]=\s*["'](core|numpy)|[!=]=\s*["']numpy["']""")
    found = [f"{path.name}:{n}" for path in src.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line) and not path.name.startswith("_bench")]
    assert not found, found
