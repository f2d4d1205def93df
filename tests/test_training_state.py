"""One training state (issue 13, item 4): a model's RNG key and counter live in its
``TrainingState``, which its compiled plans and the fused loops read and advance by
pointer; an optimizer's step count lives in the optimizer, which the fused loop advances
in place. No copy exists to be synchronized, whichever path runs the steps."""
import copy
import pickle

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._plan import TrainingState


def _model(seed=0, backend="core"):
    return fm.Sequential([fm.Dense(4, 8, activation="relu"), fm.Dropout(0.5),
                          fm.Dense(8, 2)], seed=seed, backend=backend)


def _data(n=40):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 4)), rng.integers(0, 2, n)


def test_the_plan_reads_the_models_state():
    model = _model()
    assert model.plan is model._stages[0][1] and model.plan.state is model.state
    model.rng_step, model.rng_seed = 7, 11
    assert (model.state.rng_step, model.state.seed) == (7, 11)
    assert (model.plan.state.rng_step, model.plan.state.seed) == (7, 11)
    with pytest.raises(ValueError, match="rng_step must be in"):
        model.rng_step = -1


def test_a_new_seed_takes_effect_without_recompiling():
    X = np.ones((6, 4), np.float32)
    a, b, c = _model(seed=1), _model(seed=1), _model(seed=1)
    plan = b.plan
    b.rng_seed = c.rng_seed = 99
    c.backend = "core"                                    # c recompiled, b not
    assert b.plan is plan
    out = b.forward(X, training=True)
    assert not np.array_equal(out, a.forward(X, training=True))    # another dropout mask
    np.testing.assert_array_equal(out, c.forward(X, training=True))


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_training_advances_the_one_state_on_every_path(backend):
    X, y = _data()
    model = _model(backend=backend)
    trainer = fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(1e-2), seed=0)
    trainer.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert model.rng_step == trainer.optimizer.step_count == 10
    assert model.plan is None or model.plan.state.rng_step == 10


def test_copies_own_their_state():
    model = _model()
    model.rng_step = 5
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert other.state is not model.state and other.plan.state is other.state
        assert (other.rng_seed, other.rng_step) == (model.rng_seed, 5)
        other.forward(np.ones((2, 4)), training=True)
        assert (other.rng_step, model.rng_step) == (6, 5)
    state = pickle.loads(pickle.dumps(TrainingState(3, 4)))
    assert (state.seed, state.rng_step) == (3, 4)


def test_the_fused_loop_counts_steps_in_the_optimizers_own_count():
    X, y = _data()
    opt = fm.SGD(lr=0.1)
    trainer = fm.Trainer(_model(), fm.CrossEntropyLoss(), opt, seed=0)
    trainer.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert opt.step_count == 5 and opt.state_dict()["step"] == 5
    restored = fm.SGD(lr=0.1)
    restored.load_state_dict(opt.state_dict())
    assert restored.step_count == 5
    opt.reset()
    assert opt.step_count == 0
