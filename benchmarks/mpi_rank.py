"""One rank of benchmarks/test_bench_mpi.py: ``python mpi_rank.py SHAPE ROWS BATCH EPOCHS``,
alone or under ``mpiexec -n N`` (then ``... EPOCHS mpi [full]``: ``full`` turns the sharded
optimizer update off, every rank allreducing the whole arena and updating all of it). Trains
SHAPE (fastmlp._bench_work.SHAPES) data parallel (default mode: every rank has the rows, each
takes its share of the global batch) with one core thread per rank, and prints one JSON line from rank 0: seconds per epoch (the best of
the epochs after the first), the time of one allreduce of the gradient arena and that of one
reduce-scatter plus allgather of it (the sharded step's; mpi4py, the same buffer, type and
shards as the core's, timed on their own)."""
import json
import sys
import time

import numpy as np

from fastmlp import _bench_work as work
from fastmlp._train import shard_bounds
import fastmlp as fm


def main():
    shape, rows, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    comm = None
    if len(sys.argv) > 5 and sys.argv[5] == "mpi":
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    X, y = work.data(shape, rows)
    loss = fm.CrossEntropyLoss() if work.SHAPES[shape][2] == "ce" else fm.MSELoss()
    trainer = fm.Trainer(work.model(shape), loss, fm.Adam(lr=1e-3), n_threads=1, comm=comm)
    if comm is not None:
        trainer._dist.shard = sys.argv[6:7] != ["full"]
    times = trainer.fit(X, y, epochs=epochs, batch_size=batch, verbose=0).history["epoch_time"]
    out = {"ranks": 1 if comm is None else comm.Get_size(), "epoch_s": min(times[1:] or times),
           "sharded": comm is not None and trainer._dist.shard,
           "steps": -(-rows // batch), "n_params": int(trainer.model.params.shape[0])}
    if comm is not None:
        from mpi4py import MPI
        buf = np.zeros_like(trainer.model.grads)
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(50):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        out["allreduce_s"] = (time.perf_counter() - t0) / 50
        counts, displs = shard_bounds(buf.shape[0], comm.Get_size())
        mine = np.empty(counts[comm.Get_rank()], buf.dtype)
        spec = [buf, (counts, displs), MPI.FLOAT if buf.dtype == np.float32 else MPI.DOUBLE]
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(50):       # the sharded step's two collectives
            comm.Reduce_scatter(buf, mine, counts, op=MPI.SUM)
            comm.Allgatherv(MPI.IN_PLACE, spec)
        out["reduce_scatter_allgather_s"] = (time.perf_counter() - t0) / 50
        if comm.Get_rank() != 0:
            return
    print(json.dumps(out))


if __name__ == "__main__":
    main()
