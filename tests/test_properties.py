"""Property-based tests (hypothesis) of the public API: never crash, refuse bad input with a
ValueError/TypeError that names the argument, and on valid input let the core agree with the
NumPy reference backend (float64: 1e-12, float32: 1e-5, norm-wise relative).

Random architectures (1–4 Dense layers of width 1–40 with any core activation, plus
Dropout/BatchNorm/LayerNorm/Residual/PReLU/Maxout), shapes (batch 1, one feature, a few
hundred rows), dtypes and memory layouts of the inputs (int, float16, bool, lists, Fortran
order, strided, read-only, unaligned), extreme values (NaN, inf, 1e300, subnormals) and
hyperparameters (optimizers, learning rates including invalid ones).

The example counts are kept small so the file runs in well under 30 s, and the runs are
derandomized (the same examples every time: CI does not flake). To explore, multiply the
counts and draw fresh examples: ``FASTMLP_HYPOTHESIS_SCALE=20 pytest tests/test_properties.py
--hypothesis-show-statistics``.
"""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastmlp as fm
from fastmlp._codes import ACT_NAMES
from fastmlp.reference import losses as ref_losses
from helpers import RTOL, rel_err

ACTIVATIONS = sorted(ACT_NAMES)
DTYPES = ["float32", "float64"]
SCALE = float(os.environ.get("FASTMLP_HYPOTHESIS_SCALE", "1"))
SETTINGS = dict(deadline=None, derandomize=SCALE == 1, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def examples(n):
    return max(1, int(n * SCALE))


def tol(dtype):
    return RTOL[np.dtype(dtype).type]


# -- architectures ----------------------------------------------------------------------------
# An architecture is a plain description (hashable, printable by hypothesis) turned into
# fresh layer objects by ``build``, so the same one can be built for both backends.

@st.composite
def architectures(draw, max_layers=4, max_width=40, smooth=False):
    """``(n_in, [(kind, args), ...])``. ``smooth`` leaves out activations with kinks at
    which float32 rounding could flip a branch (step, relu-like) — used for training runs."""
    acts = [a for a in ACTIVATIONS if a not in ("step", "relu", "leaky_relu", "hard_tanh",
                                                 "elu")] if smooth else ACTIVATIONS
    n_in = draw(st.integers(1, 12))
    width = n_in
    spec = []
    for _ in range(draw(st.integers(1, max_layers))):
        n_out = draw(st.integers(1, max_width))
        if draw(st.integers(0, 5)) == 0:
            spec.append(("maxout", (width, n_out, draw(st.integers(1, 3)))))
        else:
            spec.append(("dense", (width, n_out, draw(st.sampled_from(acts)))))
        width = n_out
        extra = draw(st.sampled_from(["none", "none", "dropout", "batchnorm", "layernorm",
                                      "residual", "prelu"]))
        if extra == "dropout":
            spec.append(("dropout", (draw(st.sampled_from([0.0, 0.1, 0.5, 0.9])),)))
        elif extra == "batchnorm":
            spec.append(("batchnorm", (width,)))
        elif extra == "layernorm":
            spec.append(("layernorm", (width,)))
        elif extra == "residual":
            spec.append(("residual", (width, draw(st.sampled_from(acts)))))
        elif extra == "prelu":
            spec.append(("prelu", (draw(st.sampled_from([1, width])),)))
    return n_in, tuple(spec)


def build(arch, dtype, seed, backend):
    _, spec = arch
    layers = []
    for kind, args in spec:
        if kind == "dense":
            layers.append(fm.Dense(args[0], args[1], activation=args[2]))
        elif kind == "maxout":
            layers.append(fm.Maxout(*args))
        elif kind == "dropout":
            layers.append(fm.Dropout(args[0]))
        elif kind == "batchnorm":
            layers.append(fm.BatchNorm(args[0]))
        elif kind == "layernorm":
            layers.append(fm.LayerNorm(args[0]))
        elif kind == "residual":
            layers.append(fm.Residual(fm.Dense(args[0], args[0], activation=args[1])))
        elif kind == "prelu":
            layers.append(fm.PReLU(args[0]))
    return fm.Sequential(layers, dtype=dtype, seed=seed, backend=backend)


def pair(arch, dtype, seed=0):
    return build(arch, dtype, seed, "core"), build(arch, dtype, seed, "numpy")


def has(arch, *kinds):
    return any(kind in kinds for kind, _ in arch[1])


def data(seed, n, d, scale=1.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, d))


