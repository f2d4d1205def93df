"""Beyond one machine: data-parallel training over MPI, and Dask helpers.

Data-parallel training over MPI (through mpi4py, imported only when a communicator is given).

``Trainer(..., comm=MPI.COMM_WORLD)`` trains one model on every rank of ``comm``; the fused
loop combines the ranks' gradients with the MPI library mpi4py loaded, called through function
pointers from inside the GIL-free loop (``include/fastmlp/reduce.h``). By default the
optimizer update is sharded (ZeRO-1 style, ``pyx/fastmlp/_train_dp.pxi``): each step
reduce-scatters the gradient arena, each rank checks and updates its own contiguous shard of
the parameters (and of the optimizer state, made whole again at the end of every epoch), one
tiny allreduce of (loss, non-finite flag) lets all ranks skip a bad step alike, and an
allgather sends the updated shards to every rank; constraints then run on the whole arena on
every rank. LAMB (per-tensor trust ratios), tying penalties and arenas of 2^31
elements or more take the full path instead: one allreduce of the whole gradient arena and
the whole update on every rank (also with ``Distributed.shard = False``). The reductions are
blocking, not overlapped with backward.

Two modes, ``batch_size`` being the global batch in both:

- default: every rank passes the same data and draws the same permutation; rank r of N takes
  rows ``[b r / N, b (r + 1) / N)`` of every global batch of b rows. The loss is the mean over
  the global batch and dropout is keyed by the global row, so the run equals one process with
  the same global batch (to rounding: the per-rank partial sums are added in another order).
- ``sharded=True``: every rank passes only its rows and shuffles them with a generator seeded by
  (seed, rank, epoch); rank r takes ``b (r + 1) / N - b r / N`` of its rows per step. Ranks of
  unequal row counts all run as many steps as the rank that needs the most: a rank that has
  run out contributes no rows (a zero gradient) to those last steps, whose loss is the mean
  over the rows that remain. Every row is used once per epoch.

BatchNorm uses per-rank batch statistics (its running statistics then differ across ranks);
the trainable weights stay bit-identical.
"""
import contextlib
import sys
import traceback
import zlib

import numpy as np


class RankFailed(RuntimeError):
    """Raised on every rank when another rank of a distributed fit raised."""


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("comm= needs mpi4py: pip install 'fastmlp[mpi]'") from None
    return MPI


