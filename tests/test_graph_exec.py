"""The graph executor: compiled == NumPy reference, gradient checks of every merge, shared
layers and several outputs, Sequential rebuilt as a graph, workspace reuse, allocations,
predict and pickling."""
import copy
import pickle

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._graph_build import assign_slots, node_table
from helpers import (PREDICT_SPLITS, RTOL, python_identity, rel_err, retained_bytes,
                     run_threads)


def every_merge(dtype="float64", backend="core", seed=0, extra=None):
    """Two inputs, every merge, a shared layer, a fan-out, two outputs."""
    a, b = fm.Input(4, name="a"), fm.Input(3, name="b")
    shared = fm.Dense(4, 4, activation="tanh")
    ha, hb = shared(a), shared(fm.Dense(3, 4)(b))            # one W, two uses
    s = fm.Add()([ha, hb, a])
    d = fm.Subtract()([s, hb])
    p = fm.Multiply()([d, ha])
    cat = fm.Concatenate()([p, fm.LayerNorm(4)(d), b])
    trunk = (extra or fm.Identity())(fm.Dense(11, 6, activation="sigmoid")(cat))
    out1 = fm.Dense(6, 3)(trunk, name="cls")
    out2 = fm.Add()([fm.Dense(6, 2)(trunk), fm.Dense(4, 2)(p)])
    return fm.Model([a, b], {"cls": out1, "reg": out2}, dtype=dtype, seed=seed,
                    backend=backend)


