"""
Decision boundary on two moons
==============================

``fm.MLPClassifier`` (a drop-in for scikit-learn's) on a 2-D data set; the predicted
probability of class 1 is drawn over a grid, with the training points on top.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons

import fastmlp as fm

X, y = make_moons(n_samples=300, noise=0.25, random_state=0)
clf = fm.MLPClassifier(hidden_layer_sizes=(32, 32), activation="tanh", max_iter=300,
                       random_state=0).fit(X, y)

xx, yy = np.meshgrid(np.linspace(-2, 3, 200), np.linspace(-1.5, 2, 200))
proba = clf.predict_proba(np.c_[xx.ravel(), yy.ravel()])[:, 1].reshape(xx.shape)

fig, ax = plt.subplots(figsize=(5, 4))
ax.contourf(xx, yy, proba, levels=20, cmap="RdBu_r", alpha=0.8)
ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=15)
ax.set_title(f"training accuracy {clf.score(X, y):.2f}")
plt.show()
