"""fm.to_onnx: every layer kind and both estimators exported, run by ONNX Runtime and
compared with ``predict`` (float32 1e-5, float64 1e-12 relative); what has no ONNX form is
refused by name."""
import warnings

import numpy as np
import pytest

import fastmlp as fm
import fastmlp.layers as fl
from fastmlp import _onnx_layers
from helpers import RTOL, rel_err

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus",
               "arctan", "hard_tanh", "step", "silu", "gelu"]


def _tied(n):
    enc = fm.Dense(n, 4, activation="tanh")
    return [enc, fm.Dense(4, n, tied_to=enc, transpose=True)]


#: name -> the layers following a Dense(5, 6): one case per layer kind and variant
CASES = {
    **{f"dense+{a}": (lambda a=a: [fm.Dense(6, 6, activation=a)]) for a in ACTIVATIONS},
    **{f"layer:{a}": (lambda a=a: [fl.activations.ACTIVATION_LAYERS[a]()])
       for a in ACTIVATIONS},
    "activation-base": lambda: [fm.Activation()],
    "leaky_relu(0.2)": lambda: [fm.LeakyReLU(0.2)],
    "elu(0.5)": lambda: [fm.ELU(0.5)],
    "gelu-tanh": lambda: [fm.GELU(approximate="tanh")],
    "dense-no-bias": lambda: [fm.Dense(6, 3, bias=False)],
    "tied-transposed": lambda: _tied(6),
    "maxout": lambda: [fm.Maxout(6, 4, pieces=3)],
    "maxout-no-bias": lambda: [fm.Maxout(6, 4, pieces=2, bias=False)],
    "prelu-shared": lambda: [fm.PReLU()],
    "prelu-per-unit": lambda: [fm.PReLU(6)],
    "softmax": lambda: [fm.Softmax()],
    "batchnorm": lambda: [fm.BatchNorm(6)],
    "batchnorm-no-affine": lambda: [fm.BatchNorm(6, eps=1e-3, affine=False)],
    "layernorm": lambda: [fm.LayerNorm(6)],
    "layernorm-no-affine": lambda: [fm.LayerNorm(6, eps=1e-3, elementwise_affine=False)],
    "dropout": lambda: [fm.Dropout(0.5)],
    "gaussian-noise": lambda: [fm.GaussianNoise(0.3)],
    "image-augment": lambda: [fm.ImageAugment((2, 3), max_shift=1.0, max_rotation=10.0)],
    "residual": lambda: [fm.Residual(fm.Dense(6, 6, activation="relu"), fm.LayerNorm(6))],
    "chain": lambda: [fm.Sequential(fm.Dense(6, 4, activation="gelu"), fm.Dense(4, 2))],
}


