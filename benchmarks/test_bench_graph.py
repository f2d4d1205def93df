"""Graph models (issue 14), as ratios measured in one run of interleaved rounds: a
two-input, two-head tabular model per epoch against the same model in PyTorch (eager) and
JAX (jit + ``lax.scan``, optax Adam); and an MNIST-shape chain as a graph Model against the
same chain as a Sequential (what the graph executor costs). Ratios (their time / fastmlp's
in the same round, median and range) go to ``extra_info``; peers that are not installed
are skipped with the reason. No assertion on times."""
import pytest

from fastmlp import _bench_cases, bench


@pytest.mark.parametrize("name,others", [("graph 2-in 2-head b64", ("torch", "jax")),
                                         ("mnist chain as graph b32", ("sequential",))])
def test_graph_ratios(benchmark, capsys, name, others):
    case = next(c for c in _bench_cases.cases(quick=False) if c.name == name)
    works, missing = bench._build(case, torch_ok=bench.import_torch() is not None)
    if len(works) == 1:
        pytest.skip("no peer installed: " + "; ".join(missing))
    rounds = bench.measure_rounds(works, repeat=case.repeat)
    report = {}
    for impl in works:
        if impl in others:
            med, lo, hi = bench.round_ratios(rounds, impl)
            report[impl] = {"ratio": med, "min": lo, "max": hi}
    benchmark.group = f"graph: {name}"
    benchmark.extra_info.update(ratios=report, missing=missing)
    with capsys.disabled():
        print(f"\n{name}: " + ", ".join(f"{k} / fastmlp {v['ratio']:.2f}x "
                                        f"[{v['min']:.2f}-{v['max']:.2f}]"
                                        for k, v in report.items()))
    benchmark.pedantic(works["fastmlp"], rounds=3, iterations=1, warmup_rounds=1)
