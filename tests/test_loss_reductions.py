"""Loss reductions 'mean' | 'sum' | 'none' (PyTorch's): values, gradients, the fused core,
the full-batch objective, validation."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _losses as core
from fastmlp.optim.fullbatch import make_objective
from fastmlp.reference import losses as ref
from helpers import RTOL, python_identity, rel_err


def _cases(rng, n=7, d=4):
    x = rng.normal(scale=2.0, size=(n, d))
    y = rng.integers(0, d, size=n)
    p = rng.random((n, d))
    p /= p.sum(axis=1, keepdims=True)
    return [
        (fm.MSELoss, {}, x, rng.normal(size=(n, d)), n * d),
        (fm.L1Loss, {}, x, rng.normal(size=(n, d)), n * d),
        (fm.HuberLoss, {"delta": 0.5}, x, rng.normal(size=(n, d)), n * d),
        (fm.BCEWithLogitsLoss, {}, x, rng.random((n, d)), n * d),
        (fm.CrossEntropyLoss, {"label_smoothing": 0.2}, x, y, n),
        (fm.CrossEntropyLoss, {}, x, p, n),
        (fm.MultiMarginLoss, {"margin": 0.3}, x, y, n),
    ]


def test_sum_is_mean_times_count_and_none_sums_to_it(rng):
    for cls, kw, x, t, count in _cases(rng):
        w = rng.uniform(0, 2, x.shape[0])
        mean, gmean = cls(**kw).value_and_grad(x, t, sample_weight=w)
        total, gsum = cls(**kw, reduction="sum").value_and_grad(x, t, sample_weight=w)
        assert total == pytest.approx(mean * count, rel=1e-12), cls
        assert rel_err(gsum, gmean * count) < 1e-12
        none = cls(**kw, reduction="none")
        per = none(x, t, sample_weight=w)
        elementwise = count == x.size
        assert per.shape == (x.shape if elementwise else x.shape[:1])
        assert per.sum() == pytest.approx(total, rel=1e-12)
        assert rel_err(none.grad(x, t, sample_weight=w), gsum) < 1e-12   # d(Σ none)/dx
        np.testing.assert_allclose(
            per, (cls(**kw, reduction="none")(x, t)) * (w[:, None] if elementwise else w),
            rtol=1e-12)


def test_lecture_forms():
    """½Σ(y − t)² is ½·MSELoss(reduction='sum'); −Σ log p_y is CE(reduction='sum')."""
    assert 0.5 * fm.MSELoss(reduction="sum")([[1.0], [2.0]], [1.0, 4.0]) == 2.0
    x = np.log([[0.5, 0.5], [0.25, 0.75]])
    ce = fm.CrossEntropyLoss(reduction="sum")(x, [0, 1])
    assert ce == pytest.approx(-np.log(0.5) - np.log(0.75), rel=1e-14)


def test_matches_pytorch_reductions(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    names = {fm.MSELoss: "MSELoss", fm.L1Loss: "L1Loss", fm.HuberLoss: "HuberLoss",
             fm.BCEWithLogitsLoss: "BCEWithLogitsLoss", fm.CrossEntropyLoss: "CrossEntropyLoss",
             fm.MultiMarginLoss: "MultiMarginLoss"}
    for cls, kw, x, t, _ in _cases(rng):
        for reduction in ("mean", "sum", "none"):
            ours = cls(**kw, reduction=reduction)(x, t)
            tt = torch.tensor(t)
            theirs = getattr(torch.nn, names[cls])(**kw, reduction=reduction)(
                torch.tensor(x), tt).numpy()
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{cls.__name__} {reduction}")


def test_core_scale_follows_the_spec(rng):
    x = rng.normal(size=(5, 3))
    t = rng.normal(size=(5, 3))
    R = core.Reduction
    for red, factor in ((R.REDUCTION_MEAN, 1 / 15), (R.REDUCTION_SUM, 1)):
        spec = {"code": int(core.LossCode.LOSS_MSE), "n_outputs": 3, "reduction": int(red)}
        v, g = core.value_and_grad_memview(spec, x, target=t)
        rv, rg = ref.value_and_grad(spec, x, target=t)
        assert v == pytest.approx(factor * ((x - t) ** 2).sum(), rel=1e-13)
        assert v == pytest.approx(rv, rel=1e-13) and rel_err(g, rg) < 1e-13
    with pytest.raises(ValueError, match="reduction"):
        core.value_and_grad_memview({"code": 0, "n_outputs": 3, "reduction": 2}, x, target=t)


def _model(k=2, dtype="float64", python=False):
    layers = [fm.Dense(4, 6, activation="tanh"), fm.Dense(6, k)]
    return fm.Sequential(layers + ([python_identity()] if python else []), dtype=dtype, seed=2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ["mse", "ce"])
def test_fused_sum_agrees_with_python_path_and_scaled_mean(rng, dtype, case):
    """reduction='sum' in the fused step = the Python step; with plain SGD and full
    batches it is 'mean' with the learning rate times the mean's divisor."""
    X = rng.normal(size=(40, 4))
    if case == "mse":
        cls, y, per_batch = fm.MSELoss, rng.normal(size=(40, 2)), 10 * 2
    else:
        cls, y, per_batch = fm.CrossEntropyLoss, rng.integers(0, 2, 40), 10
    runs = {}
    for name, python, reduction, lr in (("fused", False, "sum", 1e-3),
                                        ("python", True, "sum", 1e-3),
                                        ("mean", False, "mean", 1e-3 * per_batch)):
        model = _model(2, dtype, python)
        assert model.is_fused != python
        tr = fm.Trainer(model, cls(reduction=reduction), fm.SGD(lr=lr), seed=1)
        tr.fit(X, y, epochs=2, batch_size=10, verbose=0)
        runs[name] = model.params
    tol = RTOL[np.dtype(dtype).type]
    assert rel_err(runs["python"], runs["fused"]) <= tol
    assert rel_err(runs["mean"], runs["fused"]) <= 100 * tol


def test_full_batch_objective_sums_over_chunks(rng):
    X = rng.normal(size=(30, 4))
    y = rng.normal(size=(30, 2))
    model = _model()
    mean = make_objective(model, fm.MSELoss(), X, y, chunk=7)()
    g_mean = model.grads.copy()
    total = make_objective(model, fm.MSELoss(reduction="sum"), X, y, chunk=7)()
    assert total == pytest.approx(mean * 60, rel=1e-12)
    assert rel_err(model.grads, g_mean * 60) < 1e-12


def test_reduction_validated_and_refused_for_training(rng):
    with pytest.raises(ValueError, match="reduction"):
        fm.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="reduction"):
        fm.HuberLoss(reduction=1)
    with pytest.raises(ValueError, match="reduction='none'"):
        fm.Trainer(_model(), fm.MSELoss(reduction="none"), fm.SGD(lr=0.1))
    assert repr(fm.HuberLoss(2, reduction="sum")) == "HuberLoss(delta=2.0, reduction='sum')"
    assert repr(fm.MSELoss(reduction="none")) == "MSELoss(reduction='none')"
    assert fm.CrossEntropyLoss(reduction="sum").reduction == "sum"
