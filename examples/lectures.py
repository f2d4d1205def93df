"""What the lectures show, one section per concept (issue 17), printed and plotted.

* reductions: the lectures' sum forms (½Σ(y − t)², −Σ log p) as ``reduction="sum"``;
* output unit vs cost: the Trainer's warning on a Softmax before CrossEntropyLoss;
* soft tying: ``TyingPenalty`` pulls two layers' weights together;
* proximal L1: exact zeros on the irrelevant inputs (``fm.sparsity``), the subgradient none;
* early stopping's retraining: plain vs ``refit="retrain"`` vs ``refit="continue"`` on a
  held-out test set (digits);
* the learning-rate range test: ``fm.lr_find`` and its plot;
* LAMB next to Adam on the same network;
* dataset augmentation: digits with and without ``ImageAugment`` (shifts, small rotations
  and zooms; no flips: a mirrored digit is another symbol);
* diagnostics of a deep sigmoid net (vanishing gradients) next to the same net with batch
  norm: ``fm.Diagnostics`` and ``History.plot_diagnostics``.

Run: ``python examples/lectures.py [outdir]`` (under a minute; PNGs go to ``outdir``,
default the current directory).
"""
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import fastmlp as fm


def reductions():
    print("== loss reductions ==")
    pred, target = np.array([[1.0], [2.0]]), np.array([1.0, 4.0])
    print(f"MSE mean {fm.MSELoss()(pred, target)}, sum {fm.MSELoss(reduction='sum')(pred, target)}"
          f", ½·sum (the lectures' form) {0.5 * fm.MSELoss(reduction='sum')(pred, target)}, "
          f"none {fm.MSELoss(reduction='none')(pred, target).ravel()}")


def output_unit():
    print("== output unit matched to the cost ==")
    model = fm.Sequential([fm.Dense(4, 3), fm.Softmax()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam())
    print("warning:", caught[0].message)


def tying(rng):
    print("== soft parameter tying ==")
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    for lam in (0.0, 0.1, 1.0):
        a, b = fm.Dense(5, 5, activation="tanh"), fm.Dense(5, 5, activation="tanh")
        model = fm.Sequential([a, b, fm.Dense(5, 2)], seed=0)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2),
                        regularizers=[fm.TyingPenalty(a, b, lam)])
        tr.fit(X, y, epochs=40, batch_size=32, verbose=0)
        print(f"lam={lam:<4} ‖W_a − W_b‖ = {np.linalg.norm(a.W - b.W):.4f}")


def proximal(rng):
    print("== L1 that makes weights zero (inputs 3..9 are irrelevant) ==")
    X = rng.normal(size=(500, 10))
    y = X[:, :3] @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=500)
    for name, pen in (("subgradient", fm.L1Penalty(0.1)),
                      ("proximal", fm.L1Penalty(0.1, proximal=True))):
        model = fm.Sequential([fm.Dense(10, 1)], dtype="float64", seed=0)
        fm.Trainer(model, fm.MSELoss(), fm.SGD(lr=0.05), regularizers=[pen]).fit(
            X, y, epochs=40, batch_size=25, verbose=0)
        w = np.array2string(model[0].W[:, 0], precision=3, suppress_small=True)
        print(f"{name:<12} W = {w}  sparsity {fm.sparsity(model)}")


def _digits():
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))
    tr, va, te = np.split(idx, [300, 600])
    X = X / 16.0
    return (X[tr], y[tr]), (X[va], y[va]), (X[te], y[te])


def refit():
    print("== early stopping: the two retraining strategies (digits, test set) ==")
    (Xt, yt), (Xv, yv), (Xs, ys) = _digits()
    for strategy in (None, "retrain", "continue"):
        model = fm.Sequential([fm.Dense(64, 128, activation="relu"), fm.Dense(128, 10)],
                              seed=0)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=3e-3),
                        metrics=["accuracy"], seed=0)
        es = fm.EarlyStopping(patience=5, refit=strategy)
        tr.fit(Xt, yt, epochs=200, batch_size=32, validation_data=(Xv, yv), callbacks=[es],
               verbose=0)
        test = tr.evaluate(Xs, ys)
        print(f"refit={str(strategy):<9} best epoch {es.best_epoch + 1:>3}, refit epochs "
              f"{es.refit_epochs:>3}: test loss {test['loss']:.4f}, "
              f"accuracy {test['accuracy']:.4f}")


