"""Work functions of the benchmarks: each builds a model, data and a loop once and returns
a function that does a fixed amount of work (steps, an epoch, predictions, products) when
called. ``python -m fastmlp bench`` (``fastmlp.bench``) and the pytest-benchmark suite in
``benchmarks/`` time the very same functions.
"""
import contextlib
import math
import subprocess
import sys
import threading
import time

import numpy as np

import fastmlp as fm
from fastmlp._aligned import aligned_empty
from fastmlp._epoch import EpochLoop

#: name -> (layer sizes, hidden activation, loss: "mse" or "ce")
SHAPES = {
    "tiny": ([2, 16, 16, 1], "tanh", "mse"),
    "tiny4": ([2, 16, 16, 4], "tanh", "mse"),
    "mnist": ([784, 512, 256, 10], "relu", "ce"),
    "wide": ([1024, 2048, 2048, 1024], "relu", "mse"),
    "small": ([32, 64, 64, 4], "relu", "ce"),
    # the sweep of untuned shapes: narrow to wide, tabular-like to MNIST-like
    "tabular": ([20, 64, 32, 2], "relu", "ce"),
    "medium": ([128, 256, 256, 10], "relu", "ce"),
    "deep": ([256, 512, 512, 512, 512, 10], "relu", "ce"),
    "regress": ([64, 1024, 1], "tanh", "mse"),
}
#: Threads PyTorch may use (the machines we compare on have 2 cores); ``run(threads=n)``
#: and ``FASTMLP_BENCH_THREADS`` (read by benchmarks/conftest.py) change it.
TORCH_THREADS = 2


# -- building blocks ------------------------------------------------------------------------
def import_torch():
    """PyTorch set to TORCH_THREADS threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(TORCH_THREADS)
    return torch


def data(shape, n_rows, dtype="float32", seed=0):
    """Random inputs and targets (class labels for "ce", values for "mse"); the work of a
    step does not depend on the values."""
    sizes, _, loss = SHAPES[shape]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, sizes[0]), dtype=np.dtype(dtype))
    if loss == "ce":
        return X, rng.integers(0, sizes[-1], size=n_rows, dtype=np.int64)
    return X, rng.standard_normal((n_rows, sizes[-1]), dtype=np.dtype(dtype))


def dense_layers(shape):
    """The shape's Dense layers (no activation on the output), new ones on each call."""
    sizes, act, _ = SHAPES[shape]
    last = len(sizes) - 2
    return [fm.Dense(a, b, activation=act if i < last else None)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def model(shape, backend="core", dtype="float32", seed=0):
    """The shape as a fastmlp Sequential of Dense layers (no activation on the output)."""
    return fm.Sequential(dense_layers(shape), dtype=dtype, seed=seed, backend=backend)


def trainer(shape, backend="core", dtype="float32", seed=0, n_threads=None):
    """A Trainer with Adam(lr=1e-3) and the shape's loss."""
    loss = fm.CrossEntropyLoss() if SHAPES[shape][2] == "ce" else fm.MSELoss()
    return fm.Trainer(model(shape, backend, dtype, seed), loss, fm.Adam(lr=1e-3),
                      n_threads=n_threads)


def torch_model(torch, shape, dtype="float32"):
    sizes, act, _ = SHAPES[shape]
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU() if act == "relu" else torch.nn.Tanh())
    net = torch.nn.Sequential(*mods)
    return net.double() if dtype == "float64" else net


# -- work functions: training -----------------------------------------------------------------
def fastmlp_steps(shape, backend="core", dtype="float32", batch=8, n_steps=100):
    """``n_steps`` training steps at ``batch`` rows per call (see the module docstring)."""
    X, y = data(shape, batch * n_steps, dtype)
    tr = trainer(shape, backend, dtype)
    loop = EpochLoop(tr, X, tr._targets(y, X.shape[0]), None, batch)
    if tr.model.ops.compiled and not loop.fused:
        raise RuntimeError(f"the {shape} model did not compile to the fused core")
    rows = np.arange(X.shape[0], dtype=np.int64)
    return lambda: loop.run(rows)


def fastmlp_epoch(shape, backend="core", dtype="float32", batch=32, n_rows=20_000):
    """One epoch through ``Trainer.fit`` (shuffled; per-fit checks included, as a user
    calling ``fit(..., epochs=1)`` pays them)."""
    X, y = data(shape, n_rows, dtype)
    tr = trainer(shape, backend, dtype)
    return lambda: tr.fit(X, y, epochs=1, batch_size=batch, verbose=0)


