"""The README's "A taste" section runs as written (on small random data, fewer epochs):
the scikit-learn, Keras and PyTorch habits side by side (issue 16)."""
import os

import numpy as np
import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "README.md")


def test_taste_runs(tmp_path, monkeypatch):
    if not os.path.exists(README):
        pytest.skip("README.md is not next to tests/ (an installed test tree)")
    text = open(README, encoding="utf-8").read()
    code = text[text.index("## A taste"):].split("```python")[1].split("```")[0]
    for habit in ("MLPClassifier", "fm.Trainer", "net.train()", "opt.step(net)"):
        assert habit in code
    code = code.replace("epochs=20", "epochs=2").replace("range(10)", "range(2)")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 784)).astype(np.float32)
    y = rng.integers(0, 10, 200)
    monkeypatch.chdir(tmp_path)                # the checkpoints land here
    try:
        import torch  # noqa: F401
    except ImportError:                        # the rest runs without it
        code = "\n".join(line for line in code.splitlines() if "to_torch" not in line)
    exec(compile(code, "README.md", "exec"),
         {"X": X, "y": y, "X_test": X[:40], "y_test": y[:40]})
    assert list(tmp_path.glob("best-*.fmlp"))
