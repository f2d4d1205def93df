"""The backend as an object (``fastmlp._ops``): the two ops objects expose the same kernels
(optimizers, clipping, penalties, losses, input checks) with the same signatures, a model's
``ops`` follows its ``backend`` (a ``backend="numpy"`` fit runs no compiled loss or check),
and no code outside ``fastmlp._ops`` chooses a kernel by comparing backend names."""
import inspect
import pathlib
import pickle
import re

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _losses, _optim
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


def test_the_ops_cover_losses_and_input_checks():
    for ops in OPS.values():
        assert callable(ops.loss_value_grad) and callable(ops.array_is_finite)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_loss_and_check_kernels_agree_on_both_backends(dtype):
    rng = np.random.default_rng(3)
    pred = rng.normal(size=(7, 4)).astype(dtype)
    labels = rng.integers(0, 4, 7)
    w = rng.uniform(0.5, 2.0, 7).astype(dtype)
    for loss, target in [(fm.MSELoss(), pred[::-1].copy()), (fm.CrossEntropyLoss(0.1), labels),
                         (fm.HuberLoss(0.5, reduction="sum"), pred * 2),
                         (fm.MultiMarginLoss(), labels)]:
        (v0, g0), (v1, g1) = [loss.value_and_grad(pred, target, sample_weight=w, ops=ops)
                              for ops in (OPS["core"], OPS["numpy"])]
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(v0, v1, rtol=rtol)
        np.testing.assert_allclose(g0, g1, rtol=rtol, atol=1e-7)
        assert g0.dtype == g1.dtype == dtype
    for ops in OPS.values():
        x = np.ones((3, 2), dtype)
        assert ops.array_is_finite(x)
        x[2, 1] = np.inf
        assert not ops.array_is_finite(x)
        with pytest.raises(ValueError, match="C-contiguous"):
            ops.array_is_finite(np.ones((4, 4), dtype)[:, ::2])
        with pytest.raises(TypeError, match="float32 or float64"):
            ops.array_is_finite(np.ones(3, np.int64))


def _refuse_compiled_losses_and_checks(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a compiled loss or check ran on the numpy backend")
    for name in dir(_losses):
        if name.endswith("_memview"):
            monkeypatch.setattr(_losses, name, refuse)
    monkeypatch.setattr(_optim, "array_is_finite", refuse)
    monkeypatch.setattr(CoreOps, "loss_value_grad", staticmethod(refuse))
    monkeypatch.setattr(CoreOps, "array_is_finite", staticmethod(refuse))


@pytest.mark.parametrize("optimizer", [lambda: fm.Adam(lr=0.01), lambda: fm.LBFGS()],
                         ids=["mini_batch", "full_batch"])
def test_a_numpy_fit_runs_no_compiled_loss_and_matches_the_core(optimizer, monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, 64)

    def fit(backend):
        model = fm.Sequential(fm.Dense(5, 8), fm.Tanh(), fm.Dense(8, 3), seed=0,
                              backend=backend, dtype="float64")
        trainer = fm.Trainer(model, "cross_entropy", optimizer(), seed=0)
        history = trainer.fit(X, y, epochs=3, batch_size=16, verbose=0,
                              validation_split=0.25)
        return model.params.copy(), history.history["val_loss"], trainer.evaluate(X, y)

    core = fit("core")
    _refuse_compiled_losses_and_checks(monkeypatch)
    with pytest.raises(AssertionError, match="compiled loss"):
        fm.CrossEntropyLoss()(X[:, :3], y)          # the default backend is the core
    ref = fit("numpy")
    np.testing.assert_allclose(ref[0], core[0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ref[1], core[1], rtol=1e-7)
    np.testing.assert_allclose(ref[2]["loss"], core[2]["loss"], rtol=1e-7)
