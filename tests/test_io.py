"""fastmlp.save / fastmlp.load: bit-exact round trips, exact resumption of training, atomic
writes (SIGKILL mid-save), and untrusted files that may only raise ValueError."""
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import io as fio
from fastmlp import layers as fl

DTYPES = ["float32", "float64"]
BACKENDS = ["core", "numpy"]


# --- models covering every layer type -------------------------------------------------------

def _activations():
    return [fm.Dense(5, 8, activation="relu", init="he_normal"), fm.Sigmoid(),
            fm.Dense(8, 8, activation="tanh", bias=False), fm.Tanh(), fm.ReLU(),
            fm.Dense(8, 8, activation=fm.ELU(0.7)), fm.LeakyReLU(0.2), fm.ELU(0.5),
            fm.Softplus(), fm.ArcTan(), fm.HardTanh(), fm.SiLU(), fm.GELU(), fm.Identity(),
            fm.Activation(), fm.Step(), fm.Dense(8, 3), fm.Softmax()]


def _maxout():
    return [fm.Maxout(5, 6, pieces=3), fm.PReLU(1, init=0.1), fm.Maxout(6, 4, 2, bias=False),
            fm.PReLU(4), fm.Dense(4, 2, activation="sigmoid")]


def _norms():
    return [fm.Dense(5, 8), fm.BatchNorm(8, momentum=0.2, eps=1e-4), fm.ReLU(),
            fm.LayerNorm(8, elementwise_affine=False), fm.BatchNorm(8, affine=False),
            fm.LayerNorm(8, eps=1e-3), fm.Dense(8, 2)]


def _noise_residual():
    inner = fm.Residual(fm.Dense(8, 8), fm.LayerNorm(8))
    return [fm.Dense(5, 8, activation="relu"), fm.Dropout(0.25), fm.GaussianNoise(0.1),
            fm.Residual(fm.Dense(8, 8, activation=fm.LeakyReLU(0.3)), fm.Dropout(0.1),
                        fm.PReLU(8), inner),
            fm.BatchNorm(8), fm.layers.Chain(fm.Dense(8, 4), fm.Tanh()), fm.Dense(4, 2)]


def _tied():
    enc = fm.Dense(5, 3, activation="tanh", regularizer=fm.ElasticNet(1e-3, 1e-2, True),
                   constraint=fm.MaxNorm(2.0))
    dec = fm.Dense(3, 5, tied_to=enc, transpose=True)
    owner = fm.Dense(5, 5, init="glorot_normal", constraint=fm.NonNeg())
    return [enc, dec, owner, fm.Dense(5, 5, tied_to=owner, activation="relu"),
            fm.Dense(5, 2, regularizer=fm.L1Penalty(1e-3, include_bias=True))]


def _tied_before_owner():
    owner = fm.Dense(4, 4, regularizer=fm.L2Penalty(1e-2))
    return [fm.Dense(5, 4), fm.Dense(4, 4, tied_to=owner, activation="silu"), owner,
            fm.Dense(4, 2)]


def _augment():
    return [fm.ImageAugment((5, 1), max_shift=0.5, max_rotation=5.0, max_scale=0.1, flip=True),
            fm.Dense(5, 2)]


CASES = {"activations": _activations, "maxout": _maxout, "norms": _norms,
         "noise_residual": _noise_residual, "tied": _tied,
         "tied_before_owner": _tied_before_owner, "augment": _augment}


def _trained(case, dtype, backend, rng, seed=7):
    model = fm.Sequential(CASES[case](), dtype=dtype, seed=seed, backend=backend)
    X = rng.normal(size=(40, model.n_in))
    y = rng.normal(size=(40, model.n_out))
    fm.Trainer(model, fm.MSELoss(), fm.Adam(lr=1e-2)).fit(X, y, epochs=2, batch_size=8,
                                                            verbose=0)
    return model, X


def _all_layer_types(layers):
    out = set()
    for layer in layers:
        out.add(type(layer))
        if isinstance(layer, fm.Dense):
            out.add(type(layer.activation))
        out |= _all_layer_types(layer.children())
    return out


