"""Sequential: the arena, the fused path, Python layers, input handling and errors."""

import threading

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._codes import ACT_NAMES
from helpers import PREDICT_SPLITS, WeightedSumLoss, rel_err, retained_bytes


def test_xor_by_hand():
    """Goodfellow et al. 6.1: W = [[1,1],[1,1]], c = [0,-1], w = [1,-2], b = 0 is XOR."""
    for backend in ("core", "numpy"):
        m = fm.Sequential([fm.Dense(2, 2, activation="relu"), fm.Dense(2, 1)],
                          dtype="float64", backend=backend)
        m[0].W[...] = [[1, 1], [1, 1]]
        m[0].b[...] = [0, -1]
        m[1].W[...] = [[1], [-2]]
        m[1].b[...] = 0
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
        np.testing.assert_array_equal(m.forward(X), [[0], [1], [1], [0]])


def test_arena_views():
    m = fm.Sequential([fm.Dense(5, 4, activation="relu"), fm.PReLU(), fm.Dense(4, 2)], seed=0)
    assert m.params.dtype == np.float32 and m.params.ndim == 1 and m.params.flags.c_contiguous
    assert m.n_params == 5 * 4 + 4 + 1 + 4 * 2 + 2 == m.grads.shape[0]
    assert np.shares_memory(m[0].W, m.params) and np.shares_memory(m[0].dW, m.grads)
    assert m[0].W.shape == (5, 4) and m[0].b.shape == (4,) and m[2].dW.shape == (4, 2)
    m.params[:] = 7
    assert (m[2].W == 7).all() and (m[1].weight == 7).all()
    m.grads[:] = 1
    m.zero_grad()
    assert not m[0].db.any()
    assert [n for n, _ in m.named_parameters()] == ["0.W", "0.b", "1.weight", "2.W", "2.b"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_arenas_start_on_a_cache_line_in_every_copy(dtype, tmp_path):
    """The kernels stream W a 64-byte vector at a time; NumPy aligns only to 16 bytes, and a
    W straddling cache lines streamed ~1.4x slower. The arenas start on a 64-byte boundary
    (so does every W whose offset is a multiple of 16 floats), in a new model, an
    unpickled or deep-copied one and a loaded one, with the same values."""
    import copy
    import pickle

    m = fm.Sequential([fm.Dense(784, 512, activation="relu"), fm.Dense(512, 256),
                       fm.Dense(256, 10)], dtype=dtype, seed=0)
    fm.save(m, tmp_path / "m.fm")
    copies = [m, pickle.loads(pickle.dumps(m)), copy.deepcopy(m), fm.load(tmp_path / "m.fm")]
    for c in copies:
        assert c.params.ctypes.data % 64 == 0 and c.grads.ctypes.data % 64 == 0
        assert all(layer.W.ctypes.data % 64 == 0 for layer in c.layers)
        assert np.shares_memory(c[0].W, c.params) and np.shares_memory(c[2].dW, c.grads)
        np.testing.assert_array_equal(c.params, m.params)
        np.testing.assert_array_equal(c.predict(np.ones((2, 784))), m.predict(np.ones((2, 784))))


def test_repr_lists_layers_and_counts():
    m = fm.Sequential([fm.Dense(784, 256, activation="relu"), fm.Dense(256, 10)])
    text = repr(m)
    assert "Dense(784, 256, activation='relu')" in text and "200,960" in text
    assert "2,570" in text and "203,530" in text


def test_seed_reproducible_and_init_schemes():
    a = fm.Sequential([fm.Dense(50, 40, activation="relu"), fm.Dense(40, 3)], seed=5)
    b = fm.Sequential([fm.Dense(50, 40, activation="relu"), fm.Dense(40, 3)], seed=5)
    np.testing.assert_array_equal(a.params, b.params)
    assert np.abs(a[0].W).max() <= np.sqrt(6 / 50)           # He uniform for ReLU
    assert np.abs(a[1].W).max() <= np.sqrt(6 / 43)           # Glorot uniform otherwise
    assert np.abs(a[1].W).max() > np.sqrt(6 / 50) * 0.5
    m = fm.Sequential([fm.Dense(400, 300, init="he_normal")], dtype="float64", seed=1)
    assert abs(m[0].W.std() - np.sqrt(2 / 400)) < 0.01 * np.sqrt(2 / 400) * 5
    z = fm.Sequential([fm.Dense(3, 3, init="zeros")])
    assert not z.params.any()
    # a separate ReLU layer after a linear Dense also gets He init under "auto"
    s = fm.Sequential([fm.Dense(50, 40), fm.ReLU()], seed=5)
    np.testing.assert_array_equal(s[0].W, a[0].W)


class NumpyScale(fm.Layer):
    """A user layer written in NumPy with one learnable vector: y = x ⊙ s."""

    def build(self, n_in):
        return super().build(n_in)

    def param_specs(self):
        return [("s", (self.n_in,), "weight")]

    def init_params(self, rng, next_activation=None):
        self.s[...] = rng.uniform(0.5, 1.5, size=self.s.shape)

    def forward(self, X, training=False):
        self._cache = X
        return X * self.s

    def backward(self, dY):
        X = self._need_cache()
        self.ds += (dY * X).sum(axis=0)
        return dY * self.s


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_python_layer_inside_a_model(backend, rng):
    layers = lambda: [fm.Dense(3, 4, activation="tanh"), NumpyScale(), fm.Dense(4, 2)]
    m = fm.Sequential(layers(), dtype="float64", seed=0, backend=backend)
    kinds = [k for k, _ in m._stages]
    assert kinds == (["core", "python", "core"] if backend == "core" else ["python"] * 3)
    assert fm.gradient_check(m, WeightedSumLoss(2), rng.normal(size=(4, 3)), None) < 1e-6
    ref = fm.Sequential(layers(), dtype="float64", seed=0, backend="numpy")
    X = rng.normal(size=(6, 3))
    assert rel_err(m.forward(X), ref.forward(X)) < 1e-12


def test_backend_switch_keeps_weights(rng):
    m = fm.Sequential([fm.Dense(3, 4, activation="relu"), fm.Dense(4, 2)], dtype="float64")
    X = rng.normal(size=(5, 3))
    out = m.forward(X)
    m.backend = "numpy"
    assert rel_err(m.forward(X), out) < 1e-12
    with pytest.raises(ValueError, match="backend"):
        m.backend = "torch"


@pytest.mark.parametrize("convert", [
    lambda X: X.astype(np.int64), lambda X: X.astype(np.float16).astype(np.float64),
    lambda X: X.tolist(), lambda X: np.asfortranarray(X), lambda X: X.T.copy().T,
    lambda X: np.repeat(X, 2, axis=0)[::2], lambda X: X.astype(np.float32)])
def test_inputs_are_converted_safely(convert, rng):
    m = fm.Sequential([fm.Dense(3, 4, activation="relu"), fm.Dense(4, 2)], dtype="float64")
    X = np.round(rng.normal(size=(5, 3)) * 4)       # exactly representable everywhere
    Xc = convert(X)
    before = np.array(Xc, copy=True)
    np.testing.assert_array_equal(m.forward(Xc), m.forward(X))
    np.testing.assert_array_equal(np.asarray(Xc), before)      # never modified


def test_read_only_input(rng):
    m = fm.Sequential([fm.Dense(3, 2)], dtype="float32")
    X = rng.normal(size=(4, 3)).astype(np.float32)
    X.setflags(write=False)
    out = m.forward(X, training=True)
    m.backward(np.ones_like(out))
    assert out.shape == (4, 2)


def test_forward_returns_a_fresh_array(rng):
    m = fm.Sequential([fm.Dense(3, 2)])
    a = m.forward(rng.normal(size=(4, 3)))
    a_copy = a.copy()
    m.forward(rng.normal(size=(4, 3)))
    np.testing.assert_array_equal(a, a_copy)


BAD_X = [
    (np.ones((4, 5)), ValueError, "features"),
    (np.ones(3), ValueError, "2-D"),
    (np.ones((2, 3, 3)), ValueError, "2-D"),
    (np.array([["a", "b", "c"]]), TypeError, "X"),
    (np.array([[object(), 1, 2]], dtype=object), TypeError, "X"),
    (np.array([[1.0, np.nan, 2]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf, 2]]), ValueError, "NaN"),
    (np.ones((0, 3)), ValueError, "no rows"),
    ("abc", TypeError, "X"),
    ([[1, 2], [3]], ValueError, "X"),
    (np.ones((2, 3), dtype=complex), TypeError, "X"),
]


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("X,exc,match", BAD_X)
def test_bad_X(X, exc, match, backend):
    m = fm.Sequential([fm.Dense(3, 2)], backend=backend)
    with pytest.raises(exc, match=match):
        m.forward(X)


