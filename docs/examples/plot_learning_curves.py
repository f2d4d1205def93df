"""
Learning curves on handwritten digits
=====================================

A Trainer fits an MLP on scikit-learn's digits with a validation split; the History of
the fit draws the training and validation loss and accuracy per epoch.
"""
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

import fastmlp as fm

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
model = fm.Sequential(fm.Dense(64, 64, activation="relu"), fm.Dense(64, 10), seed=0)
trainer = fm.Trainer(model, "sparse_categorical_crossentropy", "adam", metrics=["accuracy"])
history = trainer.fit(X, y, epochs=20, batch_size=32, validation_split=0.2, verbose=0)

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
    ax.plot(history.history[key], label="training")
    ax.plot(history.history["val_" + key], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.legend()
fig.tight_layout()
plt.show()
