"""``python -m fastmlp bench``: fastmlp next to the NumPy reference and PyTorch, in one table.

Every case is built once as a *work function* that does a fixed amount of work (a number of
training steps, one epoch, a number of predictions) when called. The timer runs
``repeat`` rounds in which every implementation of the case takes a turn (in a rotating
order: on a shared machine whose speed drifts, all of them see the same drift; each turn
is a pause, a warm-up call and the timed call, see ``measure_interleaved``), and reports
the medians (``time.perf_counter``) divided by the units the call holds. The pytest-benchmark suite in ``benchmarks/`` times the very same
work functions, so the table and the suite measure one thing.

Ratios are *competitor time / fastmlp time*: above 1, fastmlp is faster. "GEMM share" is
the time NumPy alone takes for the matrix products of the same steps (forward ``A·W`` per
layer; backward ``dW = Aᵀ·dZ`` per layer and ``dA = dZ·Wᵀ`` for every layer but the first,
as the core does) over fastmlp's time: near 100 %, a step runs at the speed of the BLAS;
the rest goes to elementwise work, the loss, the optimizer and overhead. NumPy and scipy
ship separate OpenBLAS builds and the core calls scipy's; the note repeats the share with
the same products through the core's own GEMM wrapper, which separates "fastmlp's overhead"
from "the other BLAS build".

How the step cases are timed: ``fastmlp_steps`` runs the code that ``Trainer.fit`` runs per
epoch (``fastmlp._epoch.EpochLoop``) over ``n_steps * batch`` rows in order. With the core,
that is one call of the fused runner (``fastmlp._train.Runner.run``) doing all the steps —
gather, forward, loss, backward, update — without the GIL; the per-call cost (binding the
optimizer, checking the row indices) is shared by the steps. With the NumPy reference it is
the per-step Python loop of the same module. PyTorch runs the usual ``zero_grad``, forward,
loss, ``backward``, ``step`` on the same batches.

PyTorch is optional: without it (or with ``torch=False``) its column reads "-".
"""
import math
import os
import sys
import threading
import time
from typing import NamedTuple

import numpy as np

import fastmlp as fm
from fastmlp._epoch import EpochLoop