def data(rng, n=7, dtype="float64"):
    return [rng.normal(size=(n, 4)).astype(dtype), rng.normal(size=(n, 3)).astype(dtype)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("extra", [None, fm.Dropout(0.3), fm.GaussianNoise(0.5)])
def test_compiled_equals_reference(rng, dtype, extra):
    core = every_merge(dtype, "core", extra=copy.deepcopy(extra))
    ref = every_merge(dtype, "numpy", extra=copy.deepcopy(extra))
    assert core.is_compiled and not ref.is_compiled
    np.testing.assert_array_equal(core.params, ref.params)
    X = data(rng, dtype=dtype)
    tol = RTOL[np.dtype(dtype).type]
    for training in (True, False):
        outs = core.forward(X, training=training)
        outs_ref = ref.forward(X, training=training)
        for o, r in zip(outs, outs_ref):
            assert rel_err(o, r) < tol
        dY = [rng.normal(size=o.shape).astype(dtype) for o in outs]
        core.zero_grad(), ref.zero_grad()
        for d, r in zip(core.backward(dY), ref.backward(dY)):
            assert rel_err(d, r) < tol
        assert rel_err(core.grads, ref.grads) < tol


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_gradient_check_every_merge_shared_layers_two_outputs(rng, backend):
    m = every_merge(backend=backend, seed=3)
    X = data(rng, n=5)
    y = [rng.integers(0, 3, 5), rng.normal(size=(5, 2))]
    assert fm.gradient_check(m, [fm.CrossEntropyLoss(), fm.MSELoss()], X, y) < 1e-6
    assert m.gradient_check({"cls": fm.CrossEntropyLoss(), "reg": fm.HuberLoss()}, X,
                            {"cls": y[0], "reg": y[1]}) < 1e-6


def test_gradient_check_with_dropout_prelu_residual_in_a_graph(rng):
    x = fm.Input(5)
    h = fm.Residual(fm.Dense(5, 5, activation="tanh"), fm.PReLU(5))(x)
    h = fm.Dropout(0.2)(h)
    out = fm.Multiply()([fm.Dense(5, 2)(h), fm.Dense(5, 2, activation="softplus")(x)])
    m = fm.Model(x, out, dtype="float64", seed=0)
    assert m.is_compiled
    assert fm.gradient_check(m, fm.MSELoss(), rng.normal(size=(6, 5)),
                             rng.normal(size=(6, 2))) < 1e-6


def chain_layers():
    return [fm.Dense(6, 16, activation="relu"), fm.Dropout(0.25), fm.LayerNorm(16),
            fm.Residual(fm.Dense(16, 16, activation="tanh")), fm.Dense(16, 3)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_as_graph_is_bit_identical(rng, dtype):
    seq = fm.Sequential(chain_layers(), dtype=dtype, seed=7)
    x = fm.Input(6)
    h = x
    for layer in chain_layers():
        h = layer(h)
    g = fm.Model(x, h, dtype=dtype, seed=7)
    np.testing.assert_array_equal(g.params, seq.params)
    X = rng.normal(size=(9, 6)).astype(dtype)
    dY = rng.normal(size=(9, 3)).astype(dtype)
    for _ in range(2):
        np.testing.assert_array_equal(g.forward(X, training=True), seq.forward(X, training=True))
        g.zero_grad(), seq.zero_grad()
        np.testing.assert_array_equal(g.backward(dY), seq.backward(dY))
        np.testing.assert_array_equal(g.grads, seq.grads)
    np.testing.assert_array_equal(g.predict(X, batch_size=4), seq.predict(X, batch_size=4))


def test_graph_with_a_python_layer_runs_the_reference(rng):
    x = fm.Input(3)
    out = fm.Dense(3, 2)(python_identity()(fm.Dense(3, 3, activation="tanh")(x)))
    m = fm.Model(x, out, dtype="float64", seed=0)
    assert not m.is_compiled and "NumPy reference" in repr(m)
    assert fm.gradient_check(m, fm.MSELoss(), rng.normal(size=(4, 3)),
                             rng.normal(size=(4, 2))) < 1e-6


def test_steady_state_allocates_nothing(rng):
    m = every_merge("float32")
    X = data(rng, 32, "float32")
    dY = [np.ones((32, 3), np.float32), np.ones((32, 2), np.float32)]

    def step():
        m.zero_grad()
        m.forward(X, training=True)
        m.backward(dY)
    assert retained_bytes(step) < 4096


def test_workspace_blocks_are_reused_when_dead():
    """Buffers whose lifetimes do not overlap share columns; overlapping ones never do."""
    bufs = [(0, 2, 8, "a"), (1, 5, 4, "b"), (3, 6, 8, "c"), (6, 9, 2, "d"), (7, 8, 16, "e")]
    cols, total = assign_slots(bufs)
    assert total < sum(b[2] for b in bufs)
    assert cols["c"] == cols["a"]                    # a is dead when c starts
    for s1, e1, w1, k1 in bufs:
        for s2, e2, w2, k2 in bufs:
            if k1 < k2 and not (e1 < s2 or e2 < s1):
                assert cols[k1] + w1 <= cols[k2] or cols[k2] + w2 <= cols[k1], (k1, k2)


def test_long_merge_chain_reuses_the_workspace(rng):
    x = fm.Input(8)
    h = x
    for _ in range(20):
        h = fm.Add()([h, x])
    m = fm.Model(x, h, dtype="float64")
    work_cols = m._tables[3]
    assert work_cols <= 4 * 8                        # not 40 blocks of 8 columns
    X = rng.normal(size=(3, 8))
    np.testing.assert_allclose(m.forward(X), 21 * X, rtol=1e-14)
    np.testing.assert_array_equal(m.backward(np.ones((3, 8))), np.full((3, 8), 21.0))


def test_predict_in_chunks_and_threads_equals_forward(rng):
    m = every_merge("float64")
    X = data(rng, 50)
    want = m.forward(X, training=False)
    for chunk in (1, 7, 1024):
        for got, w in zip(m.predict(X, batch_size=chunk), want):
            np.testing.assert_array_equal(got, w)
    results = [None] * 4

    def work(i):
        results[i] = m.predict(X, batch_size=3)

    run_threads(work, 4)
    for r in results:
        for got, w in zip(r, want):
            np.testing.assert_array_equal(got, w)
    empty = m.predict([np.ones((0, 4)), np.ones((0, 3))])
    assert [e.shape for e in empty] == [(0, 3), (0, 2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_in_runs_per_thread_equals_forward_on_any_threads(rng, dtype):
    """As Sequential.predict: with several threads and at least batch_size rows the rows
    go in runs, each through every node on one thread with its own copy of the executor
    (tensors, segment workspaces, merge blocks); with fewer rows or one thread, chunk by
    chunk. Every thread count, row count (runs that do and do not divide it, a last short
    run) and batch size gives forward's bits, for a model of every merge with dropout and
    batch norm in evaluation mode and for one of merges alone (no segment); a NaN or inf
    in either input raises; two predictions at once from two Python threads (one finds
    the team busy) come out right."""
    m = every_merge(dtype, extra=lambda t: fm.BatchNorm(6)(fm.Dropout(0.3)(t)))
    a, b = fm.Input(4), fm.Input(4)
    merges = fm.Model([a, b], fm.Multiply()([fm.Add()([a, b]), b]), dtype=dtype)
    X = data(rng, 1531, dtype)
    X2 = [X[0], rng.normal(size=(1531, 4)).astype(dtype)]
    want = m.forward(X, training=False)
    want2 = merges.forward(X2, training=False)
    saved = fm.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fm.set_num_threads(threads)
            for n, chunk in PREDICT_SPLITS:
                msg = f"threads={threads} n={n} chunk={chunk}"
                got = m.predict([x[:n] for x in X], batch_size=chunk)
                for g, w in zip(got, want):
                    np.testing.assert_array_equal(g, w[:n], err_msg=msg)
                np.testing.assert_array_equal(
                    merges.predict([x[:n] for x in X2], batch_size=chunk), want2[:n],
                    err_msg=msg)
            for k, row in ((0, 0), (1, 700), (1, 1530)):
                bad = [x.copy() for x in X]
                bad[k][row, 1] = np.inf if row else np.nan
                with pytest.raises(ValueError, match="contains NaN or infinity"):
                    m.predict(bad, batch_size=256)
        fm.set_num_threads(2)
        results = [None] * 2

        def work(i):
            results[i] = [(m if i == 0 else merges).predict(X if i == 0 else X2,
                                                             batch_size=128)
                          for _ in range(10)]
        run_threads(work, 2)
        for got in results[0]:
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
        for got in results[1]:
            np.testing.assert_array_equal(got, want2)
    finally:
        fm.set_num_threads(saved)


def test_pickle_and_deepcopy_roundtrip(rng):
    m = every_merge("float64")
    X = data(rng)
    want = m.predict(X)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert clone.is_compiled
        for got, w in zip(clone.predict(X), want):
            np.testing.assert_array_equal(got, w)
        clone.params[:] = 0
        assert np.abs(m.params).max() > 0               # its own arena
        assert clone.layers[0].W.base is not None       # views rebound


BRANCH_LAYERS = {
    "batchnorm": lambda: [fm.Dense(4, 6), fm.BatchNorm(6), fm.Tanh()],
    "maxout": lambda: [fm.Maxout(4, 6, pieces=3)],
    "prelu_softmax": lambda: [fm.Dense(4, 6), fm.PReLU(6), fm.Softmax()],
    "elu_leaky": lambda: [fm.Dense(4, 6, activation="elu"), fm.LeakyReLU(0.1)],
    "tied": None,
}


@pytest.mark.parametrize("kind", sorted(BRANCH_LAYERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_layer_kind_in_a_branch_compiled_equals_reference(rng, kind, dtype):
    def build(backend):
        x = fm.Input(4)
        if kind == "tied":
            enc = fm.Dense(4, 6, activation="tanh")
            layers = [enc, fm.Dense(6, 4, tied_to=enc, transpose=True), fm.Dense(4, 6)]
        else:
            layers = BRANCH_LAYERS[kind]()
        h = x
        for layer in layers:
            h = layer(h)
        out = fm.Concatenate()([h, fm.Multiply()([x, x])])   # x feeds both branches
        return fm.Model(x, out, dtype=dtype, seed=5, backend=backend)

    core, ref = build("core"), build("numpy")
    X = rng.normal(size=(8, 4)).astype(dtype)
    dY = rng.normal(size=(8, 10)).astype(dtype)
    tol = RTOL[np.dtype(dtype).type]
    for training in (True, False):
        assert rel_err(core.forward(X, training), ref.forward(X, training)) < tol
        core.zero_grad(), ref.zero_grad()
        assert rel_err(core.backward(dY), ref.backward(dY)) < tol
        assert rel_err(core.grads, ref.grads) < tol
    np.testing.assert_allclose(core.buffers, ref.buffers, rtol=tol)


def test_a_tensor_merged_with_itself(rng):
    x = fm.Input(3)
    h = fm.Dense(3, 3, activation="tanh")(x)
    out = fm.Concatenate()([fm.Add()([h, h]), fm.Multiply()([h, h]), fm.Subtract()([h, h])])
    m = fm.Model(x, out, dtype="float64", seed=0)
    X = rng.normal(size=(5, 3))
    assert fm.gradient_check(m, fm.MSELoss(), X, rng.normal(size=(5, 9))) < 1e-6
    np.testing.assert_array_equal(m.forward(X)[:, 6:], 0.0)


def test_executor_refuses_tables_the_kernels_could_not_trust():
    """fastmlp._graph.Graph checks every index, width and block against each other."""
    from fastmlp._graph import Graph
    m = every_merge("float64")
    tensors, accum, modes, work_cols, tmp_col, ids = m._tables
    plans = m._plans()
    ex = m._stages
    good = dict(plans=plans, nodes=node_table(m._nodes, ids), tensors=tensors, edge_accum=accum,
                inputs=[0, 1], outputs=[ids[id(t)] for t in m.outputs], seed_modes=modes,
                work_cols=work_cols, tmp_col=tmp_col, dtype=np.float64)
    Graph(**good)                                       # the model's own tables pass
    assert ex.n_outputs == 2
    bad = [
        dict(work_cols=3),                                         # blocks outside
        dict(tensors=[t if k != 5 else (t[0], t[1] + 1, *t[2:]) for k, t in enumerate(tensors)]),
        dict(nodes=[(op, seg, ins, out) if k != 3 else (op, seg, [99] * len(ins), out)
                    for k, (op, seg, ins, out) in enumerate(good["nodes"])]),
        dict(nodes=good["nodes"][::-1]),                           # not topological
        dict(outputs=[0, 1]),                                      # inputs are no outputs
        dict(seed_modes=[0, 0, 0]),
        dict(edge_accum=accum[:-1]),
        dict(inputs=[0]),
        dict(tmp_col=-1),
    ]
    for change in bad:
        with pytest.raises((ValueError, TypeError)):
            Graph(**{**good, **change})
    with pytest.raises(TypeError):
        Graph(**{**good, "dtype": np.float32})                     # plans are float64

