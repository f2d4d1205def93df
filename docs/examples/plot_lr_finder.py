"""
Finding a learning rate
=======================

The learning-rate range test (:func:`fastmlp.lr_find`): a few mini-batch steps with a
learning rate that grows exponentially, the smoothed loss recorded at each. The loss
falls, flattens, then explodes; the suggestion is where it falls fastest. The test leaves
the model and the optimizer as they were, so a short fit at the suggested rate follows.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import fastmlp as fm

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
idx = np.random.default_rng(0).permutation(len(y))
train, test = idx[:1200], idx[1200:]

model = fm.Sequential(fm.Dense(64, 128, activation="relu"), fm.Dense(128, 10), seed=0)
trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.SGD(lr=0.1, momentum=0.9),
                     metrics=["accuracy"])

# %%
# The range test, from 1e-5 to 10, with the suggestion marked.
result = fm.lr_find(trainer, X[train], y[train], start=1e-5, end=10.0, steps=100,
                    batch_size=16)
print(result)
result.plot()
plt.show()

# %%
# A short fit at the suggested rate.
trainer.optimizer.lr = result.suggestion
history = trainer.fit(X[train], y[train], epochs=10, batch_size=16,
                      validation_data=(X[test], y[test]), verbose=0)
print(f"lr = {result.suggestion:.3g}: test accuracy "
      f"{trainer.evaluate(X[test], y[test])['accuracy']:.3f}")
history.plot()
plt.show()
