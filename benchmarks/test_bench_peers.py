"""fastmlp against the strongest peers, as ratios measured in one run: JAX (the step under
``jax.jit``, the epoch under ``jax.lax.scan``, optax Adam), PyTorch eager and ONNX Runtime
(inference), for the shapes of issue 12 and a sweep of untuned shapes.

Each test times the implementations of one case in interleaved rounds
(``fastmlp.bench.measure_rounds``: a settle pause, a warm-up call and a timed call per
implementation per round, order rotated), then stores, in ``extra_info``, each peer's
ratio (its time / fastmlp's time in the same round: > 1 means fastmlp is faster) as the
median over the rounds and its range, and prints them; for the cases whose products are
counted, also each one's GFLOP/s and its share of the FMA peak timed in the same round
(``bench.measure_with_peak``; ``bench`` prints the same as its headroom lines).
pytest-benchmark then times fastmlp's own work function alone, for its usual statistics.
No assertion on times: a ratio is a measurement, not a test. Peers that are not installed
are skipped with the reason (``pip install ".[bench]"``, ``pip install torch==2.13.0``).
"""
import statistics

import pytest

from fastmlp import _bench_cases, bench

#: issue 12's goals name these cases; the sweep covers shapes nobody tuned for
CASES = ["tiny4 step b8", "mnist epoch b32 f32", "mnist epoch b128 f32", "mnist epoch b256 f32",
         "mnist epoch b32 f64", "mnist epoch b128 f64", "mnist epoch b256 f64", "wide step b256",
         "sweep tabular b8", "sweep small b16", "sweep medium b128", "sweep regress b64",
         "sweep deep b64", "sweep mnist b512", "predict mnist 1 row",
         "predict mnist 10,000 rows", "sgemm 2048^3 (peak)"]
PEERS = ("torch", "jax", "onnxrt", "gemm")


def _case(name):
    return next(c for c in _bench_cases.cases(quick=False) if c.name == name)


@pytest.mark.parametrize("name", CASES)
def test_vs_peers(benchmark, name, capsys):
    case = _case(name)
    works, missing = bench._build(case, torch_ok=bench.import_torch() is not None)
    works = {k: w for k, w in works.items() if k == "fastmlp" or k in PEERS}
    if len(works) == 1:
        pytest.skip("no peer installed: " + "; ".join(missing))
    # the FMA peak, timed in every round beside the others (cases with counted products)
    rounds, peak = bench.measure_with_peak(works, case.repeat, case.flops)
    report = {}
    for impl in rounds:
        if impl != "fastmlp":
            med, lo, hi = bench.round_ratios(rounds, impl)
            report[impl] = {"ratio": med, "min": lo, "max": hi}
    # GFLOP/s of each implementation's products (median time of a call of case.units
    # units) and its share of the peak of the same round
    gflops = ({impl: case.flops * case.units / statistics.median(ts) / 1e9
               for impl, ts in rounds.items()} if case.flops else {})
    shares = (bench.of_peak({impl: [x / case.units for x in ts] for impl, ts in rounds.items()},
                            case.flops, peak, case.dtype == "float64") if peak else {})
    benchmark.group = f"peers: {name}"
    benchmark.extra_info.update(ratios=report, missing=missing, units=case.units,
                                unit=case.unit, gflops=gflops, of_peak=shares,
                                fma_peak_gflops=statistics.median(peak) if peak else None,
                                dtype=case.dtype)
    with capsys.disabled():
        print(f"\n{name}: " + ", ".join(f"vs {k} {v['ratio']:.2f}x [{v['min']:.2f}-{v['max']:.2f}]"
                                        for k, v in report.items()))
        if shares:
            print("  GFLOP/s and share of the round's FMA peak: " + ", ".join(
                f"{k} {gflops[k]:.1f} ({100 * shares[k]:.0f} %)" for k in shares))
    benchmark.pedantic(works["fastmlp"], rounds=3, iterations=1, warmup_rounds=1)
