"""Peak memory of fit on 60,000 x 784 float32 (MNIST-sized): ``memory_fit.py`` run in a
fresh process per backend; the figures (peak RSS growth during fit, in MB and relative to
the data set; tracemalloc's peak) land in ``extra_info``. The time is the whole subprocess
(imports and data included): read the figures, not the time.
"""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "memory_fit.py")


def _run(backend):
    out = subprocess.run([sys.executable, SCRIPT, "--backend", backend, "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux only)")
@pytest.mark.parametrize("backend", ["core", "numpy", "torch"])
def test_fit_memory(benchmark, request, backend):
    if backend == "torch":
        request.getfixturevalue("torch")
    benchmark.group, benchmark.name = "memory: fit 60,000 x 784 float32, 1 epoch b128", backend
    result = benchmark.pedantic(_run, args=(backend,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
