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


#: tests of sklearn's test_mlp.py that reach into scikit-learn's private internals
#: (``_loss_grad_lbfgs``, its own ``_optimizer.learning_rate`` object), which fastmlp's
#: estimators do not have
SKLEARN_PRIVATE = ("test_gradient", "test_learning_rate_warmstart",
                   "test_adaptive_learning_rate")


@pytest.mark.slow
def test_sklearn_own_mlp_tests(tmp_path):
    """scikit-learn's ``neural_network/tests/test_mlp.py`` with its import swapped for
    fastmlp's estimators (issue 16, item 6); only the tests of private internals are
    left out."""
    import os
    import subprocess
    import sys

    import sklearn
    source = os.path.join(os.path.dirname(sklearn.__file__), "neural_network", "tests",
                          "test_mlp.py")
    text = open(source, encoding="utf-8").read()
    swapped = text.replace("from sklearn.neural_network import MLPClassifier, MLPRegressor",
                           "from fastmlp import MLPClassifier, MLPRegressor")
    assert swapped != text
    (tmp_path / "test_mlp_fastmlp.py").write_text(swapped, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture(params=[0, 42])\n"
        "def global_random_seed(request):\n    return request.param\n", encoding="utf-8")
    deselect = " and ".join(f"not {name}" for name in SKLEARN_PRIVATE)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-k", deselect, str(tmp_path / "test_mlp_fastmlp.py")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
