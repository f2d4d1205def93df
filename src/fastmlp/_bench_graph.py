"""Work functions of the graph-model benchmarks (issue 14): a two-input, two-head tabular
model trained per epoch by fastmlp (``fm.Model`` + ``Trainer``), PyTorch (eager) and JAX
(the step under ``jax.jit``, the epoch under ``jax.lax.scan``, optax Adam); and a Sequential
against the same chain rebuilt as a graph.

The model: inputs A (16 numeric columns) and B (8); a ReLU tower of 64 units on each; their
concatenation through a shared ReLU trunk of 64; a classification head (3 classes,
cross-entropy, weight 1) and a regression head (1 value, squared error, weight 0.5). Adam
(lr 1e-3), float32, batches gathered by a shuffled index. Every builder returns a function
that trains one epoch; the peers raise ImportError when they are not installed.
"""
import numpy as np

import fastmlp as fm
from fastmlp._bench_work import import_torch

N_A, N_B, TOWER, TRUNK, N_CLASS = 16, 8, 64, 64, 3
WEIGHTS = (1.0, 0.5)


def graph_data(n_rows, seed=0):
    """``([A, B], [labels, values])``: random inputs and targets (a step's work does not
    depend on the values)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_rows, N_A), dtype=np.float32)
    B = rng.standard_normal((n_rows, N_B), dtype=np.float32)
    labels = rng.integers(0, N_CLASS, size=n_rows, dtype=np.int64)
    values = rng.standard_normal((n_rows, 1), dtype=np.float32)
    return [A, B], [labels, values]


def graph_model(seed=0):
    """The two-input, two-head model as an ``fm.Model``."""
    a, b = fm.Input(N_A, name="a"), fm.Input(N_B, name="b")
    h = fm.Concatenate()([fm.Dense(N_A, TOWER, activation="relu")(a),
                          fm.Dense(N_B, TOWER, activation="relu")(b)])
    trunk = fm.Dense(2 * TOWER, TRUNK, activation="relu")(h)
    return fm.Model([a, b], [fm.Dense(TRUNK, N_CLASS)(trunk, name="cls"),
                             fm.Dense(TRUNK, 1)(trunk, name="reg")], seed=seed)


def fastmlp_graph(batch=64, n_rows=20_000):
    """One epoch of the graph model through ``Trainer.fit`` (one loss per head)."""
    X, y = graph_data(n_rows)
    tr = fm.Trainer(graph_model(), [fm.CrossEntropyLoss(), fm.MSELoss()], fm.Adam(1e-3),
                    loss_weights=list(WEIGHTS))
    return lambda: tr.fit(X, y, epochs=1, batch_size=batch, verbose=0)


def torch_graph(batch=64, n_rows=20_000):
    """PyTorch: the same model as a Module, one pass of shuffled batches."""
    torch = import_torch()
    if torch is None:
        raise ImportError("torch not installed; pip install torch==2.13.0")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.ta, self.tb = nn.Linear(N_A, TOWER), nn.Linear(N_B, TOWER)
            self.trunk = nn.Linear(2 * TOWER, TRUNK)
            self.cls, self.reg = nn.Linear(TRUNK, N_CLASS), nn.Linear(TRUNK, 1)

        def forward(self, a, b):
            h = torch.cat([torch.relu(self.ta(a)), torch.relu(self.tb(b))], dim=1)
            h = torch.relu(self.trunk(h))
            return self.cls(h), self.reg(h)

    (A, B), (labels, values) = graph_data(n_rows)
    At, Bt, lt, vt = (torch.from_numpy(x) for x in (A, B, labels, values))
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ce, mse = nn.CrossEntropyLoss(), nn.MSELoss()
    gen = torch.Generator().manual_seed(0)

    def run():
        perm = torch.randperm(n_rows, generator=gen)
        for s in range(0, n_rows, batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            c, r = net(At[idx], Bt[idx])
            (WEIGHTS[0] * ce(c, lt[idx]) + WEIGHTS[1] * mse(r, vt[idx])).backward()
            opt.step()
    return run


def jax_graph(batch=64, n_rows=20_000, seed=0):
    """JAX: the same model, the epoch one jitted ``lax.scan`` (the last partial batch
    dropped), optax Adam."""
    from fastmlp._bench_peers import import_jax
    jax, jnp, optax = import_jax()
    (A, B), (labels, values) = graph_data(n_rows)
    key = jax.random.PRNGKey(seed)
    shapes = {"ta": (N_A, TOWER), "tb": (N_B, TOWER), "trunk": (2 * TOWER, TRUNK),
              "cls": (TRUNK, N_CLASS), "reg": (TRUNK, 1)}
    params = {}
    for name, (i, o) in shapes.items():
        key, sub = jax.random.split(key)
        params[name] = (jax.random.normal(sub, (i, o), jnp.float32) * np.float32(np.sqrt(2 / i)),
                        jnp.zeros((o,), jnp.float32))

    def lin(p, x):
        return x @ p[0] + p[1]

    def value(p, a, b, lab, val):
        h = jnp.concatenate([jax.nn.relu(lin(p["ta"], a)), jax.nn.relu(lin(p["tb"], b))], 1)
        h = jax.nn.relu(lin(p["trunk"], h))
        ce = optax.softmax_cross_entropy_with_integer_labels(lin(p["cls"], h), lab).mean()
        return WEIGHTS[0] * ce + WEIGHTS[1] * ((lin(p["reg"], h) - val) ** 2).mean()

    opt = optax.adam(1e-3)
    state = {"p": params, "s": opt.init(params)}
    Aj, Bj, lj, vj = (jnp.asarray(x) for x in (A, B, labels, values))
    steps = n_rows // batch

    @jax.jit
    def epoch(p, s, perm):
        def step(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(value)(p, Aj[idx], Bj[idx], lj[idx], vj[idx])
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), loss
        (p, s), losses = jax.lax.scan(step, (p, s), perm[:steps * batch].reshape(steps, batch))
        return p, s, losses.mean()
    rng = np.random.default_rng(seed)

    def run():
        p, s, loss = epoch(state["p"], state["s"], jnp.asarray(rng.permutation(n_rows)))
        loss.block_until_ready()
        state["p"], state["s"] = p, s
    run()      # compile outside the timings
    return run


def chain(as_graph, sizes=(784, 512, 256, 10), batch=32, n_rows=20_000):
    """One epoch of a ReLU chain as a Sequential, or (``as_graph``) the same layers called
    on an ``fm.Input`` as a graph Model: what the graph executor costs over the chain."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=n_rows, dtype=np.int64)
    layers = [fm.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(fm.Dense(sizes[-2], sizes[-1]))
    if as_graph:
        x = h = fm.Input(sizes[0])
        for layer in layers:
            h = layer(h)
        model = fm.Model(x, h, seed=0)
    else:
        model = fm.Sequential(layers, seed=0)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(1e-3))
    return lambda: tr.fit(X, y, epochs=1, batch_size=batch, verbose=0)
