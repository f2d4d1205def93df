"""The shared machinery of the scikit-learn estimators (``fastmlp.estimators``).

``BaseMLP`` holds what MLPClassifier and MLPRegressor have in common: the parameters and
their validation, the network (a :class:`~fastmlp.sequential.Sequential` built from
``hidden_layer_sizes`` and initialized as scikit-learn does), the row weights and the L2
strength that reproduce scikit-learn's objective, prediction in chunks, and the state used
by pickle and ``fastmlp.io``. The training loops are in ``fastmlp._estimator_fit``.
"""
import numbers

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from fastmlp._estimator_fit import check_full_batch, fit_full_batch, fit_stochastic
from fastmlp._serial import jsonable, restore_nonfinite
from fastmlp._trainer_state import pack_optimizer, unpack_optimizer
from fastmlp.layers import BatchNorm, Dense, Dropout, PReLU
from fastmlp.layers.activations import ACTIVATION_LAYERS
from fastmlp.optim import MINI_BATCH, OPTIMIZERS
from fastmlp.sequential import Sequential
from fastmlp.threads import limit_threads

#: Solvers that train on mini-batches (``partial_fit`` needs one of them).
STOCHASTIC = tuple(name for name, cls in OPTIMIZERS.items()
                   if cls.strategy == MINI_BATCH)
#: Rows per forward call in predict (bounds the workspace and the densified sparse rows).
PREDICT_CHUNK = 4096
#: The fitted attributes kept as plain values by ``__fastmlp_save__``.
_SCALARS = ("n_iter_", "t_", "n_outputs_", "n_layers_", "out_activation_", "loss_",
            "best_loss_", "loss_curve_", "validation_scores_", "best_validation_score_",
            "n_features_in_", "_no_improvement_count")


