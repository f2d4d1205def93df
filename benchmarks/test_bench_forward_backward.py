"""Forward + backward of one batch: compiled core vs NumPy reference (vs PyTorch)."""
import numpy as np
import pytest

import fastmlp as fm

SHAPES = {
    "mnist": ([784, 512, 256, 10], "relu"),
    "tiny": ([2, 16, 16, 1], "tanh"),
}
CASES = [("mnist", 32), ("mnist", 256), ("tiny", 8)]


def make_model(shape, backend, dtype="float32"):
    sizes, act = SHAPES[shape]
    layers = [fm.Dense(a, b, activation=act if i < len(sizes) - 2 else None)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return fm.Sequential(layers, dtype=dtype, seed=0, backend=backend)


def step(model, X, g):
    model.zero_grad()
    model.forward(X, training=True)
    model.backward(g)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("shape,batch", CASES, ids=[f"{s}-b{b}" for s, b in CASES])
def test_forward_backward(benchmark, shape, batch, backend, rng):
    model = make_model(shape, backend)
    X = rng.normal(size=(batch, model.n_in)).astype(np.float32)
    g = rng.normal(size=(batch, model.n_out)).astype(np.float32)
    benchmark.group = f"fwd+bwd {shape} batch {batch}"
    benchmark.name = backend
    benchmark(step, model, X, g)


@pytest.mark.parametrize("shape,batch", CASES, ids=[f"{s}-b{b}" for s, b in CASES])
def test_forward_backward_torch(benchmark, shape, batch, rng, torch):
    sizes, act = SHAPES[shape]
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU() if act == "relu" else torch.nn.Tanh())
    net = torch.nn.Sequential(*mods)
    X = torch.from_numpy(rng.normal(size=(batch, sizes[0])).astype(np.float32))
    g = torch.from_numpy(rng.normal(size=(batch, sizes[-1])).astype(np.float32))

    def torch_step():
        net.zero_grad()
        net(X).backward(g)

    benchmark.group = f"fwd+bwd {shape} batch {batch}"
    benchmark.name = "torch"
    benchmark(torch_step)
