"""Drop-in scikit-learn estimators: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take every parameter of ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``
with the same names, defaults and meaning, expose the same fitted attributes, and train
the same objective from the same initial weights (for a given ``random_state``, the same
draws: weights, shuffles and validation split), on fastmlp's fused core. They also take a
few parameters scikit-learn does not have (``dropout``, ``batch_norm``, any fastmlp
activation or optimizer, ``dtype``, ``n_threads``, ``class_weight``).

>>> from fastmlp import MLPClassifier
>>> from sklearn.datasets import load_digits
>>> X, y = load_digits(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(X / 16, y)
>>> clf.score(X / 16, y) > 0.95
True
"""
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import column_or_1d, validate_data

from fastmlp._estimator_base import BaseMLP
from fastmlp._estimator_fit import HalfPoissonLoss
from fastmlp._serial import register
from fastmlp.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss

#: ``random_state`` as scikit-learn takes it
RandomState = Union[int, np.random.RandomState, None]

__all__ = ["MLPClassifier", "MLPRegressor"]

_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        Units of each hidden layer.
    activation : str, default="relu"
        Activation of the hidden layers: scikit-learn's "identity", "logistic", "tanh",
        "relu", or any fastmlp activation: "sigmoid", "leaky_relu", "elu", "softplus",
        "arctan", "hard_tanh", "step", "silu", "gelu" (with their default parameters), or
        "prelu" (one learnable slope per hidden layer, initialized at 0.25).
    solver : str, default="adam"
        "lbfgs" (scipy's L-BFGS-B on the full-batch loss, as scikit-learn), "sgd", "adam",
        or any fastmlp optimizer name: mini-batch "adamw", "rmsprop", "adagrad",
        "adadelta" (given ``lr=learning_rate_init``, their torch defaults otherwise;
        AdamW also ``beta_1``, ``beta_2``, ``epsilon``), full-batch "gd", "bfgs",
        "newton" (given ``tol``, and ``lr`` for "gd").
    alpha : float, default=1e-4
        L2 strength: ``alpha / (2 · rows)`` times the sum of the squared weights is added
        to each batch's loss (biases are not penalized).
    batch_size : int or "auto", default="auto"
        Rows per mini-batch; "auto" is ``min(200, n_samples)``. Not used by full-batch
        solvers.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of solver="sgd" (ignored by the other solvers, as in scikit-learn):
        "invscaling" sets ``learning_rate_init / (t_ + 1) ** power_t`` after each epoch,
        "adaptive" divides it by 5 each time ``n_iter_no_change`` epochs bring no
        improvement of ``tol`` (stopping once it is <= 1e-6).
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs of the mini-batch solvers, iterations of the full-batch ones.
    shuffle : bool, default=True
        Shuffle the rows before each epoch.
    random_state : int, RandomState instance or None, default=None
        Drives the initial weights, the shuffles, the early-stopping split and (with
        ``dropout``) the dropout masks' seed.
    tol : float, default=1e-4
        Improvement of the loss (or validation score) that counts, and lbfgs' ``gtol``.
    verbose : bool, default=False
        Print the loss after each iteration.
    warm_start : bool, default=False
        Continue from the fitted weights on the next ``fit``.
    momentum : float, default=0.9
        solver="sgd" only.
    nesterovs_momentum : bool, default=True
        solver="sgd" only.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified for single-output
        classification), stop when the validation score (accuracy or R²) has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and keep the best weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decays and denominator term.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        lbfgs: loss evaluations at most.
    dropout : float in [0, 1), default=0.0
        Dropout probability after each hidden layer (fastmlp only).
    batch_norm : bool, default=False
        Batch normalization between each hidden Dense layer and its activation (fastmlp
        only). A last mini-batch of a single row is then skipped.
    dtype : {None, "float32", "float64"}, default=None
        Precision of the network. None follows scikit-learn: float32 data trains in
        float32, anything else in float64.
    n_threads : int or None, default=None
        Threads of the core (and of the BLAS pools) during fit and predict; None: adaptive
        during fit, up to the process setting (``fm.set_num_threads``, by default all
        cores). The count never changes the results.
