"""``fm.show_config()`` and the run-time choice of GEMM kernels it reports."""
import io
import os
import subprocess
import sys

import numpy as np

import fastmlp as fm
from fastmlp import _blas


def test_show_config_names_the_kernels_threads_and_blas():
    out = io.StringIO()
    cfg = fm.show_config(file=out)
    text = out.getvalue()
    assert cfg["gemm_isa"] == _blas.gemm_isa() and f"GEMM kernels: {cfg['gemm_isa']}" in text
    assert cfg["threads"] == fm.get_num_threads() and "threads:" in text
    assert "BLAS (fallback path)" in text and "CPU:" in text
    assert cfg["gemm_tail"] == _blas.gemm_tail() and "split products: one chunk a thread" in text
    assert ("while the threads' chunks take unequal times" in text) == cfg["gemm_tail"][4]
    if cfg["gemm_isa"] != "none":
        assert cfg["gemm_tile_f32"][0] > 0 and cfg["gemm_tile_f64"][1] * 2 == cfg["gemm_tile_f32"][1]
    plain = cfg["gemm_tile_f32_plain"]
    assert plain[1] == cfg["gemm_tile_f32"][1] and plain[0] >= cfg["gemm_tile_f32"][0]
    assert ("over a plain A" in text) == (plain != cfg["gemm_tile_f32"])


def test_the_tiles_over_a_plain_a_follow_the_family():
    """AVX-512 float32 reads a plain A with 12 x 32 assembly tiles; every other family and
    float64 with its own tile."""
    saved = _blas.gemm_isa()
    try:
        for isa, want in (("avx512", (12, 32)), ("avx2", (6, 16))):
            if _blas.set_gemm_isa(isa) != isa:
                continue                     # not on this CPU
            assert _blas.gemm_tile(False, plain_a=True) == want
            assert _blas.gemm_tile(True, plain_a=True) == _blas.gemm_tile(True)
    finally:
        _blas.set_gemm_isa(saved)


def _in_subprocess(env_isa):
    code = ("import numpy as np, fastmlp as fm; from fastmlp import _blas;"
            "m = fm.Sequential([fm.Dense(5, 40, activation='tanh'), fm.Dense(40, 3)],"
            " dtype='float64', seed=0);"
            "X = np.random.default_rng(0).normal(size=(64, 5)); y = np.arange(64) % 3;"
            "fm.Trainer(m, fm.CrossEntropyLoss(), fm.Adam(1e-2)).fit(X, y, epochs=2,"
            " batch_size=16, verbose=0);"
            "print(_blas.gemm_isa()); print(repr(m.params.tolist()))")
    env = dict(os.environ, FASTMLP_GEMM_ISA=env_isa)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    isa, params = proc.stdout.splitlines()[-2:]
    return isa, np.array(eval(params))


def test_environment_forces_the_blas_path_and_a_fit_still_agrees():
    """FASTMLP_GEMM_ISA=none sends every product to scipy's BLAS (the path of CPUs
    without AVX2); the trained weights agree with the own kernels' to rounding."""
    isa, blas = _in_subprocess("none")
    assert isa == "none"
    native_isa, native = _in_subprocess("")
    assert native_isa == _blas.best_gemm_isa()
    np.testing.assert_allclose(blas, native, rtol=1e-9, atol=1e-12)


def test_environment_can_ask_for_avx2():
    isa, _ = _in_subprocess("avx2")
    assert isa == ("avx2" if _blas.best_gemm_isa() != "none" else "none")


def test_set_gemm_isa_refuses_unknown_names():
    import pytest
    with pytest.raises(ValueError, match="isa"):
        _blas.set_gemm_isa("sse9")
