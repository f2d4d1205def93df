"""EarlyStopping's two retraining strategies on training + validation rows (refit=)."""
import numpy as np
import pytest

import fastmlp as fm


def _data(rng, n=60):
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=n)
    return X, y


def _trainer(seed=5):
    model = fm.Sequential([fm.Dense(3, 16, activation="tanh"), fm.Dense(16, 1)],
                          dtype="float64", seed=seed)
    return fm.Trainer(model, fm.MSELoss(), fm.Adam(lr=0.05), seed=1)


def test_retrain_equals_a_fresh_model_on_all_rows(rng):
    X, y = _data(rng)
    Xv, yv = _data(rng, 20)
    tr = _trainer()
    es = fm.EarlyStopping(patience=3, refit="retrain")
    hist = tr.fit(X, y, epochs=60, batch_size=16, shuffle=False, validation_data=(Xv, yv),
                  callbacks=[es], verbose=0)
    assert es.stopped_epoch is not None and es.refit_epochs == es.best_epoch + 1
    assert es.refit_target_loss is None
    n_main = es.stopped_epoch + 1
    assert hist.phase == ["train"] * n_main + ["refit"] * es.refit_epochs
    assert len(hist["loss"]) == n_main + es.refit_epochs
    fresh = _trainer()
    fresh.fit(np.vstack([X, Xv]), np.concatenate([y, yv]), epochs=es.best_epoch + 1,
              batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_array_equal(tr.model.params, fresh.model.params)


def test_continue_from_the_best_weights_until_the_training_loss(rng):
    X, y = _data(rng)
    tr = _trainer()
    es = fm.EarlyStopping(patience=3, refit="continue")
    hist = tr.fit(X, y, epochs=200, batch_size=16, validation_split=0.25, callbacks=[es],
                  verbose=0)
    n_main = es.stopped_epoch + 1
    assert es.refit_target_loss == hist["loss"][es.best_epoch]
    assert 1 <= es.refit_epochs <= 200 - n_main
    assert hist.phase[n_main:] == ["refit"] * es.refit_epochs
    refit_losses = hist["loss"][n_main:]
    assert refit_losses[-1] <= es.refit_target_loss
    assert all(v > es.refit_target_loss for v in refit_losses[:-1])
    assert "val_loss" not in {k for k, v in hist.history.items() if v[-1] is not None}


def test_continue_bounded_by_the_remaining_epochs(rng):
    X, y = _data(rng)
    tr = _trainer()
    es = fm.EarlyStopping(patience=2, refit="continue", min_delta=1e9)  # stops at epoch 2
    hist = tr.fit(X, y, epochs=4, batch_size=16, validation_split=0.25, callbacks=[es],
                  verbose=0)
    assert es.stopped_epoch == 2 and es.best_epoch == 0
    assert es.refit_epochs <= 1 and len(hist.phase) == 3 + es.refit_epochs


def test_no_refit_and_validation(rng):
    X, y = _data(rng)
    tr = _trainer()
    es = fm.EarlyStopping(patience=2)
    hist = tr.fit(X, y, epochs=5, batch_size=16, validation_split=0.25, callbacks=[es],
                  verbose=0)
    assert es.refit_epochs == 0 and set(hist.phase) == {"train"}
    with pytest.raises(ValueError, match="refit"):
        fm.EarlyStopping(refit="again")
    with pytest.raises(ValueError, match="validation"):
        _trainer().fit(X, y, epochs=2, callbacks=[fm.EarlyStopping(refit="retrain")],
                       verbose=0)
    lbfgs = fm.Trainer(_trainer().model, fm.MSELoss(), fm.LBFGS())
    with pytest.raises(ValueError, match="mini-batch"):
        lbfgs.fit(X, y, epochs=2, validation_split=0.25,
                  callbacks=[fm.EarlyStopping(refit="continue")], verbose=0)
