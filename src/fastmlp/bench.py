"""``python -m fastmlp bench``: fastmlp next to its NumPy reference, PyTorch, JAX and ONNX
Runtime, in one table.

Every case is built once as a *work function* that does a fixed amount of work (a number of
training steps, one epoch, a number of predictions) when called (``_bench_cases``). The
timer runs ``repeat`` rounds in which every implementation of the case takes a turn (in a
rotating order: on a shared machine whose speed drifts, all of them see the same drift;
each turn is a pause, a warm-up call and the timed call, see ``measure_rounds``). Times
are medians over the rounds (``time.perf_counter``) divided by the units the call holds;
each ratio is the median over the rounds of the two implementations' times *in the same
round*, followed by its range over the rounds in brackets. The pytest-benchmark suite in
``benchmarks/`` times the very same work functions, so the table and the suite measure one
thing.

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

The peers are optional (``pip install ".[bench]"``): one that is not installed (or PyTorch
with ``torch=False``) reads "-", and the line under the row says why. After the table, one
fit of 8 epochs shows the spread of epoch times (max / min).

Headroom: below the table, the rows whose matrix products are counted (training epochs and
steps, predictions) again, as each implementation's GFLOP/s against this machine's peak.
The peak is one more turn in every round of those rows (``peak_work``: the independent FMA
chains of ``fastmlp._blas.fma_peak`` on registers, on the core's threads, nothing a
product could beat), so each share compares two rates of the same round: a shared or
boosting CPU's clock moves by a quarter within a minute. A peer at a fraction f of the
peak cannot be beaten by more than 1/f (the "<=" figure) by any code that does the same
products, however fast its kernels: a target ratio above that figure is out of reach on
this machine.
"""
import contextlib
import os
import sys
import time

import numpy as np

import fastmlp as fm
from fastmlp import _bench_work as work
from fastmlp._bench_cases import Case, cases  # noqa: F401
from fastmlp._bench_work import (SHAPES, busy_core, busy_fit, busy_predict, data,  # noqa: F401
                                 epoch_times, fastmlp_epoch, fastmlp_steps, gemm_calls,
                                 gemm_only, input_check, import_torch, model,
                                 optimizer_steps, predictions, torch_model, torch_train,
                                 trainer, two_models)

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


#: The peers, in the table's column order (implementations that raise ImportError when
#: built are left out of their row: "-").
PEERS = ("numpy", "torch", "jax", "onnxrt")

#: The headroom lines' columns: fastmlp, the core's own products of the same steps alone
#: ("gemm-core": what the step would take if nothing but its products cost time), peers.
HEADROOM_IMPLS = ("fastmlp", "gemm-core", *PEERS)


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


def _build(case, torch_ok):
    """The work functions of a case (built: data made, models compiled), those of peers
    that are not installed (or excluded) left out, with the reason."""
    works, missing = {}, []
    for impl, build in case.work.items():
        if impl == "torch" and not torch_ok:
            continue
        try:
            works[impl] = build()
        except ImportError as e:
            missing.append(f"{impl} left out: {e}")
    return works, missing


def _run(quick, torch_ok, only, file):
    out = []
    print(_header(quick, torch_ok), file=file, flush=True)
    print(_format_row(None), file=file, flush=True)
    for case in cases(quick):
        if only and only not in case.name:
            continue
        works, missing = _build(case, torch_ok)
        once = {"numpy"} & set(works) if case.slow else set()   # slow reference: one cold run
        with busy_core() if case.busy else contextlib.nullcontext():
            rounds, peak = measure_with_peak(
                {impl: w for impl, w in works.items() if impl not in once}, case.repeat,
                case.flops)
        for impl in once:
            rounds[impl] = [measure(works[impl], repeat=1, warmup=0)] * case.repeat
        out.append(_row(case, {impl: [x / case.units for x in ts] for impl, ts in rounds.items()},
                        peak))
        print(_format_row(out[-1]), file=file, flush=True)
        for why in missing:
            print(f"  ({why})", file=file, flush=True)
    if any("gflops_by" in row for row in out):
        out.append(_headroom(out, file))
    if not only or "stability" in only:
        out.append(_stability(quick, file))
    return out


#: Seconds of the FMA chains that measure the peak in each round of a case with FLOPs.
PEAK_S = 0.15


def peak_work(seconds=PEAK_S):
    """The FMA chains of ``fastmlp._blas.fma_peak`` on the core's threads as a work function
    of fixed FLOPs (sized now to take about ``seconds``), and those FLOPs; ``(None, 0.0)``
    where no kernel runs. Timed in the rounds of a case beside its implementations, it
    gives the peak *of that round*: a shared or boosting CPU's clock moves by a quarter
    within a minute, and a peak measured at another moment would not bound the rows."""
    from fastmlp import _blas
    threads, iters = fm.get_num_threads(), _blas.fma_iters(seconds)
    flops = _blas.fma_flops(threads, iters)
    if not flops:
        return None, 0.0
    return (lambda: _blas.fma_chains(threads, iters)), flops


