"""Random graphs (several inputs, fan-outs, every merge, shared layers, outputs inside the
graph): the compiled executor, with its liveness-planned workspace, agrees with the NumPy
reference, and backpropagation with central differences."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import RTOL, rel_err

SMOOTH = ["tanh", "sigmoid", "softplus", "identity"]


def random_graph(seed, dtype="float64", backend="core"):
    """A graph drawn from ``seed`` (the same one for both backends)."""
    rng = np.random.default_rng(seed)
    inputs = [fm.Input(int(rng.integers(2, 5))) for _ in range(int(rng.integers(1, 4)))]
    pool = [fm.Dense(x.width, int(rng.integers(2, 5)), activation=str(rng.choice(SMOOTH)))(x)
            for x in inputs]
    dense = []
    for _ in range(int(rng.integers(3, 12))):
        pool.append(_random_node(rng, pool, dense))
    used = {id(x) for t in pool if t.producer is not None for x in t.producer.inputs}
    sinks = [t for t in pool if id(t) not in used]
    extra = [pool[int(i)] for i in rng.choice(len(pool), size=2)]      # inner outputs too
    outputs = list({id(t): t for t in sinks + extra}.values())
    return fm.Model(inputs, outputs, dtype=dtype, seed=seed, backend=backend)


def _random_node(rng, pool, dense):
    kind = rng.choice(["dense", "shared", "act", "norm", "dropout", "merge", "concat"])
    x = pool[int(rng.integers(len(pool)))]
    if kind == "shared":
        fits = [d for d in dense if d.n_in == x.width]
        if fits:
            return fits[int(rng.integers(len(fits)))](x)
        kind = "dense"
    if kind == "dense":
        dense.append(fm.Dense(x.width, int(rng.integers(2, 5)),
                              activation=str(rng.choice(SMOOTH))))
        return dense[-1](x)
    if kind == "act":
        return fm.Tanh()(x) if rng.random() < 0.5 else fm.Softplus()(x)
    if kind == "norm":
        return fm.LayerNorm(x.width)(x)
    if kind == "dropout":
        return fm.Dropout(0.3)(x)
    if kind == "concat":
        others = [pool[int(i)] for i in rng.integers(len(pool), size=int(rng.integers(1, 3)))]
        return fm.Concatenate()([x, *others])
    same = [t for t in pool if t.width == x.width]
    others = [same[int(i)] for i in rng.integers(len(same), size=int(rng.integers(1, 3)))]
    merge = rng.choice([fm.Add, fm.Subtract, fm.Multiply])
    return merge()([x, others[0]] if merge is fm.Subtract else [x, *others])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(25))
def test_random_graph_compiled_equals_reference(seed, dtype):
    core, ref = random_graph(seed, dtype), random_graph(seed, dtype, "numpy")
    assert core.is_compiled
    rng = np.random.default_rng(100 + seed)
    X = [rng.normal(size=(6, t.width)).astype(dtype) for t in core.inputs]
    tol = RTOL[np.dtype(dtype).type]
    for _ in range(2):                      # the second pass reuses the workspace
        outs, outs_ref = core.forward(X, training=True), ref.forward(X, training=True)
        outs = outs if isinstance(outs, list) else [outs]
        outs_ref = outs_ref if isinstance(outs_ref, list) else [outs_ref]
        for o, r in zip(outs, outs_ref):
            assert rel_err(o, r) < tol
        dY = [rng.normal(size=o.shape).astype(dtype) for o in outs]
        core.zero_grad(), ref.zero_grad()
        dX, dX_ref = core.backward(dY), ref.backward(dY)
        for d, r in zip(dX, dX_ref):
            assert rel_err(d, r) < tol
        assert rel_err(core.grads, ref.grads) < tol
    for p, r in zip(core.predict(X, batch_size=4), ref.predict(X, batch_size=4)):
        assert rel_err(p, r) < tol


@pytest.mark.parametrize("seed", range(0, 25, 3))
def test_random_graph_gradient_check(seed):
    m = random_graph(seed)
    rng = np.random.default_rng(200 + seed)
    X = [rng.normal(size=(4, t.width)) for t in m.inputs]
    losses = [fm.MSELoss() for _ in m.outputs]
    y = [rng.normal(size=(4, t.width)) for t in m.outputs]
    if len(m.outputs) == 1:
        losses, y = losses[0], y[0]
    assert fm.gradient_check(m, losses, X, y) < 1e-6
