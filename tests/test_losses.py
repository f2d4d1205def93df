"""Losses: core kernels vs NumPy reference, gradients, stability, validation, PyTorch."""
import numpy as np
import pytest

from fastmlp import _losses as core
from fastmlp.losses import (BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss,
                            MSELoss, MultiMarginLoss)
from fastmlp.reference import losses as ref
from helpers import RTOL, rel_err

Code = core.LossCode

# name: (core wrapper, reference, target kind, hyperparameters, public loss)
KERNELS = {
    "mse": (core.mse_memview, ref.mse, "values", {}, MSELoss()),
    "l1": (core.l1_memview, ref.l1, "values", {}, L1Loss()),
    "huber": (core.huber_memview, ref.huber, "values", {"delta": 0.7}, HuberLoss(0.7)),
    "bce": (core.bce_with_logits_memview, ref.bce_with_logits, "binary", {},
            BCEWithLogitsLoss()),
    "ce_labels": (core.cross_entropy_labels_memview, ref.cross_entropy_labels, "labels",
                  {"label_smoothing": 0.1}, CrossEntropyLoss(0.1)),
    "ce_probs": (core.cross_entropy_probs_memview, ref.cross_entropy_probs, "probs",
                 {"label_smoothing": 0.2}, CrossEntropyLoss(0.2)),
    "margin": (core.multi_margin_memview, ref.multi_margin, "labels", {"margin": 0.8},
               MultiMarginLoss(0.8)),
}
SHAPES = [(1, 1), (1, 5), (7, 1), (13, 3), (64, 10), (5, 257)]


