"""The fused training loop of graph models, ``fastmlp._graph_train.GraphRunner``: its
steps, the choice between writing and adding gradients, and clear errors for bad
arguments."""
import numpy as np
import pytest

import fastmlp as fm
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


def test_shared_parameters_are_added_into_a_zeroed_arena():
    """Backward writes the gradients (no zeroing pass) unless two chains share a slot."""
    for make, fresh in ((merges_model, False), (chains_model, True)):
        _, kw = runner_args(make)
        assert GraphRunner(**kw).fresh_grads is fresh
