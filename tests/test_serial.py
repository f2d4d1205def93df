"""fastmlp._serial: the registry of savable classes and kinds of file, and the Context a
class's from_config receives (the file format itself is tested in test_io.py)."""
import json

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _serial


def test_register_refuses_the_kinds_of_file_and_taken_names():
    class Sequential:
        pass
    for name in _serial.RESERVED:
        with pytest.raises(ValueError, match="invalid registered name"):
            _serial.register(Sequential, name=name)
    with pytest.raises(ValueError, match="already registered for fastmlp.layers.dense.Dense"):
        _serial.register(type("Dense", (), {}))
    with pytest.raises(ValueError, match="invalid kind"):
        _serial.register_kind("not_a_kind")


def test_kind_of_takes_the_most_derived_kind(monkeypatch):
    class Special(fm.Trainer):
        pass
    model = fm.Sequential([fm.Dense(2, 1)], seed=0)
    trainer = Special(model, fm.MSELoss(), "sgd")
    assert _serial.kind_of(model) == "sequential" and _serial.kind_of(trainer) == "trainer"
    monkeypatch.setitem(_serial.KINDS, "sequential", Special)      # a kind for the subclass
    assert _serial.kind_of(trainer) == "sequential"
    assert _serial.kind_of(object()) is None


def test_context_resolves_nested_objects_and_refuses_references_without_a_model():
    ctx = _serial.Context("layers[0]")
    loss = ctx.nested({"type": "HuberLoss", "config": {"delta": 2.0}}, fm.Loss, "loss")
    assert isinstance(loss, fm.HuberLoss) and loss.delta == 2.0
    with pytest.raises(ValueError, match=r"layers\[0\].loss: unknown type 'Dense'"):
        ctx.nested({"type": "Dense", "config": {}}, fm.Loss, "loss")
    with pytest.raises(ValueError, match=r"layers\[0\].tied_to refers to another object"):
        ctx.reference(0, "tied_to")
    with pytest.raises(ValueError, match=r"layers\[0\]: invalid Dense arguments"):
        fm.Dense.from_config({"n_in": 2, "n_out": -1}, ctx)
    assert fm.Dense.from_config({"n_in": 2, "n_out": 3}, ctx).n_out == 3


def test_jsonable_writes_nonfinite_numbers_only_when_asked():
    value = {"best": float("inf"), "curve": [1.0, float("nan")], "low": -np.inf}
    with pytest.raises(ValueError, match="only finite numbers"):
        _serial.jsonable(value, "state")
    written = _serial.jsonable(value, "state", nonfinite=True)
    assert written["best"] == {"nonfinite": "inf"} and written["low"] == {"nonfinite": "-inf"}
    back = _serial.restore_nonfinite(json.loads(json.dumps(written, allow_nan=False)))
    assert back["best"] == np.inf and back["low"] == -np.inf
    assert back["curve"][0] == 1.0 and np.isnan(back["curve"][1])
    with pytest.raises(ValueError, match="invalid non-finite"):
        _serial.restore_nonfinite({"nonfinite": "1e308"})
