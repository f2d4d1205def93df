"""
Regularization compared
=======================

The same wide MLP trained on a small, noisy regression problem without regularization,
with an L2 penalty and with dropout; the validation loss per epoch shows which one
overfits.
"""
import matplotlib.pyplot as plt
import numpy as np

import fastmlp as fm

rng = np.random.default_rng(0)
X = rng.uniform(-3, 3, size=(200, 1)).astype("float32")
y = (np.sin(X) + 0.3 * rng.normal(size=X.shape)).astype("float32")


def fit(extra_layers=(), regularizers=()):
    model = fm.Sequential(fm.Dense(1, 128, activation="relu"), *extra_layers,
                          fm.Dense(128, 128, activation="relu"), fm.Dense(128, 1), seed=0)
    trainer = fm.Trainer(model, "mse", fm.Adam(lr=1e-2), regularizers=list(regularizers))
    return trainer.fit(X, y, epochs=60, batch_size=16, validation_split=0.5, verbose=0)


runs = {"none": fit(), "L2 1e-3": fit(regularizers=[fm.L2Penalty(1e-3)]),
        "dropout 0.3": fit(extra_layers=[fm.Dropout(0.3)])}

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, history in runs.items():
    ax.plot(history.history["val_loss"], label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("validation MSE")
ax.set_yscale("log")
ax.legend()
plt.show()