class BaseMLP(BaseEstimator):
    """Base class of :class:`~fastmlp.MLPClassifier` and :class:`~fastmlp.MLPRegressor`
    (use those)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATION_LAYERS) | {"logistic", "prelu"})],
        "solver": [StrOptions(set(OPTIMIZERS))],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "dtype": [None, StrOptions({"float32", "float64"}),
                  Options(type, {np.float32, np.float64})],
        "n_threads": [None, Interval(numbers.Integral, 1, None, closed="left")],
    }

    def _store_init_args(self, args):
        """Keep each constructor argument as the attribute of its name, as scikit-learn's
        estimators do: ``__init__`` passes its ``locals()``; the names are those of its
        signature, which ``get_params`` reads too."""
        for name in self._get_param_names():
            setattr(self, name, args[name])

    # -- what the subclasses provide -----------------------------------------------------------
    def _validate_input(self, X, y, incremental, reset, dtype):
        """``(X, targets)``: X validated, targets as a 2-D array (n, n_outputs)."""
        raise NotImplementedError

    def _loss(self):
        """``(loss, scale, div)``: the fastmlp loss on the network's raw outputs, the row
        weight ``scale`` that turns its gradient into scikit-learn's, and the divisor
        ``div`` of the data term in the reported loss (scikit-learn's squared error is
        the mean over the outputs while its gradient sums them: ``div = n_outputs``;
        1 otherwise). See ``fastmlp._estimator_fit``."""
        raise NotImplementedError

    def _loss_targets(self, Y):
        """The targets as the loss takes them (class labels or an (n, d) float array)."""
        return Y

    def _class_weights(self, Y):
        """Per-row weights from ``class_weight`` (None: all ones)."""
        return None

    def _score_targets(self, Y):
        """The targets as :meth:`_score` takes them."""
        return Y

    # -- the network ---------------------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0
               for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _architecture(self, n_features, n_outputs, dtype):
        """What the network is made of (stored, so that the fitted model can be rebuilt
        whatever ``set_params`` did since)."""
        act = "sigmoid" if self.activation == "logistic" else self.activation
        return {"units": [int(n_features)] + self._hidden_sizes() + [int(n_outputs)],
                "activation": act, "dropout": float(self.dropout),
                "batch_norm": bool(self.batch_norm), "dtype": np.dtype(dtype).name}

    def _initialize(self, Y, arch, rs):
        """First fit: build and initialize the network, reset the bookkeeping."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(arch["units"])
        self.out_activation_ = self._out_activation()
        init = init_like_sklearn(arch["units"], rs, arch["activation"] == "sigmoid")
        # the dropout masks' seed is drawn only when needed, so that the shuffles draw
        # the same numbers as scikit-learn's
        arch["seed"] = int(rs.randint(np.iinfo(np.int32).max)) if arch["dropout"] > 0 else 0
        model = build_model(arch)
        for layer, (W, b) in zip((l for l in model.layers if isinstance(l, Dense)), init):
            layer.W[...], layer.b[...] = W, b
        self._arch, self._model = arch, model
        self._optimizer = None
        for name in ("loss_curve_", "best_loss_", "validation_scores_",
                     "best_validation_score_", "_best_weights"):
            self.__dict__.pop(name, None)

    @property
    def coefs_(self):
        """Weight matrices, ``coefs_[i]`` of shape (units[i], units[i + 1]): views into the
        network's parameters (writing to them, or assigning ``coefs_[i] = W``, changes the
        model). Set on an unfitted estimator, they are where ``partial_fit`` (or a
        ``warm_start`` fit) starts, as in scikit-learn."""
        return self._views("coefs_", "W")

    @coefs_.setter
    def coefs_(self, values):
        self._set_views("coefs_", "W", values)

    @property
    def intercepts_(self):
        """Bias vectors, ``intercepts_[i]`` of shape (units[i + 1],): views, as coefs_."""
        return self._views("intercepts_", "b")

    @intercepts_.setter
    def intercepts_(self, values):
        self._set_views("intercepts_", "b", values)

    def _views(self, name, attr):
        if "_model" not in self.__dict__ and "_pending_" + name in self.__dict__:
            return self.__dict__["_pending_" + name]
        return ArenaList(name, [getattr(layer, attr) for layer in self._dense_layers()])

    def _dense_layers(self):
        model = self.__dict__.get("_model")
        if model is None:
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet")
        return [layer for layer in model.layers if isinstance(layer, Dense)]

    def _set_views(self, name, attr, values):
        if "_model" not in self.__dict__:       # kept until the first fit builds the model
            self.__dict__["_pending_" + name] = list(values)
            return
        views = self._views(name, attr)
        values = list(values)
        if len(values) != len(views):
            raise ValueError(f"{name} must hold {len(views)} arrays, got {len(values)}")
        for i, value in enumerate(values):
            views[i] = value

    def _take_pending_weights(self, use):
        """Put the ``coefs_`` / ``intercepts_`` set before the first fit into the new
        network (when ``use``: partial_fit or warm_start, as scikit-learn); forget them."""
        for name, attr in (("coefs_", "W"), ("intercepts_", "b")):
            values = self.__dict__.pop("_pending_" + name, None)
            if use and values is not None:
                self._set_views(name, attr, values)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __sklearn_is_fitted__(self):
        return "_model" in self.__dict__

    # -- data ----------------------------------------------------------------------------------
    def _fit_dtype(self, first_pass):
        """The dtype X is converted to: the model's, the ``dtype`` parameter's, or
        scikit-learn's rule (float32 stays float32, anything else becomes float64)."""
        if not first_pass:
            return np.dtype(self._arch["dtype"]).type
        if self.dtype is not None:
            return np.dtype(self.dtype).type
        return (np.float64, np.float32)

    def _row_weights(self, sample_weight, X, Y):
        """``(sample_weight checked or None, sample_weight × class weights or None)``."""
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                      ensure_non_negative=True)
        cw = self._class_weights(Y)
        return sw, (sw if cw is None else (cw if sw is None else sw * cw))

    def _forward(self, X):
        """The network's raw outputs for validated X (dense or sparse). Thread-safe
        (``Sequential.predict``); sparse rows are densified a chunk at a time."""
        model = self._model
        with self._threads():
            if not sparse.issparse(X):
                return model.predict(X, batch_size=PREDICT_CHUNK)
            X = X.tocsr()
            out = np.empty((X.shape[0], model.n_out), dtype=model.dtype)
            for i in range(0, X.shape[0], PREDICT_CHUNK):
                out[i:i + PREDICT_CHUNK] = model.predict(X[i:i + PREDICT_CHUNK].toarray())
            return out

    def _check_predict_input(self, X):
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                             dtype=np.dtype(self._arch["dtype"]).type)

    def _threads(self):
        return limit_threads(self.n_threads)

    # -- fit -----------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        self._validate_params()
        check_full_batch(self)
        first_pass = "_model" not in self.__dict__ or not (self.warm_start or incremental)
        X, Y = self._validate_input(X, y, incremental, first_pass, self._fit_dtype(first_pass))
        if sparse.issparse(X):
            X = X.toarray()
        X = np.ascontiguousarray(X)
        rs = check_random_state(self.random_state)
        arch = self._architecture(X.shape[1], Y.shape[1], X.dtype)
        if first_pass:
            self._initialize(Y, arch, rs)
            self._take_pending_weights(self.warm_start or incremental)
        elif {**arch, "seed": self._arch["seed"]} != self._arch:
            raise ValueError(f"warm_start and partial_fit need the network of the previous "
                             f"fit ({_describe(self._arch)}), got {_describe(arch)}; set "
                             f"warm_start=False to start again")
        with self._threads():
            if self.solver in STOCHASTIC:
                fit_stochastic(self, X, Y, sample_weight, incremental, rs)
            else:
                fit_full_batch(self, X, Y, sample_weight)
        if not np.isfinite(self._model.params).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed.")
        return self

    def _check_solver(self):
        if self.solver not in STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # -- state: pickle and fastmlp.io ----------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())    # object's is self.__dict__ itself
        model = state.pop("_model", None)
        if model is not None:
            state["_model_state"] = (model.get_weights(), model.rng_step)
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop("_model_state", None)
        super().__setstate__(state)
        if saved is not None:
            self._model = _with_weights(build_model(self._arch), saved[0])
            self._model.rng_step = saved[1]

    def __fastmlp_save__(self):
        """``(config, arrays)`` for ``fastmlp.io.save``: the parameters and the fitted
        state as JSON-able values, the network's weights (and the optimizer's state, the
        classes, the feature names) as arrays."""
        name = type(self).__name__
        config = {"params": jsonable(self._savable_params(), f"{name} parameters",
                                     nonfinite=True)}
        arrays = {}
        if "_model" not in self.__dict__:
            return config, arrays
        config["state"] = jsonable({k: self.__dict__[k] for k in _SCALARS
                                    if k in self.__dict__}, f"{name} state", nonfinite=True)
        config["arch"] = self._arch
        config["rng_step"] = self._model.rng_step
        arrays["weights"] = self._model.get_weights()
        if self.__dict__.get("_best_weights") is not None:
            arrays["best_weights"] = self._best_weights
        for name in ("classes_", "feature_names_in_"):
            if name in self.__dict__:
                arrays[name], config[name + "dtype"] = _savable(self.__dict__[name])
        if self.__dict__.get("_optimizer") is not None:
            config["optimizer"], opt_arrays = pack_optimizer(self._optimizer)
            arrays.update(opt_arrays)
        return config, arrays

    def _savable_params(self):
        """``get_params()`` with what JSON cannot hold replaced: a dtype class by its
        name, a RandomState by None, a ``class_weight`` dict (keys of any type) by its
        pairs."""
        params = self.get_params()
        if isinstance(params["dtype"], type):
            params["dtype"] = np.dtype(params["dtype"]).name
        if not isinstance(self.random_state, (numbers.Integral, type(None))):
            params["random_state"] = None
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = [list(kv) for kv in params["class_weight"].items()]
        return params

    @classmethod
    def __fastmlp_load__(cls, config, arrays):
        """The estimator saved by :meth:`__fastmlp_save__`. Everything read is checked
        (the parameters as ``fit`` checks them, the network's size against the weights
        before anything is allocated): a file that does not describe a valid estimator
        raises ValueError."""
        config = restore_nonfinite(config)
        params = dict(config["params"])
        unknown = set(params) - set(cls().get_params())
        if unknown:
            raise ValueError(f"unknown {cls.__name__} parameters {sorted(unknown)[:10]}")
        params["hidden_layer_sizes"] = _as_sizes(params["hidden_layer_sizes"])
        if isinstance(params.get("class_weight"), list):
            params["class_weight"] = dict(map(tuple, params["class_weight"]))
        est = cls(**params)
        est._validate_params()
        if "arch" not in config:
            return est
        arch = _check_arch(config["arch"], np.asarray(arrays["weights"]))
        state = {k: v for k, v in config["state"].items() if k in _SCALARS}
        for name in ("classes_", "feature_names_in_"):
            if name in arrays:
                kind = config[name + "dtype"]
                a = np.asarray(arrays[name])
                state[name] = a.astype(object) if kind == "object" else a
        state["_arch"] = arch
        best = arrays.get("best_weights")
        if best is not None and best.shape != arrays["weights"].shape:
            raise ValueError("best_weights does not match the network")
        state["_best_weights"] = best
        state["_optimizer"] = None
        state["_model_state"] = (arrays["weights"], int(config["rng_step"]))
        est.__setstate__({**est.__dict__, **state})
        if config.get("optimizer") is not None:
            est._optimizer = unpack_optimizer(_with_buffer_names(config["optimizer"], arrays),
                                              arrays, est._model)
        est._restore_targets()
        return est

    def _restore_targets(self):
        """Rebuild what the targets need after loading (the classifier's binarizer)."""