def _target(kind, shape, rng, dtype=np.float64):
    n, d = shape
    if kind == "labels":
        return rng.integers(0, d, size=n).astype(np.int64)
    if kind == "probs":
        t = rng.random(shape) + 0.05
        return (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    if kind == "binary":
        return rng.random(shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_matches_reference(name, dtype, shape, weighted, rng):
    kernel, reference, kind, params, _ = KERNELS[name]
    pred = rng.normal(scale=2.0, size=shape).astype(dtype)
    target = _target(kind, shape, rng, dtype)
    w = rng.random(shape[0]).astype(dtype) if weighted else None
    scale = 1.0 / (shape[0] + 0.5)
    value, grad = kernel(pred, target, w, scale, True, **params)
    rvalue, rgrad = reference(pred, target, w, scale, True, **params)
    assert grad.dtype == dtype and grad.shape == shape
    assert abs(value - rvalue) <= RTOL[dtype] * abs(rvalue) + 1e-300
    assert rel_err(grad, rgrad) < RTOL[dtype]
    value_only, none = kernel(pred, target, w, scale, False, **params)
    assert none is None and value_only == value


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_dispatcher_matches_reference(name, dtype, rng):
    """value_and_grad_memview (the executor's entry point) with the public _spec."""
    _, _, kind, _, loss = KERNELS[name]
    shape = (9, 4)
    pred = rng.normal(size=shape).astype(dtype)
    target = _target(kind, shape, rng, dtype)
    spec = loss._spec(shape[1])
    key = "labels" if kind == "labels" else "target"
    value, grad = core.value_and_grad_memview(spec, pred, **{key: target})
    rvalue, rgrad = ref.value_and_grad(spec, pred, **{key: target})
    assert value == pytest.approx(rvalue, rel=RTOL[dtype])
    assert rel_err(grad, rgrad) < RTOL[dtype]
    assert value == pytest.approx(loss(pred, target), rel=1e-15)


def _away_from_kinks(name, pred, target, params):
    """Move entries of pred off the points where the loss is not differentiable."""
    if name in ("l1", "huber"):
        kink = params.get("delta", 0.0)
        r = pred - target
        near = np.abs(np.abs(r) - kink) < 1e-2
        pred[near] += 0.05
    if name == "margin":
        idx = np.arange(pred.shape[0])
        for _ in range(10):
            z = params["margin"] - pred[idx, target][:, None] + pred
            z[idx, target] = 1.0
            if not (np.abs(z) < 1e-2).any():
                break
            pred[np.abs(z) < 1e-2] += 0.05
    return pred


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("weighted", [False, True])
def test_grad_matches_central_differences(name, weighted, rng):
    _, _, kind, params, loss = KERNELS[name]
    shape = (6, 4)
    target = _target(kind, shape, rng)
    pred = _away_from_kinks(name, rng.normal(scale=1.5, size=shape), target, params)
    w = rng.random(shape[0]) + 0.1 if weighted else None
    value, grad = loss.value_and_grad(pred, target, sample_weight=w)
    assert value == loss(pred, target, sample_weight=w)
    assert rel_err(grad, loss.grad(pred, target, sample_weight=w)) == 0.0
    h = 1e-6
    numeric = np.empty(shape)
    for k in range(pred.size):
        step = np.zeros(pred.size)
        step[k] = h
        step = step.reshape(shape)
        numeric.flat[k] = (loss(pred + step, target, sample_weight=w)
                           - loss(pred - step, target, sample_weight=w)) / (2 * h)
    assert rel_err(grad, numeric) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_give_finite_values_and_gradients(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    labels = np.array([1, 0, 2])
    for loss in (CrossEntropyLoss(), CrossEntropyLoss(0.3)):
        value, grad = loss.value_and_grad(x, labels)
        assert np.isfinite(value) and np.isfinite(grad).all()
        # row 0: log-softmax of class 1 is -2e4; row 1: log 3; row 2: 2e4 + log 2.
        if loss.label_smoothing == 0:
            expected = (2e4 + np.log(3) + 2e4 + np.log(2)) / 3
            assert value == pytest.approx(expected, rel=1e-7)
        probs = np.full(x.shape, 1 / 3, dtype=dtype)
        value, grad = loss.value_and_grad(x, probs)
        assert np.isfinite(value) and np.isfinite(grad).all()
    value, grad = BCEWithLogitsLoss().value_and_grad(x, (x > 0).astype(dtype))
    assert np.isfinite(value) and np.isfinite(grad).all()
    value, grad = BCEWithLogitsLoss().value_and_grad(x, (x <= 0).astype(dtype))
    assert value == pytest.approx((8 * 1e4 + np.log(2)) / 9, rel=1e-7)
    assert np.abs(grad).max() <= 1 / 9 + 1e-7


def test_known_values():
    """Values written out by hand from PyTorch's definitions."""
    assert CrossEntropyLoss()([[0.0, 0.0]], [1]) == pytest.approx(np.log(2), rel=1e-15)
    # label smoothing: q = (0.9 + 0.05, 0.05) on log-softmax (log 1/2, log 1/2).
    assert CrossEntropyLoss(0.1)([[0.0, 0.0]], [0]) == pytest.approx(np.log(2), rel=1e-15)
    x = np.array([[2.0, 0.0, -1.0]])
    logp = x - np.log(np.exp(x).sum())
    q = np.array([0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3])
    assert CrossEntropyLoss(0.1)(x, [1]) == pytest.approx(-(q * logp).sum(), rel=1e-14)
    assert CrossEntropyLoss(0.1).grad(x, [1]) == pytest.approx(np.exp(logp) - q, rel=1e-14)
    assert MultiMarginLoss()([[0.1, 0.2, 0.4]], [2]) == pytest.approx((0.7 + 0.8) / 3)
    assert HuberLoss(2.0)([[1.0, -5.0]], [[0.0, 0.0]]) == pytest.approx((0.5 + 2 * 4) / 2)
    assert L1Loss().grad([[1.0, 2.0, 3.0]], [[1.0, 0.0, 5.0]]) == pytest.approx(
        np.array([[0.0, 1 / 3, -1 / 3]]))
    # a hinge term exactly at 0 is inactive (torch: z > 0).
    assert (MultiMarginLoss().grad([[0.0, 1.0]], [1]) == 0).all()


@pytest.mark.parametrize("eps", [0.0, 0.25, 1.0])
def test_cross_entropy_probability_targets(eps, rng):
    x = rng.normal(size=(8, 5))
    y = rng.integers(0, 5, size=8)
    onehot = np.eye(5)[y]
    loss = CrossEntropyLoss(eps)
    v1, g1 = loss.value_and_grad(x, y)
    v2, g2 = loss.value_and_grad(x, onehot)
    assert v1 == pytest.approx(v2, rel=1e-13) and rel_err(g1, g2) < 1e-13
    smoothed = (1 - eps) * onehot + eps / 5  # smoothing applied to probabilities too
    v3 = CrossEntropyLoss()(x, smoothed)
    assert v1 == pytest.approx(v3, rel=1e-13)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_sample_weight_semantics(name, rng):
    """Σ w_i ℓ_i divided by the unweighted mean's divisor; ones == None; zeros drop rows."""
    _, reference, kind, params, loss = KERNELS[name]
    shape = (10, 3)
    pred, target = rng.normal(size=shape), _target(kind, shape, rng)
    w = rng.random(10)
    per_row = np.array([reference(pred[i:i + 1], target[i:i + 1], None, 1.0, False,
                                  **params)[0] for i in range(10)])
    divisor = 10 if kind in ("labels", "probs") else 30
    assert loss(pred, target, sample_weight=w) == pytest.approx((w * per_row).sum() / divisor)
    assert loss(pred, target, sample_weight=np.ones(10)) == pytest.approx(loss(pred, target))
    w[3:] = 0
    g = loss.grad(pred, target, sample_weight=w)
    assert (g[3:] == 0).all()


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_accepts_lists_ints_float16_fortran_strided_readonly(name, rng):
    _, _, kind, _, loss = KERNELS[name]
    pred = rng.integers(-3, 4, size=(6, 4)).astype(np.float64)
    target = _target(kind, (6, 4), rng)
    expected_value, expected_grad = loss.value_and_grad(pred, target)
    big = np.zeros((12, 8))
    big[::2, ::2] = pred
    readonly = pred.copy()
    readonly.flags.writeable = False
    for p in (pred.tolist(), pred.astype(np.int32), pred.astype(np.float16),
              np.asfortranarray(pred), big[::2, ::2], readonly):
        value, grad = loss.value_and_grad(p, target)
        assert value == pytest.approx(expected_value, rel=1e-15)
        assert grad.dtype == np.float64 and grad.flags.c_contiguous
        assert rel_err(grad, expected_grad) == 0.0
    assert readonly.flags.writeable is False
    value, grad = loss.value_and_grad(pred.astype(np.float32), target)
    assert grad.dtype == np.float32
    assert value == pytest.approx(expected_value, rel=1e-5)


def test_target_forms():
    pred = np.array([[0.5], [1.5], [-1.0]])
    for loss in (MSELoss(), L1Loss(), HuberLoss(), BCEWithLogitsLoss()):
        assert loss(pred, [0.0, 1.0, 1.0]) == loss(pred, [[0.0], [1.0], [1.0]])
    assert BCEWithLogitsLoss()(pred, [False, True, True]) == BCEWithLogitsLoss()(pred, [0, 1, 1])
    x = np.arange(6.0).reshape(3, 2)
    assert CrossEntropyLoss()(x, [0.0, 1.0, 1.0]) == CrossEntropyLoss()(x, [0, 1, 1])
    assert MultiMarginLoss()(x, np.array([0, 1, 1], np.uint8)) == MultiMarginLoss()(x, [0, 1, 1])


def test_prepare_target_and_attributes():
    labels = CrossEntropyLoss()._prepare_target([2.0, 0.0], 3)
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0]
    probs = CrossEntropyLoss()._prepare_target([[0.5, 0.5]], 2, np.float32)
    assert probs.dtype == np.float32 and probs.shape == (1, 2)
    col = MSELoss()._prepare_target([1, 2, 3], 1, np.float32)
    assert col.shape == (3, 1) and col.dtype == np.float32 and col.flags.c_contiguous
    assert [loss.is_classification for loss in (MSELoss(), L1Loss(), HuberLoss())] == [False] * 3
    assert all(loss.is_classification for loss in
               (CrossEntropyLoss(), BCEWithLogitsLoss(), MultiMarginLoss()))
    assert isinstance(MSELoss(), Loss)
    assert CrossEntropyLoss()._spec(4) == {"code": int(Code.LOSS_CROSS_ENTROPY),
                                           "n_outputs": 4, "delta": 1.0,
                                           "label_smoothing": 0.0, "margin": 1.0,
                                           "reduction": 0}


def test_repr():
    assert repr(CrossEntropyLoss()) == "CrossEntropyLoss(label_smoothing=0.0)"
    assert repr(HuberLoss(2)) == "HuberLoss(delta=2.0)"
    assert repr(MultiMarginLoss()) == "MultiMarginLoss(margin=1.0)"
    assert [repr(c()) for c in (MSELoss, L1Loss, BCEWithLogitsLoss)] == [
        "MSELoss()", "L1Loss()", "BCEWithLogitsLoss()"]


P = np.zeros((3, 2))
Y = np.array([0, 1, 1])
BAD_INPUTS = [
    (MSELoss(), np.zeros(3), np.zeros(3), {}, ValueError, "pred must be 2-D"),
    (MSELoss(), np.zeros((3, 2, 1)), P, {}, ValueError, "pred must be 2-D"),
    (MSELoss(), np.zeros((0, 2)), np.zeros((0, 2)), {}, ValueError, "pred has no rows"),
    (MSELoss(), np.full((3, 2), np.nan), P, {}, ValueError, "pred contains NaN"),
    (MSELoss(), np.full((3, 2), np.inf), P, {}, ValueError, "pred contains NaN"),
    (MSELoss(), P, np.full((3, 2), np.nan), {}, ValueError, "target contains NaN"),
    (MSELoss(), P.astype(np.float32), np.full((3, 2), 1e300), {}, ValueError,
     "target contains NaN or inf"),
    (MSELoss(), P, np.zeros((4, 2)), {}, ValueError, "target has 4 rows"),
    (MSELoss(), P, np.zeros((3, 3)), {}, ValueError, "target has shape"),
    (MSELoss(), P, np.zeros(3), {}, ValueError, "target has shape"),
    (MSELoss(), P, ["a", "b", "c"], {}, TypeError, "target must hold numbers"),
    (MSELoss(), P, "abc", {}, TypeError, "target must be a numeric array"),
    (MSELoss(), np.array([[1, 2]], dtype=object), [[1, 2]], {}, TypeError, "pred"),
    (MSELoss(), [[1, 2], [3]], P, {}, ValueError, "pred could not be read"),
    (MSELoss(), P + 1j, P, {}, TypeError, "pred"),
    (CrossEntropyLoss(), P, [0, 2, 1], {}, ValueError, r"target must hold class labels in \[0, 2\)"),
    (CrossEntropyLoss(), P, [0, -1, 1], {}, ValueError, "target must hold class labels"),
    (CrossEntropyLoss(), P, [0, 0.5, 1], {}, ValueError, "target.*fractional"),
    (CrossEntropyLoss(), P, [0, np.nan, 1], {}, ValueError, "target contains NaN"),
    (CrossEntropyLoss(), P, [[0], [1], [1]], {}, ValueError, "target has shape"),
    (CrossEntropyLoss(), P, [0, 1], {}, ValueError, "target has 2 rows"),
    (MultiMarginLoss(), P, [[1, 0], [0, 1], [0, 1]], {}, ValueError, "target must be 1-D"),
    (MultiMarginLoss(), P, [0, 1, 2**63], {}, ValueError, "target must hold class labels"),
    (MultiMarginLoss(), P, np.array(["0", "1", "1"], dtype=object), {}, TypeError, "target"),
    (CrossEntropyLoss(), P, Y, {"sample_weight": [1, 2]}, ValueError, "sample_weight"),
    (CrossEntropyLoss(), P, Y, {"sample_weight": [1, -2, 1]}, ValueError, "sample_weight"),
    (CrossEntropyLoss(), P, Y, {"sample_weight": [1, np.nan, 1]}, ValueError, "sample_weight"),
    (CrossEntropyLoss(), P, Y, {"sample_weight": ["a", "b", "c"]}, TypeError, "sample_weight"),
]


@pytest.mark.parametrize("loss, pred, target, kwargs, exc, match", BAD_INPUTS)
def test_bad_inputs_are_refused_naming_the_argument(loss, pred, target, kwargs, exc, match):
    for method in (loss, loss.grad, loss.value_and_grad):
        with pytest.raises(exc, match=match):
            method(pred, target, **kwargs)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: HuberLoss(0.0), ValueError, "delta"),
    (lambda: HuberLoss(-1), ValueError, "delta"),
    (lambda: HuberLoss("big"), TypeError, "delta"),
    (lambda: CrossEntropyLoss(1.5), ValueError, "label_smoothing"),
    (lambda: CrossEntropyLoss(-0.1), ValueError, "label_smoothing"),
    (lambda: MultiMarginLoss(float("nan")), ValueError, "margin"),
])
def test_bad_hyperparameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_wrappers_refuse_what_would_crash_the_kernels():
    p = np.zeros((3, 2))
    with pytest.raises(ValueError, match="labels must lie"):
        core.cross_entropy_labels_memview(p, np.array([0, 5, 1]))
    with pytest.raises(ValueError, match="labels has 2 entries"):
        core.multi_margin_memview(p, np.array([0, 1]))
    with pytest.raises(ValueError, match="target has shape"):
        core.mse_memview(p, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="row_weight"):
        core.l1_memview(p, p, np.ones(4))
    with pytest.raises(ValueError, match="at least one row"):
        core.mse_memview(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="exactly one"):
        core.value_and_grad_memview(MSELoss()._spec(2), p)
    with pytest.raises(ValueError, match="n_outputs"):
        core.value_and_grad_memview(MSELoss()._spec(3), p, target=p)


