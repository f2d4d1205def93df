"""fm.lr_find: the learning-rate range test, its suggestion, and that it changes nothing."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import python_identity


def _setup(rng, python=False, opt=None):
    X = rng.normal(size=(256, 4))
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    model = fm.Sequential([fm.Dense(4, 16, activation="relu"), fm.Dense(16, 2)]
                          + ([python_identity()] if python else []), dtype="float64", seed=0)
    return fm.Trainer(model, fm.CrossEntropyLoss(), opt or fm.Adam(lr=1e-3), seed=3), X, y


@pytest.mark.parametrize("python", [False, True])
def test_range_test_and_suggestion(rng, python):
    tr, X, y = _setup(rng, python)
    res = fm.lr_find(tr, X, y, start=1e-5, end=100.0, steps=60, batch_size=16)
    n = len(res.lrs)
    assert 10 < n <= 60 and len(res.losses) == n
    np.testing.assert_allclose(res.lrs, 1e-5 * (1e7) ** (np.arange(n) / 59), rtol=1e-12)
    assert n < 60 or not np.isfinite(res.losses[-1]) or res.losses[-1] > res.losses.min()
    assert 1e-5 < res.suggestion < 100.0
    assert res.losses[:5].mean() > res.losses.min()          # the loss went down first


def test_leaves_model_optimizer_and_trainer_as_they_were(rng):
    tr, X, y = _setup(rng, opt=fm.Adam(lr=1e-3))
    tr.fit(X, y, epochs=1, batch_size=32, verbose=0)          # state to preserve
    before = (tr.model.get_weights(), tr.model.grads.copy(), tr.model.rng_step,
              tr.optimizer.state_dict(), tr._rng.bit_generator.state)
    fm.lr_find(tr, X, y, steps=30)
    after = (tr.model.get_weights(), tr.model.grads.copy(), tr.model.rng_step,
             tr.optimizer.state_dict(), tr._rng.bit_generator.state)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2] and after[4] == before[4]
    assert after[3]["step"] == before[3]["step"] and after[3]["hyper"] == before[3]["hyper"]
    for k in before[3]["state"]:
        np.testing.assert_array_equal(after[3]["state"][k], before[3]["state"][k])
    fresh_tr, X, y = _setup(rng, opt=fm.SGD(lr=0.1))
    fm.lr_find(fresh_tr, X, y, steps=20)
    assert fresh_tr.optimizer.state == {} and fresh_tr.optimizer.step_count == 0
    assert fresh_tr.optimizer.lr == 0.1


def test_plot(rng, tmp_path):
    pytest.importorskip("matplotlib")
    tr, X, y = _setup(rng)
    res = fm.lr_find(tr, X, y, steps=20)
    fig = res.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert fig.axes[0].get_xscale() == "log"


def test_validation(rng):
    tr, X, y = _setup(rng)
    with pytest.raises(ValueError, match="start"):
        fm.lr_find(tr, X, y, start=0.0)
    with pytest.raises(ValueError, match="end"):
        fm.lr_find(tr, X, y, start=1e-3, end=1e-4)
    with pytest.raises(ValueError, match="steps"):
        fm.lr_find(tr, X, y, steps=1)
    with pytest.raises(TypeError, match="trainer"):
        fm.lr_find(object(), X, y)
    full = fm.Trainer(tr.model, fm.CrossEntropyLoss(), fm.LBFGS())
    with pytest.raises(ValueError, match="mini-batch"):
        fm.lr_find(full, X, y)
