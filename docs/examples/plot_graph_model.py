"""
A multi-input, multi-task graph model
=====================================

The functional API (``fm.Input``, layers called on tensors, ``fm.Concatenate``,
``fm.Model``) on scikit-learn's wine data: two groups of measurements enter through their
own towers, a shared trunk reads both, and two heads learn at once — the cultivar (3
classes, cross-entropy) and the alcohol content (regression on the standardized value;
alcohol is not among the inputs). One Trainer fits both, with a weight per loss; the plot
draws each head's validation curve.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine

import fastmlp as fm

data = load_wine()
Z = fm.Standardizer().fit(data.data).transform(data.data)
alcohol, acid, phenol = Z[:, :1], Z[:, 1:6], Z[:, 6:]

a, p = fm.Input(5, name="acid_mineral"), fm.Input(7, name="phenol_colour")
trunk = fm.Dense(32, 32, activation="relu")(
    fm.Concatenate()([fm.Dense(5, 16, activation="tanh")(a),
                      fm.Dense(7, 16, activation="tanh")(p)]))
model = fm.Model([a, p], [fm.Dense(32, 3)(trunk, name="cultivar"),
                          fm.Dense(32, 1)(trunk, name="alcohol")], dtype="float64", seed=0)
print(model)

trainer = fm.Trainer(model, {"cultivar": fm.CrossEntropyLoss(), "alcohol": fm.MSELoss()},
                     fm.Adam(3e-3), loss_weights={"cultivar": 1.0, "alcohol": 0.5},
                     metrics={"cultivar": "accuracy", "alcohol": "r2"})
history = trainer.fit([acid, phenol], [data.target, alcohol], epochs=80, batch_size=16,
                      validation_split=0.25, verbose=0).history
print(f"validation: cultivar accuracy {history['val_cultivar_accuracy'][-1]:.3f}, "
      f"alcohol R² {history['val_alcohol_r2'][-1]:.3f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
epochs = np.arange(1, len(history["loss"]) + 1)
ax1.plot(epochs, history["val_cultivar_loss"], label="cultivar (cross-entropy)")
ax1.plot(epochs, history["val_alcohol_loss"], label="alcohol (squared error)")
ax1.set_xlabel("epoch")
ax1.set_ylabel("validation loss")
ax1.legend()
ax2.plot(epochs, history["val_cultivar_accuracy"], label="cultivar accuracy")
ax2.plot(epochs, history["val_alcohol_r2"], label="alcohol R²")
ax2.set_xlabel("epoch")
ax2.legend()
fig.tight_layout()
plt.show()