def measure_with_peak(works, repeat, flops):
    """``measure_rounds`` of ``works`` with, for a case whose products are counted
    (``flops``) where a kernel runs, ``peak_work`` as one more turn in every round;
    returns the rounds without that turn and each round's peak in GFLOP/s (none: [])."""
    work, peak_flops = peak_work() if flops else (None, 0.0)
    rounds = measure_rounds(works if work is None else {**works, "peak": work}, repeat=repeat)
    return rounds, [peak_flops / x / 1e9 for x in rounds.pop("peak", [])]


def of_peak(t, flops, peak_gflops, half=False):
    """Median over the rounds of each implementation's GFLOP/s (``flops`` over its time
    per unit in ``t``) over the peak of the same round (``peak_gflops``; ``half``: a
    float64 case, whose peak is half the float32 one)."""
    top = np.asarray(peak_gflops) / (2.0 if half else 1.0)
    return {impl: float(np.median(flops / np.asarray(ts) / 1e9 / top))
            for impl, ts in t.items() if impl in HEADROOM_IMPLS}


def headroom(rows):
    """For each row whose products are counted against the peak (``of_peak_by``): every
    implementation's GFLOP/s (median time), its share of the peak (median over the rounds
    of the share within a round) and ``at_most`` = 1 / that share: the largest ratio over
    that implementation any code doing the same products could have reached in the run."""
    return {row["case"]: {impl: {"gflops": row["gflops_by"][impl], "of_peak": f,
                                 "at_most": 1.0 / f}
                          for impl, f in row["of_peak_by"].items()}
            for row in rows if row.get("of_peak_by")}


def _headroom(rows, file):
    """Print the headroom lines (the peak was measured in every round of their rows)."""
    from fastmlp import _blas
    out = {"case": "headroom", "rows": headroom(rows), "threads": fm.get_num_threads()}
    peaks = [row["peak_gflops"] for row in rows if row.get("of_peak_by")]
    if not peaks:
        print("\nheadroom: no FMA kernel runs on this machine, no peak to compare with",
              file=file, flush=True)
        return out
    print(f"\nheadroom: each row's peak measured in its own rounds ({_blas.gemm_isa()} "
          f"FMA chains on registers, {out['threads']} threads; float32 GFLOP/s, float64 "
          f"half): {min(peaks):.1f}-{max(peaks):.1f} over the run. Per implementation: "
          "GFLOP/s (the FLOPs of its matrix products / its time), % of the peak of the same "
          "round, and <=: the largest ratio over it any code doing the same products could "
          "reach (fastmlp's products alone over a peer's %: the most fastmlp could reach "
          "with every other part of its step free)", file=file, flush=True)
    cols = "{:<26} {:>6} " + " ".join(["{:>22}"] * len(HEADROOM_IMPLS))
    print(cols.format("case", "peak", "fastmlp", "its products alone", *PEERS),
          file=file, flush=True)
    for row in rows:
        by = out["rows"].get(row["case"])
        if not by:
            continue
        cells = ["-" if impl not in by else
                 f"{by[impl]['gflops']:.1f} {100 * by[impl]['of_peak']:.0f} %"
                 + ("" if impl in HEADROOM_IMPLS[:2] else f" <={by[impl]['at_most']:.2f}x")
                 for impl in HEADROOM_IMPLS]
        print(cols.format(row["case"], f"{row['peak_gflops']:.1f}", *cells).rstrip(),
              file=file, flush=True)
    return out


def _stability(quick, file):
    """8 consecutive epochs of one fit (MNIST shape, batch 32): max / min epoch time."""
    times = epoch_times("mnist", 32, epochs=8, n_rows=2_000 if quick else 20_000)
    spread = max(times) / min(times)
    print(f"stability: 8 epochs of one fit, mnist b32: "
          f"{' '.join(f'{1e3 * t:.0f}' for t in times)} ms; max/min {spread:.2f}",
          file=file, flush=True)
    return {"case": "stability mnist b32 8 epochs", "epoch_s": times, "max_over_min": spread}


