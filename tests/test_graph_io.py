"""fm.save / fm.load of graph models: exact round trips, and files that do not describe a
valid graph refused with ValueError before the arena is allocated."""
import copy

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import io
from test_graph_exec import data, every_merge


def roundtrip(obj):
    header, arrays = io.pack(obj)
    return io.unpack(copy.deepcopy(header), {k: v.copy() for k, v in arrays.items()})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_is_exact(tmp_path, rng, dtype):
    m = every_merge(dtype, extra=fm.Dropout(0.2))
    m.layers[1].trainable = False
    X = data(rng, dtype=dtype)
    m.forward(X, training=True)                     # the RNG counter moves
    fm.save(m, tmp_path / "g.fmlp")
    r = fm.load(tmp_path / "g.fmlp")
    assert isinstance(r, fm.Model) and r.is_compiled
    assert r.output_names == ["cls", "reg"] and r.input_names == ["a", "b"]
    assert r.rng_step == m.rng_step and not r.layers[1].trainable
    assert repr(r) == repr(m)
    np.testing.assert_array_equal(r.params, m.params)
    for got, want in zip(r.forward(X, training=True), m.forward(X, training=True)):
        np.testing.assert_array_equal(got, want)        # the same dropout masks too


def test_single_input_output_and_shared_layers_survive(rng):
    d = fm.Dense(3, 3, activation="tanh")
    x = fm.Input(3)
    m = fm.Model(x, fm.Add()([d(d(x)), x]), dtype="float64", seed=2)
    r = roundtrip(m)
    X = rng.normal(size=(4, 3))
    out = r.forward(X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, m.forward(X))
    assert r.n_params == 12 and len(r.layers) == 1


def test_checkpoint_of_a_graph_fit_saves_the_model(tmp_path, rng):
    m = every_merge()
    X = data(rng, 40)
    y = [rng.integers(0, 3, 40), rng.normal(size=(40, 2))]
    trainer = fm.Trainer(m, ["categorical_crossentropy", "mse"], "adam")
    trainer.fit(X, y, epochs=2, verbose=0, validation_split=0.25,
                callbacks=[fm.ModelCheckpoint(str(tmp_path / "m-{epoch}.fmlp"),
                                                    save_best_only=False)])
    np.testing.assert_array_equal(fm.load(tmp_path / "m-2.fmlp").params, m.params)
    with pytest.raises(TypeError, match="save the model"):
        fm.save(trainer, tmp_path / "t.fmlp")


def corrupt(m, edit):
    header, arrays = io.pack(m)
    header, arrays = copy.deepcopy(header), {k: v.copy() for k, v in arrays.items()}
    edit(header["config"], arrays)
    return header, arrays


@pytest.mark.parametrize("edit, message", [
    (lambda c, a: c["calls"][0].update(inputs=[99]), "calls\\[0\\] input"),
    (lambda c, a: c["calls"][2].update(inputs=[5]), "calls\\[2\\] input"),      # a later one
    (lambda c, a: c["calls"][0].update(layer=50), "layer index"),
    (lambda c, a: c["calls"][4].update(merge="Divide"), "unknown merge"),
    (lambda c, a: c["calls"][4].update(inputs=[0, 1]), "one shape"),
    (lambda c, a: c["inputs"][0].update(width=2**40), "input width"),
    (lambda c, a: c.update(outputs=[-1]), "an output"),
    (lambda c, a: c.update(output_names=["x"]), "output_names"),
    (lambda c, a: c.update(single_output=True), "single_output"),
    (lambda c, a: a.update(params=a["params"][:-1]), "parameters"),
    (lambda c, a: c["layers"].append({"type": "Tanh", "config": {}}), "never called"),
    (lambda c, a: c.update(calls="x"), "'calls' must be a list"),
])
def test_invalid_graph_files_raise_value_error(edit, message):
    header, arrays = corrupt(every_merge(), edit)
    with pytest.raises(ValueError, match=message):
        io.unpack(header, arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnx_export_matches_predict(dtype, rng):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from helpers import RTOL, rel_err
    m = every_merge(np.dtype(dtype).name, extra=fm.Dropout(0.3))
    m.params[...] = rng.normal(scale=0.7, size=m.params.shape)
    X = data(rng, 23, dtype)
    proto = fm.to_onnx(m)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["cls", "reg"]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"a": X[0], "b": X[1]})
    for g, w in zip(got, m.predict(X)):
        assert g.dtype == dtype and rel_err(g, w) < RTOL[dtype]
    with pytest.raises(ValueError, match="one output"):
        fm.to_onnx(m, probabilities=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_gives_the_same_outputs(rng, dtype):
    torch = pytest.importorskip("torch")
    import pickle
    m = every_merge(dtype, extra=fm.Dropout(0.3))
    m.eval()
    X = data(rng, 11, dtype)
    net = fm.to_torch(m)
    assert not net.training and sorted(net.state_dict())[0].startswith("layers.")
    with torch.no_grad():
        outs = net(*map(torch.from_numpy, X))
    tol = 1e-12 if dtype == "float64" else 1e-5
    from helpers import rel_err
    for got, want in zip(outs, m.predict(X)):
        assert rel_err(got.numpy(), want) < tol
    clone = pickle.loads(pickle.dumps(net))
    with torch.no_grad():
        np.testing.assert_array_equal(clone(*map(torch.from_numpy, X))[0].numpy(),
                                      outs[0].numpy())
    x = fm.Input(3)
    with pytest.raises(ValueError, match=r"layers\[0\].*Maxout"):
        fm.to_torch(fm.Model(x, fm.Maxout(3, 2, pieces=2)(x)))