# -- helpers ------------------------------------------------------------------------------------

class ArenaList(list):
    """``coefs_`` / ``intercepts_`` of a fitted estimator: the views into the network, where
    ``coefs_[i] = W`` writes W into the network (scikit-learn's list of arrays semantics)."""

    def __init__(self, name, views):
        super().__init__(views)
        self.name = name

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            raise TypeError(f"{self.name} takes one array at a time: {self.name}[i] = array")
        view = list.__getitem__(self, i)
        try:
            value = np.asarray(value, dtype=view.dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{self.name}[{i}] must be an array of numbers: {exc}") from None
        if value.shape != view.shape:
            raise ValueError(f"{self.name}[{i}]: expected shape {view.shape}, got "
                             f"{value.shape}")
        view[...] = value

    def __reduce__(self):                       # copies and pickles are plain lists
        return list, (list(self),)


def build_model(arch):
    """The Sequential described by ``arch`` (see ``BaseMLP._architecture``)."""
    units, act = arch["units"], arch["activation"]
    layers = []
    for n_in, n_out in zip(units[:-2], units[1:-1]):
        if act == "prelu":                         # learnable slope: a layer of its own
            layers += [Dense(n_in, n_out)] + [BatchNorm(n_out)] * arch["batch_norm"] + \
                [PReLU()]
        elif arch["batch_norm"]:
            layers += [Dense(n_in, n_out), BatchNorm(n_out), ACTIVATION_LAYERS[act]()]
        else:
            layers.append(Dense(n_in, n_out, activation=act))
        if arch["dropout"] > 0:
            layers.append(Dropout(arch["dropout"]))
    layers.append(Dense(units[-2], units[-1]))
    return Sequential(layers, dtype=arch["dtype"], seed=arch["seed"])


def init_like_sklearn(units, rs, logistic):
    """scikit-learn's ``_init_coef``, drawn in its order: for each layer, W (fan_in,
    fan_out) then b (fan_out,) from U(−r, r), r = sqrt(f / (fan_in + fan_out)), f = 2 for
    a logistic activation and 6 otherwise (Glorot). Returns the list of (W, b)."""
    factor = 2.0 if logistic else 6.0
    out = []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out))
        out.append((W, rs.uniform(-bound, bound, fan_out)))
    return out