def test_cases_cover_every_layer_type():
    covered = set().union(*(_all_layer_types(make()) for make in CASES.values()))
    library = {getattr(fl, name) for name in fl.__all__} - {fl.Layer}
    assert library - covered == set(), "add the new layer types to CASES"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_model_round_trip_is_bit_exact(case, dtype, backend, rng, tmp_path):
    model, X = _trained(case, dtype, backend, rng)
    path = tmp_path / "model.fmlp"
    fm.save(model, path)
    loaded = fm.load(path)
    assert type(loaded) is fm.Sequential
    assert loaded.dtype == model.dtype and loaded.backend == backend
    assert loaded.params.dtype == model.params.dtype
    np.testing.assert_array_equal(loaded.params, model.params)
    np.testing.assert_array_equal(loaded.buffers, model.buffers)
    assert (loaded.seed, loaded.rng_seed, loaded.rng_step) == \
        (model.seed, model.rng_seed, model.rng_step)
    assert loaded.get_config() == model.get_config()
    assert [repr(a) for a in loaded.layers] == [repr(b) for b in model.layers]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # training-mode passes draw the same dropout/noise masks (same RNG key and counter)
    np.testing.assert_array_equal(loaded.forward(X, training=True),
                                  model.forward(X, training=True))


def test_tied_weights_stay_tied_after_load(rng, tmp_path):
    model, _ = _trained("tied", "float64", "core", rng)
    fm.save(model, tmp_path / "m")
    loaded = fm.load(tmp_path / "m")
    enc, dec, owner, tied = loaded.layers[:4]
    assert dec.tied_to is enc and dec.transpose and tied.tied_to is owner
    assert np.shares_memory(dec.W, enc.W) and np.shares_memory(tied.W, owner.W)
    enc.W[0, 0] = 42.0
    assert dec.W[0, 0] == 42.0
    assert loaded.n_params == model.n_params
    assert repr(enc.regularizer) == "ElasticNet(l1=0.001, l2=0.01, include_bias=True)"
    assert type(enc.constraint) is fm.MaxNorm and enc.constraint.max_value == 2.0
    assert type(owner.constraint) is fm.NonNeg
    assert repr(loaded.layers[4].regularizer) == "L1Penalty(lam=0.001, include_bias=True)"


def test_tied_layer_before_its_owner(rng, tmp_path):
    model, X = _trained("tied_before_owner", "float64", "core", rng)
    fm.save(model, tmp_path / "m")
    loaded = fm.load(tmp_path / "m")
    assert loaded.layers[1].tied_to is loaded.layers[2]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_batchnorm_running_statistics_round_trip(rng, tmp_path):
    model, X = _trained("norms", "float32", "core", rng)
    bn = model.layers[1]
    assert not np.all(bn.running_mean == 0)          # training moved them
    fm.save(model, tmp_path / "m")
    loaded = fm.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.layers[1].running_mean, bn.running_mean)
    np.testing.assert_array_equal(loaded.layers[1].running_var, bn.running_var)


def test_from_config_rebuilds_the_same_initial_model():
    model = fm.Sequential(_noise_residual(), dtype="float64", seed=11)
    again = fm.Sequential.from_config(model.get_config())
    np.testing.assert_array_equal(again.params, model.params)
    assert again.get_config() == model.get_config()
    json.dumps(model.get_config(), allow_nan=False)            # plain JSON


def test_unseeded_model_keeps_its_rng_key(tmp_path):
    model = fm.Sequential([fm.Dense(3, 4), fm.Dropout(0.5)], dtype="float64")
    X = np.ones((6, 3))
    fm.save(model, tmp_path / "m")
    loaded = fm.load(tmp_path / "m")
    assert loaded.seed is None and loaded.rng_seed == model.rng_seed
    np.testing.assert_array_equal(loaded.forward(X, training=True),
                                  model.forward(X, training=True))


# --- trainers ---------------------------------------------------------------------------------

def f1_like(y_true, y_pred):
    return float(np.mean(np.asarray(y_pred).argmax(axis=1) == y_true))


def _classification(rng, n=120):
    X = rng.normal(size=(n, 6))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


