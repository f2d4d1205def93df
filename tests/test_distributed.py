"""Distributed training over MPI: real ``mpiexec -n 2`` / ``-n 3`` runs of tests/mpi_worker.py.

Equivalence with one process (both dtypes, dropout included), bit-identical ranks, sharded
mode, validation and early stopping agreeing, files written once, a failing rank and
mismatched ranks ending every rank with an error (each run under a timeout: never a hang).
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastmlp as fm
from helpers import python_identity

pytest.importorskip("mpi4py")
import mpi_worker as worker        # noqa: E402  (tests/ is on sys.path)

TIMEOUT = 300        # generous: the machine may be paused or busy


def _mpiexec():
    found = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return found if os.path.exists(found) else shutil.which("mpiexec")


def run_ranks(n, scenario, tmp_path, dtype="float64", *extra):
    """Run the scenario on n ranks (``extra``: more arguments for the worker); returns
    [(params, result dict)] per rank."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec next to the interpreter or on PATH")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [mpiexec, "-n", str(n), sys.executable, worker.__file__, scenario,
           str(tmp_path), dtype, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = []
    for r in range(n):
        with np.load(tmp_path / f"rank{r}.npz") as f:
            out.append((f["params"], json.loads(str(f["result"]))))
    return out, proc.stdout + proc.stderr


def assert_identical(ranks):
    for params, _ in ranks[1:]:
        assert np.array_equal(params, ranks[0][0]), "ranks hold different weights"


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_default_mode_equals_one_process(n, dtype, tmp_path):
    ranks, stdout = run_ranks(n, "same", tmp_path, dtype)
    assert_identical(ranks)
    model, X, y = worker.problem(dtype)
    history = worker.trainer_for(model).fit(X, y, epochs=worker.EPOCHS,
                                            batch_size=worker.BATCH, verbose=0)
    rtol = 1e-10 if dtype == "float64" else 1e-4
    scale = np.abs(model.params).max()
    assert np.abs(ranks[0][0] - model.params).max() <= rtol * scale
    np.testing.assert_allclose(ranks[0][1]["loss"], history.history["loss"], rtol=rtol)
    assert stdout.count("Epoch 1/") == 1            # only rank 0 prints progress


def optimizer_states(tmp_path, n):
    """Every rank's optimizer state (the worker's ``state_<name>`` arrays)."""
    out = []
    for r in range(n):
        with np.load(tmp_path / f"rank{r}.npz") as f:
            out.append({k[6:]: f[k] for k in f.files if k.startswith("state_")})
    return out


@pytest.mark.parametrize("name,path", [("adam", "shard"), ("sgd", "shard"),
                                       ("rmsprop", "shard"), ("lamb", "shard"),
                                       ("adam", "full")])
def test_optimizer_state_equals_one_process(name, path, tmp_path):
    """The sharded update (each rank updates its shard of the weights and of the optimizer
    state; LAMB falls back to the full path) and the full path (shard off): weights and the
    whole optimizer state equal a one-process fit's, on every rank alike, with penalties
    (L2, proximal L1) and a max-norm constraint that binds. 3 ranks: shards of unequal size."""
    ranks, _ = run_ranks(3, f"state-{name}", tmp_path, "float64", path)
    assert_identical(ranks)
    states = optimizer_states(tmp_path, 3)
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        assert all(np.array_equal(state[k], states[0][k]) for k in state)
    model, trainer, X, y = worker.state_trainer(name)
    trainer.fit(X, y, epochs=worker.EPOCHS, batch_size=worker.BATCH, verbose=0)
    assert ranks[0][1]["step"] == trainer.optimizer.step_count
    assert states[0].keys() == trainer.optimizer.state.keys() and states[0]
    close = lambda a, b: np.abs(a - b).max() <= 1e-10 * max(np.abs(b).max(), 1e-30)
    assert close(ranks[0][0], model.params)
    for k, v in trainer.optimizer.state.items():
        assert close(states[0][k], v), k


def test_a_non_finite_step_stops_every_rank_alike(tmp_path):
    """One rank's share of a step has a non-finite loss: every rank stops before that update,
    as one process does."""
    ranks, _ = run_ranks(3, "nonfinite", tmp_path)
    assert_identical(ranks)
    for _, result in ranks[1:]:
        assert result == ranks[0][1]
    model, X, y = worker.problem()
    X[40] = 1e308
    try:
        history = worker.trainer_for(model).fit(X, y, epochs=worker.EPOCHS,
                                                batch_size=worker.BATCH, verbose=0)
        expected = {"loss": history.history["loss"]}
    except Exception as exc:
        expected = {"error": f"{type(exc).__name__}: {exc}"}
    assert ranks[0][1] == expected and "non-finite" in expected["error"]
    assert np.abs(ranks[0][0] - model.params).max() <= 1e-10 * np.abs(model.params).max()


def test_dropout_is_keyed_by_the_global_row(tmp_path):
    """Without dropout the same run differs: the masks are really in play, and match."""
    ranks, _ = run_ranks(2, "same", tmp_path)
    model, X, y = worker.problem(dropout=0.0)
    worker.trainer_for(model).fit(X, y, epochs=worker.EPOCHS, batch_size=worker.BATCH,
                                  verbose=0)
    assert np.abs(ranks[0][0] - model.params).max() > 1e-6


def test_image_augment_is_keyed_by_the_global_row(tmp_path):
    ranks, _ = run_ranks(3, "augment", tmp_path)
    assert_identical(ranks)
    model, X, y = worker.problem(augment=True)
    worker.trainer_for(model).fit(X, y, epochs=worker.EPOCHS, batch_size=worker.BATCH,
                                  verbose=0)
    assert np.abs(ranks[0][0] - model.params).max() <= 1e-10 * np.abs(model.params).max()


@pytest.mark.parametrize("n", [2, 3])
def test_sharded_ranks_agree(n, tmp_path):
    ranks, _ = run_ranks(n, "sharded", tmp_path)
    assert_identical(ranks)
    for _, result in ranks[1:]:                     # validation metrics reduced alike
        assert result == ranks[0][1]
    assert len(ranks[0][1]["val_loss"]) == worker.EPOCHS
    assert np.isfinite(ranks[0][1]["val_accuracy"]).all()


def test_callbacks_decide_alike_and_rank0_writes(tmp_path):
    ranks, stdout = run_ranks(3, "callbacks", tmp_path)
    assert_identical(ranks)
    for _, result in ranks[1:]:
        assert result == ranks[0][1]
    epochs = len(ranks[0][1]["loss"])
    assert epochs == 2                              # min_delta=10: stops after patience 1
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == ["ckpt-1.fmlp", "ckpt-2.fmlp"]
    assert stdout.count("saved") == 2 and stdout.count("early stopping") == 1
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert len(lines) == 1 + epochs                 # one header, one row per epoch: once
    saved = fm.load(tmp_path / "final.fmlp")
    assert np.array_equal(saved.model.params, ranks[0][0])


def test_a_failing_rank_stops_every_rank(tmp_path):
    ranks, _ = run_ranks(3, "fail", tmp_path)
    errors = [result["error"] for _, result in ranks]
    assert errors[1].startswith("ZeroDivisionError")
    for e in (errors[0], errors[2]):
        assert e.startswith("RankFailed: rank 1 of 3 failed (ZeroDivisionError")


def test_ranks_with_different_features_all_raise(tmp_path):
    ranks, _ = run_ranks(2, "mismatch", tmp_path)
    for _, result in ranks:
        assert result["error"].startswith("ValueError: ")
        assert "n_features: 8 vs 7" in result["error"]


def test_ranks_with_different_hyperparameters_all_raise(tmp_path):
    ranks, _ = run_ranks(2, "mismatch_lr", tmp_path)
    for params, result in ranks:
        assert result["error"].startswith("ValueError: ranks 0 and 1 disagree on optimizer")
        assert "lr=0.01" in result["error"] and "lr=0.02" in result["error"]
    start = worker.problem()[0].params
    assert all(np.array_equal(p, start) for p, _ in ranks)      # nothing trained


def test_comm_must_be_a_communicator():
    model, _, _ = worker.problem()
    with pytest.raises(TypeError, match="intra-communicator"):
        worker.trainer_for(model, comm=object())


def test_sharded_needs_a_comm():
    model, X, y = worker.problem()
    with pytest.raises(ValueError, match="sharded=True needs a communicator"):
        worker.trainer_for(model).fit(X, y, sharded=True, verbose=0)


def test_trainer_with_a_comm_pickles_without_it():
    import pickle
    from mpi4py import MPI
    model, X, y = worker.problem()
    trainer = worker.trainer_for(model, comm=MPI.COMM_SELF)
    trainer.fit(X, y, epochs=1, batch_size=worker.BATCH, verbose=0)   # one rank: runs
    copy = pickle.loads(pickle.dumps(trainer))
    assert copy.comm is None and np.array_equal(copy.model.params, model.params)


class FakeComm:
    """Answers allgather with the row counts of every rank (schedule tests only)."""

    def __init__(self, counts):
        self.counts = counts

    def allgather(self, value):
        return list(self.counts)


def fake(rank, size, counts=None):
    d = fm.distributed.Distributed.__new__(fm.distributed.Distributed)
    d.rank, d.size, d.comm, d.batchnorm = rank, size, FakeComm(counts or []), False
    return d


@pytest.mark.parametrize("n", [1, 15, 16, 195, 1000, 4097])
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_cover_the_arena_in_rank_order(n, size):
    from fastmlp._train import shard_bounds
    counts, displs = shard_bounds(n, size)
    assert counts.dtype == np.intc and displs.dtype == np.intc and counts.shape == (size,)
    assert counts.sum() == n and (counts >= 0).all()
    assert np.array_equal(displs, np.concatenate([[0], np.cumsum(counts)[:-1]]))
    assert (displs[counts > 0] % 16 == 0).all() and (counts[displs + counts < n] % 16 == 0).all()
    full = counts[:np.flatnonzero(counts)[-1]]              # all but the last non-empty
    assert (full == counts[0]).all()


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_default_schedule_splits_every_global_batch(size):
    perm = np.random.default_rng(0).permutation(103)
    parts = [fake(r, size).schedule(perm, 16, False) for r in range(size)]
    for step in range(7):                   # 6 batches of 16, one of 7
        rows = []
        for local, sched in parts:
            first = sched[:step, 0].sum()
            rows.append(local[first:first + sched[step, 0]])
            assert sched[step, 1] == min(16, 103 - 16 * step)
        assert np.array_equal(np.concatenate(rows), perm[16 * step:16 * step + 16])
        assert [s[step, 2] for _, s in parts] == [r * sched[step, 1] // size
                                                  for r in range(size)]   # in-batch row


def test_sharded_schedule_runs_every_rank_as_long_as_the_longest():
    counts = [10, 3, 7]                      # shares of a global batch of 6: 2 rows each
    scheds = [fake(r, 3, counts).schedule(np.arange(n), 6, True)[1]
              for r, n in enumerate(counts)]
    assert all(s.shape[0] == 5 for s in scheds)          # ceil(10 / 2) steps
    for r, s in enumerate(scheds):
        assert s[:, 0].sum() == counts[r]                # every row once
    assert list(scheds[0][:, 1]) == [6, 5, 4, 3, 2]      # global rows: those that remain
    assert list(scheds[1][:, 0]) == [2, 1, 0, 0, 0]
    keys = {(k, r) for s in scheds for k, r in zip(s[:, 2], s[:, 0]) if r}
    assert len({k for k, _ in keys}) == len(keys)        # distinct dropout keys


def test_batchnorm_shares_of_one_row_are_refused():
    d = fake(0, 3)
    d.batchnorm = True
    with pytest.raises(ValueError, match="share of 1 row"):
        d.schedule(np.arange(100), 16, False)            # last batch of 4: shares 1, 1, 2
    d.schedule(np.arange(102), 16, False)                # 6 rows: 2 each: fine


def test_distributed_needs_the_fused_loop():
    from mpi4py import MPI
    model = fm.Sequential([fm.Dense(8, 3), python_identity()], seed=3)
    _, X, y = worker.problem()
    with pytest.raises(ValueError, match="fused loop only"):
        worker.trainer_for(model, comm=MPI.COMM_SELF).fit(X, y, verbose=0)


def test_demo_distributed_under_mpiexec():
    """`mpiexec -n 2 python -m fastmlp demo --distributed`: one data-parallel fit, rank 0
    alone printing, the test accuracy once."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec next to the interpreter or on PATH")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "fastmlp", "demo",
                           "--distributed", "--epochs", "8", "--plot", "", "--verbose", "0"],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("data parallel on 2 MPI processes") == 1
    assert out.count("test accuracy") == 1 and "fused core: True" in out
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 85
