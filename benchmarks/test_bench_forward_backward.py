"""Forward + backward of one batch (no loss, no update): compiled core vs NumPy reference
(vs PyTorch), float32. ``model.forward(X, training=True)`` then ``model.backward(g)``, through
the public per-call API (its input checks included)."""
import numpy as np
import pytest

from fastmlp import bench

CASES = [("mnist", 32), ("mnist", 256), ("tiny", 8)]
IDS = [f"{s}-b{b}" for s, b in CASES]


def step(model, X, g):
    model.zero_grad()
    model.forward(X, training=True)
    model.backward(g)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("shape,batch", CASES, ids=IDS)
def test_forward_backward(benchmark, shape, batch, backend, rng):
    model = bench.model(shape, backend)
    X = rng.normal(size=(batch, model.n_in)).astype(np.float32)
    g = rng.normal(size=(batch, model.n_out)).astype(np.float32)
    benchmark.group = f"fwd+bwd {shape} batch {batch}"
    benchmark.name = backend
    benchmark(step, model, X, g)


@pytest.mark.parametrize("shape,batch", CASES, ids=IDS)
def test_forward_backward_torch(benchmark, shape, batch, rng, torch):
    net = bench.torch_model(torch, shape)
    sizes = bench.SHAPES[shape][0]
    X = torch.from_numpy(rng.normal(size=(batch, sizes[0])).astype(np.float32))
    g = torch.from_numpy(rng.normal(size=(batch, sizes[-1])).astype(np.float32))

    def torch_step():
        net.zero_grad()
        net(X).backward(g)

    benchmark.group = f"fwd+bwd {shape} batch {batch}"
    benchmark.name = "torch"
    benchmark(torch_step)
