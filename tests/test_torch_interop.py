"""Sequential.to_torch_state_dict / from_torch_state_dict: the layout of a torch
nn.Sequential state dict, round trips, and (when torch imports) outputs of real torch
modules."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import rel_err


def _layers():
    return [fm.Dense(5, 8), fm.ReLU(), fm.Dense(8, 8, activation="tanh"), fm.PReLU(8),
            fm.Dense(8, 6, bias=False), fm.LeakyReLU(0.2), fm.Dropout(0.3), fm.Dense(6, 6),
            fm.ELU(0.7), fm.Dense(6, 6), fm.GELU(), fm.Dense(6, 6), fm.SiLU(),
            fm.Dense(6, 6), fm.Sigmoid(), fm.Dense(6, 6), fm.HardTanh(), fm.PReLU(1, 0.1),
            fm.Dense(6, 3), fm.Softmax()]


def _model(dtype="float64", seed=0):
    return fm.Sequential(_layers(), dtype=dtype, seed=seed)


def test_state_dict_layout():
    model = _model()
    state = model.to_torch_state_dict()
    # a Dense with a fused activation is two torch modules (Linear, Tanh): indices shift
    assert list(state)[:6] == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                               "5.weight"]
    np.testing.assert_array_equal(state["0.weight"], model.layers[0].W.T)
    assert state["0.weight"].shape == (8, 5) and state["0.weight"].flags.c_contiguous
    np.testing.assert_array_equal(state["0.bias"], model.layers[0].b)
    np.testing.assert_array_equal(state["4.weight"], model.layers[3].weight)
    assert "5.bias" not in state                         # Dense(8, 6, bias=False)
    assert all(v.dtype == np.float64 for v in state.values())
    state["0.weight"][...] = 0                           # copies, not views
    assert model.layers[0].W.any()


def test_without_fused_activations_the_index_is_the_layer_position():
    model = fm.Sequential([fm.Dense(3, 4), fm.ReLU(), fm.Dense(4, 2)], seed=0)
    assert list(model.to_torch_state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(dtype, rng):
    model = _model(dtype)
    state = model.to_torch_state_dict()
    again = fm.Sequential.from_torch_state_dict(state, _layers())
    assert again.dtype == model.dtype                    # inferred from the arrays
    np.testing.assert_array_equal(again.params, model.params)
    X = rng.normal(size=(7, 5))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    other = fm.Sequential.from_torch_state_dict(state, _layers(), dtype="float64",
                                                backend="numpy")
    assert other.dtype == np.float64 and other.backend == "numpy"
    np.testing.assert_array_equal(other.params, model.params.astype(np.float64))


@pytest.mark.parametrize("layer", [fm.Maxout(4, 4, 2), fm.GaussianNoise(0.1)], ids=repr)
def test_unsupported_layers_are_named(layer):
    model = fm.Sequential([fm.Dense(4, 4), layer, fm.Dense(4, 1)], seed=0)
    with pytest.raises(ValueError, match=r"layers\[1\].*" + type(layer).__name__):
        model.to_torch_state_dict()
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        fm.Sequential.from_torch_state_dict({}, [fm.Dense(4, 4), layer, fm.Dense(4, 1)])


def test_tied_dense_is_unsupported():
    enc = fm.Dense(4, 2)
    model = fm.Sequential([enc, fm.Dense(2, 4, tied_to=enc, transpose=True)], seed=0)
    with pytest.raises(ValueError, match=r"layers\[1\].*tied"):
        model.to_torch_state_dict()


def test_mismatched_state_dicts_are_refused():
    state = _model().to_torch_state_dict()
    missing = dict(state)
    del missing["2.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['2.bias'\]"):
        fm.Sequential.from_torch_state_dict(missing, _layers())
    with pytest.raises(ValueError, match=r"unexpected keys \['9.running_mean'\]"):
        fm.Sequential.from_torch_state_dict({**state, "9.running_mean": np.zeros(6)},
                                            _layers())
    with pytest.raises(ValueError, match=r"state\['0.weight'\].*\(8, 5\)"):
        fm.Sequential.from_torch_state_dict({**state, "0.weight": state["0.weight"].T},
                                            _layers())
    with pytest.raises(ValueError, match="real array"):
        fm.Sequential.from_torch_state_dict({**state, "0.bias": np.array(["x"] * 8)},
                                            _layers())
    with pytest.raises(TypeError, match="dict"):
        fm.Sequential.from_torch_state_dict([1, 2], _layers())


# --- against real torch modules ----------------------------------------------------------------

def _torch_model(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.PReLU(8),
                         nn.Linear(8, 6, bias=False), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                         nn.Linear(6, 6), nn.ELU(0.7), nn.Linear(6, 6), nn.GELU(),
                         nn.Linear(6, 6), nn.SiLU(), nn.Linear(6, 6), nn.Sigmoid(),
                         nn.Linear(6, 6), nn.Hardtanh(), nn.PReLU(1, 0.1), nn.Linear(6, 3),
                         nn.Softmax(dim=1)).double().eval()


def test_fastmlp_weights_in_torch_give_the_same_outputs(rng):
    torch = pytest.importorskip("torch")
    model = _model()
    model.layers[3].weight[...] = rng.uniform(0.0, 0.5, size=8)   # slopes that matter
    net = _torch_model(torch)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in
                         model.to_torch_state_dict().items()}, strict=True)
    X = rng.normal(size=(20, 5)) * 2
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    assert rel_err(model.predict(X), expected) < 1e-12


def test_torch_weights_in_fastmlp_give_the_same_outputs(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = _torch_model(torch)
    model = fm.Sequential.from_torch_state_dict(net.state_dict(), _layers())   # tensors
    assert model.dtype == np.float64
    X = rng.normal(size=(20, 5)) * 2
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    assert rel_err(model.predict(X), expected) < 1e-12
    back = model.to_torch_state_dict()
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(back[key], value.numpy())


def test_float32_torch_weights(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model = fm.Sequential.from_torch_state_dict(
        net.state_dict(), [fm.Dense(4, 3), fm.ReLU(), fm.Dense(3, 2)])
    assert model.dtype == np.float32
    X = rng.normal(size=(6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    assert rel_err(model.predict(X), expected) < 1e-5


# --- BatchNorm, LayerNorm, Residual; to_torch / from_torch (issue 16, item 17) ---------------

def _norm_layers():
    return [fm.Dense(5, 8, activation="relu"), fm.BatchNorm(8, momentum=0.2),
            fm.Residual(fm.Dense(8, 8, activation="tanh"), fm.LayerNorm(8), fm.Dense(8, 8)),
            fm.LayerNorm(8, elementwise_affine=False), fm.BatchNorm(8, affine=False),
            fm.GELU(approximate="tanh"), fm.Dense(8, 3)]


def _trained_norm_model(rng, dtype="float64"):
    model = fm.Sequential(_norm_layers(), dtype=dtype, seed=0)
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, 64)
    fm.Trainer(model, "cross_entropy", fm.Adam(lr=1e-2), seed=0).fit(X, y, epochs=2,
                                                                     verbose=0)
    return model, X


def test_norm_and_residual_state_dict_layout(rng):
    model, _ = _trained_norm_model(rng)
    state = model.to_torch_state_dict()
    assert list(state) == [
        "0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var",
        "2.num_batches_tracked", "3.0.weight", "3.0.bias", "3.2.weight", "3.2.bias",
        "3.3.weight", "3.3.bias", "5.running_mean", "5.running_var", "5.num_batches_tracked",
        "7.weight", "7.bias"]
    np.testing.assert_array_equal(state["2.running_var"], model[1].running_var)
    assert model[1].running_var.std() > 0                 # trained statistics travel
    again = fm.Sequential.from_torch_state_dict(state, _norm_layers())
    np.testing.assert_array_equal(again.params, model.params)
    np.testing.assert_array_equal(again.buffers[:16], model.buffers[:16])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_builds_a_module_with_the_same_outputs(rng, dtype):
    torch = pytest.importorskip("torch")
    model, X = _trained_norm_model(rng, dtype)
    net = fm.to_torch(model.eval())
    assert isinstance(net, torch.nn.Sequential) and not net.training
    assert isinstance(net[2], torch.nn.BatchNorm1d) and net[2].momentum == 0.2
    assert isinstance(net[3], fm.interop.torch_residual()) and len(net[3]) == 4
    Xd = X.astype(dtype)
    with torch.no_grad():
        out = net(torch.from_numpy(Xd)).numpy()
    assert out.dtype == np.dtype(dtype)
    assert rel_err(model.predict(Xd), out) < (1e-12 if dtype == "float64" else 1e-5)


def test_from_torch_reads_a_real_module(rng):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(),
                        fm.interop.torch_residual()(nn.Linear(8, 8), nn.GELU("tanh")),
                        nn.LayerNorm(8), nn.Dropout(0.2),
                        nn.Sequential(nn.Linear(8, 4), nn.Tanh()), nn.Linear(4, 2)).double()
    X = torch.from_numpy(rng.normal(size=(32, 5)))
    net.train()
    for _ in range(3):                          # running statistics away from their init
        net(X)
    net.eval()
    model = fm.from_torch(net)
    assert model.dtype == np.float64 and model.training is False
    assert [type(layer).__name__ for layer in model] == [
        "Dense", "BatchNorm", "ReLU", "Residual", "LayerNorm", "Dropout", "Chain", "Dense"]
    with torch.no_grad():
        expected = net(X).numpy()
    assert rel_err(model.predict(X.numpy()), expected) < 1e-12
    back = fm.to_torch(model)
    for key, value in net.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(back.state_dict()[key].numpy(), value.numpy())


def test_interop_refusals_name_the_module_or_layer():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    with pytest.raises(ValueError, match=r"module\[1\].*Conv1d"):
        fm.from_torch(nn.Sequential(nn.Linear(3, 3), nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match=r"module\[1\]"):
        fm.from_torch(nn.Sequential(nn.Linear(3, 3), nn.Hardtanh(0, 2)))
    with pytest.raises(TypeError, match="nn.Sequential"):
        fm.from_torch(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"layers\[1\].*ArcTan"):
        fm.to_torch(fm.Sequential(fm.Dense(3, 3), fm.ArcTan()))
    with pytest.raises(ValueError, match=r"layers\[1\].*Maxout"):
        fm.to_torch(fm.Sequential(fm.Dense(3, 4), fm.Maxout(4, 2, 2)))
