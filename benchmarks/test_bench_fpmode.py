"""Subnormals flushed in the training steps (the default) against IEEE subnormals kept
(``fm.set_flush_denormal(False)``): one MNIST-shape epoch (float32, batch 32, Adam) of a
Trainer already trained for 3 epochs in its mode, in interleaved rounds; the ratio (IEEE
time / flushed time in the same round) is stored with its range in ``extra_info``. No
assertion on times."""
from fastmlp import _bench_cases, bench


def test_flushed_vs_ieee_subnormals(benchmark, capsys):
    case = next(c for c in _bench_cases.cases(quick=False) if c.name == "mnist b32, subnormals")
    works, _ = bench._build(case, torch_ok=False)
    rounds = bench.measure_rounds(works, repeat=case.repeat)
    med, lo, hi = bench.round_ratios(rounds, "ieee")
    benchmark.group = "fpmode"
    benchmark.extra_info.update(ieee_over_flushed={"ratio": med, "min": lo, "max": hi})
    with capsys.disabled():
        print(f"\n{case.name}: IEEE / flushed {med:.2f}x [{lo:.2f}-{hi:.2f}]")
    benchmark.pedantic(works["fastmlp"], rounds=3, iterations=1, warmup_rounds=1)