def test_trainer_round_trip(rng, tmp_path):
    X, y = _classification(rng)
    model = fm.Sequential([fm.Dense(6, 10, activation="relu"), fm.Dense(10, 3)], seed=2)
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(label_smoothing=0.1),
                         fm.Adam(lr=3e-3, betas=(0.8, 0.99), amsgrad=True, weight_decay=1e-4),
                         regularizers=[fm.L2Penalty(1e-3), fm.L1Penalty(1e-4)],
                         metrics=["accuracy", "top_2_accuracy", f1_like], seed=5)
    trainer.fit(X, y, epochs=3, batch_size=16, verbose=0)
    trainer.optimizer.lr = 1e-3                       # as a schedule would
    fm.save(trainer, tmp_path / "t")
    with pytest.raises(ValueError, match="f1_like.*custom_objects"):
        fm.load(tmp_path / "t")
    loaded = fm.load(tmp_path / "t", custom_objects={"f1_like": f1_like})
    assert type(loaded) is fm.Trainer
    np.testing.assert_array_equal(loaded.model.params, model.params)
    assert loaded.optimizer.hyperparameters == trainer.optimizer.hyperparameters
    assert loaded.optimizer.step_count == trainer.optimizer.step_count > 0
    assert sorted(loaded.optimizer.state) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    for name, buf in trainer.optimizer.state.items():
        np.testing.assert_array_equal(loaded.optimizer.state[name], buf)
    assert repr(loaded.loss) == repr(trainer.loss)
    assert [repr(r) for r in loaded.regularizers] == [repr(r) for r in trainer.regularizers]
    assert [n for n, _ in loaded.metrics] == ["accuracy", "top_2_accuracy", "f1_like"]
    assert loaded.metrics[2][1] is f1_like
    assert loaded.evaluate(X, y) == trainer.evaluate(X, y)
    assert loaded._rng.bit_generator.state == trainer._rng.bit_generator.state
    assert loaded.seed == 5


def test_repeated_builtin_metrics_need_no_custom_objects(tmp_path):
    model = fm.Sequential([fm.Dense(3, 2)], seed=0)
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(),
                         metrics=["accuracy", "accuracy", "top_1_accuracy", "top_1_accuracy",
                                  "acc"])
    fm.save(trainer, tmp_path / "t")
    loaded = fm.load(tmp_path / "t")
    assert [n for n, _ in loaded.metrics] == [n for n, _ in trainer.metrics]
    y, p = np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert [f(y, p) for _, f in loaded.metrics] == [f(y, p) for _, f in trainer.metrics]


@pytest.mark.parametrize("loss, opt", [
    (fm.HuberLoss(delta=0.5), fm.RMSprop(lr=1e-3, momentum=0.5, centered=True)),
    (fm.L1Loss(), fm.Adagrad(lr=0.1, initial_accumulator_value=0.1)),
    (fm.MSELoss(), fm.Adadelta()),
    (fm.MSELoss(), fm.AdamW(lr=1e-3)),
    (fm.MSELoss(), fm.SGD(lr=0.01, momentum=0.9, nesterov=True)),
    (fm.MSELoss(), fm.SGD(lr=0.01)),
    (fm.MSELoss(), fm.LBFGS(history_size=5)),
    (fm.MSELoss(), fm.GradientDescent(lr=0.1)),
])
def test_trainer_round_trip_per_optimizer(loss, opt, rng, tmp_path):
    X = rng.normal(size=(30, 4))
    y = X @ rng.normal(size=(4, 2))
    model = fm.Sequential([fm.Dense(4, 6, activation="tanh"), fm.Dense(6, 2)],
                          dtype="float64", seed=1)
    trainer = fm.Trainer(model, loss, opt, metrics=["mse", "r2"])
    trainer.fit(X, y, epochs=2, batch_size=10, verbose=0)
    fm.save(trainer, tmp_path / "t")
    loaded = fm.load(tmp_path / "t")
    assert type(loaded.optimizer) is type(opt)
    assert loaded.optimizer.hyperparameters == opt.hyperparameters
    assert loaded.optimizer.step_count == opt.step_count
    state = getattr(opt, "state", {})
    assert sorted(getattr(loaded.optimizer, "state", {})) == sorted(state)
    for name, buf in state.items():
        np.testing.assert_array_equal(loaded.optimizer.state[name], buf)
    assert repr(loaded.loss) == repr(loss)