def close(a, b, dtype, factor=1.0, floor=0.0):
    """Norm-wise agreement, NaN/inf in the same places (1e300 inputs may overflow).

    ``floor``: the smallest scale errors are measured against. Gradients that cancel to
    almost nothing (LayerNorm of a one-feature input is scale-invariant: dX ≈ 1e-5·|G|)
    are judged against ``floor`` rather than against their own rounding noise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    fin = np.isfinite(b)
    assert (np.isfinite(a) == fin).all(), "non-finite entries differ between backends"
    assert (a[~fin] == b[~fin]).all() or np.isnan(b[~fin]).any()
    if fin.any():
        err = rel_err(a[fin], b[fin], scale=max(np.abs(b[fin]).max(), floor))
        assert err < factor * tol(dtype), err


# -- forward / backward: core == NumPy reference -----------------------------------------------
@settings(max_examples=examples(120), **SETTINGS)
@given(arch=architectures(), dtype=st.sampled_from(DTYPES),
       n=st.sampled_from([1, 2, 3, 7, 32, 300]), seed=st.integers(0, 2**32 - 1),
       training=st.booleans(), step=st.integers(0, 1000))
def test_forward_backward_match_reference(arch, dtype, n, seed, training, step):
    n_in = arch[0]
    if training and has(arch, "batchnorm"):
        assume(n > 1)     # BatchNorm refuses one-row batches in training (checked below)
    core, ref = pair(arch, dtype)
    X = data(seed, n, n_in)
    for m in (core, ref):
        m.rng_step = step
    out_c, out_r = core.forward(X, training=training), ref.forward(X, training=training)
    assert out_c.dtype == np.dtype(dtype) and out_c.shape == (n, core.n_out)
    close(out_c, out_r, dtype, factor=10)
    G = data(seed + 1, n, core.n_out)
    core.zero_grad(), ref.zero_grad()
    dx_c, dx_r = core.backward(G), ref.backward(G)
    floor = 1e-3 * np.abs(G).max()
    try:
        close(dx_c, dx_r, dtype, factor=10, floor=floor)
        close(core.grads, ref.grads, dtype, factor=10, floor=floor)
    except AssertionError:
        if dtype == "float64":
            raise
        # float32 gradients that cancel (LayerNorm/BatchNorm of nearly collinear inputs) are
        # rounding noise on both backends: then the core must be about as accurate as the
        # float32 reference, both judged against the float64 reference
        truth = build(arch, "float64", 0, "numpy")
        truth.rng_step = step
        truth.forward(X, training=training)
        truth.zero_grad()
        dx_t = truth.backward(G)
        for c, r, t in ((dx_c, dx_r, dx_t), (core.grads, ref.grads, truth.grads)):
            sc = max(np.abs(t).max(), floor)
            assert rel_err(c, t, sc) <= max(10 * rel_err(r, t, sc), 1e-4)
    close(core.predict(X), ref.predict(X), dtype, factor=10)


@settings(max_examples=examples(15), **SETTINGS)
@given(arch=architectures(max_layers=2, max_width=8).filter(lambda a: has(a, "batchnorm")),
       dtype=st.sampled_from(DTYPES))
def test_batchnorm_one_row_batch_in_training(arch, dtype):
    """One row has no batch variance: refused or computed, but never a crash."""
    core, ref = pair(arch, dtype)
    X = data(0, 1, arch[0])
    for m in (core, ref):
        try:
            out = m.forward(X, training=True)
        except ValueError as exc:
            assert "batch" in str(exc).lower() or "row" in str(exc).lower()
        else:
            assert out.shape == (1, m.n_out)


# -- input conversions and memory layouts -------------------------------------------------------
def unaligned(a):
    """A copy of float64 ``a`` whose data starts one byte past an aligned address."""
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


LAYOUTS = {
    "c": lambda a: a,
    "fortran": np.asfortranarray,
    "strided": lambda a: np.repeat(np.repeat(a, 2, axis=0), 3, axis=1)[::2, ::3],
    "negative_stride": lambda a: a[::-1][::-1],
    "read_only": lambda a: (lambda v: (v.setflags(write=False), v)[1])(a.copy()),
    "unaligned": unaligned,
    "list": lambda a: a.tolist(),
    "float16": lambda a: a.astype(np.float16),
    "int": lambda a: np.round(a * 3).astype(np.int64),
    "int8": lambda a: np.clip(np.round(a * 3), -128, 127).astype(np.int8),
    "uint16": lambda a: np.abs(np.round(a * 3)).astype(np.uint16),
    "bool": lambda a: a > 0,
    "float32": lambda a: a.astype(np.float32),
}


@settings(max_examples=examples(100), **SETTINGS)
@given(arch=architectures(max_layers=2, max_width=16), dtype=st.sampled_from(DTYPES),
       n=st.integers(1, 40), layout=st.sampled_from(sorted(LAYOUTS)),
       seed=st.integers(0, 2**32 - 1))
def test_layouts_and_dtypes_give_the_same_outputs(arch, dtype, n, layout, seed):
    core, ref = pair(arch, dtype)
    X0 = data(seed, n, arch[0])
    X = LAYOUTS[layout](X0)
    snapshot = np.array(X, copy=True)
    expected_in = np.asarray(X, dtype=np.float64)      # what the model must see
    out = core.predict(X)
    assert out.flags.c_contiguous and out.dtype == np.dtype(dtype)
    close(out, core.predict(np.ascontiguousarray(expected_in)), dtype)
    close(out, ref.predict(X), dtype, factor=10)
    close(core.forward(X), out, dtype)
    np.testing.assert_array_equal(np.asarray(X), snapshot)   # input never modified


# -- extreme values ---------------------------------------------------------------------------
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf])
EXTREME = st.sampled_from([1e300, -1e300, 1e-310, -1e-310, 5e-324, 1e38, 0.0, -0.0])


@settings(max_examples=examples(40), **SETTINGS)
@given(arch=architectures(max_layers=2, max_width=12), dtype=st.sampled_from(DTYPES),
       n=st.integers(1, 20), bad=SPECIAL, where=st.integers(0, 10**6),
       method=st.sampled_from(["forward", "predict", "fit", "evaluate"]))
def test_nan_and_inf_inputs_are_refused_naming_X(arch, dtype, n, bad, where, method):
    m = build(arch, dtype, 0, "core")
    X = data(where, n, arch[0])
    X.flat[where % X.size] = bad
    with pytest.raises(ValueError, match=r"\bX\b"):
        if method in ("forward", "predict"):
            getattr(m, method)(X)
        else:
            tr = fm.Trainer(m, fm.MSELoss(), fm.SGD(lr=0.01))
            getattr(tr, method)(X, np.zeros((n, m.n_out)), **({"verbose": 0}
                                                             if method == "fit" else {}))


@settings(max_examples=examples(40), **SETTINGS)
@given(arch=architectures(max_layers=2, max_width=12), dtype=st.sampled_from(DTYPES),
       n=st.integers(1, 20), value=EXTREME, where=st.integers(0, 10**6))
def test_huge_and_subnormal_inputs_never_crash(arch, dtype, n, value, where):
    """1e300 overflows float32 (→ refused as infinity); in float64 the outputs may overflow
    to inf/NaN, but then in the same places as the reference. Subnormals are ordinary."""
    core, ref = pair(arch, dtype)
    X = data(where, n, arch[0])
    X.flat[where % X.size] = value
    if dtype == "float32" and abs(value) > float(np.finfo(np.float32).max):
        with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"\bX\b"):
            core.predict(X)
        return
    with np.errstate(all="ignore"):
        out_c, out_r = core.predict(X), ref.predict(X)
    assert out_c.shape == out_r.shape == (n, core.n_out)
    if np.isfinite(out_r).all() and abs(value) < 1e100:
        close(out_c, out_r, dtype, factor=10)


# -- bad arguments: the message names the argument ----------------------------------------------
BAD_X = [
    ("string", "abc", TypeError),
    ("object", np.array([[object()]], dtype=object), TypeError),
    ("complex", np.ones((2, 3), dtype=complex), TypeError),
    ("1-D", np.ones(3), ValueError),
    ("3-D", np.ones((2, 3, 1)), ValueError),
    ("empty", np.ones((0, 3)), ValueError),
    ("ragged", [[1.0, 2.0], [3.0]], ValueError),
    ("wrong_width", np.ones((2, 99)), ValueError),
    ("none", None, (TypeError, ValueError)),
]


@settings(max_examples=examples(30), **SETTINGS)
@given(arch=architectures(max_layers=2, max_width=8), dtype=st.sampled_from(DTYPES),
       case=st.sampled_from(BAD_X), method=st.sampled_from(["forward", "predict"]))
def test_bad_X_is_refused_naming_X(arch, dtype, case, method):
    _, X, exc = case
    m = build(arch, dtype, 0, "core")
    if case[0] == "wrong_width":
        X = np.ones((2, arch[0] + 1))
    with pytest.raises(exc, match=r"\bX\b"):
        getattr(m, method)(X)


BAD_LR = st.one_of(st.sampled_from([-1.0, -1e-3, np.nan, np.inf, -np.inf, "0.1", None, True,
                                    [0.1], complex(1, 1)]),
                   st.floats(max_value=-1e-12, allow_nan=False, allow_infinity=False))
OPTIMIZERS = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta"]


@settings(max_examples=examples(40), **SETTINGS)
@given(name=st.sampled_from(OPTIMIZERS), lr=BAD_LR)
def test_invalid_learning_rate_is_refused_naming_lr(name, lr):
    # torch.optim's wording, "Invalid learning rate: -1.0", for out-of-range values
    with pytest.raises((ValueError, TypeError), match=r"\blr\b|learning rate"):
        fm.get_optimizer(name, lr=lr)


BAD_FIT = [
    ("epochs", -1), ("epochs", 1.5), ("epochs", "3"), ("batch_size", 0), ("batch_size", -4),
    ("batch_size", 2.0), ("verbose", 7), ("validation_split", 1.0),
    ("validation_split", -0.1), ("validation_split", float("nan")),
    ("sample_weight", "w"), ("sample_weight", np.ones(3)), ("class_weight", [1, 2]),
]


@settings(max_examples=examples(30), **SETTINGS)
@given(case=st.sampled_from(BAD_FIT), dtype=st.sampled_from(DTYPES))
def test_bad_fit_arguments_are_refused_naming_them(case, dtype):
    name, value = case
    m = fm.Sequential([fm.Dense(3, 4, activation="tanh"), fm.Dense(4, 2)], dtype=dtype, seed=0)
    loss = fm.CrossEntropyLoss() if name == "class_weight" else fm.MSELoss()
    tr = fm.Trainer(m, loss, fm.SGD(lr=0.1))
    X = data(0, 10, 3)
    y = np.arange(10) % 2 if name == "class_weight" else data(1, 10, 2)
    before = m.get_weights()
    kwargs = {"verbose": 0, name: value}
    with pytest.raises((ValueError, TypeError), match=name):
        tr.fit(X, y, **kwargs)
    np.testing.assert_array_equal(m.get_weights(), before)


BAD_LAYERS = [
    (lambda: fm.Dense(0, 3), "n_in"), (lambda: fm.Dense(3, -1), "n_out"),
    (lambda: fm.Dense(2.5, 3), "n_in"), (lambda: fm.Dense(3, 3, activation="nope"), "activation"),
    (lambda: fm.Dropout(1.5), "p"), (lambda: fm.Dropout(float("nan")), "p"),
    (lambda: fm.BatchNorm(0), "n"), (lambda: fm.BatchNorm(3, momentum=2.0), "momentum"),
    (lambda: fm.LayerNorm(3, eps=-1.0), "eps"), (lambda: fm.Maxout(3, 2, 0), "pieces"),
    (lambda: fm.PReLU(0), "num_parameters"), (lambda: fm.LeakyReLU(float("inf")), "alpha"),
    (lambda: fm.Sequential([fm.Dense(3, 4)], dtype="int32"), "dtype"),
    (lambda: fm.Sequential([fm.Dense(3, 4)], seed=-1), "seed"),
    (lambda: fm.Sequential([fm.Dense(3, 4)], backend="gpu"), "backend"),
    (lambda: fm.Sequential([fm.Dense(3, 4), fm.Dense(5, 2)]), "layers"),
    (lambda: fm.Sequential([]), "layers"),
]


@settings(max_examples=examples(25), **SETTINGS)
@given(case=st.sampled_from(BAD_LAYERS))
def test_bad_construction_is_refused_naming_the_argument(case):
    make, name = case
    with pytest.raises((ValueError, TypeError), match=name):
        make()


# -- losses: core kernels == fastmlp.reference.losses -------------------------------------------
LOSSES = [
    ("mse", fm.MSELoss, {}), ("l1", fm.L1Loss, {}), ("huber", fm.HuberLoss, {"delta": 0.7}),
    ("bce", fm.BCEWithLogitsLoss, {}), ("ce_labels", fm.CrossEntropyLoss, {}),
    ("ce_smooth", fm.CrossEntropyLoss, {"label_smoothing": 0.1}),
    ("ce_probs", fm.CrossEntropyLoss, {}), ("margin", fm.MultiMarginLoss, {"margin": 0.5}),
]


@settings(max_examples=examples(60), **SETTINGS)
@given(case=st.sampled_from(LOSSES), dtype=st.sampled_from(DTYPES), n=st.integers(1, 300),
       d=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]), weighted=st.booleans())
def test_losses_match_reference(case, dtype, n, d, seed, scale, weighted):
    """Logits up to ±1e4: finite values and gradients, equal to the reference."""
    name, cls, kw = case
    if name.startswith("ce") or name == "margin":
        assume(d >= 2 or name != "ce_probs")
    loss = cls(**kw)
    r = np.random.default_rng(seed)
    pred = (r.normal(size=(n, d)) * scale).astype(dtype)
    if name in ("ce_labels", "ce_smooth", "margin"):
        target = r.integers(0, d, size=n)
    elif name == "ce_probs":
        p = r.random((n, d)) + 1e-3
        target = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    elif name == "bce":
        target = r.random((n, d)).astype(dtype)
    else:
        target = r.normal(size=(n, d)).astype(dtype)
    w = r.random(n).astype(dtype) if weighted else None
    value, grad = loss.value_and_grad(pred, target, sample_weight=w)
    spec = loss._spec(d)
    key = "labels" if name in ("ce_labels", "ce_smooth", "margin") else "target"
    rvalue, rgrad = ref_losses.value_and_grad(spec, pred, row_weight=w, **{key: target})
    assert math.isfinite(value) and np.isfinite(grad).all()
    assert grad.dtype == np.dtype(dtype) and grad.shape == pred.shape
    assert abs(value - rvalue) <= 10 * tol(dtype) * max(abs(rvalue), 1e-30) + \
        (1e-300 if dtype == "float64" else 1e-30)
    assert rel_err(grad, rgrad) < 10 * tol(dtype)


@settings(max_examples=examples(30), **SETTINGS)
@given(case=st.sampled_from(LOSSES), bad=st.sampled_from(
    ["nan_pred", "inf_pred", "nan_target", "label_out_of_range", "fractional_label",
     "wrong_rows", "string_target", "negative_weight", "nan_weight", "wrong_weight_shape"]))
def test_bad_loss_inputs_are_refused_naming_the_argument(case, bad):
    name, cls, kw = case
    loss = cls(**kw)
    n, d = 6, 3
    pred = data(0, n, d)
    labels = name in ("ce_labels", "ce_smooth", "margin")
    target = np.arange(n) % d if labels else np.abs(data(1, n, d)) / 10
    if name == "ce_probs":
        target = np.full((n, d), 1.0 / d)
    w = None
    arg = {"nan_pred": "pred", "inf_pred": "pred", "wrong_rows": "target",
           "string_target": "target", "negative_weight": "sample_weight",
           "nan_weight": "sample_weight", "wrong_weight_shape": "sample_weight"}.get(bad, "target")
    if bad == "nan_pred":
        pred[2, 1] = np.nan
    elif bad == "inf_pred":
        pred[0, 0] = -np.inf
    elif bad == "nan_target":
        target = target.astype(float)
        target[1] = np.nan
    elif bad == "label_out_of_range":
        if not labels:
            return
        target = target.copy()
        target[3] = d
    elif bad == "fractional_label":
        if not labels:
            return
        target = target + 0.5
    elif bad == "wrong_rows":
        target = target[:-1]
    elif bad == "string_target":
        target = "y"
    elif bad == "negative_weight":
        w = -np.ones(n)
    elif bad == "nan_weight":
        w = np.full(n, np.nan)
    elif bad == "wrong_weight_shape":
        w = np.ones(n + 2)
    with pytest.raises((ValueError, TypeError), match=arg):
        loss.value_and_grad(pred, target, sample_weight=w)


# -- training: random hyperparameters, core == reference ---------------------------------------
@settings(max_examples=examples(50), **SETTINGS)
@given(arch=architectures(max_layers=3, max_width=12, smooth=True),
       opt=st.sampled_from(OPTIMIZERS),
       lr=st.sampled_from([1e-4, 1e-2, 0.1, 1.0]), n=st.integers(2, 60),
       batch_size=st.integers(1, 64), epochs=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1), loss=st.sampled_from(["mse", "ce"]))
def test_training_matches_reference(arch, opt, lr, n, batch_size, epochs, seed, loss):
    """A fused fit (core) and a step-by-step fit (NumPy backend) land on the same weights.

    float64 only: after several optimizer steps float32 rounding differences are amplified
    by adaptive optimizers and say nothing about correctness. Runs where the loss diverges
    are skipped (diverging runs are tested in test_callbacks)."""
    dtype = "float64"
    if has(arch, "batchnorm"):
        # a one-row training batch is refused (tested in test_trainer)
        assume(min(n, batch_size) > 1 and n % batch_size != 1)
    models = pair(arch, dtype, seed=1)
    X = data(seed, n, arch[0])
    n_out = models[0].n_out
    if loss == "ce":
        lossf = fm.CrossEntropyLoss()
        y = np.arange(n) % n_out
    else:
        lossf = fm.MSELoss()
        y = data(seed + 1, n, n_out)
    hist = []
    for m in models:
        tr = fm.Trainer(m, lossf, fm.get_optimizer(opt, lr=lr), seed=5)
        try:
            with np.errstate(all="ignore"):
                h = tr.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
        except FloatingPointError:      # a diverging run (lr=1): see test_callbacks
            assume(False)
        hist.append(h.history["loss"])
    assume(all(len(h) == epochs and np.isfinite(h).all() for h in hist))
    wc, wr = models[0].get_weights(), models[1].get_weights()
    assume(np.abs(wr).max() < 1e6)
    steps = epochs * -(-n // batch_size)
    if opt == "sgd":
        assert rel_err(wc, wr) < (1e-12 if epochs == 1 else 1e-9), opt
        assert rel_err(hist[0], hist[1]) < 1e-9
    else:
        # Adam-like (and Adagrad) steps g/sqrt(v) turn rounding noise in gradients that
        # cancel (BatchNorm of 2 rows) into full-size steps: weights may then differ by up
        # to ~lr per step
        err = np.abs(wc - wr).max()
        assert err < 1e-9 * np.abs(wr).max() or err < 2 * lr * steps, opt
        assert rel_err(hist[0], hist[1]) < 1e-6


# -- the own GEMM ---------------------------------------------------------------------------
@settings(max_examples=examples(60), **SETTINGS)
@given(m=st.integers(1, 150), n=st.integers(1, 150), k=st.integers(1, 600),
       trans=st.sampled_from([(False, False), (True, False), (False, True), (True, True)]),
       dtype=st.sampled_from(DTYPES), ab=st.sampled_from([(1.0, 0.0), (0.5, 1.0), (-1.0, 2.0)]),
       threads=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_gemm_any_shape_matches_numpy_on_any_thread_count(m, n, k, trans, dtype, ab, threads,
                                                          seed):
    """Random shapes (every tile height and edge, K across block boundaries), transposes,
    alpha/beta and thread counts: the core's GEMM equals float64 NumPy within rounding,
    and the thread count never changes a bit of the result."""
    from fastmlp import _blas
    rng = np.random.default_rng(seed)
    (ta, tb), (alpha, beta) = trans, ab
    a = rng.normal(size=(k, m) if ta else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if tb else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    out = []
    for t in (1, threads):
        with fm.limit_threads(t):
            c = c0.copy()
            _blas.gemm_memview(a, b, c, ta, tb, alpha=alpha, beta=beta)
            out.append(c)
    np.testing.assert_array_equal(out[0], out[1])
    A, B = (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)
    expect = alpha * (A @ B) + beta * c0
    scale = float((np.abs(A) @ np.abs(B)).max() * abs(alpha) + abs(beta) * np.abs(c0).max())
    assert rel_err(out[0], expect, scale=scale) < tol(dtype)