def torch_train(shape, dtype="float32", batch=32, n_rows=20_000, shuffle=True):
    """PyTorch: one pass over ``n_rows`` rows in batches, Adam(lr=1e-3); shuffled batches
    are gathered by index (as fastmlp does), otherwise taken as slices in order."""
    torch = import_torch()
    X, y = data(shape, n_rows, dtype)
    net = torch_model(torch, shape, dtype)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss() if SHAPES[shape][2] == "ce" else torch.nn.MSELoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)

    def run():
        perm = torch.randperm(n_rows, generator=gen) if shuffle else None
        for s in range(0, n_rows, batch):
            if shuffle:
                idx = perm[s:s + batch]
                xb, yb = Xt[idx], yt[idx]
            else:
                xb, yb = Xt[s:s + batch], yt[s:s + batch]
            opt.zero_grad()
            loss_fn(net(xb), yb).backward()
            opt.step()
    return run


def _operand(rng, shape, dt):
    """A product's operand, standard normal (zeros without ``rng``), starting on a cache
    line as the core's arenas and workspaces do (fastmlp._aligned); every implementation
    of a case gets the same arrays."""
    out = aligned_empty(int(np.prod(shape)), dt).reshape(shape)
    out[...] = rng.standard_normal(shape, dtype=dt) if rng is not None else 0
    return out


def gemm_only(shape, dtype="float32", batch=32, n_rows=20_000, blas="numpy"):
    """The matrix products of the training steps over ``n_rows`` rows (the last batch may be
    smaller), into preallocated arrays. ``blas="numpy"``: NumPy alone (``np.matmul(...,
    out=)``, NumPy's OpenBLAS); ``"core"``: the same products through the core's GEMM
    (``fastmlp._blas.gemm_memview``: its own kernels, or scipy's BLAS where they cannot
    run), every product written fresh as in the fused step (beta = 0)."""
    sizes = SHAPES[shape][0]
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    Ws = [_operand(rng, (a, b), dt) for a, b in zip(sizes[:-1], sizes[1:])]
    A = [_operand(rng, (batch, n), dt) for n in sizes]     # A[0] is the input
    dZ = [_operand(rng, (batch, n), dt) for n in sizes[1:]]
    dW = [_operand(None, W.shape, dt) for W in Ws]
    dA = [_operand(None, (batch, n), dt) for n in sizes[:-1]]
    full, rest = divmod(n_rows, batch)
    batches = [batch] * full + ([rest] if rest else [])
    if blas == "core":
        from fastmlp._blas import gemm_memview as gemm
    elif blas != "numpy":
        raise ValueError(f"blas must be 'numpy' or 'core', got {blas!r}")

    def run_numpy():
        for B in batches:
            for i, W in enumerate(Ws):
                np.matmul(A[i][:B], W, out=A[i + 1][:B])
            for i in range(len(Ws) - 1, -1, -1):
                np.matmul(A[i][:B].T, dZ[i][:B], out=dW[i])
                if i:
                    np.matmul(dZ[i][:B], Ws[i].T, out=dA[i][:B])

    def run_core():
        for B in batches:
            for i, W in enumerate(Ws):
                gemm(A[i][:B], W, A[i + 1][:B])
            for i in range(len(Ws) - 1, -1, -1):
                gemm(A[i][:B], dZ[i][:B], dW[i], trans_a=True)
                if i:
                    gemm(dZ[i][:B], Ws[i], dA[i][:B], trans_b=True)
    return run_core if blas == "core" else run_numpy


def epoch_times(shape="mnist", batch=32, epochs=8, n_rows=20_000, n_threads=None):
    """Seconds of each of ``epochs`` consecutive epochs of one ``Trainer.fit`` (the
    stability of a fit: max / min should stay near 1 on a quiet machine)."""
    X, y = data(shape, n_rows)
    tr = trainer(shape, n_threads=n_threads)
    times = []

    class Clock(fm.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)
    tr.fit(X, y, epochs=epochs, batch_size=batch, verbose=0, callbacks=[Clock()])
    return times