def _resume_model(dtype, backend):
    return fm.Sequential([fm.Dense(6, 16, activation="relu"), fm.Dropout(0.3),
                          fm.BatchNorm(16), fm.Dense(16, 12, activation="tanh"),
                          fm.GaussianNoise(0.05), fm.Dense(12, 3)],
                         dtype=dtype, seed=3, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_opt", [lambda: fm.Adam(lr=1e-2),
                                      lambda: fm.SGD(lr=0.05, momentum=0.9)],
                         ids=["adam", "sgd_momentum"])
def test_resumed_training_equals_uninterrupted(make_opt, dtype, backend, rng, tmp_path):
    X, y = _classification(rng, n=150)
    Xv, yv = _classification(rng, n=20)

    def trainer():
        return fm.Trainer(_resume_model(dtype, backend), fm.CrossEntropyLoss(), make_opt(),
                          regularizers=[fm.L2Penalty(1e-3)], metrics=["accuracy"], seed=9)

    fit = dict(batch_size=16, shuffle=True, validation_data=(Xv, yv), verbose=0)
    straight = trainer()
    straight.fit(X, y, epochs=4, **fit)

    first = trainer()
    first.fit(X, y, epochs=2, **fit)
    fm.save(first, tmp_path / "ckpt")
    del first
    resumed = fm.load(tmp_path / "ckpt")
    history = resumed.fit(X, y, epochs=2, **fit)

    np.testing.assert_array_equal(resumed.model.params, straight.model.params)
    np.testing.assert_array_equal(resumed.model.buffers, straight.model.buffers)
    for name, buf in straight.optimizer.state.items():
        np.testing.assert_array_equal(resumed.optimizer.state[name], buf)
    assert resumed.optimizer.step_count == straight.optimizer.step_count
    assert resumed.model.rng_step == straight.model.rng_step
    assert history.history["loss"] == straight.history.history["loss"][2:]


def test_model_checkpoint_writes_loadable_trainers(rng, tmp_path):
    X, y = _classification(rng)
    trainer = fm.Trainer(fm.Sequential([fm.Dense(6, 3)], seed=0), fm.CrossEntropyLoss(),
                         fm.SGD(lr=0.1, momentum=0.5))
    path = tmp_path / "ckpt-{epoch}.fmlp"
    trainer.fit(X, y, epochs=2, verbose=0,
                callbacks=[fm.ModelCheckpoint(path, save_best_only=False, save_trainer=True)])
    loaded = fm.load(tmp_path / "ckpt-2.fmlp")
    np.testing.assert_array_equal(loaded.model.params, trainer.model.params)


# --- objects with __fastmlp_save__ ------------------------------------------------------------

@fio.register(name="tests.Box")
class Box:
    def __init__(self, note, values, labels):
        self.note, self.values, self.labels = note, values, labels

    def __fastmlp_save__(self):
        return {"note": self.note}, {"values": self.values, "labels": self.labels}

    @classmethod
    def __fastmlp_load__(cls, config, arrays):
        return cls(config["note"], arrays["values"], arrays["labels"])


def test_registered_object_round_trip(tmp_path):
    box = Box({"a": [1, 2.5, None]}, np.arange(6, dtype=np.int64).reshape(2, 3),
              np.array(["cat", "dog"]))
    fm.save(box, tmp_path / "box")
    loaded = fm.load(tmp_path / "box")
    assert type(loaded) is Box and loaded.note == box.note
    np.testing.assert_array_equal(loaded.values, box.values)
    np.testing.assert_array_equal(loaded.labels, box.labels)


