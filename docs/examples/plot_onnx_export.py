"""
Export to ONNX and check it
===========================

A classifier trained by fastmlp is exported with ``fm.to_onnx`` and run by ONNX Runtime;
the scatter plot compares the probabilities of both (they agree to float32 rounding).
"""
import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_iris

import fastmlp as fm

X, y = load_iris(return_X_y=True)
X = X.astype(np.float32)
clf = fm.MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
proto = fm.to_onnx(clf)
session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
label, proba = session.run(None, {"X": X})
print("labels equal:", bool((label == clf.predict(X)).all()))
print("max |difference| of probabilities:", np.abs(proba - clf.predict_proba(X)).max())

fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(clf.predict_proba(X).ravel(), proba.ravel(), s=8)
ax.set_xlabel("fastmlp predict_proba")
ax.set_ylabel("ONNX Runtime probabilities")
plt.show()
