"""The main job: train an MLP on the handwritten digits that ship with scikit-learn."""
import time

import numpy as np


def _world():
    """MPI.COMM_WORLD for a data-parallel demo (``mpiexec -n N python -m fastmlp demo
    --distributed``), with a clear message when mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise SystemExit("demo --distributed needs mpi4py and an MPI: "
                         "pip install 'fastmlp[mpi]', then "
                         "mpiexec -n 2 python -m fastmlp demo --distributed") from None
    return MPI.COMM_WORLD


def run(epochs=100, batch_size=32, plot="digits_curves.png", seed=0, verbose=1,
        distributed=False):
    """Train 64-256-128-10 (ReLU, dropout, Adam, early stopping) on sklearn's 8x8 digits
    and print the test accuracy. Returns 0 when it reaches 95 %, 1 otherwise.

    With ``distributed``, every rank of MPI.COMM_WORLD (the processes ``mpiexec`` started)
    trains the same model data parallel (``Trainer(comm=...)``: each rank takes its share
    of every global batch of ``batch_size`` rows, the gradients are summed in the core);
    rank 0 alone prints and writes the plot."""
    from sklearn.datasets import load_digits

    import fastmlp as fm

    comm = _world() if distributed else None
    quiet = comm is not None and comm.Get_rank() != 0     # rank 0 alone speaks and writes
    say = (lambda *args: None) if quiet else print
    if quiet:
        verbose, plot = 0, None

    digits = load_digits()
    X = digits.data.astype(np.float32)
    y = digits.target
    (X_train, y_train), _, (X_test, y_test) = fm.train_val_test_split(
        X, y, sizes=(0.8, 0.0, 0.2), stratify=True, seed=seed)
    scaler = fm.Standardizer().fit(X_train)          # statistics of the training rows only
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    model = fm.Sequential([fm.Dense(64, 256, activation="relu"),
                           fm.Dropout(0.2),
                           fm.Dense(256, 128, activation="relu"),
                           fm.Dense(128, 10)], dtype="float32", seed=seed)
    say(f"fastmlp demo: {X.shape[0]} handwritten digits (8x8): {len(X_train)} for training "
          f"(15 % of them held out for validation), {len(X_test)} for the test")
    say(model)
    if comm is not None:
        say(f"data parallel on {comm.Get_size()} MPI processes: each takes "
              f"1/{comm.Get_size()} of every batch of {batch_size} rows")
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3), metrics=["accuracy"],
                         comm=comm)
    t0 = time.perf_counter()
    history = trainer.fit(X_train, y_train, epochs=epochs, batch_size=batch_size,
                          validation_split=0.15, verbose=verbose,
                          callbacks=[fm.EarlyStopping(monitor="val_loss", patience=20,
                                                      verbose=1)])
    seconds = time.perf_counter() - t0
    result = trainer.evaluate(X_test, y_test)
    say(f"trained {len(history)} epochs in {seconds:.2f} s "
          f"({len(history) * len(X_train) / seconds:,.0f} rows/s, fused core: "
          f"{model.is_fused})")
    say(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.2%}")
    if plot:
        try:
            history.plot(plot)
            say(f"learning curves saved to {plot}")
        except ImportError as exc:
            say(f"(no plot: {exc})")
    return 0 if result["accuracy"] >= 0.95 else 1