# --- PyTorch, when it is installed --------------------------------------------------------

def _torch_cases(rng):
    x = rng.normal(scale=2.0, size=(7, 4))
    x[0] = [1e4, -1e4, 0.0, 3.0]
    y = rng.integers(0, 4, size=7)
    t = rng.normal(size=(7, 4))
    b = rng.random((7, 4))
    p = rng.random((7, 4))
    p /= p.sum(axis=1, keepdims=True)
    return [
        (MSELoss(), "MSELoss", {}, x, t), (L1Loss(), "L1Loss", {}, x, t),
        (HuberLoss(0.5), "HuberLoss", {"delta": 0.5}, x, t),
        (BCEWithLogitsLoss(), "BCEWithLogitsLoss", {}, x, b),
        (CrossEntropyLoss(), "CrossEntropyLoss", {}, x, y),
        (CrossEntropyLoss(0.2), "CrossEntropyLoss", {"label_smoothing": 0.2}, x, y),
        (CrossEntropyLoss(0.2), "CrossEntropyLoss", {"label_smoothing": 0.2}, x, p),
        (MultiMarginLoss(), "MultiMarginLoss", {}, x, y),
        (MultiMarginLoss(0.3), "MultiMarginLoss", {"margin": 0.3}, x, y),
    ]


def test_matches_pytorch(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the comparison "
                                                "with torch.nn losses is skipped")
    for loss, name, kwargs, x, target in _torch_cases(rng):
        value, grad = loss.value_and_grad(x, target)
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        tt = torch.tensor(target)
        tv = getattr(torch.nn, name)(**kwargs)(tx, tt)
        tv.backward()
        assert value == pytest.approx(tv.item(), rel=1e-12), (loss, tv.item())
        assert rel_err(grad, tx.grad.numpy()) < 1e-12, loss
