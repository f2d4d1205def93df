"""Every concept is complete: each code of ``fastmlp._codes`` has its Python class, its kernel
and its reference twin, and the compiled enums equal the Python ones.

A half-added concept (a code without a layer, a layer without a kernel, an optimizer family
without a class, a loss without a NumPy twin) fails here, by name.
"""
import inspect
from enum import IntEnum
import subprocess
import sys

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _activations, _codes, _codes_check, _plan, layers, losses
from fastmlp._codes import Act, LayerKind, LossCode, OptFamily
from fastmlp._ops import OPS
from fastmlp.optim import OPTIMIZERS, Optimizer
from fastmlp.reference import activations as ref_act
from fastmlp.reference import losses as ref_losses
from fastmlp._stages import CompileContext
from helpers import rel_err


# --- the compiled enums are fastmlp._codes' -------------------------------------------------

def test_compiled_codes_equal_the_python_codes():
    _codes_check.check_compiled_codes()


def test_a_code_differing_from_the_core_refuses_the_import():
    class Shifted(IntEnum):
        FM_IDENTITY = 0
        FM_SIGMOID = 2
    problems = _codes_check.compare(_activations.fm_act, Shifted)
    assert any("FM_SIGMOID: core 1, fastmlp._codes 2" in p for p in problems)
    assert any("FM_N_ACT is 12 in the core, 2 members" in p for p in problems)
    with pytest.raises(ImportError, match="does not match fastmlp._codes"):
        _codes_check.check_compiled_codes(((_activations.fm_act, Shifted),))


# --- activations ----------------------------------------------------------------------------

def _activation_classes():
    return {cls.name: cls for cls in vars(layers).values()
            if isinstance(cls, type) and issubclass(cls, layers.Activation)
            and cls is not layers.Activation}


@pytest.mark.parametrize("code", list(Act), ids=[c.name for c in Act])
def test_every_activation_code_has_its_class_kernel_and_twin(code):
    names = [name for name, c in _codes.ACT_NAMES.items() if c == code]
    assert len(names) == 1, f"{code.name} needs exactly one name in fastmlp._codes.ACT_NAMES"
    cls = _activation_classes().get(names[0])
    assert cls is not None, f"no Activation layer in fastmlp.layers has name {names[0]!r}"
    assert cls().code == code and names[0] in fm.layers.activations.ACTIVATION_LAYERS
    assert code in ref_act.FORWARD and code in ref_act.DERIVATIVE, f"{code.name}: no twin"
    z = np.linspace(-3, 3, 13).reshape(1, 13)
    a = _activations.forward(int(code), z.copy(), alpha=0.2)
    assert rel_err(a, ref_act.forward(code, z, 0.2)) < 1e-12, f"{code.name}: kernel != twin"
    da = np.ones(13)
    dz = _activations.backward(int(code), z[0], a[0], da, alpha=0.2)
    assert rel_err(dz, ref_act.backward(code, z[0], a[0], da, 0.2)) < 1e-12, code.name


# --- layer kinds ----------------------------------------------------------------------------

def _examples():
    """class -> the layers of a small model that holds one (input width 4)."""
    out = {cls: lambda cls=cls: [fm.Dense(4, 6), cls()] for cls in _activation_classes().values()}
    out.update({
        fm.Activation: lambda: [fm.Dense(4, 6), fm.Activation()],
        fm.Dense: lambda: [fm.Dense(4, 6, activation="tanh")],
        fm.Maxout: lambda: [fm.Maxout(4, 6, pieces=3)],
        fm.PReLU: lambda: [fm.Dense(4, 6), fm.PReLU(6)],
        fm.Softmax: lambda: [fm.Dense(4, 6), fm.Softmax()],
        fm.Dropout: lambda: [fm.Dense(4, 6), fm.Dropout(0.3)],
        fm.GaussianNoise: lambda: [fm.Dense(4, 6), fm.GaussianNoise(0.1)],
        fm.BatchNorm: lambda: [fm.Dense(4, 6), fm.BatchNorm(6)],
        fm.LayerNorm: lambda: [fm.Dense(4, 6), fm.LayerNorm(6)],
        layers.Chain: lambda: [fm.Dense(4, 6), layers.Chain(fm.Dense(6, 6, activation="relu"))],
        fm.Residual: lambda: [fm.Dense(4, 6), fm.Residual(fm.Dense(6, 6, activation="relu"))],
        fm.ImageAugment: lambda: [fm.ImageAugment((2, 2), max_shift=0.5, flip=True),
                                  fm.Dense(4, 6)],
    })
    return out


EXAMPLES = _examples()


def _kinds(model):
    ctx = CompileContext(model)
    return {int(d["kind"]) for layer in model.layers for d in (layer.core_descs(ctx) or ())}


