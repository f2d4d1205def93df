"""``python -m fastmlp bench``: it runs and prints one table (no timing assertions: timing
lives in benchmarks/)."""
import io
import subprocess
import sys

import pytest

from fastmlp import bench
from fastmlp.__main__ import main

COLUMNS = ["case", "unit", "fastmlp", "vs numpy", "vs torch", "GEMM share"]


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
    assert cells[3] == "step" and cells[6].endswith("x") and cells[7] == "-"   # no torch


def test_run_returns_rows_and_works_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)     # `import torch` raises ImportError
    assert bench.import_torch() is None
    out = io.StringIO()
    rows = bench.run(quick=True, only="mnist epoch b256 f32", file=out)
    assert [r["case"] for r in rows] == ["mnist epoch b256 f32"]
    r = rows[0]
    assert r["fastmlp_s"] > 0 and r["vs_numpy"] > 0 and r["gemm_share"] > 0
    assert r["vs_torch"] is None and r["gemm_core_share"] > 0
    assert "mnist epoch b256 f32" in out.getvalue() and "GEMM share" in out.getvalue()


def test_no_matching_case_prints_the_header_only(capsys):
    assert main(["bench", "--quick", "--no-torch", "--only", "no such case"]) == 0
    out = capsys.readouterr().out
    assert "case" in out and "tiny" not in out


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
