"""The non-AVX2 path (what a CPU without AVX2/FMA, or not x86-64, runs): FASTMLP_GEMM_ISA=none
in a subprocess's environment sends every product to scipy's BLAS; a small fit there
matches the same fit on this machine's default kernels."""
import json
import os
import subprocess
import sys

from fastmlp import _blas
from helpers import rel_err

SCRIPT = """
import json, sys
import numpy as np
import fastmlp as fm
from fastmlp import _blas
rng = np.random.default_rng(0)
X = rng.normal(size=(96, 7))
y = rng.integers(0, 3, size=96)
model = fm.Sequential(fm.Dense(7, 16, activation="tanh"), fm.Dense(16, 3), dtype="float64",
                      seed=0)
fm.Trainer(model, "cross_entropy", fm.SGD(lr=0.1, momentum=0.9), n_threads=1).fit(
    X, y, epochs=3, batch_size=16, verbose=0)
print(json.dumps({"isa": _blas.gemm_isa(), "params": model.params.tolist()}))
"""


def _run(isa):
    env = {k: v for k, v in os.environ.items() if k != "FASTMLP_GEMM_ISA"}
    env["OMP_NUM_THREADS"] = "1"
    if isa is not None:
        env["FASTMLP_GEMM_ISA"] = isa
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_forced_scipy_blas_path_fits_like_the_default():
    forced, default = _run("none"), _run(None)
    assert forced["isa"] == "none"
    if "FASTMLP_GEMM_ISA" not in os.environ:
        assert default["isa"] == _blas.best_gemm_isa()
    assert rel_err(forced["params"], default["params"]) < 1e-10
