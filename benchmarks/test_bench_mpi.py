"""Data-parallel throughput: ``mpiexec -n 2`` with one core thread per rank against one
process with one thread, MNIST shape (784-512-256-10), float32, global batch 256, default
mode (every rank holds the rows). Prints the throughput ratio (ideal 2) with the sharded
optimizer update (the default: reduce-scatter, each rank updates its half, allgather) and
with the full path (allreduce, every rank updates the whole arena), and the time of one
blocking allreduce of the gradient arena and its share of a step: the core's reductions
are blocking, not overlapped with backward.

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


def _run(n_ranks, path="shard"):
    args = [sys.executable, RANK, "mnist", str(ROWS), str(BATCH), str(EPOCHS)]
    if n_ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
        if mpiexec is None:
            pytest.skip("no mpiexec")
        args = [mpiexec, "-n", str(n_ranks)] + args + ["mpi", path]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mpi_two_ranks_vs_one_process():
    one, two, full = _run(1), _run(2), _run(2, "full")
    ratio, ratio_full = one["epoch_s"] / two["epoch_s"], one["epoch_s"] / full["epoch_s"]
    step = two["epoch_s"] / two["steps"]
    print(f"\nmnist f32 b256, {ROWS} rows, {one['n_params']:,} params: 1 process "
          f"{one['epoch_s'] * 1e3:.1f} ms/epoch, mpiexec -n 2 sharded update "
          f"{two['epoch_s'] * 1e3:.1f} ms/epoch: throughput x{ratio:.2f} (ideal 2); full "
          f"allreduce path {full['epoch_s'] * 1e3:.1f} ms/epoch: x{ratio_full:.2f}; allreduce "
          f"of the arena {two['allreduce_s'] * 1e3:.3f} ms = {100 * two['allreduce_s'] / step:.0f}% "
          f"of a {step * 1e3:.2f} ms step, reduce-scatter + allgather "
          f"{two['reduce_scatter_allgather_s'] * 1e3:.3f} ms (blocking, not overlapped)")
    assert ratio > 0 and ratio_full > 0
