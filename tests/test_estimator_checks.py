"""scikit-learn's own API conformance suite (``sklearn.utils.estimator_checks``) on the
fastmlp estimators: the default (adam) and lbfgs solvers of each, and one instance with
fastmlp-only options. No check is expected to fail."""
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp import MLPClassifier, MLPRegressor

# scikit-learn's suite uses max_iter=100 for its own MLPs; the same here. One BLAS thread:
# the checks fit tiny models, where a thread pool only adds waiting (4x the suite's time
# on a busy 2-core machine), and it runs n_threads through the whole suite.
ESTIMATORS = [
    MLPClassifier(max_iter=100, random_state=0, n_threads=1),
    MLPRegressor(max_iter=100, random_state=0, n_threads=1),
    MLPClassifier(solver="lbfgs", max_iter=100, random_state=0, n_threads=1),
    MLPRegressor(solver="lbfgs", max_iter=100, random_state=0, n_threads=1),
    MLPClassifier(hidden_layer_sizes=(32, 16), activation="gelu", solver="adamw",
                  max_iter=100, random_state=0, n_threads=1),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