class Distributed:
    """One Trainer's view of an mpi4py intra-communicator.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        e.g. ``MPI.COMM_WORLD``. TypeError for anything else.
    """

    def __init__(self, comm):
        MPI = _mpi()
        if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
            raise TypeError(f"comm must be an mpi4py intra-communicator such as "
                            f"MPI.COMM_WORLD, got {comm!r:.80}")
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.batchnorm = False          # set per fit: shares of 1 row are refused
        #: the sharded optimizer update (see the module docstring); False: every step
        #: allreduces the whole gradient arena and every rank updates all of it
        self.shard = True

    def reducer(self):
        """The function pointers and handles the core's reductions call (``reduce.h``);
        without :attr:`shard`, not those of the sharded update."""
        import ctypes
        MPI = _mpi()
        lib = ctypes.CDLL(MPI.__file__)       # already loaded: its libmpi is searched too
        h = MPI._handleof

        def address(name):
            return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value if self.shard else None

        return {"allreduce": ctypes.cast(lib.MPI_Allreduce, ctypes.c_void_p).value,
                "reduce_scatter": address("MPI_Reduce_scatter"),
                "allgatherv": address("MPI_Allgatherv"), "rank": self.rank, "size": self.size,
                "handle_bytes": MPI._sizeof(MPI.Comm), "comm": h(self.comm),
                "op_sum": h(MPI.SUM), "dt_float": h(MPI.FLOAT), "dt_double": h(MPI.DOUBLE),
                "in_place": int(MPI.IN_PLACE)}

    # -- agreement --------------------------------------------------------------------------
    def agree(self, error=None, stop=False):
        """A collective every rank reaches at the same points of a fit: raises RankFailed on
        the ranks that did not fail when one rank passes its ``error``; returns whether any
        rank asked to ``stop`` (so that all stop at the same step)."""
        told = self.comm.allgather(
            (None if error is None else f"{type(error).__name__}: {error}", bool(stop)))
        failed = [(r, e) for r, (e, _) in enumerate(told) if e is not None]
        if failed and error is None:
            rank, msg = failed[0]
            raise RankFailed(f"rank {rank} of {self.size} failed ({msg}); this rank stopped too")
        return any(s for _, s in told)

    def check_same(self, error, fingerprint):
        """At fit start: ``error`` (an exception of this rank's input checks, or None) is
        raised on every rank, as is a ValueError when the ranks' ``fingerprint`` dicts
        differ."""
        gathered = self.comm.allgather((None if error is None else
                                        (type(error).__name__, str(error)), fingerprint))
        for rank, (err, _) in enumerate(gathered):
            if err is not None:
                if error is not None:
                    raise error
                exc = {"TypeError": TypeError}.get(err[0], ValueError)
                raise exc(f"rank {rank}: {err[1]}")
        first = gathered[0][1]
        for rank, (_, fp) in enumerate(gathered[1:], 1):
            diff = sorted(k for k in first if first[k] != fp.get(k))
            if diff:
                raise ValueError(f"ranks 0 and {rank} disagree on {', '.join(diff)} "
                                 f"({', '.join(f'{k}: {first[k]!r} vs {fp.get(k)!r}' for k in diff)})")

    # -- the steps of an epoch --------------------------------------------------------------
    def shares(self, b):
        """This rank's [lo, hi) of a global batch of ``b`` rows (arrays allowed)."""
        return b * self.rank // self.size, b * (self.rank + 1) // self.size

    def local_batch(self, batch_size):
        """The most rows this rank takes in one step."""
        lo, hi = self.shares(batch_size)
        return max(hi - lo, 1)

    def schedule(self, perm, batch_size, sharded):
        """``(local rows, schedule)`` of one epoch over ``perm`` (see ``Runner.run``)."""
        local, sched = self._schedule(perm, batch_size, sharded)
        if self.batchnorm and ((sched[:, 0] > 0) & (sched[:, 0] < 2)).any():
            raise ValueError(f"batch_size={batch_size} leaves a rank a share of 1 row of a "
                             f"step; BatchNorm (per-rank statistics) needs at least 2: choose "
                             f"another batch_size")
        return local, sched

    def _schedule(self, perm, batch_size, sharded):
        if not sharded:
            n = perm.shape[0]
            starts = np.arange(0, n, batch_size, dtype=np.int64)
            b = np.minimum(batch_size, n - starts)
            lo, hi = self.shares(b)
            take = np.zeros(n + 1, np.int64)
            np.add.at(take, starts + lo, 1)
            np.add.at(take, starts + hi, -1)
            local = perm[np.cumsum(take[:-1]) > 0]
            return np.ascontiguousarray(local), _sched(hi - lo, b, lo)
        counts = np.array(self.comm.allgather(perm.shape[0]), dtype=np.int64)
        per = np.array([self._share(batch_size, r) for r in range(self.size)], np.int64)
        n_steps = int(max((-(-counts // np.maximum(per, 1))).max(), 1))   # ceil, longest
        s = np.arange(n_steps, dtype=np.int64)[:, None]
        rows = np.clip(counts[None, :] - s * per[None, :], 0, per[None, :])    # (steps, ranks)
        before = rows[:, :self.rank].sum(axis=1)
        return perm, _sched(rows[:, self.rank], np.maximum(rows.sum(axis=1), 1),
                            s[:, 0] * batch_size + before)

    def _share(self, b, rank):
        return b * (rank + 1) // self.size - b * rank // self.size

    # -- logs -------------------------------------------------------------------------------
    def reduce_logs(self, logs, rows):
        """Sharded mode: the means over the ranks of ``logs`` (evaluated on this rank's
        ``rows`` rows), weighted by rows; a metric that is not a mean over rows (AUC, R²)
        becomes the row-weighted mean of the ranks' values."""
        keys = sorted(logs)
        buf = np.array([logs[k] * rows for k in keys] + [rows], dtype=np.float64)
        out = np.empty_like(buf)
        self.comm.Allreduce(buf, out, op=_mpi().SUM)
        if out[-1] == 0:
            return dict(logs)
        return {k: float(out[i] / out[-1]) for i, k in enumerate(keys)}


def _sched(local, glob, row0):
    return np.ascontiguousarray(np.stack([local, glob, row0], axis=1).astype(np.int64))


def fingerprint(trainer, X, targets, batch_size, sharded, extra):
    """What must agree across the ranks of a fit: shapes, hyperparameters, the initial
    weights, and (default mode) the data itself (CRC-32 of the bytes)."""
    model = trainer.model
    fp = {"n_features": X.shape[1], "dtype": str(model.dtype), "model": repr(model),
          "n_params": int(model.params.shape[0]),
          "weights": zlib.crc32(np.ascontiguousarray(model.params).tobytes()),
          "loss": repr(trainer.loss), "optimizer": repr(trainer.optimizer),
          "regularizers": repr(trainer.regularizers), "seed": trainer.seed,
          "batch_size": batch_size, "sharded": bool(sharded), **extra}
    if not sharded:
        fp["rows"] = X.shape[0]
        fp["data"] = zlib.crc32(X.tobytes()) ^ zlib.crc32(np.ascontiguousarray(targets).tobytes())
    return fp


@contextlib.contextmanager
def abort_on_error(comm=None):
    """Run a block; on an exception that escapes it, print the traceback and call
    ``comm.Abort(1)`` (default ``MPI.COMM_WORLD``), so that no other rank waits forever for
    this one (the ``python -m mpi4py`` launcher does the same for a whole script).

    Examples
    --------
    >>> with fm.distributed.abort_on_error():
    ...     trainer.fit(X, y, batch_size=256)
    """
    try:
        yield
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        (comm if comm is not None else _mpi().COMM_WORLD).Abort(1)
        raise


def train(trainer, X, y, **fit_kwargs):
    """``trainer.fit(X, y, **fit_kwargs)``, returning the trainer (its ``history`` set): the
    function to send to a Dask worker, as ``client.submit(fm.distributed.train, trainer, X,
    y, epochs=10)``; the trainer travels by pickle (model, optimizer state and generator
    included) and comes back trained.

    Returns
    -------
    Trainer
    """
    trainer.fit(X, y, **fit_kwargs)
    return trainer
