"""The progress display of fit in a real terminal of 80 columns (issue 16, item 7): every
metric shows, and no line is wider than the terminal."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

pty = pytest.importorskip("pty")
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")

SCRIPT = textwrap.dedent("""
    import numpy as np, fastmlp as fm
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)); y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    model = fm.Sequential([fm.Dense(6, 16, activation="relu"), fm.Dense(16, 3)], seed=0)
    t = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2),
                   metrics=["accuracy", "top_2_accuracy", "f1_macro"], seed=0)
    t.fit(X, y, epochs=2, batch_size=16, validation_split=0.2, verbose=VERBOSE)
""")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KEYS = ("loss", "accuracy", "top_2_accuracy", "f1_macro", "val_loss", "val_accuracy",
        "val_top_2_accuracy", "val_f1_macro")


def _run_in_terminal(verbose, columns=80):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, bytes([24, 0, columns, 0, 0, 0, 0, 0]))
    env = dict(os.environ, COLUMNS=str(columns), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.replace("VERBOSE", str(verbose))],
                            stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:                         # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace"))


@pytest.mark.parametrize("verbose", [1, 2])
def test_every_metric_shows_in_80_columns(verbose):
    text = _run_in_terminal(verbose)
    screens = [seg for line in text.split("\n") for seg in line.split("\r")]
    assert max(len(seg.rstrip()) for seg in screens) <= 80, text
    final = text.split("Epoch 2/2")[-1]
    for key in KEYS:                            # the last epoch's every value, whole
        assert re.search(rf"(?<![a-z_]){key}=[0-9.e+-]+\b", final), (key, text)