def lr_range(outdir):
    print("== the learning-rate range test ==")
    (Xt, yt), _, _ = _digits()
    model = fm.Sequential([fm.Dense(64, 128, activation="relu"), fm.Dense(128, 10)], seed=0)
    tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1, momentum=0.9))
    res = fm.lr_find(tr, Xt, yt, start=1e-5, end=10.0, steps=100, batch_size=16)
    path = Path(outdir) / "lr_find.png"
    res.plot(path)
    print(f"{len(res.lrs)} steps, suggestion lr = {res.suggestion:.3g}; plot: {path}")


def lamb():
    print("== LAMB next to Adam ==")
    (Xt, yt), _, (Xs, ys) = _digits()
    for opt in (fm.Adam(lr=3e-3), fm.LAMB(lr=3e-2, weight_decay=0.01)):
        model = fm.Sequential([fm.Dense(64, 128, activation="relu"), fm.Dense(128, 10)],
                              seed=0)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), opt, metrics=["accuracy"])
        tr.fit(Xt, yt, epochs=30, batch_size=64, verbose=0)
        print(f"{type(opt).__name__:<5} test accuracy {tr.evaluate(Xs, ys)['accuracy']:.4f}")


def augmentation():
    print("== dataset augmentation (digits, 300 training rows) ==")
    (Xt, yt), _, (Xs, ys) = _digits()
    # 8x8 images: half a pixel of shift is already a lot; augmented data needs more epochs
    for aug, epochs in ((None, 100),
                        (fm.ImageAugment((8, 8), max_shift=0.5, max_rotation=8, max_scale=0.05),
                         200)):
        layers = ([aug] if aug else []) + [fm.Dense(64, 128, activation="relu"),
                                            fm.Dense(128, 10)]
        model = fm.Sequential(layers, seed=0)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=3e-3), metrics=["accuracy"])
        tr.fit(Xt, yt, epochs=epochs, batch_size=32, verbose=0)
        test = tr.evaluate(Xs, ys)
        print(f"{'with' if aug else 'without':<7} augmentation ({epochs} epochs): "
              f"test loss {test['loss']:.4f}, "
              f"accuracy {test['accuracy']:.4f}")


def diagnostics(outdir):
    print("== diagnostics: a deep sigmoid net, without and with batch norm ==")
    (Xt, yt), _, _ = _digits()
    for bn in (False, True):
        layers = [fm.Dense(64, 64, activation="sigmoid")]
        for _ in range(7):
            layers += ([fm.BatchNorm(64)] if bn else []) + [fm.Dense(64, 64, activation="sigmoid")]
        model = fm.Sequential(layers + [fm.Dense(64, 10)], seed=0)
        diag = fm.Diagnostics(every=5)
        tr = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hist = tr.fit(Xt, yt, epochs=5, batch_size=32, callbacks=[diag], verbose=0)
        g = diag.records["grad_norm"][-1]
        path = Path(outdir) / f"diagnostics_{'batchnorm' if bn else 'plain'}.png"
        hist.plot_diagnostics(path)
        print(f"batch norm={bn!s:<5} ‖dW‖ first/last layer = {g[0] / g[-1]:.2e}, "
              f"{len(caught)} warnings; plot: {path}")
        if caught:
            print("  e.g.", caught[0].message)


def main(outdir="."):
    rng = np.random.default_rng(0)
    reductions()
    output_unit()
    tying(rng)
    proximal(rng)
    refit()
    lr_range(outdir)
    lamb()
    augmentation()
    diagnostics(outdir)


if __name__ == "__main__":
    main(*sys.argv[1:])
