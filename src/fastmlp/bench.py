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
import contextlib
import os
import sys
import time
from typing import NamedTuple

import numpy as np

import fastmlp as fm
from fastmlp import _bench_work as work
from fastmlp._bench_work import (SHAPES, busy_core, busy_fit, data,  # noqa: F401
                                 fastmlp_epoch, fastmlp_steps, gemm_calls, gemm_only,
                                 input_check,
                                 import_torch, model, optimizer_steps, predictions,
                                 torch_model, torch_train, trainer, two_models)

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
#: spin for a while after their last job (OpenBLAS's measured up to ~0.5-1 s) and would steal cores
#: from the next implementation.
SETTLE_S = 1.0


def measure_rounds(works, repeat=5):
    """Seconds of each work function in ``works`` (name -> function) in each of ``repeat``
    rounds (name -> list). In every round each function takes its turn, in an order rotated
    from round to round: a pause (``SETTLE_S``, the previous turn's spinning threads go to
    sleep), one untimed call (its caches and thread pool warm again), one timed call. A
    change in the machine's speed (other tenants, clock) then hits every implementation
    alike, and none runs on the leftovers of another."""
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
    return times


def measure_interleaved(works, repeat=5):
    """Median seconds of each work function, timed by ``measure_rounds``."""
    return {name: float(np.median(ts)) for name, ts in measure_rounds(works, repeat).items()}


def round_ratios(rounds, impl, base="fastmlp"):
    """``(median, min, max)`` over the rounds of ``rounds[impl][r] / rounds[base][r]``: the
    ratio of two implementations timed side by side in one round, and its spread."""
    r = np.asarray(rounds[impl]) / np.asarray(rounds[base])
    return float(np.median(r)), float(r.min()), float(r.max())


class Case(NamedTuple):
    """One row of the table. ``work`` maps an implementation ("fastmlp", "numpy", "torch",
    "gemm"; "gemm-core", "ufunc" and "serial" feed the note) to a builder of its work
    function, which does ``units`` units per call. ``slow``: the NumPy reference runs once,
    unwarmed. ``busy``: measured while another process keeps a core busy."""
    name: str
    unit: str
    units: int
    work: dict
    repeat: int
    slow: bool = False
    busy: bool = False
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
    for label, (m, n, k, ta) in (("fwd b32", (32, 512, 784, False)),
                                 ("dW b256", (784, 512, 256, True))):
        rows.append(Case(f"GEMM {m}x{n}x{k} {label}", "call", 10, {
            "fastmlp": lambda s=(m, n, k, ta): gemm_calls("core", *s),
            "gemm": lambda s=(m, n, k, ta): gemm_calls("numpy", *s),
            "blas": lambda s=(m, n, k, ta): gemm_calls("blas", *s),
        }, 2 * rep, note="blas"))
    rows.append(Case("mnist b32, a core busy", "epoch/6k", 1, {
        "fastmlp": lambda: busy_fit(None), "fixed2": lambda: busy_fit(2),
        "fixed1": lambda: busy_fit(1)}, rep, busy=True, note="fixed"))
    return rows


def run(quick=False, torch=True, only=None, threads=None, file=None):
    """Time every case (those whose name contains ``only``, if given) and print one table.

    ``threads``: limit fastmlp's core, the BLAS thread pools (threadpoolctl) and PyTorch
    to that many threads (default: the core and BLAS as configured, PyTorch
    ``TORCH_THREADS``).
    Returns the rows as dicts (seconds per unit; ratios as competitor / fastmlp).
    """
    from threadpoolctl import threadpool_limits
    saved = work.TORCH_THREADS
    work.TORCH_THREADS = saved if threads is None else int(threads)
    try:
        with threadpool_limits(limits=threads), fm.limit_threads(threads):
            return _run(quick, bool(torch) and import_torch() is not None, only,
                        file or sys.stdout)
    finally:
        work.TORCH_THREADS = saved


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
        with busy_core() if case.busy else contextlib.nullcontext():
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
        row["note"] = f"the core's own GEMMs alone: {100 * ratio('gemm-core'):.0f} % of a step"
    elif case.note == "serial":
        row["note"] = f"one after the other / threads: {ratio('serial'):.2f}x"
    elif case.note == "blas":
        row["note"] = f"vs the same call through scipy's BLAS: {ratio('blas'):.2f}x"
    elif case.note == "fixed":
        row["note"] = (f"adaptive threads vs n_threads=2: {ratio('fixed2'):.2f}x, "
                       f"vs n_threads=1: {ratio('fixed1'):.2f}x")
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
            f"PyTorch: {'%d threads' % work.TORCH_THREADS if torch_ok else 'not used'}\n"
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