def test_backward_errors(rng):
    m = fm.Sequential([fm.Dense(3, 2)])
    with pytest.raises(ValueError, match="before forward"):
        m.backward(np.ones((4, 2)))
    m.forward(rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match="grad_out"):
        m.backward(np.ones((4, 3)))
    with pytest.raises(ValueError, match="rows"):
        m.backward(np.ones((5, 2)))
    with pytest.raises(ValueError, match="grad_out"):
        m.backward(np.full((4, 2), np.nan))


@pytest.mark.parametrize("make,match", [
    (lambda: fm.Sequential([fm.Dense(3, 4), fm.Dense(5, 2)]), "expects 5"),
    (lambda: fm.Sequential([]), "at least one"),
    (lambda: fm.Sequential([fm.ReLU(), fm.Dense(3, 2)]), "input width"),
    (lambda: fm.Sequential([fm.Dense(3, 2)], dtype="int32"), "dtype"),
    (lambda: fm.Sequential([fm.Dense(3, 2)], dtype="float16"), "dtype"),
    (lambda: fm.Sequential(["dense"]), "layers\\[0\\]"),
    (lambda: fm.Dense(3, 2, activation="swish"), "activation"),
    (lambda: fm.Dense(0, 2), "n_in"),
    (lambda: fm.Dense(3, -1), "n_out"),
    (lambda: fm.Dense(3.5, 2), "n_in"),
    (lambda: fm.Dense(3, 2, init="orthogonal"), "init"),
])
def test_bad_construction(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_layer_cannot_join_two_models():
    d = fm.Dense(3, 2)
    fm.Sequential([d])
    with pytest.raises(ValueError, match="another model"):
        fm.Sequential([d])


def test_gradient_check_needs_float64(rng):
    m = fm.Sequential([fm.Dense(3, 2)], dtype="float32")
    with pytest.raises(ValueError, match="float64"):
        fm.gradient_check(m, WeightedSumLoss(2), rng.normal(size=(2, 3)), None)


def test_gradient_check_catches_a_wrong_gradient(rng):
    class WrongBackward(NumpyScale):
        def backward(self, dY):
            super().backward(dY)
            return 1.1 * dY * self.s            # 10 % off

    m = fm.Sequential([fm.Dense(3, 4), WrongBackward(), fm.Dense(4, 2)], dtype="float64")
    assert fm.gradient_check(m, WeightedSumLoss(2), rng.normal(size=(3, 3)), None) > 1e-2


def test_steady_state_allocates_nothing(rng):
    m = fm.Sequential([fm.Dense(64, 128, activation="relu"), fm.Dense(128, 10)], seed=0)
    X = rng.normal(size=(32, 64)).astype(np.float32)
    g = np.ones((32, 10), dtype=np.float32)

    def step():
        m.zero_grad()
        m.forward(X, training=True)
        m.backward(g)
    assert retained_bytes(step) < 4096


def test_gradient_check_zero_gradient_tensor(rng):
    """A bias right before BatchNorm has a zero gradient: judged against the floor, not
    against the rounding noise of the central differences."""
    m = fm.Sequential([fm.Dense(3, 6), fm.BatchNorm(6), fm.Tanh(), fm.Dense(6, 2)],
                      dtype="float64", seed=0)
    X, y = rng.normal(size=(8, 3)), np.array([0, 1] * 4)
    assert np.abs(m.forward(X, training=True)).max() > 0
    assert fm.gradient_check(m, fm.CrossEntropyLoss(), X, y) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_chunks_and_single_rows_agree(rng, dtype):
    """predict equals forward in evaluation mode, whatever the chunk size; and (with the
    own GEMM kernels, which accumulate every element in one order) a row predicted alone
    is bit-identical to the same row inside a batch."""
    model = fm.Sequential([fm.Dense(300, 64, activation="relu"), fm.BatchNorm(64),
                           fm.Dropout(0.3), fm.Dense(64, 7, activation="tanh")],
                          dtype=dtype, seed=2)
    X = rng.normal(size=(50, 300)).astype(dtype)
    full = model.forward(X, training=False)
    for chunk in (1, 3, 16, 50, 1000):
        np.testing.assert_array_equal(model.predict(X, batch_size=chunk), full)
    if fm._blas.native_available():
        for i in (0, 17, 49):
            np.testing.assert_array_equal(model.predict(X[i:i + 1])[0], full[i])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(ACT_NAMES))
