"""The rows of ``python -m fastmlp bench``: for each case, the builders of the work
functions of every implementation (``fastmlp._bench_work`` and ``fastmlp._bench_peers``).

Implementations: "fastmlp" (the core), "numpy" (its NumPy reference), the peers "torch"
(eager), "jax" (jit + lax.scan epoch, optax Adam) and "onnxrt" (ONNX Runtime, inference),
and helpers that feed the note column ("gemm": NumPy's matmuls of the same steps alone,
"gemm-core": the core's own GEMMs alone, "ufunc", "serial", "blas", "fixed1/2").
"""
from typing import NamedTuple

from fastmlp import _bench_graph as graph
from fastmlp import _bench_peers as peers
from fastmlp._bench_work import (busy_fit, fastmlp_epoch, fastmlp_steps, gemm_calls,
                                 gemm_only, optimizer_steps, predictions, subnormal_fit,
                                 torch_train, two_models)


class Case(NamedTuple):
    """One row of the table. ``work`` maps an implementation to a builder of its work
    function, which does ``units`` units per call. ``slow``: the NumPy reference runs once,
    unwarmed. ``busy``: measured while another process keeps a core busy. ``flops``: the
    multiply-adds x 2 of the matrix products of one unit, in ``dtype`` (for the % of peak
    note and the headroom lines)."""
    name: str
    unit: str
    units: int
    work: dict
    repeat: int
    slow: bool = False
    busy: bool = False
    note: str = ""
    flops: float = 0.0
    dtype: str = "float32"


def step_flops(sizes, batch):
    """FLOPs of the products of one training step: forward A·W and backward Aᵀ·dZ for
    every layer, dZ·Wᵀ for every layer but the first."""
    mac = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * batch * (2 * sum(mac) + sum(mac[1:]))


def forward_flops(sizes, rows):
    """FLOPs of the products of a prediction of ``rows`` rows: A·W for every layer."""
    return 2.0 * rows * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _training(shape, dtype, batch, n_rows, numpy=True, gemm=True, steps=False):
    """fastmlp, its reference, torch and jax on one epoch (or ``steps``: rows in order)."""
    if steps:
        n = n_rows // batch
        work = {"fastmlp": lambda: fastmlp_steps(shape, dtype=dtype, batch=batch, n_steps=n),
                "torch": lambda: torch_train(shape, dtype, batch, n_rows, shuffle=False),
                "jax": lambda: peers.jax_steps(shape, dtype, batch, n)}
        if numpy:
            work["numpy"] = lambda: fastmlp_steps(shape, "numpy", dtype, batch, n)
    else:
        kw = dict(dtype=dtype, batch=batch, n_rows=n_rows)
        work = {"fastmlp": lambda: fastmlp_epoch(shape, **kw),
                "torch": lambda: torch_train(shape, **kw),
                "jax": lambda: peers.jax_train(shape, **kw)}
        if numpy:
            work["numpy"] = lambda: fastmlp_epoch(shape, "numpy", **kw)
    if gemm:
        work["gemm"] = lambda: gemm_only(shape, dtype, batch, n_rows)
        work["gemm-core"] = lambda: gemm_only(shape, dtype, batch, n_rows, blas="core")
    return work


