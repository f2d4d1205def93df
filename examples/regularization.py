"""Regularization on an overfitting setup: 200 training rows of scikit-learn's digits and a
wide two-hidden-layer network (about 84k weights for 200 examples).

Compares, with one seed and one training budget: no regularization, an L2 penalty, dropout,
early stopping, and all three together. The validation rows pick the best epoch (and stop
training early); the held-out test rows judge the weights each run ends with.

What to expect: L2 gives the lowest validation and test loss; early stopping keeps the
best epoch of the unregularized run; dropout improves the best epoch a little but, trained on
with Adam, ends with overconfident predictions and a higher loss at about the same accuracy
(PyTorch does the same on this setup), which early stopping in "all combined" avoids.

Run: ``python examples/regularization.py`` (a few seconds to half a minute).
"""
import time

import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import fastmlp as fm

N_TRAIN, N_VAL = 200, 600
HIDDEN, EPOCHS, BATCH, LR = 256, 150, 32, 3e-3


def digits(seed=0):
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, va, te = np.split(idx, [N_TRAIN, N_TRAIN + N_VAL])
    scaler = fm.Standardizer().fit(X[tr])
    return [(scaler.transform(X[part]), y[part]) for part in (tr, va, te)]


def network(dropout=0.0, seed=0):
    layers = [fm.Dense(64, HIDDEN, activation="relu"), fm.Dropout(dropout),
              fm.Dense(HIDDEN, HIDDEN, activation="relu"), fm.Dropout(dropout),
              fm.Dense(HIDDEN, 10)]
    return fm.Sequential([layer for layer in layers
                          if not (isinstance(layer, fm.Dropout) and layer.p == 0)], seed=seed)


SETTINGS = {
    "none": dict(),
    "L2 (lam=1e-3)": dict(l2=1e-3),
    "dropout (p=0.5)": dict(dropout=0.5),
    "early stopping": dict(patience=10),
    "all combined": dict(l2=1e-3, dropout=0.5, patience=20),
}


def run(data, l2=0.0, dropout=0.0, patience=None):
    (Xt, yt), (Xv, yv), (Xs, ys) = data
    model = network(dropout)
    # "log_loss" is the cross-entropy alone: val_loss would include the L2 penalty
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=LR),
                         regularizers=[fm.L2Penalty(l2)] if l2 else [],
                         metrics=["accuracy", "log_loss"])
    callbacks = [fm.EarlyStopping("val_log_loss", patience=patience)] if patience else []
    t0 = time.perf_counter()
    h = trainer.fit(Xt, yt, epochs=EPOCHS, batch_size=BATCH, validation_data=(Xv, yv),
                    callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - t0
    best = int(np.argmin(h["val_log_loss"]))
    final = {name: trainer.evaluate(X, y) for name, X, y in
             (("train", Xt, yt), ("val", Xv, yv), ("test", Xs, ys))}
    test = final["test"]
    return dict(epochs=len(h), best_epoch=best + 1, best_loss=h["val_log_loss"][best],
                best_acc=h["val_accuracy"][best], final_loss=final["val"]["log_loss"],
                train_loss=final["train"]["log_loss"], test_loss=test["log_loss"],
                test_acc=test["accuracy"], seconds=seconds)


def main():
    data = digits()
    print(f"digits: {N_TRAIN} training rows, {N_VAL} validation rows, {len(data[2][1])} test "
          f"rows; network 64-{HIDDEN}-{HIDDEN}-10 "
          f"({network().n_params:,} parameters), Adam(lr={LR:g}), batches of {BATCH}, "
          f"up to {EPOCHS} epochs\n")
    head = (f"{'setting':<17}{'epochs':>7}{'best val loss':>15}{'(epoch)':>8}{'val acc':>9}"
            f"{'final val loss':>16}{'train loss':>12}{'test loss':>11}{'test acc':>10}"
            f"{'time':>7}")
    print(head)
    print("-" * len(head))
    for name, kw in SETTINGS.items():
        # one BLAS thread: for matrices this small, a pool of threads only adds waiting
        with threadpool_limits(1, user_api="blas"):
            r = run(data, **kw)
        print(f"{name:<17}{r['epochs']:>7}{r['best_loss']:>15.4f}{r['best_epoch']:>8}"
              f"{r['best_acc']:>9.3f}{r['final_loss']:>16.4f}{r['train_loss']:>12.4f}"
              f"{r['test_loss']:>11.4f}{r['test_acc']:>10.3f}{r['seconds']:>6.1f}s")
    print("\nbest val loss: the lowest validation cross-entropy over the epochs (val acc at "
          "that epoch);\nfinal val, train and test: the weights the run ends with (early "
          "stopping restores its best epoch's).")


if __name__ == "__main__":
    main()