def _row(case, t, peak=()):
    """Seconds per unit (medians over rounds) and ratios (median and range over rounds of
    competitor / fastmlp, each round timed side by side); with ``peak`` (GFLOP/s of each
    round's FMA chains), the shares of it for the headroom lines."""
    med = {impl: float(np.median(ts)) for impl, ts in t.items()}
    f = med["fastmlp"]
    ratio = lambda impl: round_ratios(t, impl) if impl in t else None
    row = {"case": case.name, "unit": case.unit, "fastmlp_s": f, "note": ""}
    for impl in PEERS:
        row[f"vs_{impl}"] = ratio(impl)[0] if impl in t else None
        row[f"vs_{impl}_range"] = ratio(impl)[1:] if impl in t else None
    row["gemm_share"] = ratio("gemm")[0] if "gemm" in t else None
    if case.flops:       # for the headroom lines
        row["dtype"] = case.dtype
        row["gflops_by"] = {impl: case.flops / med[impl] / 1e9
                            for impl in HEADROOM_IMPLS if impl in med}
        if len(peak):
            row["peak_gflops"] = float(np.median(peak))
            row["of_peak_by"] = of_peak(t, case.flops, peak, case.dtype == "float64")
    if case.note == "ufunc":
        row["note"] = f"vs NumPy out= ufuncs: {ratio('ufunc')[0]:.2f}x"
    elif case.note.startswith("rows/s:"):
        row["note"] = f"{int(case.note[7:]) / f:,.0f} rows/s"
    elif case.note == "gemm-core":
        row["gemm_core_share"] = ratio("gemm-core")[0]
        row["note"] = f"the core's own GEMMs alone: {100 * ratio('gemm-core')[0]:.0f} % of a step"
    elif case.note == "peak":
        row["gflops"] = case.flops / f / 1e9
        row["gemm_core_share"] = ratio("gemm-core")[0]
        row["note"] = (f"{row['gflops']:.0f} GFLOP/s in the step; its GEMMs alone "
                       f"{case.flops / med['gemm-core'] / 1e9:.0f} GFLOP/s")
    elif case.note == "gflops":
        row["gflops"] = case.flops / f / 1e9
        row["note"] = (f"core {row['gflops']:.0f} GFLOP/s, NumPy "
                       f"{case.flops / med['gemm'] / 1e9:.0f} GFLOP/s")
    elif case.note == "serial":
        row["note"] = f"one after the other / threads: {ratio('serial')[0]:.2f}x"
    elif case.note == "blas":
        row["note"] = f"vs the same call through scipy's BLAS: {ratio('blas')[0]:.2f}x"
    elif case.note == "sequential":
        row["note"] = (f"the same chain as a Sequential / as a graph Model: "
                       f"{ratio('sequential')[0]:.2f}x")
    elif case.note == "ieee":
        row["note"] = (f"IEEE subnormals kept (set_flush_denormal(False)) / flushed: "
                       f"{ratio('ieee')[0]:.2f}x")
    elif case.note == "fixed":
        row["note"] = (f"adaptive threads vs n_threads=2: {ratio('fixed2')[0]:.2f}x, "
                       f"vs n_threads=1: {ratio('fixed1')[0]:.2f}x")
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
    from fastmlp.sysinfo import config
    cfg = config()
    tile = cfg["gemm_tile_f32"]
    kernels = f"{cfg['gemm_isa']} {tile[0]} x {tile[1]}" if tile[0] else "BLAS (no kernel runs)"
    flags = ": " + " ".join(cfg["cpu_flags"]) if cfg["cpu_flags"] else ""
    return (f"fastmlp {fm.__version__} bench{' --quick' if quick else ''}: "
            f"{cfg['cpu']} ({platform.machine()}, {cfg['cores']} CPUs{flags}), "
            f"GEMM kernels {kernels}; "
            f"{load}; BLAS threads: {blas}; "
            f"PyTorch: {'%d threads' % work.TORCH_THREADS if torch_ok else 'not used'}\n"
            "times: median per unit; ratios: their time / fastmlp's (>1: fastmlp faster); "
            "GEMM share: NumPy matmuls alone / fastmlp")


def _fmt_time(s):
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= scale:
            return f"{s / scale:.3g} {suffix}"
    return f"{s / 1e-9:.3g} ns"


def _format_row(row):
    cols = "{:<26} {:<10} {:>9} {:>18} {:>18} {:>18} {:>18} {:>10}  {}"
    if row is None:
        head = cols.format("case", "unit", "fastmlp", "vs numpy", "vs torch", "vs jax",
                           "vs onnxrt", "GEMM share", "note")
        return head + "\n" + "-" * len(head.rstrip())

    def ratio(impl):
        r, rng = row[f"vs_{impl}"], row[f"vs_{impl}_range"]
        return "-" if r is None else f"{r:.2f}x [{rng[0]:.2f}-{rng[1]:.2f}]"
    share = "-" if row["gemm_share"] is None else f"{100 * row['gemm_share']:.0f} %"
    return cols.format(row["case"], row["unit"], _fmt_time(row["fastmlp_s"]),
                       *(ratio(impl) for impl in PEERS), share, row["note"]).rstrip()
