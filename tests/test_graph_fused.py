"""The fused training loop of graph models (``fastmlp._graph_train.GraphRunner``, driven by
``fastmlp._graph_fit.GraphEpochLoop``): the same weights as the Python step bit for bit
(every merge, shared and frozen layers, two inputs and heads with loss and sample weights,
dropout, penalties, constraints, float32 and float64), the same stop on a non-finite loss,
the fallback when a piece has no core kernel, no allocation per step, the subnormal flush,
and clear errors for bad arguments."""
import tracemalloc

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _graph_fit
from fastmlp._graph_train import GraphRunner
from helpers import python_identity


def merges_model(dtype, seed=0, dropout=0.0, frozen=False, constraint=None, python=False):
    """Two inputs; Add, Subtract, Multiply and Concatenate; one layer called twice; two
    heads (3 classes, 2 values)."""
    a, b = fm.Input(4, name="a"), fm.Input(4, name="b")
    shared = fm.Dense(4, 6, activation="tanh", constraint=constraint)
    ha, hb = shared(a), shared(b)
    first = fm.Dense(4, 6, activation="relu")
    h = fm.Concatenate()([fm.Add()([ha, hb]), fm.Subtract()([ha, first(b)]),
                          fm.Multiply()([ha, hb, fm.Dense(4, 6, activation="sigmoid")(a)])])
    if dropout:
        h = fm.Dropout(dropout)(h)
    if python:
        h = python_identity()(h)
    trunk = fm.Dense(18, 8, activation="elu")(h)
    out1 = fm.Dense(8, 3)(trunk, name="cls")
    out2 = fm.Dense(8, 2)(fm.Add()([trunk, fm.Dense(4, 8)(b)]), name="value")
    model = fm.Model([a, b], [out1, out2], dtype=dtype, seed=seed)
    if frozen:
        first.trainable = False
    return model


def chains_model(dtype, seed=0, dropout=0.0):
    """Two inputs, two heads, no layer called twice (each chain writes its gradients):
    batch and layer norms, PReLU, Maxout, dropout."""
    a, b = fm.Input(4, name="a"), fm.Input(4, name="b")
    ha = fm.BatchNorm(8)(fm.Dense(4, 8, activation="tanh")(a))
    hb = fm.PReLU(8)(fm.LayerNorm(8)(fm.Dense(4, 8)(b)))
    h = fm.Concatenate()([ha, fm.Dropout(dropout)(hb) if dropout else hb])
    trunk = fm.Maxout(16, 6, 2)(h)
    out1 = fm.Dense(6, 3)(trunk, name="cls")
    out2 = fm.Dense(6, 2)(fm.Add()([trunk, fm.Dense(4, 6)(a)]), name="value")
    return fm.Model([a, b], [out1, out2], dtype=dtype, seed=seed)


MODELS = {"merges-shared": merges_model, "chains": chains_model}


def data(rng, n=90):
    A, B = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    yc = (A[:, 0] + B[:, 1] > 0).astype(int) + (A[:, 2] > 1)
    yv = np.stack([A[:, 1] * B[:, 0], A[:, 3] - B[:, 2]], axis=1)
    return [A, B], [yc, yv], rng.uniform(0, 2, n)


@pytest.fixture
def python_path(monkeypatch):
    """Force the Python step (no fused runner) within a test."""
    def force():
        monkeypatch.setattr(_graph_fit.GraphEpochLoop, "_make_runner", lambda self: None)
    return force


def trained(make_model, make_trainer, X, y, **fit):
    """(params, history, rng_step, optimizer steps, whether the fused runner ran)."""
    model = make_model()
    trainer = make_trainer(model)
    ran = []
    real = _graph_fit.GraphEpochLoop._python_steps

    def spy(self, part):
        ran.append("python")
        return real(self, part)
    _graph_fit.GraphEpochLoop._python_steps = spy
    try:
        hist = trainer.fit(X, y, verbose=0, **fit)
    finally:
        _graph_fit.GraphEpochLoop._python_steps = real
    return (model.params.copy(), hist.history, model.rng_step,
            trainer.optimizer.step_count, not ran)