def test_unregistered_objects_are_refused(tmp_path):
    class Unknown(Box):
        pass

    with pytest.raises(TypeError, match="not registered"):
        fm.save(Unknown(1, np.zeros(1), np.zeros(1)), tmp_path / "x")
    with pytest.raises(TypeError, match="cannot save"):
        fm.save({"a": 1}, tmp_path / "x")
    with pytest.raises(ValueError, match="invalid array name"):
        fm.save(_BadNames(), tmp_path / "x")
    with pytest.raises(TypeError, match="object"):
        fm.save(Box(1, np.array([None]), np.zeros(1)), tmp_path / "x")
    assert not any(tmp_path.iterdir())


@fio.register(name="tests.BadNames")
class _BadNames:
    def __fastmlp_save__(self):
        return {}, {"../evil": np.zeros(1)}


def test_register_refuses_taken_and_reserved_names():
    class Other:
        pass

    with pytest.raises(ValueError, match="already registered"):
        fio.register(Other, name="tests.Box")
    with pytest.raises(ValueError):
        fio.register(Other, name="trainer")


def test_custom_layer_with_registration(tmp_path):
    @fio.register(name="tests.Scale")
    class Scale(fm.Layer):
        def __init__(self, factor=2.0):
            super().__init__()
            self.factor = factor

        def forward(self, X, training=False):
            return X * self.factor

        def backward(self, dY):
            return dY * self.factor

    model = fm.Sequential([fm.Dense(3, 2), Scale(3.0)], dtype="float64", seed=0)
    fm.save(model, tmp_path / "m")
    loaded = fm.load(tmp_path / "m")
    assert type(loaded.layers[1]) is Scale and loaded.layers[1].factor == 3.0
    np.testing.assert_array_equal(loaded.predict(np.eye(3)), model.predict(np.eye(3)))


# --- atomic writes ----------------------------------------------------------------------------