"""

_DIFFERENCES = """
    Notes
    -----
    Differences from scikit-learn, all small:

    - The last, partial mini-batch of an epoch gets the same L2 strength ``alpha / (2 B)``
      as the full batches of B rows (scikit-learn uses its own row count).
    - With non-uniform sample weights, a batch's loss is divided by the batch's rows times
      the mean training weight instead of the batch's sum of weights (the same in
      expectation; exactly scikit-learn's objective for lbfgs and for uniform weights).
      Weights must be >= 0.
    - Adam is torch's: the ``epsilon`` term is added to ``sqrt(v̂)`` after bias correction
      (scikit-learn adds it before, i.e. its effective epsilon is larger early on).
    - Sparse input is densified once at fit (memory: n_samples × n_features) and in
      chunks of rows at predict.
    - A non-finite loss stops training before the update that would have broken the
      weights, and fit raises scikit-learn's ValueError ("Solver produced non-finite
      parameter weights...").
    - float32 models predict in float32 whatever the input dtype.
    - The fitted ``coefs_`` and ``intercepts_`` are views into the network's parameters.
"""

_ATTRIBUTES = """
    Attributes
    ----------
    loss_ : float
        The loss at the end of the last epoch (mean over its batches), in scikit-learn's
        scale, the L2 term included.
    best_loss_ : float or None
        Lowest ``loss_`` of the stochastic solvers (None with early stopping).
    loss_curve_ : list of float
        ``loss_`` after each epoch (stochastic solvers).
    validation_scores_ : list of float or None
        Score on the held-out rows after each epoch (early stopping only).
    best_validation_score_ : float or None
    t_ : int
        Training rows seen by the stochastic solvers.
    coefs_, intercepts_ : list of ndarray
        Weights (units[i], units[i + 1]) and biases of each layer: views into the
        network, so writing to them changes the model.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When X had string column names (pandas).
    n_iter_ : int
        Epochs (iterations) of the last fit call.
    n_layers_ : int
        Layers counting the input and output ones: ``len(hidden_layer_sizes) + 2``.
    n_outputs_ : int
    out_activation_ : str
"""


@register
class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = (
        """Multi-layer perceptron classifier, a drop-in for scikit-learn's, trained by
    fastmlp's core.

    Minimizes the log-loss of a softmax output (multiclass) or of one logistic output per
    column (binary, multilabel) plus an L2 penalty. ``fit(X, y, sample_weight=None)``
    takes class labels (numbers or strings) or a 0/1 indicator matrix (multilabel).
""" + _PARAMETERS + """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes (multiplied into sample_weight); "balanced" uses
        ``n_samples / (n_classes · count)``. Single-output targets only (fastmlp only).
""" + _ATTRIBUTES + """    classes_ : ndarray
        The class labels.
