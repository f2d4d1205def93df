"""``python -m fastmlp bench``: it runs and prints one table (no timing assertions: timing
lives in benchmarks/)."""
import io
import subprocess
import sys

import numpy as np
import pytest

from fastmlp import _blas, _bench_cases, bench
from fastmlp.__main__ import main

COLUMNS = ["case", "unit", "fastmlp", "vs numpy", "vs torch", "vs jax", "vs onnxrt",
           "GEMM share"]


def test_cli_quick_prints_a_table():
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "bench", "--quick", "--no-torch",
                           "--only", "tiny step b8", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("case"))
    assert all(c in header for c in COLUMNS)
    assert "BLAS threads" in proc.stdout and "libscipy_openblas 1" in proc.stdout
    rows = [line for line in lines if line.startswith("tiny step b8")]
    assert len(rows) == 1
    cells = rows[0].split()
    # "1.23x [1.10-1.40]": the median ratio over the rounds and its range
    assert cells[3] == "step" and cells[6].endswith("x") and cells[7].startswith("[")
    assert cells[8] == "-"   # no torch
    assert "stability" not in proc.stdout    # --only selects the rows


def test_run_returns_rows_and_works_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)     # `import torch` raises ImportError
    assert bench.import_torch() is None
    out = io.StringIO()
    rows = bench.run(quick=True, only="mnist epoch b256 f32", file=out)
    assert [r["case"] for r in rows] == ["mnist epoch b256 f32", "headroom"]
    r = rows[0]
    assert r["fastmlp_s"] > 0 and r["vs_numpy"] > 0 and r["gemm_share"] > 0
    assert r["vs_torch"] is None and r["gemm_core_share"] > 0
    lo, hi = r["vs_numpy_range"]
    assert lo <= r["vs_numpy"] <= hi
    assert "mnist epoch b256 f32" in out.getvalue() and "GEMM share" in out.getvalue()
    # the headroom lines: the epoch's products (2,000 rows, quick) over each one's time
    case = next(c for c in _bench_cases.cases(quick=True) if c.name == r["case"])
    assert case.flops == 2_000 * 2 * (2 * (784 * 512 + 512 * 256 + 256 * 10)
                                      + 512 * 256 + 256 * 10)
    assert r["gflops_by"]["fastmlp"] == pytest.approx(case.flops / r["fastmlp_s"] / 1e9)
    assert set(r["gflops_by"]) >= {"fastmlp", "gemm-core", "numpy"}
    assert "torch" not in r["gflops_by"]
    room = rows[1]
    if _blas.gemm_isa() != "none":       # the peak was timed in the row's own rounds
        assert r["peak_gflops"] > 0 and "headroom: each row's peak" in out.getvalue()
        assert set(room["rows"]) == {r["case"]}
        assert set(r["of_peak_by"]) == set(r["gflops_by"])
        assert all(0 < f for f in r["of_peak_by"].values())


def test_of_peak_compares_rates_within_each_round():
    """Round 1 ran at twice round 0's clock: shares come out equal though the times do not,
    and a float64 case is set against half the peak."""
    t = {"fastmlp": [2.0, 1.0], "jax": [4.0, 2.0], "gemm": [1.0, 1.0]}
    peak = [10.0, 20.0]                             # GFLOP/s of each round's FMA chains
    shares = bench.of_peak(t, 8e9, peak)            # 8 GFLOP a unit
    assert set(shares) == {"fastmlp", "jax"}        # helpers other than gemm-core left out
    assert shares["fastmlp"] == pytest.approx(0.4) and shares["jax"] == pytest.approx(0.2)
    assert bench.of_peak(t, 8e9, peak, half=True)["jax"] == pytest.approx(0.4)


def test_headroom_bounds_each_ratio_by_the_share_of_the_peak():
    rows = [{"case": "a", "gflops_by": {"fastmlp": 60.0, "jax": 50.0},
             "of_peak_by": {"fastmlp": 0.75, "jax": 0.625}},
            {"case": "b", "gflops_by": {"fastmlp": 30.0}},   # no peak timed: no line
            {"case": "stability", "max_over_min": 1.0}]
    lines = bench.headroom(rows)
    assert list(lines) == ["a"]
    assert lines["a"]["jax"] == {"gflops": 50.0, "of_peak": 0.625, "at_most": 1.6}
    assert lines["a"]["fastmlp"]["at_most"] == pytest.approx(1 / 0.75)