def both_paths(python_path, make_model, make_trainer, X, y, **fit):
    fused = trained(make_model, make_trainer, X, y, **fit)
    python_path()
    plain = trained(make_model, make_trainer, X, y, **fit)
    assert fused[4] and not plain[4]                 # each path ran as meant
    return fused, plain


def assert_same(fused, plain, loss_rtol=0.0):
    """Weights bit for bit; the loss too, but for the penalties' total (the fused loop sums
    every term's ranges in one pass, the Python step term by term: ``loss_rtol``)."""
    np.testing.assert_array_equal(fused[0], plain[0])
    if loss_rtol:
        np.testing.assert_allclose(fused[1]["loss"], plain[1]["loss"], rtol=loss_rtol)
    else:
        assert fused[1]["loss"] == plain[1]["loss"]
    assert fused[2:4] == plain[2:4]                  # rng_step, optimizer steps


OPTIMIZERS = {
    "adam": lambda: fm.Adam(1e-2),
    "sgd-nesterov": lambda: fm.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "rmsprop-centered": lambda: fm.RMSprop(lr=1e-2, centered=True),
    "lamb": lambda: fm.LAMB(1e-2),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_fused_equals_python_step_bit_for_bit(rng, python_path, dtype, opt, model):
    X, y, w = data(rng)
    fused, plain = both_paths(
        python_path, lambda: MODELS[model](dtype, dropout=0.25),
        lambda m: fm.Trainer(m, [fm.CrossEntropyLoss(), fm.MSELoss()], OPTIMIZERS[opt](),
                             loss_weights=[1.0, 0.7], seed=5),
        X, y, epochs=3, batch_size=16, sample_weight={"value": w}, validation_split=0.2)
    assert_same(fused, plain)
    assert fused[2] == 3 * 5                         # one dropout draw per step: 72 rows / 16


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_losses_weights_penalties_constraints_frozen_layers(rng, python_path, dtype):
    X, y, w = data(rng, 70)
    y = [y[0], (y[1] > 0).astype(float)]
    shared_w = [w, rng.uniform(0, 1, 70)]
    fused, plain = both_paths(
        python_path, lambda: merges_model(dtype, frozen=True, constraint=fm.MaxNorm(0.8)),
        lambda m: fm.Trainer(m, [fm.MultiMarginLoss(), fm.BCEWithLogitsLoss(reduction="sum")],
                             fm.Adam(1e-2), loss_weights={"value": 0.0, "cls": 2.0},
                             regularizers=[fm.L2Penalty(1e-3), fm.L1Penalty(1e-3, proximal=True)]),
        X, y, epochs=2, batch_size=8, sample_weight=shared_w)
    assert_same(fused, plain, loss_rtol=1e-14)


def test_huber_l1_and_cross_entropy_on_probabilities(rng, python_path):
    X, y, _ = data(rng, 50)
    probs = rng.dirichlet(np.ones(3), 50)
    fused, plain = both_paths(
        python_path, lambda: merges_model("float64", seed=2),
        lambda m: fm.Trainer(m, [fm.CrossEntropyLoss(label_smoothing=0.1), fm.HuberLoss(0.5)],
                             fm.Adagrad(5e-2), loss_weights=[0.5, 1.5]),
        X, [probs, y[1]], epochs=2, batch_size=7)
    assert_same(fused, plain)


def test_shared_parameters_are_added_into_a_zeroed_arena():
    """Backward writes the gradients (no zeroing pass) unless two chains share a slot."""
    for make, fresh in ((merges_model, False), (chains_model, True)):
        _, kw = runner_args(make)
        assert GraphRunner(**kw).fresh_grads is fresh


def test_results_do_not_depend_on_the_thread_count(rng):
    X, y, _ = data(rng, 64)
    params = []
    for n_threads in (1, 2, None):
        model = chains_model("float32", dropout=0.2)
        fm.Trainer(model, ["categorical_crossentropy", "mse"], "adam", n_threads=n_threads,
                   seed=0).fit(X, y, epochs=2, batch_size=16, verbose=0)
        params.append(model.params)
    np.testing.assert_array_equal(params[1], params[0])
    np.testing.assert_array_equal(params[2], params[0])


def test_chunks_for_the_progress_bar_and_callbacks_change_nothing(rng, capsys):
    X, y, _ = data(rng)
    results = []
    for kw in (dict(verbose=0), dict(verbose=1),
               dict(verbose=0, callbacks=[fm.LambdaCallback(on_batch_end=lambda b, l: None)])):
        model = merges_model("float64", dropout=0.1)
        fm.Trainer(model, ["categorical_crossentropy", "mse"], fm.Adam(1e-2), seed=1).fit(
            X, y, epochs=2, batch_size=9, **kw)
        results.append((model.params, model.rng_step))
    for params, step in results[1:]:
        np.testing.assert_array_equal(params, results[0][0])
        assert step == results[0][1]


def test_sequential_as_graph_trains_as_the_sequential(rng):
    X = rng.normal(size=(64, 20))
    y = rng.integers(0, 2, 64)
    x = fm.Input(20)
    graph = fm.Model(x, fm.Dense(32, 2)(fm.Dense(64, 32, activation="relu")(
        fm.Dense(20, 64, activation="relu")(x))), seed=3)
    seq = fm.Sequential([fm.Dense(20, 64, activation="relu"), fm.Dense(64, 32, activation="relu"),
                         fm.Dense(32, 2)], seed=3)
    for m in (graph, seq):
        fm.Trainer(m, "categorical_crossentropy", fm.Adam(1e-2), seed=0).fit(
            X, y, epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(graph.params, seq.params)


def test_non_finite_loss_stops_at_the_same_step(rng, python_path):
    X, y, _ = data(rng, 40)
    y = [y[0], y[1] * 1e10]
    out = []
    for python in (False, True):
        if python:
            python_path()
        model = merges_model("float64")
        trainer = fm.Trainer(model, ["categorical_crossentropy", "mse"], fm.SGD(lr=1e10))
        with pytest.raises(FloatingPointError, match="non-finite") as err:
            trainer.fit(X, y, epochs=5, batch_size=8, verbose=0)
        out.append((str(err.value), model.params.copy(), model.rng_step,
                    trainer.optimizer.step_count))
    assert "step" in out[0][0] and out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert out[0][2:] == out[1][2:]
    assert np.isfinite(out[0][1]).all()


class _SGDInPython(fm.SGD):
    """Its own ``_update`` (the kernel's, called from Python): no fused binding."""

    def _update(self, model, params, grads):
        super()._update(model, params, grads)


def _numpy_backend(model):
    model.backend = "numpy"
    return model


@pytest.mark.parametrize("make_model,optimizer", [
    (lambda: merges_model("float64", python=True), fm.Adam),      # a layer in Python
    (lambda: _numpy_backend(merges_model("float64")), fm.Adam),   # the NumPy reference
    (lambda: merges_model("float64"), _SGDInPython),              # no optimizer kernel
    (lambda: merges_model("float64"), fm.Adam),                   # all fused
])
def test_features_without_a_core_kernel_take_the_python_step(rng, make_model, optimizer):
    X, y, _ = data(rng, 30)
    model = make_model()
    trainer = fm.Trainer(model, ["categorical_crossentropy", "mse"], optimizer(lr=1e-2))
    Xs = trainer._inputs(X)
    loop = trainer._epoch_loop(Xs, trainer._targets(y, Xs.shape[0]), None, 8, False)
    fused = model.is_compiled and optimizer is fm.Adam
    assert isinstance(loop.runner, GraphRunner) if fused else loop.runner is None
    hist = trainer.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()


def test_no_allocation_per_step(rng):
    n = 3000
    X = [rng.normal(size=(n, 4)), rng.normal(size=(n, 4))]
    y = [rng.integers(0, 3, n), rng.normal(size=(n, 2))]
    model = merges_model("float32", dropout=0.1)
    tr = fm.Trainer(model, ["categorical_crossentropy", "mse"], fm.Adam(1e-3))
    tr.fit(X, y, epochs=1, batch_size=4, verbose=0)          # warm up
    used = {}
    for rows, batch_size in ((40, 4), (n, 4), (n, 1)):          # 10, 750, 3000 steps
        part = ([a[:rows] for a in X], [t[:rows] for t in y])
        tracemalloc.start()
        tr.fit(*part, epochs=1, batch_size=batch_size, verbose=0)
        used[rows // batch_size] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert all(current < 4096 for current, _ in used.values()), used
    assert used[3000][0] - used[10][0] < 1024, used                # nothing kept per step
    assert used[3000][1] - used[750][1] < 1024, used              # nor made per step


def test_flush_applies_to_the_graph_loop(python_path):
    """Gradients ~1e-19 in float32: Adam's second moments fall below the normal range.
    Flushed, the fused loop keeps none; IEEE, it equals the Python step, subnormals too."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((64, 8)) * 1e-19).astype(np.float32)
    y = rng.standard_normal((64, 2)).astype(np.float32)
    before = fm.get_flush_denormal()
    states = []
    try:
        for flush, python in ((True, False), (False, False), (False, True)):
            fm.set_flush_denormal(flush)
            if python:
                python_path()
            x = fm.Input(8)
            model = fm.Model(x, fm.Dense(32, 2)(fm.Dense(8, 32, activation="tanh")(x)), seed=0)
            tr = fm.Trainer(model, "mse", fm.Adam(1e-3))
            tr.fit(X, y, epochs=3, batch_size=64, verbose=0, shuffle=False)
            states.append((tr.optimizer.state["exp_avg_sq"].copy(), model.params.copy()))
    finally:
        fm.set_flush_denormal(before)
    tiny = np.finfo(np.float32).tiny

    def subnormals(v):
        return int(((v != 0) & (np.abs(v) < tiny)).sum())
    assert subnormals(states[0][0]) == 0 and subnormals(states[1][0]) > 100
    np.testing.assert_array_equal(states[1][0], states[2][0])
    np.testing.assert_array_equal(states[1][1], states[2][1])


# --- the runner's boundary ------------------------------------------------------------------

def runner_args(make_model=merges_model, n=20):
    rng = np.random.default_rng(0)
    dtype = "float64"
    model = make_model(dtype)
    X = [rng.normal(size=(n, 4)).astype(dtype) for _ in range(2)]
    targets = [rng.integers(0, 3, n), rng.normal(size=(n, 2)).astype(dtype)]
    specs = [fm.CrossEntropyLoss()._spec(3), fm.MSELoss()._spec(2)]
    return model, dict(graph=model._stages, X=X, targets=targets, weights=None,
                       loss_specs=specs, loss_weights=[1.0, 1.0], batch_size=4)


def test_runner_runs_and_reports_like_runner():
    model, kw = runner_args()
    runner = GraphRunner(**kw)
    opt = fm.Adam(1e-2)
    loss_sum, rows, steps, bad, _ = runner.run(np.arange(10, dtype=np.int64),
                                               opt._fused_binding(model))
    assert (rows, steps, bad) == (10, 3, -1) and np.isfinite(loss_sum)
    assert runner.rng_step == 3
    assert runner.run(np.zeros(0, np.int64), opt._fused_binding(model)) == (0.0, 0, 0, -1, 0.0)


@pytest.mark.parametrize("change,error,match", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(X=[np.zeros((20, 4))]), ValueError, "one array per input"),
    (dict(targets=[np.zeros(20, np.int64)]), ValueError, "one entry per output"),
    (dict(loss_weights=[1.0, -1.0]), ValueError, "loss_weights"),
    (dict(loss_weights=[1.0, float("nan")]), ValueError, "loss_weights"),
    (dict(weights=[None, np.ones(20, np.float32)]), TypeError, "weights"),
    (dict(weights=[None, np.ones(19)]), ValueError, "weights"),
    (dict(X=[np.zeros((20, 4), np.float32), np.zeros((20, 4))]), TypeError, r"X\[0\]"),
    (dict(X=[np.zeros((20, 4)), np.zeros((20, 5))]), ValueError, "columns"),
    (dict(X=[np.zeros((20, 4)), np.zeros((19, 4))]), ValueError, "rows"),
    (dict(X=[np.zeros((20, 4)), np.zeros((20, 4))[:, ::-1]]), TypeError, "C-contiguous"),
    (dict(X=[[[0.0] * 4] * 20, np.zeros((20, 4))]), TypeError, r"X\[0\]"),
    (dict(targets=[np.full(20, 3, np.int64), np.zeros((20, 2))]), ValueError, "class labels"),
    (dict(targets=[np.zeros(20, np.int64), np.zeros(20, np.int64)]), ValueError,
     "class labels"),
    (dict(targets=[np.zeros((20, 3)), np.zeros((20, 3))]), ValueError, "columns"),
    (dict(loss_specs=[fm.CrossEntropyLoss()._spec(3), fm.MSELoss()._spec(3)]), ValueError,
     "does not fit"),
    (dict(loss_specs=[fm.MultiMarginLoss()._spec(3), fm.MSELoss()._spec(2)],
          targets=[np.zeros((20, 3)), np.zeros((20, 2))]), ValueError, "class labels"),
    (dict(loss_specs=[{"code": 99}, fm.MSELoss()._spec(2)]), ValueError, "n_outputs"),
    (dict(loss_specs=[dict(fm.CrossEntropyLoss()._spec(3), code=99), fm.MSELoss()._spec(2)]),
     ValueError, "does not fit"),
    (dict(graph=None), TypeError, "Graph"),
    (dict(penalties=[(0, 10 ** 9, 0.1, 0.0)]), ValueError, "outside the arena"),
])
def test_runner_refuses_bad_arguments(change, error, match):
    _, kw = runner_args()
    kw.update(change)
    with pytest.raises(error, match=match):
        GraphRunner(**kw)


def test_runner_refuses_a_bad_run():
    model, kw = runner_args()
    runner = GraphRunner(**kw)
    binding = fm.Adam(1e-2)._fused_binding(model)
    with pytest.raises(ValueError, match="outside"):
        runner.run(np.array([0, 20], np.int64), binding)
    for bad in (-1, 20, 2 ** 40, -2 ** 62):     # anywhere in a long perm: first, middle, last
        for at in (0, 7, 999):
            perm = np.arange(1000, dtype=np.int64) % 20
            perm[at] = bad
            with pytest.raises(ValueError, match=r"outside \[0, 20\)"):
                runner.run(perm, binding)
    read_only = np.arange(10, dtype=np.int64)
    read_only.flags.writeable = False           # the rows are only read
    assert runner.run(read_only, binding)[1] == 10
    with pytest.raises(TypeError, match="int64"):
        runner.run(np.arange(4, dtype=np.int32), binding)
    family, hyper, states, t = binding
    with pytest.raises(ValueError, match="optimizer state"):
        runner.run(np.arange(4, dtype=np.int64), (family, hyper, (states[0][:5],) + states[1:], t))
    with pytest.raises(ValueError, match="unknown optimizer family"):
        runner.run(np.arange(4, dtype=np.int64), (99, hyper, states, t))
    x, y = fm.Input(2), fm.Input(2)
    merges_only = fm.Model([x, y], fm.Add()([x, y]))
    with pytest.raises(ValueError, match="no layer chain"):
        GraphRunner(merges_only._stages, [np.zeros((3, 2), np.float32)] * 2,
                    [np.zeros((3, 2), np.float32)], None, [fm.MSELoss()._spec(2)], [1.0], 2)
