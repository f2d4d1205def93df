"""A multi-input, multi-task graph model (the functional API) on scikit-learn's wine data.

Two inputs: the wine's acidity and mineral measurements, and its phenol and colour
measurements (each through its own small tower); a shared trunk on their concatenation;
two heads: the cultivar (3 classes, cross-entropy) and the alcohol content (regression,
squared error on the standardized value; alcohol is not among the inputs). One Trainer fits
both heads at once, with a weight per loss, a validation split and per-head metrics.

Run: ``python examples/graph_multitask.py`` (a few seconds). It prints the model, both
heads' scores on held-out test rows, and linear baselines on the same inputs (logistic
regression, ridge) for scale.
"""
import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score

import fastmlp as fm

ACID_MINERAL = ["malic_acid", "ash", "alcalinity_of_ash", "magnesium", "proline"]
PHENOL_COLOUR = ["total_phenols", "flavanoids", "nonflavanoid_phenols", "proanthocyanins",
                 "color_intensity", "hue", "od280/od315_of_diluted_wines"]


def wine(seed=0):
    """``(train, test)``: each ``([acid, phenol], [cultivar, alcohol])``, standardized on
    the training rows."""
    data = load_wine()
    cols = {name: i for i, name in enumerate(data.feature_names)}
    X, y = data.data, data.target
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, te = idx[:130], idx[130:]
    parts = []
    for names in (ACID_MINERAL, PHENOL_COLOUR, ["alcohol"]):
        scaler = fm.Standardizer().fit(X[tr][:, [cols[n] for n in names]])
        parts.append([scaler.transform(X[rows][:, [cols[n] for n in names]])
                      for rows in (tr, te)])
    (acid_tr, acid_te), (phen_tr, phen_te), (alc_tr, alc_te) = parts
    return ([acid_tr, phen_tr], [y[tr], alc_tr]), ([acid_te, phen_te], [y[te], alc_te])


def network(seed=0):
    acid = fm.Input(len(ACID_MINERAL), name="acid_mineral")
    phenol = fm.Input(len(PHENOL_COLOUR), name="phenol_colour")
    towers = [fm.Dense(len(ACID_MINERAL), 16, activation="tanh")(acid),
              fm.Dense(len(PHENOL_COLOUR), 16, activation="tanh")(phenol)]
    trunk = fm.Dense(32, 32, activation="relu")(fm.Concatenate()(towers))
    trunk = fm.Dropout(0.1)(trunk)
    cultivar = fm.Dense(32, 3)(trunk, name="cultivar")
    alcohol = fm.Dense(16, 1)(fm.Dense(32, 16, activation="tanh")(trunk), name="alcohol")
    return fm.Model([acid, phenol], [cultivar, alcohol], dtype="float64", seed=seed)


def main():
    (X_tr, y_tr), (X_te, y_te) = wine()
    model = network()
    print(model)
    trainer = fm.Trainer(model, {"cultivar": fm.CrossEntropyLoss(), "alcohol": fm.MSELoss()},
                         fm.Adam(3e-3), loss_weights={"cultivar": 1.0, "alcohol": 0.5},
                         metrics={"cultivar": "accuracy", "alcohol": "r2"})
    history = trainer.fit(X_tr, y_tr, epochs=150, batch_size=16, validation_split=0.15,
                          verbose=0, callbacks=[fm.EarlyStopping(patience=30,
                                                                 restore_best_weights=True)])
    print(f"\ntrained {len(history.history['loss'])} epochs")
    scores = trainer.evaluate(X_te, y_te)
    print(f"test rows: {len(y_te[0])}")
    print(f"  cultivar head: accuracy {scores['cultivar_accuracy']:.3f}  "
          f"(cross-entropy {scores['cultivar_loss']:.3f})")
    print(f"  alcohol head:  R² {scores['alcohol_r2']:.3f}  "
          f"(squared error {scores['alcohol_loss']:.3f}, standardized)")
    A_tr, A_te = np.hstack(X_tr), np.hstack(X_te)
    logistic = LogisticRegression(max_iter=1000).fit(A_tr, y_tr[0]).score(A_te, y_te[0])
    ridge = r2_score(y_te[1], Ridge().fit(A_tr, y_tr[1]).predict(A_te))
    print(f"linear baselines: logistic regression accuracy {logistic:.3f}, ridge R² {ridge:.3f}")


if __name__ == "__main__":
    main()
