"""
Benchmark ratios of one real run
================================

The bar chart of the ratios in the README's performance table (one full run of
``python -m fastmlp bench`` on the project's machine: 2 vCPUs of an AMD EPYC, Zen 3):
the NumPy reference's and PyTorch's time over fastmlp's, per case (above 1: fastmlp is
faster). The numbers are read from the README when the documentation is built, so the
chart follows the table whenever a new run replaces it.
"""
import os

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
cols = {name: header.index(name) for name in ("unit", "vs numpy", "vs torch", "GEMM share")}


def ratio(text):
    text = text.strip().rstrip("x")
    return float(text) if text not in ("", "-") else np.nan


cases, numpy_ratio, torch_ratio = [], [], []
for line in table[table.index(header) + 2:]:
    if not line.strip():
        continue
    cases.append(line[:cols["unit"]].strip())
    numpy_ratio.append(ratio(line[cols["vs numpy"]:cols["vs torch"]]))
    torch_ratio.append(ratio(line[cols["vs torch"]:cols["GEMM share"]]))
keep = [i for i in range(len(cases)) if not np.isnan(numpy_ratio[i] + torch_ratio[i])]

y = np.arange(len(keep))
fig, ax = plt.subplots(figsize=(7, 0.35 * len(keep) + 1))
ax.barh(y - 0.2, [numpy_ratio[i] for i in keep], height=0.4, label="NumPy reference")
ax.barh(y + 0.2, [torch_ratio[i] for i in keep], height=0.4, label="PyTorch (CPU)")
ax.set_yticks(y, [cases[i] for i in keep])
ax.invert_yaxis()
ax.set_xscale("log")
ax.axvline(1.0, color="k", lw=0.8)
ax.set_xlabel("their time / fastmlp's time (log scale)")
ax.legend()
fig.tight_layout()
plt.show()