def cases(quick=False):
    """The table's rows (``Case``), smaller epochs and fewer repetitions when ``quick``."""
    from fastmlp._bench_work import SHAPES
    n_epoch, n_wide, n_thr = (2_000, 1, 5_000) if quick else (20_000, 3, 20_000)
    rep = 3 if quick else 7
    core = {"fastmlp": "core"}
    mnist = SHAPES["mnist"][0]
    rows = []
    for b in (1, 8, 64):
        rows.append(Case(f"tiny step b{b}", "step", 100, _training(
            "tiny", "float32", b, 100 * b, gemm=False, steps=True), rep))
    rows.append(Case("tiny4 step b8", "step", 100, _training(
        "tiny4", "float32", 8, 800, gemm=False, steps=True), rep))
    for dt in ("float32", "float64"):
        for b in (32, 128, 256):
            # FLOPs of n_epoch rows (JAX's scan drops the last partial batch: at most
            # b - 1 rows fewer, 0.2 % at b256, counted as if it did them)
            rows.append(Case(f"mnist epoch b{b} f{dt[5:]}", f"epoch/{n_epoch // 1000}k", 1,
                             _training("mnist", dt, b, n_epoch), 3 if quick else 5,
                             slow=not quick, note="gemm-core", dtype=dt,
                             flops=step_flops(mnist, 1) * n_epoch))
    rows.append(Case("wide step b256", "step", n_wide, _training(
        "wide", "float32", 256, 256 * n_wide, numpy=False, steps=True), 3 if quick else 5,
        note="peak", flops=step_flops(SHAPES["wide"][0], 256)))
    for shape, b in (("tabular", 8), ("small", 16), ("medium", 128), ("regress", 64),
                     ("deep", 64), ("mnist", 512)):
        rows.append(Case(f"sweep {shape} b{b}", f"epoch/{n_epoch // 1000}k", 1, _training(
            shape, "float32", b, n_epoch, numpy=False, gemm=False), 3 if quick else 5,
            flops=step_flops(SHAPES[shape][0], 1) * n_epoch))
    rows.append(Case("graph 2-in 2-head b64", f"epoch/{n_epoch // 1000}k", 1, {
        "fastmlp": lambda: graph.fastmlp_graph(64, n_epoch),
        "torch": lambda: graph.torch_graph(64, n_epoch),
        "jax": lambda: graph.jax_graph(64, n_epoch)}, 3 if quick else 5))
    rows.append(Case("mnist chain as graph b32", f"epoch/{n_epoch // 1000}k", 1, {
        "fastmlp": lambda: graph.chain(True, n_rows=n_epoch),
        "sequential": lambda: graph.chain(False, n_rows=n_epoch)}, 3 if quick else 5,
        note="sequential"))
    rows.append(Case("sgemm 2048^3 (peak)", "call", 3, {
        "fastmlp": lambda: gemm_calls("core", 2048, 2048, 2048, n_calls=3),
        "gemm": lambda: gemm_calls("numpy", 2048, 2048, 2048, n_calls=3),
    }, rep, note="gflops", flops=2.0 * 2048 ** 3))
    for kind, label in (("sgd", "SGD-momentum"), ("adam", "Adam")):
        rows.append(Case(f"{label} 1M params", "update", 10, {
            impl: (lambda impl=impl, kind=kind: optimizer_steps(kind, core.get(impl, impl)))
            for impl in ("fastmlp", "numpy", "ufunc", "torch")}, rep, note="ufunc"))
    # Predictions take twice the rounds (plus one): a call of 10,000 rows lasts ~30 ms, and
    # the median of 7 rounds, whose ratios spread by +-15 %, moved by +-0.05 from run to
    # run. Still one call a round: three in a row measured ONNX Runtime 4 % slower a call
    # and fastmlp 2 % faster than one call after the pause (not what a lone call costs).
    for n, calls in ((1, 200), (10_000, 1)):
        work = {impl: (lambda impl=impl, n=n, calls=calls: predictions(core.get(impl, impl), n, calls))
                for impl in ("fastmlp", "numpy", "torch")}
        work["onnxrt"] = lambda n=n, calls=calls: peers.ort_predictions(n, calls)
        work["jax"] = lambda n=n, calls=calls: peers.jax_predictions(n, calls)
        rows.append(Case(f"predict mnist {n:,} row{'s' * (n > 1)}", "call", calls, work,
                         2 * rep + 1, note=f"rows/s:{n}", flops=forward_flops(mnist, n)))
    rows.append(Case("2 small models, 2 threads", f"2 fits/{n_thr // 1000}k", 1, {
        "fastmlp": lambda: two_models(True, n_thr), "serial": lambda: two_models(False, n_thr),
    }, rep, note="serial"))
    for label, (m, n, k, ta) in (("fwd b32", (32, 512, 784, False)),
                                 ("dW b256", (784, 512, 256, True))):
        rows.append(Case(f"GEMM {m}x{n}x{k} {label}", "call", 10, {
            "fastmlp": lambda s=(m, n, k, ta): gemm_calls("core", *s),
            "gemm": lambda s=(m, n, k, ta): gemm_calls("numpy", *s),
            "blas": lambda s=(m, n, k, ta): gemm_calls("blas", *s),
        }, rep, note="blas"))
    rows.append(Case("mnist b32, subnormals", f"epoch/{n_epoch // 1000}k", 1, {
        "fastmlp": lambda: subnormal_fit(True, n_rows=n_epoch),
        "ieee": lambda: subnormal_fit(False, n_rows=n_epoch)}, 3 if quick else 5,
        note="ieee"))
    rows.append(Case("mnist b32, a core busy", "epoch/6k", 1, {
        "fastmlp": lambda: busy_fit(None), "fixed2": lambda: busy_fit(2),
        "fixed1": lambda: busy_fit(1)}, rep, busy=True, note="fixed"))
    return rows