def test_no_matching_case_prints_the_header_only(capsys):
    assert main(["bench", "--quick", "--no-torch", "--only", "no such case"]) == 0
    out = capsys.readouterr().out
    assert "case" in out and "tiny" not in out


def test_header_names_the_cpu_and_the_kernels_in_use(capsys):
    """A run's numbers mean little without the CPU and the kernel family that made them."""
    from fastmlp.sysinfo import config
    assert main(["bench", "--quick", "--no-torch", "--only", "no such case"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    cfg = config()
    assert cfg["cpu"] in header
    assert f"GEMM kernels {cfg['gemm_isa']}" in header
    assert f"{cfg['cores']} CPUs" in header


def test_case_names_are_unique():
    for quick in (True, False):
        names = [c[0] for c in bench.cases(quick)]
        assert len(names) == len(set(names))


@pytest.mark.parametrize("make", [
    lambda: bench.fastmlp_steps("tiny", batch=4, n_steps=3),
    lambda: bench.fastmlp_steps("tiny", "numpy", batch=4, n_steps=3),
    lambda: bench.fastmlp_epoch("small", batch=16, n_rows=40),
    lambda: bench.gemm_only("mnist", batch=8, n_rows=20),
    lambda: bench.gemm_only("mnist", "float64", batch=8, n_rows=20, blas="core"),
    lambda: bench.optimizer_steps("adam", "core", n_calls=1),
    lambda: bench.optimizer_steps("sgd", "ufunc", n_calls=2),
    lambda: bench.predictions("core", 1),
    lambda: bench.two_models(True, n_rows=64),
], ids=["steps-core", "steps-numpy", "epoch", "gemm-only", "gemm-only-core", "optim-core",
        "optim-ufunc", "predict", "threads"])
def test_work_functions_run(make):
    make()()


def test_torch_work_functions_run():
    pytest.importorskip("torch")
    bench.torch_train("tiny", batch=4, n_rows=12, shuffle=False)()
    bench.optimizer_steps("sgd", "torch", n_calls=1)()
    bench.predictions("torch", 1)()


def test_gemm_rows_compare_the_core_numpy_and_blas():
    rows = bench.run(quick=True, torch=False, only="GEMM 32x512x784", file=io.StringIO())
    assert len(rows) == 1
    r = rows[0]
    assert r["gemm_share"] > 0 and "scipy's BLAS" in r["note"]


def test_round_ratios_pair_the_rounds():
    rounds = {"fastmlp": [1.0, 2.0, 4.0], "jax": [2.0, 3.0, 4.0]}
    assert bench.round_ratios(rounds, "jax") == (1.5, 1.0, 2.0)


def test_stability_line_reports_max_over_min():
    out = io.StringIO()
    rows = bench.run(quick=True, torch=False, only="stability", file=out)
    assert rows[-1]["max_over_min"] >= 1 and len(rows[-1]["epoch_s"]) == 8
    assert "max/min" in out.getvalue()


def test_jax_work_functions_run():
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from fastmlp import _bench_peers as peers
    peers.jax_train("small", batch=16, n_rows=64)()
    peers.jax_train("tiny", "float64", batch=4, n_rows=16)()
    peers.jax_steps("tiny4", batch=8, n_steps=3)()
    peers.jax_predictions(3)()


def test_onnx_runtime_predicts_what_fastmlp_predicts():
    """The exported benchmark model is the same function (ONNX Runtime vs predict)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fastmlp import _bench_peers as peers
    m = bench.model("mnist")
    X, _ = bench.data("mnist", 7)
    sess = ort.InferenceSession(peers.onnx_model(m).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"X": X})[0], m.predict(X), rtol=1e-5, atol=1e-5)
    peers.ort_predictions(2, n_calls=2)()


def test_missing_peer_is_left_out_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    out = io.StringIO()
    rows = bench.run(quick=True, torch=False, only="tiny4 step b8", file=out)
    assert rows[0]["vs_jax"] is None and "jax left out" in out.getvalue()
