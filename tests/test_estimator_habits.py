"""Estimator habits of scikit-learn users (issue 16): full-batch solvers and noise, advice
at the estimator's level, sklearn's attribute semantics, activations."""
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression

from fastmlp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300]


@pytest.mark.parametrize("solver", ["lbfgs", "bfgs", "gd", "newton"])
def test_dropout_refused_with_full_batch_solvers(digits, solver):
    """Item 4: as the Trainer, a noisy objective is refused for a full-batch solver."""
    X, y = digits
    with pytest.raises(ValueError, match=rf"dropout=0.2.*solver='{solver}'.*adam"):
        MLPClassifier((8,), solver=solver, dropout=0.2, max_iter=5).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPRegressor(hidden_layer_sizes=(8,), solver=solver, dropout=0.2, max_iter=5).fit(X, y.astype(float))
    # batch_norm on the whole training set is deterministic: accepted
    MLPClassifier((8,), solver=solver, batch_norm=True, max_iter=3).fit(X, y)


@pytest.mark.parametrize("solver", ["bfgs", "newton"])
def test_dense_hessian_solvers_give_estimator_advice(digits, solver):
    """Item 12: the advice names the estimator's parameters, not LBFGS() or max_params."""
    X, y = digits
    with pytest.raises(ValueError, match=r"solver='lbfgs'.*hidden_layer_sizes") as info:
        MLPClassifier(solver=solver, max_iter=2).fit(X, y)
    assert "max_params" not in str(info.value) and "LBFGS()" not in str(info.value)