def test_save_writes_the_exact_path_and_respects_the_umask(tmp_path):
    model = fm.Sequential([fm.Dense(2, 2)], seed=0)
    path = tmp_path / "no_extension"
    fm.save(model, str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["no_extension"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    fm.save(fm.Sequential([fm.Dense(2, 3)], seed=0), path)        # overwrite
    assert fm.load(path).n_out == 3


def test_failed_save_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.fmlp"
    model = fm.Sequential([fm.Dense(4, 4)], dtype="float64", seed=0)
    fm.save(model, path)
    before = path.read_bytes()

    def broken_savez(f, **kwargs):
        f.write(b"PK\x03\x04 partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    model.params[...] = 1.0
    with pytest.raises(OSError, match="disk full"):
        fm.save(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.fmlp"]      # no temporary left


_SAVER = textwrap.dedent("""
    import sys
    import fastmlp as fm
    path = sys.argv[1]
    model = fm.Sequential([fm.Dense(1000, 2000), fm.Dense(2000, 10)], dtype="float64", seed=0)
    i = 0
    while True:
        model.params.fill(i)
        fm.save(model, path)
        print(i, flush=True)
        i += 1
""")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_sigkill_during_save_leaves_a_complete_file(delay, tmp_path):
    path = tmp_path / "big.fmlp"
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()          # the first save is complete
        assert first.strip() == "0", first
        time.sleep(delay)                        # the loop is now inside some later save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    loaded = fm.load(path)
    assert loaded.n_params == 1000 * 2000 + 2000 + 2000 * 10 + 10
    values = np.unique(loaded.params)
    assert values.shape == (1,)                  # one whole save, not a mix
    strays = [p for p in tmp_path.iterdir() if p.name != "big.fmlp"]
    assert all(p.name.startswith(".big.fmlp.") and p.name.endswith(".tmp") for p in strays)


# --- untrusted files --------------------------------------------------------------------------

def _valid(tmp_path, obj=None):
    obj = obj if obj is not None else fm.Sequential([fm.Dense(3, 4, activation="relu"),
                                                      fm.Dense(4, 2)], seed=0)
    path = tmp_path / "valid.fmlp"
    fm.save(obj, path)
    return path


def _write(path, header, arrays):
    """An .npz as save would write it, from a header (dict, or raw bytes) and arrays."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    np.savez(path, **{fio.HEADER: np.frombuffer(blob, dtype=np.uint8)}, **arrays)
    return path


def _parts(obj=None):
    obj = obj if obj is not None else fm.Sequential([fm.Dense(3, 4, activation="relu"),
                                                      fm.Dense(4, 2)], seed=0)
    header, arrays = fio.pack(obj)
    return json.loads(json.dumps(header)), dict(arrays)


def _refused(path, match=None):
    with pytest.raises(ValueError, match=match):
        fm.load(path)


def test_empty_random_and_non_zip_files(tmp_path, rng):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    _refused(empty, "empty")
    for i in range(5):
        p = tmp_path / f"random{i}"
        p.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 5000)),
                                   dtype=np.uint8).tobytes())
        _refused(p)
        p.write_bytes(b"PK\x03\x04" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
        _refused(p)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    _refused(tmp_path / "plain.npy")
    (tmp_path / "text").write_text('{"format": "fastmlp"}')
    _refused(tmp_path / "text")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fm.load(tmp_path / "nope")


def test_truncated_files(tmp_path):
    data = _valid(tmp_path).read_bytes()
    cut = tmp_path / "cut"
    for n in sorted({1, 3, 4, 10, 30, 100, len(data) // 3, len(data) // 2, len(data) - 200,
                     len(data) - 22, len(data) - 1}):
        cut.write_bytes(data[:n])
        _refused(cut)


def test_corrupted_bytes_only_ever_raise_value_error(tmp_path, rng):
    data = bytearray(_valid(tmp_path).read_bytes())
    bad = tmp_path / "bad"
    for _ in range(300):
        copy = bytearray(data)
        for pos in rng.integers(0, len(copy), size=int(rng.integers(1, 4))):
            copy[pos] = int(rng.integers(0, 256))
        bad.write_bytes(bytes(copy))
        try:
            fm.load(bad)
        except ValueError:
            pass


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payloads_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "pickle").write_bytes(pickle.dumps(_Evil(str(marker))))
    _refused(tmp_path / "pickle")
    np.save(tmp_path / "obj.npy", np.array([_Evil(str(marker))], dtype=object),
            allow_pickle=True)
    _refused(tmp_path / "obj.npy")
    header, arrays = _parts()
    arrays["params"] = np.array([_Evil(str(marker))], dtype=object)
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "objnpz", **{fio.HEADER: blob}, **arrays)     # pickles the object
    _refused(tmp_path / "objnpz.npz", "dtype")
    assert not marker.exists()


def _npy(header, data):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)       # magic string included
    return buf.getvalue() + data


@pytest.mark.parametrize("shape, descr", [((10**12,), "<f4"), ((2**62, 2**62), "<f4"),
                                          ((3,), "<f4"), ((26,), "<U100000"),
                                          ((26,), "|V8"), ((26,), "<M8[s]")])
def test_npy_header_lying_about_its_size_is_refused_before_allocation(shape, descr,
                                                                       tmp_path):
    header, arrays = _parts()
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        for name, a in [(fio.HEADER, blob), ("buffers", arrays["buffers"])]:
            buf = io.BytesIO()
            np.save(buf, a)
            zf.writestr(name + ".npy", buf.getvalue())
        zf.writestr("params.npy", _npy({"descr": descr, "fortran_order": False,
                                        "shape": shape}, arrays["params"].tobytes()))
    tracemalloc.start()
    try:
        _refused(path, "declares shape|unsupported dtype")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_compressed_members_are_refused(tmp_path):
    header, arrays = _parts()
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(tmp_path / "c.npz", **{fio.HEADER: blob}, **arrays)
    _refused(tmp_path / "c.npz", "compressed")


def test_unexpected_zip_entries_are_refused(tmp_path):
    path = _valid(tmp_path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../evil.npy", b"x")
    _refused(path, "unexpected entry")


@pytest.mark.parametrize("header", [[], "fastmlp", 3, None])
def test_header_that_is_not_an_object(header, tmp_path):
    _refused(_write(tmp_path / "h.npz", json.dumps(header).encode(), {}), "JSON object")


@pytest.mark.parametrize("blob", [b"\xff\xfe\x00", b'{"a": NaN}', b'{"a": 1, "a": 2}',
                                  b"[" * 100000 + b"]" * 100000, b"", b"{"])
def test_malformed_header_json(blob, tmp_path):
    _refused(_write(tmp_path / "h.npz", blob, {}))


def test_header_entry_missing_or_not_bytes(tmp_path):
    np.savez(tmp_path / "a.npz", params=np.zeros(3))
    _refused(tmp_path / "a.npz", "missing")
    np.savez(tmp_path / "b.npz", **{fio.HEADER: np.zeros(3)})
    _refused(tmp_path / "b.npz", "uint8")


def _mutated(tmp_path, change, obj=None):
    header, arrays = _parts(obj)
    change(header, arrays)
    return _write(tmp_path / "m.npz", header, arrays)


@pytest.mark.parametrize("change, match", [
    (lambda h, a: h.update(format="other"), "not a fastmlp file"),
    (lambda h, a: h.update(version=2), "version"),
    (lambda h, a: h.update(version=True), "version"),
    (lambda h, a: h.update(kind="os.system"), "unknown kind"),
    (lambda h, a: h.update(kind=["sequential"]), "kind"),
    (lambda h, a: h.pop("config"), "missing keys"),
    (lambda h, a: h.update(extra=1), "unexpected keys"),
    (lambda h, a: h.update(config=[1, 2]), "JSON object"),
    (lambda h, a: h["config"]["layers"][0].update(type="builtins.eval"), "unknown"),
    (lambda h, a: h["config"]["layers"][0].update(type="Layer"), "unknown"),
    (lambda h, a: h["config"]["layers"][0].update(type="MSELoss"), "unknown"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(__class__="x"), "no argument"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(n_in={"a": 1}), "must be"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(n_in="3"), "n_in"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(n_in=-3), "n_in"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(init="os.system"), "init"),
    (lambda h, a: h["config"]["layers"][0]["config"]["activation"].update(type="Dense"),
     "unknown"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(regularizer=3), "regularizer"),
    (lambda h, a: h["config"]["layers"][0]["config"].update(tied_to=0), "tied_to"),
    (lambda h, a: h["config"]["layers"][1]["config"].update(tied_to=7), "tied_to"),
    (lambda h, a: h["config"]["layers"][1]["config"].update(tied_to=True), "tied_to"),
    (lambda h, a: h["config"].update(layers=[]), "non-empty"),
    (lambda h, a: h["config"].update(layers={"type": "Dense"}), "non-empty list"),
    (lambda h, a: h["config"].update(dtype="float16"), "dtype"),
    (lambda h, a: h["config"].update(dtype="object"), "dtype"),
    (lambda h, a: h["config"].update(backend="cuda"), "backend"),
    (lambda h, a: h["config"].update(seed=-1), "seed"),
    (lambda h, a: h["config"].update(rng_seed="x"), "rng_seed"),
    (lambda h, a: h["config"].update(rng_step=2**70), "rng_step"),
    (lambda h, a: h["config"].update(n_params=10**30), "n_params"),
    (lambda h, a: a.update(params=a["params"][:-1]), "params"),
    (lambda h, a: a.update(params=np.append(a["params"], 0)), "params"),
    (lambda h, a: a.update(params=a["params"].astype(np.float64)), "params"),
    (lambda h, a: a.update(params=a["params"].reshape(1, -1)), "params"),
    (lambda h, a: a.pop("buffers"), "missing"),
    (lambda h, a: a.update(extra=np.zeros(2)), "unexpected arrays"),
    (lambda h, a: a.update(params=np.array(["x"] * a["params"].shape[0])), "params"),
])
def test_hostile_sequential_configs(change, match, tmp_path):
    _refused(_mutated(tmp_path, change), match)


def _huge(h, a, layer):
    h["config"]["layers"] = [layer]
    h["config"].pop("n_params")
    h["config"].pop("n_buffers")


@pytest.mark.parametrize("layer", [
    {"type": "Dense", "config": {"n_in": 10**9, "n_out": 10**9}},
    {"type": "Dense", "config": {"n_in": 10**40, "n_out": 10**40}},
    {"type": "Maxout", "config": {"n_in": 10**6, "n_out": 10**6, "pieces": 10**6}},
    {"type": "BatchNorm", "config": {"n": 10**12}},
    {"type": "LayerNorm", "config": {"n": 10**15}},
])
def test_huge_declared_sizes_are_refused_before_allocating(layer, tmp_path):
    path = _mutated(tmp_path, lambda h, a: _huge(h, a, layer))
    tracemalloc.start()
    try:
        _refused(path, r"need|< 2\*\*31")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_deeply_nested_layers_are_refused(tmp_path):
    def nest(h, a):
        inner = {"type": "ReLU", "config": {}}
        for _ in range(200):
            inner = {"type": "Residual", "config": {"layers": [inner]}}
        h["config"]["layers"].append(inner)

    header, arrays = _parts()
    nest(header, arrays)
    blob = json.dumps(header).encode()
    _refused(_write(tmp_path / "deep.npz", blob, arrays))


def test_tied_to_cycle_is_refused(tmp_path):
    def cycle(h, a):
        h["config"]["layers"] = [
            {"type": "Dense", "config": {"n_in": 3, "n_out": 3, "tied_to": 1}},
            {"type": "Dense", "config": {"n_in": 3, "n_out": 3, "tied_to": 0}}]
        h["config"].pop("n_params")

    _refused(_mutated(tmp_path, cycle), "cycle")


def _trainer():
    model = fm.Sequential([fm.Dense(3, 2)], dtype="float64", seed=0)
    trainer = fm.Trainer(model, fm.MSELoss(), fm.Adam(), metrics=["mae"])
    trainer.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    return trainer


@pytest.mark.parametrize("change, match", [
    (lambda h, a: h["config"]["optimizer"].update(type="os.system"), "optimizer: unknown type"),
    (lambda h, a: h["config"]["optimizer"].update(type="SGD"), "optimizer"),
    (lambda h, a: h["config"]["optimizer"].update(step=-1), "step"),
    (lambda h, a: h["config"]["optimizer"].update(step=2**80), "step"),
    (lambda h, a: h["config"]["optimizer"]["hyper"].update(lr=-1), "learning rate"),
    (lambda h, a: h["config"]["optimizer"]["hyper"].update(evil=1), "optimizer"),
    (lambda h, a: h["config"]["optimizer"].update(hyper=[]), "hyper"),
    (lambda h, a: a.pop("optimizer.exp_avg"), "missing"),
    (lambda h, a: a.update({"optimizer.exp_avg": np.zeros(3)}), "exp_avg"),
    (lambda h, a: h["config"]["optimizer"].update(state=["exp_avg"]), "optimizer"),
    (lambda h, a: h["config"]["loss"].update(type="Dense"), "loss: unknown type"),
    (lambda h, a: h["config"]["loss"]["config"].update(delta=1), "no argument"),
    (lambda h, a: h["config"].update(regularizers=[{"type": "MaxNorm", "config": {}}]),
     "unknown"),
    (lambda h, a: h["config"].update(metrics=[{"name": "x", "builtin": "nope"}]), "metric"),
    (lambda h, a: h["config"].update(metrics=[{"name": "x", "builtin": 3}]), "metric"),
    (lambda h, a: h["config"].update(metrics=[{"name": "x", "custom": True}]), "metric"),
    (lambda h, a: h["config"].update(metrics={}), "lists"),
    (lambda h, a: h["config"].update(rng={"bit_generator": "os.system"}), "rng"),
    (lambda h, a: h["config"]["rng"].update(state={"state": "x", "inc": 1}), "rng"),
    (lambda h, a: h["config"]["rng"].update(state=None), "rng"),
    (lambda h, a: h["config"].update(seed=-5), "seed"),
    (lambda h, a: h["config"].pop("rng"), "missing"),
])
def test_hostile_trainer_configs(change, match, tmp_path):
    _refused(_mutated(tmp_path, change, _trainer()), match)


def test_hostile_registered_kind_errors_become_value_errors(tmp_path):
    path = _mutated(tmp_path, lambda h, a: h["config"].clear(),
                    Box("x", np.zeros(2), np.zeros(2)))
    _refused(path, "KeyError")