def two_models(threaded, n_rows=20_000, batch=16, epochs=1):
    """Two "small" models (32-64-64-4, Adam), each fit for ``epochs`` on its own data: in two
    Python threads at once, or one after the other."""
    jobs = []
    for seed in (0, 1):
        X, y = data("small", n_rows, seed=seed)
        jobs.append((trainer("small", seed=seed), X, y))

    def fit(job):
        tr, X, y = job
        tr.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)

    def run():
        if not threaded:
            for job in jobs:
                fit(job)
            return
        threads = [threading.Thread(target=fit, args=(job,)) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return run


# -- work functions: one product, a busy machine --------------------------------------------
def gemm_calls(impl, m, n, k, trans_a=False, dtype="float32", n_calls=10):
    """``n_calls`` products C = op(A) B of shape (m, k) x (k, n) (op(A) = Aᵀ with
    ``trans_a``, as in dW = Xᵀ dZ): impl "core" (fastmlp's own GEMM, the family chosen at
    import), "avx512" / "avx2" (one family of its kernels), "blas" (the same call through
    scipy's BLAS, which the core falls back to) or "numpy" (``np.matmul`` with ``out=``,
    NumPy's OpenBLAS)."""
    from fastmlp import _blas
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    a = _operand(rng, (k, m) if trans_a else (m, k), dt)
    b = _operand(rng, (k, n), dt)
    c = _operand(None, (m, n), dt)
    if impl == "numpy":
        op_a = a.T if trans_a else a
        return lambda: [np.matmul(op_a, b, out=c) for _ in range(n_calls)]
    if impl not in ("core", "blas", "avx512", "avx2"):
        raise ValueError(f"impl must be 'core', 'avx512', 'avx2', 'blas' or 'numpy', got {impl!r}")

    def run():
        saved = _blas.use_native()
        _blas.use_native(impl != "blas")
        if impl in ("avx512", "avx2"):        # one family of the core's kernels
            _blas.set_gemm_isa(impl)
        try:
            for _ in range(n_calls):
                _blas.gemm_memview(a, b, c, trans_a=trans_a)
        finally:
            _blas.use_native(saved)
            _blas.set_gemm_isa(None)
    return run


@contextlib.contextmanager
def busy_core():
    """Within the block another process keeps one core busy (a Python busy loop), as on a
    shared machine."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def busy_fit(n_threads, batch=32, n_rows=6_400):
    """One epoch of the MNIST shape through ``Trainer.fit`` with ``n_threads`` (None: the
    adaptive thread governor). The Trainer lives across calls, as in a session of fits."""
    X, y = data("mnist", n_rows)
    tr = trainer("mnist", n_threads=n_threads)
    return lambda: tr.fit(X, y, epochs=1, batch_size=batch, verbose=0)


def busy_predict(n_threads, n_rows=10_000, graph=False):
    """``model.predict`` of ``n_rows`` rows on the MNIST shape (float32), the calling
    thread's core calls limited to ``n_threads`` (None: the default, every thread); with
    ``graph``, the same layers called on an ``fm.Input`` as a graph Model. The core's
    thread override only, not ``fm.limit_threads``: its threadpoolctl calls would be
    timed too."""
    from fastmlp import _blas
    X, _ = data("mnist", n_rows)
    if graph:
        x = h = fm.Input(SHAPES["mnist"][0][0])
        for layer in dense_layers("mnist"):
            h = layer(h)
        m = fm.Model(x, h, seed=0)
    else:
        m = model("mnist", "core")

    def run():
        saved = _blas.thread_override()
        _blas.set_num_threads(n_threads or 0, this_thread_only=True)   # 0: the default
        try:
            m.predict(X)
        finally:
            _blas.set_num_threads(saved, this_thread_only=True)
    return run


def subnormal_fit(flush, batch=32, n_rows=20_000, warm_epochs=3):
    """One epoch of the MNIST shape (float32, Adam) through ``Trainer.fit`` of a Trainer
    already trained for ``warm_epochs`` epochs, all with subnormals flushed to zero in the
    training steps (``flush``, the default) or kept (IEEE): by then a few per mille of the
    Adam moments have decayed into the subnormal range where they are kept."""
    X, y = data("mnist", n_rows)
    tr = trainer("mnist")

    def run(epochs=1):
        before = fm.get_flush_denormal()
        fm.set_flush_denormal(flush)
        try:
            tr.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)
        finally:
            fm.set_flush_denormal(before)
    run(warm_epochs)
    return run


def input_check(split, n_rows=20_000, n_cols=32, n_calls=10):
    """``n_calls`` finiteness checks of an (n_rows, n_cols) float32 input: as ``fit`` and
    ``predict`` check their input (``split=False``: one thread below 2**22 elements), or
    split over the core's threads as the per-step gradient check is (2**18 elements a
    thread at least)."""
    from fastmlp import _optim
    X = np.random.default_rng(0).standard_normal((n_rows, n_cols), dtype=np.float32)
    if split:
        flat = X.reshape(-1)
        return lambda: [_optim.all_finite_memview(flat) for _ in range(n_calls)]
    return lambda: [_optim.array_is_finite(X) for _ in range(n_calls)]


# -- work functions: optimizer alone, inference ---------------------------------------------
OPT_PARAMS = 1_000_000
OPT_HYPER = {"sgd": dict(lr=0.01, momentum=0.9), "adam": dict(lr=1e-3)}


def optimizer_steps(kind, impl, n_calls=10):
    """``n_calls`` updates of a 1,000,000-parameter arena by SGD with momentum ("sgd") or
    Adam, float32. impl: "core" / "numpy" (fastmlp's kernel / its NumPy reference twin, via
    ``opt.step(model)`` on a Dense(999, 1000) model), "ufunc" (the formula in NumPy with
    ``out=``, no temporaries) or "torch" (torch.optim on one tensor)."""
    rng = np.random.default_rng(0)
    grads = rng.standard_normal(OPT_PARAMS, dtype=np.float32) * np.float32(1e-3)
    if impl in ("core", "numpy"):
        m = fm.Sequential([fm.Dense(999, 1000)], seed=0, backend=impl)
        assert m.n_params == OPT_PARAMS
        m.grads[...] = grads
        opt = (fm.SGD if kind == "sgd" else fm.Adam)(**OPT_HYPER[kind])
        return lambda: [opt.step(m) for _ in range(n_calls)]
    if impl == "ufunc":
        return _ufunc_optimizer(kind, rng.standard_normal(OPT_PARAMS, dtype=np.float32),
                                grads, n_calls)
    torch = import_torch()
    p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(OPT_PARAMS, dtype=np.float32)))
    p.grad = torch.from_numpy(grads)
    opt = (torch.optim.SGD if kind == "sgd" else torch.optim.Adam)([p], **OPT_HYPER[kind])
    return lambda: [opt.step() for _ in range(n_calls)]


def _ufunc_optimizer(kind, p, g, n_calls):
    f32 = np.float32
    tmp, m, v = np.empty_like(p), np.zeros_like(p), np.zeros_like(p)
    state = {"t": 0}

    def sgd():                        # b = μ b + g;  p -= lr b
        np.multiply(m, f32(0.9), out=m)
        np.add(m, g, out=m)
        np.multiply(m, f32(0.01), out=tmp)
        np.subtract(p, tmp, out=p)

    def adam():                       # torch.optim.Adam, no weight decay
        state["t"] += 1
        t, b1, b2 = state["t"], 0.9, 0.999
        np.multiply(m, f32(b1), out=m)
        np.multiply(g, f32(1 - b1), out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, f32(b2), out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, f32(1 - b2), out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.multiply(tmp, f32(1 / math.sqrt(1 - b2 ** t)), out=tmp)
        np.add(tmp, f32(1e-8), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, f32(1e-3 / (1 - b1 ** t)), out=tmp)
        np.subtract(p, tmp, out=p)

    step = sgd if kind == "sgd" else adam
    return lambda: [step() for _ in range(n_calls)]


def predictions(impl, n_rows, n_calls=1):
    """``n_calls`` predictions of ``n_rows`` rows on the MNIST shape, float32: fastmlp
    ``model.predict`` ("core" or "numpy") or PyTorch under ``torch.inference_mode()``."""
    X, _ = data("mnist", n_rows)
    if impl in ("core", "numpy"):
        m = model("mnist", impl)
        return lambda: [m.predict(X) for _ in range(n_calls)]
    torch = import_torch()
    net, Xt = torch_model(torch, "mnist").eval(), torch.from_numpy(X)

    def run():
        with torch.inference_mode():
            for _ in range(n_calls):
                net(Xt)
    return run


