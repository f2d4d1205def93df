"""Data-parallel throughput: ``mpiexec -n 2`` with one core thread per rank against one
process with one thread, MNIST shape (784-512-256-10), float32, global batch 256, default
mode (every rank holds the rows). Prints the throughput ratio (ideal 2) and the time of one
blocking allreduce of the gradient arena per step, and its share of the step: the core's
reduction is blocking, not overlapped with backward.

``FASTMLP_BENCH_MPI_ROWS`` (default 25,600: 100 steps per epoch) makes it smaller, e.g. for
a smoke run.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py")

ROWS = int(os.environ.get("FASTMLP_BENCH_MPI_ROWS", 25_600))
BATCH, EPOCHS, TIMEOUT = 256, 4, 1800
RANK = os.path.join(os.path.dirname(__file__), "mpi_rank.py")


def _run(n_ranks):
    args = [sys.executable, RANK, "mnist", str(ROWS), str(BATCH), str(EPOCHS)]
    if n_ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
        if mpiexec is None:
            pytest.skip("no mpiexec")
        args = [mpiexec, "-n", str(n_ranks)] + args + ["mpi"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mpi_two_ranks_vs_one_process():
    one, two = _run(1), _run(2)
    ratio = one["epoch_s"] / two["epoch_s"]
    step = two["epoch_s"] / two["steps"]
    print(f"\nmnist f32 b256, {ROWS} rows, {one['n_params']:,} params: 1 process "
          f"{one['epoch_s'] * 1e3:.1f} ms/epoch, mpiexec -n 2 {two['epoch_s'] * 1e3:.1f} "
          f"ms/epoch: throughput x{ratio:.2f} (ideal 2); allreduce of the arena "
          f"{two['allreduce_s'] * 1e3:.3f} ms/step = {100 * two['allreduce_s'] / step:.0f}% "
          f"of a {step * 1e3:.2f} ms step (blocking, not overlapped)")
    assert ratio > 0
