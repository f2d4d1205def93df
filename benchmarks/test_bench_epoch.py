"""One training epoch (Adam): the fused core vs the NumPy reference vs PyTorch CPU.

MNIST shape: 784-512-256-10 ReLU, softmax cross-entropy, 20,000 rows; tiny: 2-16-16-1 tanh,
MSE, 2,000 rows at batch 8. The data are random (the work per epoch does not depend on it).
"""
import numpy as np
import pytest

import fastmlp as fm

CASES = {
    "mnist-b32": ([784, 512, 256, 10], "relu", 20_000, 32),
    "mnist-b256": ([784, 512, 256, 10], "relu", 20_000, 256),
    "tiny-b8": ([2, 16, 16, 1], "tanh", 2_000, 8),
}


def _data(sizes, n, rng, dtype=np.float32):
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    if sizes[-1] == 1:
        return X, rng.normal(size=(n, 1)).astype(dtype)
    return X, rng.integers(0, sizes[-1], size=n)


def _model(sizes, act, backend, dtype="float32"):
    layers = [fm.Dense(a, b, activation=act if i < len(sizes) - 2 else None)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return fm.Sequential(layers, dtype=dtype, seed=0, backend=backend)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_epoch(benchmark, case, backend, rng):
    sizes, act, n, batch = CASES[case]
    X, y = _data(sizes, n, rng)
    model = _model(sizes, act, backend)
    loss = fm.MSELoss() if sizes[-1] == 1 else fm.CrossEntropyLoss()
    trainer = fm.Trainer(model, loss, fm.Adam(lr=1e-3))
    benchmark.group = f"epoch {case}"
    benchmark.name = backend
    rounds = 1 if backend == "numpy" else 3
    benchmark.pedantic(trainer.fit, args=(X, y), kwargs=dict(epochs=1, batch_size=batch,
                                                             verbose=0),
                       rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("case", list(CASES))
def test_epoch_torch(benchmark, case, rng, torch):
    sizes, act, n, batch = CASES[case]
    X, y = _data(sizes, n, rng)
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU() if act == "relu" else torch.nn.Tanh())
    net = torch.nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.MSELoss() if sizes[-1] == 1 else torch.nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y if y.dtype != np.int64 else y.astype(np.int64))
    gen = torch.Generator().manual_seed(0)

    def epoch():
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()

    benchmark.group = f"epoch {case}"
    benchmark.name = "torch"
    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
