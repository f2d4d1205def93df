"""Issue 16's habits with issue 17's features: copies of models with ImageAugment trained
by LAMB, losses by name with a reduction, frozen layers under LAMB, proximal L1 and
Diagnostics, nested Sequentials in Diagnostics, and the refit after a resumed fit."""
import copy
import pickle

import numpy as np
import pytest

import fastmlp as fm


def _data(n=64, d=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), rng.integers(0, 3, n)


def _net(backend="core"):
    return fm.Sequential([fm.Dense(16, 8, activation="relu"), fm.Dense(8, 3)], seed=0,
                         backend=backend)


def test_copies_of_an_augmented_lamb_trainer_train_on_identically():
    X, y = _data()
    m = fm.Sequential([fm.ImageAugment((4, 4), max_shift=1, max_rotation=10),
                       fm.Dense(16, 8, activation="relu"),
                       fm.Sequential([fm.Dense(8, 8, activation="tanh"), fm.Dense(8, 3)])],
                      seed=0)
    assert [n for n, _ in m.named_parameters()] == ["1.W", "1.b", "2.0.W", "2.0.b",
                                                    "2.1.W", "2.1.b"]
    t = fm.Trainer(m, "cross_entropy", fm.LAMB(lr=1e-2, weight_decay=0.01), seed=0)
    t.fit(X, y, epochs=1, verbose=0)
    copies = [copy.deepcopy(t), pickle.loads(pickle.dumps(t))]
    expected = t.fit(X, y, epochs=2, verbose=0).history["loss"]
    for c in copies:
        assert c.fit(X, y, epochs=2, verbose=0).history["loss"] == expected
        np.testing.assert_array_equal(c.model.params, t.model.params)


def test_get_loss_passes_the_reduction_and_the_trainer_checks_its_result():
    assert repr(fm.get_loss("mse", reduction="sum")) == "MSELoss(reduction='sum')"
    assert fm.get_loss("huber", delta=2.0, reduction="sum").reduction == "sum"
    with pytest.raises(ValueError, match="reduction='none'"):
        fm.Trainer(_net(), fm.get_loss("cross_entropy", reduction="none"), "adam")
    with pytest.warns(UserWarning, match="double softmax"):
        fm.Trainer(fm.Sequential([fm.Dense(16, 3), fm.Softmax()]), "categorical_crossentropy",
                   "adam")


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_frozen_layer_stays_under_lamb_and_proximal_l1(backend):
    X, y = _data()
    m = _net(backend)
    m[0].trainable = False
    frozen, free = m[0].W.copy(), m[1].W.copy()
    t = fm.Trainer(m, "cross_entropy", fm.LAMB(lr=1e-2, weight_decay=0.1),
                   regularizers=[fm.L1Penalty(1e-2, proximal=True)], seed=0)
    t.fit(X, y, epochs=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(m[0].W, frozen)
    assert not np.array_equal(m[1].W, free)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_freezing_and_thawing_between_epochs_of_one_fit(backend):
    """A callback that freezes a layer after epoch 1 and thaws it after epoch 2: the
    training loop walks the frozen ranges again after a ``trainable`` change (it keeps
    them between runs otherwise), so epoch 2 leaves the layer and epoch 3 moves it."""
    X, y = _data()
    m = _net(backend)
    seen = {}

    class Toggle(fm.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = m[0].W.copy()
            if epoch in (0, 1):
                m[0].trainable = epoch == 1

    fm.Trainer(m, "cross_entropy", fm.Adam(lr=1e-2), seed=0).fit(
        X, y, epochs=3, batch_size=16, verbose=0, callbacks=[Toggle()])
    np.testing.assert_array_equal(seen[1], seen[0])
    assert not np.array_equal(seen[2], seen[1])
    assert m[0].trainable


def test_lamb_step_leaves_frozen_layers():
    m = _net()
    m[1].trainable = False
    m.grads[:] = 1.0
    before = m[1].W.copy()
    fm.LAMB(lr=0.1).step(m)
    np.testing.assert_array_equal(m[1].W, before)


def test_diagnostics_with_frozen_layers_and_nested_sequentials():
    X, y = _data()
    m = _net()
    m[0].trainable = False
    h = fm.Trainer(m, "cross_entropy", "adam", seed=0).fit(
        X, y, epochs=1, batch_size=8, verbose=0, callbacks=[fm.Diagnostics(every=4)])
    rec = h.diagnostics
    np.testing.assert_array_equal(rec["step"], np.arange(1, 9))     # one-step chunks
    assert (rec["update_ratio"][:, 0] == 0).all() and (rec["update_ratio"][:, 1] > 0).all()
    nested = fm.Sequential([fm.Dense(16, 8, activation="relu"),
                            fm.Sequential([fm.Dense(8, 8, activation="relu"), fm.Dense(8, 3)])],
                           seed=0)
    h = fm.Trainer(nested, "cross_entropy", "adam", seed=0).fit(
        X, y, epochs=1, batch_size=8, verbose=0, callbacks=[fm.Diagnostics(every=4)])
    assert h.diagnostics["grad_norm"].shape == (2, 3)


@pytest.mark.parametrize("refit", ["retrain", "continue"])
def test_refit_after_a_resumed_fit_with_weighted_validation_data(refit):
    X, y = _data()
    es = fm.EarlyStopping(patience=1, refit=refit)
    h = fm.Trainer(_net(), "cross_entropy", fm.SGD(lr=0.5), seed=0).fit(
        X, y, epochs=40, initial_epoch=3, verbose=0, callbacks=[es],
        validation_data=(X[:16], y[:16], np.full(16, 2.0)))
    train = [e for e, p in zip(h.epoch, h.phase) if p == "train"]
    assert train[0] == 3 and es.best_epoch in train
    assert h.phase.count("refit") == es.refit_epochs
    if refit == "retrain":
        assert es.refit_epochs == es.best_epoch + 1
    else:
        assert es.refit_target_loss == h["loss"][h.epoch.index(es.best_epoch)]
        assert es.refit_epochs <= 40 - (train[-1] + 1)