def test_every_layer_class_has_an_example():
    public = {getattr(layers, name) for name in layers.__all__} - {layers.Layer}
    public = {c for c in public if isinstance(c, type) and issubclass(c, layers.Layer)}
    assert public <= set(EXAMPLES), f"add an example for {public - set(EXAMPLES)}"


def test_every_layer_kind_is_emitted_by_a_layer_class():
    emitted = set()
    for make in EXAMPLES.values():
        emitted |= _kinds(fm.Sequential(make(), dtype="float64", seed=0))
    missing = [k.name for k in LayerKind if k not in emitted]
    assert not missing, f"no library layer describes itself with {missing}"
    assert emitted <= set(LayerKind), f"unknown kinds {emitted - set(LayerKind)}"


def test_every_layer_kind_has_a_complete_ops_table_entry():
    """The executor looks each kind up in one table (_layer_ops.pxi), K_N_KINDS entries long."""
    assert int(_plan.LayerKind.K_N_KINDS) == len(LayerKind)
    table = _plan.layer_ops()
    assert [entry["kind"] for entry in table] == list(range(len(LayerKind)))
    for entry in table:
        kind = LayerKind(entry["kind"])
        assert entry["name"] == kind.name, f"{kind.name}: the entry says {entry['name']}"
        missing = [op for op in ("forward", "backward", "sizes", "layout", "read")
                   if not entry[op]]
        assert not missing and entry["complete"], f"{kind.name} has no {missing}"
        assert entry["grad_mode"] in (0, 1, 2), kind.name


def _plan_of(spec, n=8):
    return _plan.Plan([spec], np.zeros(n), np.zeros(n))


@pytest.mark.parametrize("spec, message", [
    (dict(kind=LayerKind.K_DROPOUT, n_in=3, n_out=3, p=0.5), "K_DROPOUT needs 'rate'"),
    (dict(kind=LayerKind.K_DROPOUT, n_in=3, n_out=3, rate=0.5, p=0.5),
     r"K_DROPOUT takes no \['p'\]"),
    (dict(kind=LayerKind.K_PRELU, n_in=3, n_out=3, w_off=0, pieces=3), "needs 'n_slopes'"),
    (dict(kind=LayerKind.K_NOISE, n_in=3, n_out=3, std=0.1, momentum=0.1), "takes no"),
    (dict(kind=LayerKind.K_DENSE, n_in=2, n_out=2, w_off=0, rate=0.5), "takes no"),
    (dict(kind=len(LayerKind), n_in=3, n_out=3), "unknown layer kind"),
    (dict(kind=LayerKind.K_DROPOUT, n_in=3, n_out=3, rate=1.0), r"rate must be in \[0, 1\)"),
    (dict(kind=LayerKind.K_BATCHNORM, n_in=3, n_out=3, eps=1e-5, momentum=2.0), "momentum"),
    (dict(kind=LayerKind.K_SOFTMAX, n_in=3, n_out=4), "K_SOFTMAX must keep its width"),
    (dict(kind=LayerKind.K_PRELU, n_in=3, n_out=3, w_off=7, n_slopes=3), "outside the arena"),
])
def test_a_descriptor_is_read_by_its_kind_and_nothing_else(spec, message):
    """Each kind reads its own named fields; a field of another kind (or the old overloaded
    ``p``) is refused instead of silently ignored."""
    with pytest.raises(ValueError, match=message):
        _plan_of(spec)


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=[c.__name__ for c in EXAMPLES])
def test_every_layer_kernel_matches_its_twin(cls, rng):
    core = fm.Sequential(EXAMPLES[cls](), dtype="float64", seed=3)
    ref = fm.Sequential(EXAMPLES[cls](), dtype="float64", seed=3, backend="numpy")
    assert core.is_fused, f"{cls.__name__} has no kernel (runs in Python)"
    X = rng.normal(size=(5, 4))
    assert rel_err(core.forward(X, training=True), ref.forward(X, training=True)) < 1e-11
    g = rng.normal(size=(5, core.n_out))
    assert rel_err(core.backward(g), ref.backward(g)) < 1e-11


# --- optimizer families ---------------------------------------------------------------------

def _kernel_classes():
    return [cls for cls in OPTIMIZERS.values()
            if issubclass(cls, Optimizer) and cls.kernel is not None]


def test_every_optimizer_family_has_a_class():
    families = {cls.kernel.family for cls in _kernel_classes()}
    assert families == set(OptFamily), f"no optimizer for {set(OptFamily) - families}"
    first_order = [cls for cls in OPTIMIZERS.values() if issubclass(cls, Optimizer)]
    assert all(cls.kernel is not None for cls in first_order)