def _check_arch(arch, weights):
    """``arch`` read from a file, checked, and the weights' length checked against the
    network it describes (before it is built)."""
    units = arch["units"]
    if not (isinstance(units, list) and len(units) >= 2 and
            all(isinstance(u, int) and not isinstance(u, bool) and 0 < u < 2**31
                for u in units)):
        raise ValueError(f"invalid layer units {str(units)[:100]}")
    if arch["activation"] not in (*ACTIVATION_LAYERS, "prelu") or \
            arch["dtype"] not in ("float32", "float64"):
        raise ValueError("invalid activation or dtype")
    if not (isinstance(arch["dropout"], float) and 0 <= arch["dropout"] < 1
            and isinstance(arch["batch_norm"], bool) and isinstance(arch["seed"], int)):
        raise ValueError("invalid dropout, batch_norm or seed")
    n = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    n += 5 * sum(units[1:-1]) if arch["batch_norm"] else 0    # γ, β; 3 statistics
    n += len(units) - 2 if arch["activation"] == "prelu" else 0   # one slope per layer
    if weights.ndim != 1 or weights.shape[0] != n or weights.dtype != np.dtype(arch["dtype"]):
        raise ValueError(f"the weights ({weights.dtype}, {weights.shape}) do not fit the "
                         f"network ({n} {arch['dtype']} values)")
    return {k: arch[k] for k in ("units", "activation", "dropout", "batch_norm", "dtype",
                                 "seed")}


def _with_weights(model, weights):
    model.set_weights(weights)
    return model


def _describe(arch):
    extras = "".join(f", {k}={arch[k]}" for k in ("dropout", "batch_norm") if arch[k])
    return f"layer units {arch['units']}, activation {arch['activation']!r}{extras}, " \
           f"{arch['dtype']}"


def _as_sizes(sizes):
    return tuple(sizes) if isinstance(sizes, list) else sizes


def _savable(a):
    """An array np.savez stores without pickle, and the dtype to restore."""
    a = np.asarray(a)
    if a.dtype == object:
        if not all(isinstance(x, str) for x in a):
            raise TypeError("classes_ (or feature names) of mixed types cannot be saved "
                            "with fastmlp.io; use pickle or joblib")
        return a.astype(str), "object"
    return a, a.dtype.str


def _with_buffer_names(config, arrays):
    """An optimizer config as :func:`pack_optimizer` writes it; a file of an earlier
    version named the buffers by their arrays only."""
    if not isinstance(config, dict) or "state" in config:
        return config
    return {**config, "state": sorted(k[len("optimizer."):] for k in arrays
                                      if k.startswith("optimizer."))}