""" + _DIFFERENCES + """
    Examples
    --------
    >>> from fastmlp import MLPClassifier
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0)
    >>> clf.fit(X_train, y_train).score(X_test, y_test)   # doctest: +SKIP
    """)

    #: The objective, as scikit-learn's attribute (not a parameter).
    loss = "log_loss"

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(self, hidden_layer_sizes: Union[int, Sequence[int]] = (100,),
                 activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, str] = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: RandomState = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000,
                 dropout: float = 0.0, batch_norm: bool = False, dtype: Optional[str] = None,
                 n_threads: Optional[int] = None,
                 class_weight: Union[Dict[Any, float], str, None] = None):
        self._store_init_args(locals())

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: Optional[ArrayLike] = None) -> "MLPClassifier":
        """Fit the model to X (n_samples, n_features), dense or sparse, and the labels y;
        returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: Optional[ArrayLike] = None,
                    classes: Optional[ArrayLike] = None) -> "MLPClassifier":
        """One epoch over (X, y). ``classes`` (all the labels) is required on the first
        call. Not available for full-batch solvers."""
        self._validate_params()
        if self.class_weight == "balanced":
            raise ValueError("class_weight='balanced' is not supported for partial_fit: "
                             "compute the weights on the whole data and pass a dict")
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously "
                                     f"got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _loss(self):
        if self.out_activation_ == "softmax":
            return CrossEntropyLoss(), 1.0, 1
        # scikit-learn sums the log-loss over the outputs, fastmlp averages it
        return BCEWithLogitsLoss(), float(self.n_outputs_), 1

    def _loss_targets(self, Y):
        return Y.argmax(axis=1) if self.out_activation_ == "softmax" else Y

    def _class_weights(self, Y):
        if self.class_weight is None:
            return None
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError("class_weight is not supported for multilabel targets")
        idx = Y.argmax(axis=1) if self.out_activation_ == "softmax" else Y[:, 0].astype(int)
        n_classes = len(self.classes_)
        if self.class_weight == "balanced":
            counts = np.bincount(idx, minlength=n_classes)
            per_class = idx.shape[0] / (np.count_nonzero(counts) * np.maximum(counts, 1))
        else:
            per_class = np.ones(n_classes)
            for label, weight in self.class_weight.items():
                where = np.flatnonzero(self.classes_ == label)
                if where.size == 0:
                    raise ValueError(f"class_weight has the key {label!r}, which is not a "
                                     f"class; classes_ = {self.classes_}")
                per_class[where[0]] = weight
        return per_class[idx]

    def _restore_targets(self):
        lb = LabelBinarizer()
        if self.out_activation_ == "logistic" and self.n_outputs_ > 1:   # multilabel
            lb.fit(np.eye(self.n_outputs_, dtype=int))
            lb.classes_ = self.classes_
        else:
            lb.fit(self.classes_)
        self._label_binarizer = lb

    def _score(self, X, Y, sample_weight=None):
        """Accuracy on validated X and binarized Y (early stopping)."""
        proba = self._proba(X)
        if not np.isfinite(proba).all():
            return np.nan
        y = self._label_binarizer.inverse_transform(Y)
        return accuracy_score(y, self._label_binarizer.inverse_transform(proba),
                              sample_weight=sample_weight)

    # -- prediction ---------------------------------------------------------------------------
    def _proba(self, X):
        """Probabilities of the network's outputs (n, n_outputs), or (n,) for binary."""
        z = self._forward(X)
        if self.out_activation_ == "softmax":
            return softmax(z, axis=1)
        p = expit(z)
        return p.ravel() if self.n_outputs_ == 1 else p

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The predicted classes (n_samples,), or indicator rows for multilabel."""
        p = self._proba(self._check_predict_input(X))
        return self._label_binarizer.inverse_transform(p)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probability of each class (n_samples, n_classes), in the order of classes_."""
        p = self._proba(self._check_predict_input(X))
        return np.stack([1 - p, p], axis=1) if p.ndim == 1 else p

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """``log(predict_proba(X))`` (as scikit-learn: -inf where a probability
        underflows to 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


@register
class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = (
        """Multi-layer perceptron regressor, a drop-in for scikit-learn's, trained by
    fastmlp's core.

    Minimizes half the squared error (``loss="squared_error"``, identity output) or half
    the Poisson deviance (``loss="poisson"``, exponential output, y >= 0) plus an L2
    penalty; y may have several columns (multi-output).

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
""" + _PARAMETERS.split("----------\n", 1)[1] + _ATTRIBUTES + _DIFFERENCES
        + """    - Multi-output squared error: scikit-learn's gradient is that of the squared error
      summed over the outputs while its ``loss_`` averages them; fastmlp follows the same
      gradient and reports ``loss_`` in scikit-learn's scale, with the L2 term of the
      epoch estimated from its values at the start and end of the epoch (exact for one
      output).
    - loss="poisson" refuses negative targets (scikit-learn would produce NaN) and trains
      through the per-layer Python path (the Poisson loss has no fused kernel yet).

    Examples
    --------
    >>> from fastmlp import MLPRegressor
    >>> reg = MLPRegressor(hidden_layer_sizes=(64,), random_state=0)
    >>> reg.fit(X_train, y_train).score(X_test, y_test)   # doctest: +SKIP
    """)

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss: str = "squared_error",
                 hidden_layer_sizes: Union[int, Sequence[int]] = (100,),
                 activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001,
                 batch_size: Union[int, str] = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: RandomState = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000,
                 dropout: float = 0.0, batch_norm: bool = False, dtype: Optional[str] = None,
                 n_threads: Optional[int] = None):
        self._store_init_args(locals())

    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: Optional[ArrayLike] = None) -> "MLPRegressor":
        """Fit the model to X (n_samples, n_features), dense or sparse, and y (n_samples,)
        or (n_samples, n_outputs); returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    sample_weight: Optional[ArrayLike] = None) -> "MLPRegressor":
        """One epoch over (X, y). Not available for full-batch solvers."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "Poisson regression.")
        return X, y.reshape(-1, 1) if y.ndim == 1 else y

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _loss(self):
        if self.out_activation_ == "exp":
            return HalfPoissonLoss(), 1.0, 1
        d = self.n_outputs_       # scikit-learn: ½ r² per output, gradient summed over them
        return MSELoss(), d / 2.0, d

    def _score(self, X, Y, sample_weight=None):
        """R² on validated X and 2-D Y (early stopping)."""
        pred = self._predict(X)
        if not np.isfinite(pred).all():
            return np.nan
        return r2_score(Y, pred, sample_weight=sample_weight)

    def _predict(self, X):
        out = self._forward(X)
        if self.out_activation_ == "exp":
            with np.errstate(over="ignore"):
                out = np.exp(out)
        return out.ravel() if out.shape[1] == 1 else out

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted values, (n_samples,) or (n_samples, n_outputs)."""
        return self._predict(self._check_predict_input(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags

