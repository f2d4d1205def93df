"""A rank of the distributed tests (tests/test_distributed.py launches it with mpiexec).

``python mpi_worker.py SCENARIO OUTDIR [DTYPE]``: trains as the scenario says and writes
``OUTDIR/rank<r>.npz`` (weights, history). ``problem()`` is shared with the tests, which fit
the same problem in one process.
"""
import json
import os
import sys

import numpy as np

import fastmlp as fm

N_ROWS, BATCH, EPOCHS = 103, 16, 3      # the last batch of 7 rows splits unevenly


def problem(dtype="float64", dropout=0.2, n_rows=N_ROWS, augment=False, maxnorm=None):
    """A model (Dense, Dropout, Dense: 8 -> 3 classes; augment: an ImageAugment of the
    rows as 2 x 4 images first; maxnorm: a MaxNorm of that value on the first Dense), a
    trainer and its data."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n_rows, 8)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    layers = [fm.ImageAugment((2, 4), max_shift=1.0, flip=True)] if augment else []
    con = fm.MaxNorm(maxnorm) if maxnorm else None
    layers += [fm.Dense(8, 16, activation="relu", constraint=con)]
    layers += [fm.Dropout(dropout)] if dropout else []
    model = fm.Sequential(layers + [fm.Dense(16, 3)], dtype=dtype, seed=3)
    return model, X, y


def trainer_for(model, comm=None, optimizer=None, regularizers=None, **kw):
    return fm.Trainer(model, fm.CrossEntropyLoss(), optimizer or fm.Adam(lr=1e-2),
                      regularizers=regularizers or [fm.L2Penalty(1e-4)], seed=5, n_threads=1,
                      comm=comm, **kw)


# scenario "state-<name>" (the optimizer state after a fit): optimizers, regularizers, max-norm
OPTIMIZERS = {"adam": lambda: fm.Adam(lr=1e-2, amsgrad=True),
              "sgd": lambda: fm.SGD(lr=0.05, momentum=0.9, nesterov=True),
              "rmsprop": lambda: fm.RMSprop(lr=1e-2, momentum=0.5, centered=True),
              "lamb": lambda: fm.LAMB(lr=1e-2)}
STATE_MAXNORM = 0.9


def state_trainer(name, dtype="float64", comm=None):
    """The model, trainer and data of scenario ``state-<name>``."""
    model, X, y = problem(dtype, maxnorm=STATE_MAXNORM)
    regs = [fm.L2Penalty(1e-3), fm.L1Penalty(1e-3, proximal=True)]
    return model, trainer_for(model, comm, OPTIMIZERS[name](), regs), X, y


def main():
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    scenario, out = sys.argv[1], sys.argv[2]
    dtype = sys.argv[3] if len(sys.argv) > 3 else "float64"
    rank, size = comm.Get_rank(), comm.Get_size()
    model, X, y = problem(dtype, augment=scenario == "augment")
    result, arrays = {}, {}
    if scenario.startswith("state-"):
        model, trainer, X, y = state_trainer(scenario[6:], dtype, comm)
        trainer._dist.shard = sys.argv[4] != "full" if len(sys.argv) > 4 else True
        trainer.fit(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
        result["step"] = trainer.optimizer.step_count
        arrays = {f"state_{k}": v for k, v in trainer.optimizer.state.items()}
    elif scenario == "nonfinite":
        X[40] = 1e308                   # the rank whose share holds it: a non-finite loss
        try:
            history = trainer_for(model, comm).fit(X, y, epochs=EPOCHS, batch_size=BATCH,
                                                    verbose=0)
            result["loss"] = history.history["loss"]
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
    elif scenario in ("same", "augment"):
        history = trainer_for(model, comm).fit(X, y, epochs=EPOCHS, batch_size=BATCH,
                                                verbose=2)
        result["loss"] = history.history["loss"]
    elif scenario == "sharded":
        trainer = trainer_for(model, comm, metrics=["accuracy"])
        cuts = [N_ROWS * r * (r + 1) // (size * (size + 1)) for r in range(1, size)]
        mine = np.split(np.arange(N_ROWS), cuts)[rank]       # unequal: 17, 34, 52 rows
        history = trainer.fit(X[mine], y[mine], epochs=EPOCHS, batch_size=BATCH,
                              sharded=True, validation_split=0.2, verbose=0)
        result = {k: v for k, v in history.history.items() if k != "epoch_time"}
    elif scenario == "callbacks":
        trainer = trainer_for(model, comm, metrics=["accuracy"])
        ckpt = os.path.join(out, "ckpt-{epoch}.fmlp")
        cbs = [fm.EarlyStopping(patience=1, min_delta=10.0, verbose=1),
               fm.ModelCheckpoint(ckpt, save_best_only=False, verbose=1),
               fm.CSVLogger(os.path.join(out, "log.csv"))]
        history = trainer.fit(X, y, epochs=20, batch_size=BATCH, validation_split=0.25,
                              callbacks=cbs, verbose=0)
        result = {k: v for k, v in history.history.items() if k != "epoch_time"}
        fm.save(trainer, os.path.join(out, "final.fmlp"))
    elif scenario == "fail":
        def boom(epoch, logs):
            if rank == 1 and epoch == 1:
                raise ZeroDivisionError("rank 1 fails on purpose")
        cb = fm.LambdaCallback(on_epoch_end=boom)
        try:
            trainer_for(model, comm).fit(X, y, epochs=EPOCHS, batch_size=BATCH,
                                         callbacks=[cb], verbose=0)
        except Exception as exc:         # every rank must get here, none may hang
            result["error"] = f"{type(exc).__name__}: {exc}"
    elif scenario == "mismatch":
        Xr = X[:, :7] if rank == 1 else X
        try:
            trainer_for(fm.Sequential([fm.Dense(Xr.shape[1], 3)], dtype=dtype, seed=3),
                        comm).fit(Xr, y, batch_size=BATCH, verbose=0)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
    elif scenario == "mismatch_lr":
        trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2 * (1 + rank)),
                             comm=comm)
        try:
            trainer.fit(X, y, batch_size=BATCH, verbose=0)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    np.savez(os.path.join(out, f"rank{rank}.npz"), params=model.params,
             result=json.dumps(result), **arrays)


if __name__ == "__main__":
    main()
