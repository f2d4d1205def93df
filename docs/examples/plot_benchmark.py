"""
Benchmark ratios of one real run
================================

The bar chart of the ratios in the README's performance table (one full run of
``python -m fastmlp bench`` on the machine the README names): the
NumPy reference's, PyTorch's, JAX's and ONNX Runtime's time over fastmlp's, per case, the
median over the interleaved rounds (above 1: fastmlp is faster). The numbers are read from the README when the documentation is built, so the
chart follows the table whenever a new run replaces it.
"""
import os
import re

import matplotlib.pyplot as plt
import numpy as np

here = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
readme = None
for up in (here, os.path.dirname(here), os.path.dirname(os.path.dirname(here))):
    if os.path.exists(os.path.join(up, "README.md")):
        readme = open(os.path.join(up, "README.md"), encoding="utf-8").read()
        break
table = readme[readme.index("## Performance"):].split("```")[1].splitlines()
header = next(line for line in table if line.startswith("case "))
PEERS = ("NumPy reference", "PyTorch (CPU)", "JAX (jit + scan)", "ONNX Runtime")
# a ratio cell is "1.23x [1.10-1.40]" (median over rounds, range) or "-" (not measured)
cell = re.compile(r"(\d+(?:\.\d+)?)x \[[^\]]*\]|(?<=\s)-(?=\s|$)")

cases, ratios = [], []
for line in table[table.index(header) + 2:]:
    if not line.strip():
        continue
    found = [m.group(1) for m in cell.finditer(line)][:len(PEERS)]
    if len(found) < len(PEERS):
        continue
    cases.append(re.split(r"\s{2,}", line.strip())[0])
    ratios.append([float(v) if v else np.nan for v in found])
ratios = np.array(ratios)
keep = [i for i in range(len(cases)) if np.isfinite(ratios[i]).any()]

y = np.arange(len(keep))
fig, ax = plt.subplots(figsize=(7, 0.45 * len(keep) + 1))
for j, peer in enumerate(PEERS):
    ax.barh(y - 0.3 + 0.2 * j, ratios[keep, j], height=0.2, label=peer)
ax.set_yticks(y, [cases[i] for i in keep])
ax.invert_yaxis()
ax.set_xscale("log")
ax.axvline(1.0, color="k", lw=0.8)
ax.set_xlabel("their time / fastmlp's time (log scale)")
ax.legend()
fig.tight_layout()
plt.show()