@pytest.mark.parametrize("cls", _kernel_classes(), ids=lambda c: c.__name__)
def test_every_kernel_spec_is_complete(cls):
    spec = cls.kernel
    assert isinstance(spec.family, OptFamily)
    kernels = [getattr(ops, spec.op) for ops in OPS.values()]     # AttributeError: missing
    assert kernels[0] is not kernels[1], spec.op
    assert set(cls()._kwargs()) == set(spec.hyper)
    for kernel in kernels:
        names = list(inspect.signature(kernel).parameters)
        assert set(spec.hyper) <= set(names), f"{kernel.__name__} takes {names}"
        assert names[:2] == ["params", "grads"]


# --- losses ---------------------------------------------------------------------------------

def _loss_classes():
    return [getattr(losses, n) for n in losses.__all__
            if isinstance(getattr(losses, n), type) and getattr(losses, n) is not losses.Loss]


@pytest.mark.parametrize("code", list(LossCode), ids=[c.name for c in LossCode])
def test_every_loss_code_has_its_class_kernel_and_twin(code, rng):
    classes = [cls for cls in _loss_classes() if cls.code == code]
    assert len(classes) == 1, f"{code.name}: {len(classes)} Loss classes in fastmlp.losses"
    loss = classes[0]()
    pred = rng.normal(size=(6, 3))
    kind = "target" if loss._target_kind == "values" else "labels"
    target = rng.integers(0, 3, size=6) if kind == "labels" else rng.uniform(size=(6, 3))
    value, grad = loss.value_and_grad(pred, target)
    ref_value, ref_grad = ref_losses.value_and_grad(loss._spec(3), pred, **{kind: target})
    assert abs(value - ref_value) <= 1e-12 * abs(ref_value) and rel_err(grad, ref_grad) < 1e-12


# --- savable classes register where they are defined -------------------------------------------

def test_every_library_class_is_registered_under_its_name():
    from fastmlp import _serial, regularizers
    abstract = {layers.Layer, losses.Loss, regularizers.Constraint}
    layer_classes = [getattr(layers, n) for n in layers.__all__]
    others = [getattr(m, n) for m in (losses, regularizers) for n in m.__all__]
    classes = [c for c in layer_classes if isinstance(c, type) and issubclass(c, layers.Layer)]
    classes += [c for c in others if isinstance(c, type)]
    classes = [c for c in classes if c not in abstract]
    classes += list(OPTIMIZERS.values())
    for cls in classes:
        assert _serial.registered_name(cls) == cls.__name__, cls
        assert _serial.registered(cls.__name__) is cls
    assert set(_serial.KINDS) == {"sequential", "trainer"}


# --- the reference runs without the compiled build ---------------------------------------------

NO_BUILD = r"""
import importlib.machinery, sys, types
class NoBuild:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("fastmlp._") and name != "fastmlp._codes":
            raise ImportError(f"{name}: no compiled core in this test")
sys.meta_path.insert(0, NoBuild())
pkg = types.ModuleType("fastmlp")          # the package without its __init__ (which needs
pkg.__path__ = [sys.argv[1]]               # the core): only fastmlp.reference is loaded
sys.modules["fastmlp"] = pkg
import numpy as np
from fastmlp import _codes, reference
z = np.linspace(-2, 2, 5)
for code in _codes.Act:
    reference.activations.backward(code, z, reference.activations.forward(code, z), z)
for code in _codes.LossCode:
    labels = code in (_codes.LossCode.LOSS_CROSS_ENTROPY, _codes.LossCode.LOSS_MULTI_MARGIN)
    kw = {"labels": np.array([0, 1])} if labels else {"target": np.zeros((2, 2))}
    reference.losses.value_and_grad({"code": int(code), "n_outputs": 2}, np.ones((2, 2)), **kw)
ops = reference.ops.NumpyOps()              # the backend object: every kernel it has
p, g = np.ones(3), np.full(3, 0.5)
ops.adam_step(p, g, np.zeros(3), np.zeros(3), None, 1, lr=0.1)
ops.lamb_step(p, g, np.zeros(3), np.zeros(3), np.array([0, 3]), 1, lr=0.1, beta1=0.9,
              beta2=0.999, eps=1e-6, weight_decay=0.0)
ops.maxnorm_columns(np.ones((2, 2)), 1.0)
ops.scale(p, ops.sq_norm(g))
print("ok", sorted(m for m in sys.modules if m.startswith("fastmlp")))
"""


def test_the_reference_runs_without_the_compiled_core():
    import os
    here = os.path.dirname(fm.__file__)
    done = subprocess.run([sys.executable, "-c", NO_BUILD, here], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")
