"""
Vanishing gradients, diagnosed
==============================

A deep stack of sigmoid layers trained with plain SGD on the digits: the gradients of
the early layers are orders of magnitude smaller than those of the last ones, and these
layers barely move (``update_ratio``). :class:`fastmlp.Diagnostics` records, per weight
layer, the gradient norm, the weight norm, the update ratio, the fraction of dead ReLUs
and the statistics of the activations; :meth:`fastmlp.History.plot_diagnostics` draws
them. The same net with :class:`fastmlp.BatchNorm` before each hidden sigmoid layer
keeps the gradients of all layers within a small factor of each other. (The
``dead_fraction`` panel stays empty: these nets have no ReLU.)
"""
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fastmlp as fm

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
X, y = X[:600], y[:600]


def run(batch_norm):
    layers = [fm.Dense(64, 64, activation="sigmoid")]
    for _ in range(7):
        layers += ([fm.BatchNorm(64)] if batch_norm else []) + [
            fm.Dense(64, 64, activation="sigmoid")]
    model = fm.Sequential(layers + [fm.Dense(64, 10)], seed=0)
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1))
    diagnostics = fm.Diagnostics(every=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = trainer.fit(X, y, epochs=5, batch_size=32, callbacks=[diagnostics],
                              verbose=0)
    g = diagnostics.records["grad_norm"][-1]
    print(f"batch norm {batch_norm}: gradient norm, first layer / last layer = "
          f"{g[0] / g[-1]:.1e}")
    for w in caught:
        print("warning:", w.message)
    fig = history.plot_diagnostics()
    fig.suptitle("with BatchNorm" if batch_norm else "plain sigmoid net")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# %%
# The plain sigmoid net: the first layers' gradients vanish (and Diagnostics warns).
run(batch_norm=False)
plt.show()

# %%
# The same net with BatchNorm before each hidden sigmoid layer.
run(batch_norm=True)
plt.show()