def test_predict_in_place_activations_equal_forward(rng, dtype, activation):
    """predict writes a dense layer's output once: its sums go to the activation's block and
    the activation is applied there in place (nothing reads Z after a prediction). For
    every activation, on the tiled products (100 rows: 12-row tiles and their bias and ReLU
    stores), the streamed 1-2 rows and chunks between, that equals forward in evaluation
    mode bit for bit (forward keeps Z and A apart for backward)."""
    model = fm.Sequential([fm.Dense(37, 70, activation=activation),
                           fm.Dense(70, 33, activation=activation), fm.Dense(33, 5)],
                          dtype=dtype, seed=3)
    X = rng.normal(size=(100, 37)).astype(dtype)
    full = model.forward(X, training=False)
    for chunk in (1, 2, 13, 100):
        np.testing.assert_array_equal(model.predict(X, batch_size=chunk), full,
                                      err_msg=f"batch_size={chunk}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("first", ["relu", "identity", "tanh", "batchnorm"])
def test_predict_refuses_nan_and_inf_wherever_they_are(rng, dtype, first):
    """predict checks its input for NaN and inf as the first layer's product reads it
    (ReLU and identity layers that tile), or by a pass over each chunk (other activations,
    another first layer, 1-2 rows): either way a single bad value anywhere, in any chunk,
    raises, and the same X made finite predicts as forward does."""
    head = ([fm.BatchNorm(37), fm.Dense(37, 70, activation="relu")] if first == "batchnorm"
            else [fm.Dense(37, 70, activation=first)])
    model = fm.Sequential(head + [fm.Dense(70, 5)], dtype=dtype, seed=4)
    X = rng.normal(size=(100, 37)).astype(dtype)
    np.testing.assert_array_equal(model.predict(X, batch_size=13),
                                  model.forward(X, training=False))
    for (i, j), bad in zip([(0, 0), (99, 36), (50, 17), (12, 1), (13, 35)],
                           [np.nan, np.inf, -np.inf, np.nan, np.inf]):
        Xb = X.copy()
        Xb[i, j] = bad
        for chunk in (1, 2, 13, 100, 1000):
            with pytest.raises(ValueError, match="X contains NaN or infinity"):
                model.predict(Xb, batch_size=chunk)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_in_runs_per_thread_equals_forward_on_any_threads(rng, dtype):
    """With several threads and at least batch_size rows, predict sends runs of rows
    through every layer on one thread each, claimed from the team's counter; with fewer
    rows or one thread it goes chunk by chunk on the team. Every thread count, row count
    (runs that do and do not divide it, a last short run) and batch size gives forward's
    bits; a NaN in any run raises; two predictions at once from two Python threads (one
    finds the team busy and runs alone) both come out right."""
    model = fm.Sequential([fm.Dense(50, 96, activation="relu"), fm.Dropout(0.3),
                           fm.BatchNorm(96), fm.Dense(96, 40, activation="tanh"),
                           fm.Dense(40, 7)], dtype=dtype, seed=5)
    X = rng.normal(size=(1531, 50)).astype(dtype)
    full = model.forward(X, training=False)
    saved = fm.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fm.set_num_threads(threads)
            for n, chunk in PREDICT_SPLITS:
                np.testing.assert_array_equal(model.predict(X[:n], batch_size=chunk), full[:n],
                                              err_msg=f"threads={threads} n={n} chunk={chunk}")
            for row in (0, 700, 1530):
                Xb = X.copy()
                Xb[row, 3] = np.nan
                with pytest.raises(ValueError, match="X contains NaN or infinity"):
                    model.predict(Xb, batch_size=256)
        fm.set_num_threads(2)
        other = fm.Sequential([fm.Dense(50, 64, activation="relu"), fm.Dense(64, 3)],
                              dtype=dtype, seed=6)
        want = other.forward(X, training=False)
        results = {}

        def run(name, m):
            results[name] = [m.predict(X, batch_size=128) for _ in range(20)]
        threads = [threading.Thread(target=run, args=("a", model)),
                   threading.Thread(target=run, args=("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for got in results["a"]:
            np.testing.assert_array_equal(got, full)
        for got in results["b"]:
            np.testing.assert_array_equal(got, want)
    finally:
        fm.set_num_threads(saved)


def test_named_parameters_through_a_residual():
    """Issue 16, item 2: positions come from flat_layers, names from the path (torch's
    ``"1.0.weight"`` style)."""
    m = fm.Sequential([fm.Dense(4, 4, activation="relu"),
                       fm.Residual(fm.Dense(4, 4, activation="tanh"), fm.PReLU()),
                       fm.Dense(4, 2)], seed=0)
    named = m.named_parameters()
    assert [n for n, _ in named] == ["0.W", "0.b", "1.0.W", "1.0.b", "1.1.weight", "2.W", "2.b"]
    assert named[2][1] is not None and named[2][1].shape == (4, 4)
    assert np.shares_memory(named[2][1], m[1].layers[0].W)
    assert sum(v.size for v in m.parameters()) == m.n_params
    assert all(np.shares_memory(v, m.params) for v in m.parameters())


def test_layers_as_positional_arguments_torch_habit(rng):
    """Issue 16, item 8: ``Sequential(l1, l2)`` as ``nn.Sequential``; a positional dtype
    says that it is a keyword argument."""
    a = fm.Sequential(fm.Dense(20, 16, activation="relu"), fm.Dense(16, 3), seed=0)
    b = fm.Sequential([fm.Dense(20, 16, activation="relu"), fm.Dense(16, 3)], seed=0)
    assert len(a) == 2
    np.testing.assert_array_equal(a.params, b.params)
    assert len(fm.Sequential(fm.Dense(3, 2))) == 1
    with pytest.raises(TypeError, match="keyword arguments"):
        fm.Sequential([fm.Dense(3, 2)], "float64")
    with pytest.raises(TypeError, match="one list"):
        fm.Sequential(3)
    with pytest.raises(TypeError, match=r"layers\[1\] must be a fastmlp Layer, got int"):
        fm.Sequential(fm.Dense(3, 2), 5)
    with pytest.raises(ValueError, match="at least one layer"):
        fm.Sequential()


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_predict_no_rows_gives_an_empty_array(backend, rng):
    """Issue 16, item 14: as NumPy-based libraries, ``predict(X[:0])`` is (0, n_out)."""
    m = fm.Sequential([fm.Dense(4, 5, activation="relu"), PyTanh(), fm.Dense(5, 3)],
                      seed=0, backend=backend)
    X = rng.normal(size=(6, 4))
    for out in (m.predict(X[:0]),
                fm.Trainer(m, fm.MSELoss(), fm.SGD(lr=0.1)).predict(X[:0])):
        assert out.shape == (0, 3) and out.dtype == m.dtype
    with pytest.raises(ValueError, match="features"):
        m.predict(np.zeros((0, 2)))


class PyTanh(fm.Layer):
    def forward(self, X, training=False):
        return np.tanh(X)

    def backward(self, dY):
        raise AssertionError("not used")