#: name -> (layer sizes, hidden activation, loss: "mse" or "ce")
SHAPES = {
    "tiny": ([2, 16, 16, 1], "tanh", "mse"),
    "mnist": ([784, 512, 256, 10], "relu", "ce"),
    "wide": ([1024, 2048, 2048, 1024], "relu", "mse"),
    "small": ([32, 64, 64, 4], "relu", "ce"),
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


def model(shape, backend="core", dtype="float32", seed=0):
    """The shape as a fastmlp Sequential of Dense layers (no activation on the output)."""
    sizes, act, _ = SHAPES[shape]
    last = len(sizes) - 2
    layers = [fm.Dense(a, b, activation=act if i < last else None)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return fm.Sequential(layers, dtype=dtype, seed=seed, backend=backend)


def trainer(shape, backend="core", dtype="float32", seed=0):
    """A Trainer with Adam(lr=1e-3) and the shape's loss."""
    loss = fm.CrossEntropyLoss() if SHAPES[shape][2] == "ce" else fm.MSELoss()
    return fm.Trainer(model(shape, backend, dtype, seed), loss, fm.Adam(lr=1e-3))


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
    if backend == "core" and not loop.fused:
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


def gemm_only(shape, dtype="float32", batch=32, n_rows=20_000, blas="numpy"):
    """The matrix products of the training steps over ``n_rows`` rows (the last batch may be
    smaller), into preallocated arrays. ``blas="numpy"``: NumPy alone (``np.matmul(...,
    out=)``, NumPy's OpenBLAS); ``"core"``: the same products through fastmlp's own GEMM
    wrapper (``fastmlp._blas.gemm_memview``: the BLAS scipy links, which the core calls;
    ``dW`` accumulates, as in the core)."""
    sizes = SHAPES[shape][0]
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    Ws = [rng.standard_normal((a, b), dtype=dt) for a, b in zip(sizes[:-1], sizes[1:])]
    A = [rng.standard_normal((batch, n), dtype=dt) for n in sizes]     # A[0] is the input
    dZ = [rng.standard_normal((batch, n), dtype=dt) for n in sizes[1:]]
    dW = [np.zeros_like(W) for W in Ws]
    dA = [np.empty((batch, n), dt) for n in sizes[:-1]]
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
                gemm(A[i][:B], dZ[i][:B], dW[i], trans_a=True, beta=1.0)
                if i:
                    gemm(dZ[i][:B], Ws[i], dA[i][:B], trans_b=True)
    return run_core if blas == "core" else run_numpy


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


# -- the quick table ------------------------------------------------------------------------
def measure(work, repeat=5, warmup=1):
    """Median seconds of ``work()`` over ``repeat`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


#: Pause before each implementation's turn in an interleaved measurement: thread pools
#: spin for a while after their last job (OpenBLAS's for ~0.1 s) and would steal cores
#: from the next implementation.
SETTLE_S = 0.5


def measure_interleaved(works, repeat=5):
    """Median seconds of each work function in ``works`` (name -> function), timed in
    rounds. In every round each function takes its turn, in an order rotated from round
    to round: a pause (``SETTLE_S``, the previous turn's spinning threads go to sleep),
    one untimed call (its caches and thread pool warm again), one timed call. A change in
    the machine's speed (other tenants, clock) then hits every implementation alike, and
    none runs on the leftovers of another."""
    names = list(works)
    times = {name: [] for name in names}
    for r in range(repeat):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(SETTLE_S)
            works[name]()
            t0 = time.perf_counter()
            works[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


class Case(NamedTuple):
    """One row of the table. ``work`` maps an implementation ("fastmlp", "numpy", "torch",
    "gemm"; "gemm-core", "ufunc" and "serial" feed the note) to a builder of its work
    function, which does ``units`` units per call. ``slow``: the NumPy reference runs once,
    unwarmed."""
    name: str
    unit: str
    units: int
    work: dict
    repeat: int
    slow: bool = False
    note: str = ""


def cases(quick=False):
    """The table's rows (``Case``), smaller epochs and fewer repetitions when ``quick``."""
    n_epoch, n_wide, n_thr = (2_000, 1, 5_000) if quick else (20_000, 3, 20_000)
    rep = 3 if quick else 7
    core = {"fastmlp": "core"}
    rows = []
    for b in (1, 8, 64):
        rows.append(Case(f"tiny step b{b}", "step", 100, {
            "fastmlp": lambda b=b: fastmlp_steps("tiny", batch=b, n_steps=100),
            "numpy": lambda b=b: fastmlp_steps("tiny", "numpy", batch=b, n_steps=100),
            "torch": lambda b=b: torch_train("tiny", batch=b, n_rows=100 * b, shuffle=False),
        }, rep))
    for dt in ("float32", "float64"):
        for b in (32, 128, 256):
            kw = dict(dtype=dt, batch=b, n_rows=n_epoch)
            rows.append(Case(f"mnist epoch b{b} f{dt[5:]}", f"epoch/{n_epoch // 1000}k", 1, {
                "fastmlp": lambda kw=kw: fastmlp_epoch("mnist", **kw),
                "numpy": lambda kw=kw: fastmlp_epoch("mnist", "numpy", **kw),
                "torch": lambda kw=kw: torch_train("mnist", **kw),
                "gemm": lambda kw=kw: gemm_only("mnist", **kw),
                "gemm-core": lambda kw=kw: gemm_only("mnist", blas="core", **kw),
            }, 3, slow=not quick, note="gemm-core"))
    rows.append(Case("wide step b256", "step", n_wide, {
        "fastmlp": lambda: fastmlp_steps("wide", batch=256, n_steps=n_wide),
        "numpy": lambda: fastmlp_steps("wide", "numpy", batch=256, n_steps=n_wide),
        "torch": lambda: torch_train("wide", batch=256, n_rows=256 * n_wide, shuffle=False),
        "gemm": lambda: gemm_only("wide", batch=256, n_rows=256 * n_wide),
        "gemm-core": lambda: gemm_only("wide", batch=256, n_rows=256 * n_wide, blas="core"),
    }, 3, note="gemm-core"))
    for kind, label in (("sgd", "SGD-momentum"), ("adam", "Adam")):
        rows.append(Case(f"{label} 1M params", "update", 10, {
            impl: (lambda impl=impl, kind=kind: optimizer_steps(kind, core.get(impl, impl)))
            for impl in ("fastmlp", "numpy", "ufunc", "torch")}, 2 * rep, note="ufunc"))
    for n, calls in ((1, 200), (10_000, 1)):
        rows.append(Case(f"predict mnist {n:,} row{'s' * (n > 1)}", "call", calls, {
            impl: (lambda impl=impl, n=n, calls=calls:
                   predictions(core.get(impl, impl), n, calls))
            for impl in ("fastmlp", "numpy", "torch")}, 2 * rep, note=f"rows/s:{n}"))
    rows.append(Case("2 small models, 2 threads", f"2 fits/{n_thr // 1000}k", 1, {
        "fastmlp": lambda: two_models(True, n_thr), "serial": lambda: two_models(False, n_thr),
    }, rep, note="serial"))
    return rows


def run(quick=False, torch=True, only=None, threads=None, file=None):
    """Time every case (those whose name contains ``only``, if given) and print one table.

    ``threads``: limit the BLAS thread pools (threadpoolctl) and PyTorch to that many
    threads (default: BLAS as configured, PyTorch ``TORCH_THREADS``).
    Returns the rows as dicts (seconds per unit; ratios as competitor / fastmlp).
    """
    global TORCH_THREADS
    from threadpoolctl import threadpool_limits
    saved = TORCH_THREADS
    TORCH_THREADS = saved if threads is None else int(threads)
    try:
        with threadpool_limits(limits=threads):
            return _run(quick, bool(torch) and import_torch() is not None, only,
                        file or sys.stdout)
    finally:
        TORCH_THREADS = saved


def _run(quick, torch_ok, only, file):
    out = []
    print(_header(quick, torch_ok), file=file, flush=True)
    print(_format_row(None), file=file, flush=True)
    for case in cases(quick):
        if only and only not in case.name:
            continue
        impls = {impl: build for impl, build in case.work.items()
                 if torch_ok or impl != "torch"}
        once = {"numpy"} if case.slow else set()     # the slow reference: one cold run
        t = measure_interleaved({impl: build() for impl, build in impls.items()
                                 if impl not in once}, repeat=case.repeat)
        t.update({impl: measure(impls[impl](), repeat=1, warmup=0) for impl in once})
        t = {impl: sec / case.units for impl, sec in t.items()}
        out.append(_row(case, t))
        print(_format_row(out[-1]), file=file, flush=True)
    return out


def _row(case, t):
    f = t["fastmlp"]
    ratio = lambda impl: t[impl] / f if impl in t else None
    row = {"case": case.name, "unit": case.unit, "fastmlp_s": f, "vs_numpy": ratio("numpy"),
           "vs_torch": ratio("torch"), "gemm_share": ratio("gemm"), "note": ""}
    if case.note == "ufunc":
        row["note"] = f"vs NumPy out= ufuncs: {ratio('ufunc'):.2f}x"
    elif case.note.startswith("rows/s:"):
        row["note"] = f"{int(case.note[7:]) / f:,.0f} rows/s"
    elif case.note == "gemm-core":
        row["gemm_core_share"] = ratio("gemm-core")
        row["note"] = f"GEMM share with the core's BLAS: {100 * ratio('gemm-core'):.0f} %"
    elif case.note == "serial":
        row["note"] = f"one after the other / threads: {ratio('serial'):.2f}x"
    return row


def _header(quick, torch_ok):
    import platform
    from threadpoolctl import threadpool_info
    try:
        load = "load %.2f %.2f %.2f" % os.getloadavg()
    except (AttributeError, OSError):
        load = "load ?"
    blas = ", ".join(f"{p['prefix']} {p['num_threads']}" for p in threadpool_info()
                     if p["user_api"] == "blas")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"fastmlp {fm.__version__} bench{' --quick' if quick else ''}: "
            f"{platform.machine()}, {cpus} CPUs, {load}; BLAS threads: {blas}; "
            f"PyTorch: {'%d threads' % TORCH_THREADS if torch_ok else 'not used'}\n"
            "times: median per unit; ratios: their time / fastmlp's (>1: fastmlp faster); "
            "GEMM share: NumPy matmuls alone / fastmlp")


def _fmt_time(s):
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.3g} {suffix}"
    return f"{s / 1e-9:.3g} ns"


def _format_row(row):
    cols = "{:<28} {:<11} {:>10} {:>9} {:>9} {:>10}  {}"
    if row is None:
        head = cols.format("case", "unit", "fastmlp", "vs numpy", "vs torch", "GEMM share",
                           "note")
        return head + "\n" + "-" * len(head.rstrip())
    ratio = lambda r: "-" if r is None else f"{r:.2f}x"
    share = "-" if row["gemm_share"] is None else f"{100 * row['gemm_share']:.0f} %"
    return cols.format(row["case"], row["unit"], _fmt_time(row["fastmlp_s"]),
                       ratio(row["vs_numpy"]), ratio(row["vs_torch"]), share,
                       row["note"]).rstrip()
