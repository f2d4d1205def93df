"""Trainer habits of Keras and PyTorch users (issue 16): validation split, losses and metrics
by name or class, label shapes, checkpoints, CSV logs, fit arguments."""
import numpy as np
import pytest

import fastmlp as fm


@fm.io.register(name="tests.habits.RowIds")
class RowIds(fm.Layer):
    """First layer in NumPy: records the row ids (column 0) seen in evaluation mode."""

    def __init__(self, n_in):
        super().__init__()
        self.n_in = n_in
        self.evaluated = []

    def build(self, n_in):
        self.n_out = n_in - 1
        return self.n_out

    def forward(self, X, training=False):
        if not training:
            self.evaluated.append(X[:, 0].astype(np.int64))
        return X[:, 1:]

    def backward(self, dY):
        return np.hstack([np.zeros((dY.shape[0], 1), dY.dtype), dY])


def _ids_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = np.hstack([np.arange(n)[:, None], rng.normal(size=(n, 4))])
    return X, rng.integers(0, 3, n)


def _val_rows(trainer, X, y, **kw):
    rec = trainer.model[0]
    rec.evaluated.clear()
    trainer.fit(X, y, epochs=1, validation_split=0.2, verbose=0, **kw)
    return set(np.concatenate(rec.evaluated).tolist())


@pytest.mark.parametrize("seed", [0, None])
def test_validation_split_holds_out_the_same_rows_every_fit(tmp_path, seed):
    """Item 3: a second fit, or a fit after a resume, validates on the rows held out first."""
    X, y = _ids_data()
    model = fm.Sequential([RowIds(5), fm.Dense(4, 3)], seed=seed)
    t = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-3))
    first = _val_rows(t, X, y)
    assert len(first) == 40
    assert _val_rows(t, X, y) == first
    fm.save(t, tmp_path / "t.fmlp")
    resumed = fm.load(tmp_path / "t.fmlp")
    assert _val_rows(resumed, X, y) == first
    other = fm.Trainer(fm.Sequential([RowIds(5), fm.Dense(4, 3)], seed=1),
                       fm.CrossEntropyLoss(), fm.Adam(), seed=12345)
    assert _val_rows(other, X, y) != first          # fixed by the seed, not by accident