def _model(layers, dtype, seed=0):
    model = fm.Sequential(fm.Dense(5, 6), *layers, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    model.params[...] = rng.normal(scale=0.7, size=model.params.shape)
    for layer in model.flat_layers:
        if isinstance(layer, fm.BatchNorm):
            layer.running_mean[...] = rng.normal(size=layer.n_out)
            layer.running_var[...] = rng.uniform(0.3, 2.0, size=layer.n_out)
    return model


def _inputs(dtype, n=23):
    X = np.random.default_rng(1).normal(scale=2.0, size=(n, 5)).astype(dtype)
    X[0] = 0.0
    X[1] *= 20.0        # saturating activations, softplus far from 0
    return X


def _run(proto, X):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_layer_kind_matches_predict(case, dtype):
    model = _model(CASES[case](), dtype)
    X = _inputs(dtype)
    (got,) = _run(fm.to_onnx(model), X)
    want = model.predict(X)
    assert got.dtype == dtype and got.shape == want.shape
    assert rel_err(got, want) < RTOL[dtype], case


def test_the_cases_cover_every_library_layer_kind():
    """A new layer kind needs an emitter (or a place in IDENTITY_AT_INFERENCE) and a case."""
    library = {getattr(fl, name) for name in fl.__all__} - {fl.Layer}
    exportable = set(_onnx_layers.EMITTERS) | set(_onnx_layers.CONTAINERS)
    assert library <= exportable, library - exportable
    covered = set()
    for make in CASES.values():
        for layer in make():
            stack = [layer]
            while stack:
                current = stack.pop()
                covered.add(type(current))
                stack += list(getattr(current, "layers", []))
                if isinstance(current, fm.Dense):
                    covered.add(type(current.activation))
    covered.add(fl.Chain)       # a nested Sequential becomes a Chain in the model
    assert exportable <= covered, exportable - covered


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_opsets(opset, tmp_path):
    model = _model([fm.Maxout(6, 4, pieces=3), fm.LayerNorm(4)], np.float64)
    path = tmp_path / "m.onnx"
    fm.to_onnx(model, path, opset=opset)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == opset
    X = _inputs(np.float64)
    assert rel_err(_run(proto, X)[0], model.predict(X)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_appends_softmax(dtype):
    model = _model([fm.Dense(6, 4)], dtype)
    X = _inputs(dtype)
    (got,) = _run(fm.to_onnx(model, probabilities=True), X)
    z = model.predict(X).astype(np.float64)
    want = np.exp(z - z.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    assert rel_err(got, want) < RTOL[dtype]
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=10 * RTOL[dtype])


def test_trainer_exports_its_model():
    model = _model([fm.Dense(6, 2)], np.float64)
    trainer = fm.Trainer(model, "mse", "sgd")
    X = _inputs(np.float64)
    assert rel_err(_run(fm.to_onnx(trainer), X)[0], model.predict(X)) < 1e-12


# --- estimators ----------------------------------------------------------------------------

def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # ConvergenceWarning after a few epochs
        return est.fit(X, y)


def _data(n=60):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n, 5))
    return X, X @ rng.normal(size=5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("labels", ["strings", "ints", "binary", "multilabel"])
def test_classifier_labels_and_probabilities(labels, dtype):
    X, s = _data()
    y = {"strings": np.array(["cat", "dog", "emu"])[np.digitize(s, [-0.5, 0.5])],
         "ints": np.array([3, 7, 11, 20])[np.digitize(s, [-1, 0, 1])],
         "binary": np.where(s > 0, 5, -1),
         "multilabel": np.stack([s > 0, s > 1, np.abs(s) < 0.5], axis=1).astype(int)}[labels]
    clf = _fit(fm.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0,
                                dtype=dtype, batch_norm=True), X, y)
    label, proba = _run(fm.to_onnx(clf), X.astype(dtype))
    np.testing.assert_array_equal(label, clf.predict(X.astype(dtype)))
    assert rel_err(proba, clf.predict_proba(X.astype(dtype))) < RTOL[np.dtype(dtype).type]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["single", "multi-output", "poisson"])
def test_regressor(kind, dtype):
    X, s = _data()
    y = {"single": s, "multi-output": np.stack([s, -2 * s], axis=1),
         "poisson": np.exp(s / 3)}[kind]
    reg = _fit(fm.MLPRegressor(loss="poisson" if kind == "poisson" else "squared_error",
                               hidden_layer_sizes=(8, 4), activation="tanh", max_iter=20,
                               random_state=0, dtype=dtype), X, y)
    (got,) = _run(fm.to_onnx(reg), X.astype(dtype))
    want = reg.predict(X.astype(dtype))
    assert got.shape == (len(X), 1 if want.ndim == 1 else want.shape[1])
    assert rel_err(got.reshape(want.shape), want) < RTOL[np.dtype(dtype).type]


# --- refusals ------------------------------------------------------------------------------

class Doubler(fm.Layer):
    def forward(self, X, training=False):
        return 2 * X

    def backward(self, dY):
        return 2 * dY


class MyDense(fm.Dense):
    def forward(self, X, training=False):
        return super().forward(X, training) + 1


def test_a_numpy_layer_is_refused_by_name():
    model = fm.Sequential(fm.Dense(5, 6), fm.Residual(fm.Dense(6, 6), Doubler()))
    with pytest.raises(ValueError, match=r"layers\[1\]\.layers\[1\] \(Doubler\(\)\) cannot be "
                                         r"exported to ONNX"):
        fm.to_onnx(model)


def test_a_subclass_of_a_library_layer_is_refused():
    model = fm.Sequential(MyDense(5, 6))
    with pytest.raises(ValueError, match=r"layers\[0\].*cannot be exported"):
        fm.to_onnx(model)


def test_bad_arguments():
    model = _model([], np.float32)
    with pytest.raises(ValueError, match="opset must be in"):
        fm.to_onnx(model, opset=16)
    with pytest.raises(TypeError, match="opset must be an int"):
        fm.to_onnx(model, opset="17")
    with pytest.raises(TypeError, match="probabilities must be True or False"):
        fm.to_onnx(model, probabilities=1)
    with pytest.raises(TypeError, match="model must be a fastmlp Sequential"):
        fm.to_onnx(object())
    with pytest.raises(ValueError, match="not fitted"):
        fm.to_onnx(fm.MLPClassifier())
    clf = _fit(fm.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), *_data()[:1],
               np.arange(60) % 2)
    with pytest.raises(ValueError, match="probabilities=True is for a Sequential"):
        fm.to_onnx(clf, probabilities=True)
