"""PyTorch habits (issue 16, item 16): train/eval modes, parameters(), clip_grad_value,
torch's schedules MultiStepLR, OneCycleLR, LambdaLR, LinearLR, and torch's argument names
of LeakyReLU and GELU."""
import math

import numpy as np
import pytest

import fastmlp as fm
from fastmlp.schedules import LambdaLR, LinearLR, MultiStepLR, OneCycleLR

EPOCHS = 30


def test_train_and_eval_modes_drive_call(rng):
    m = fm.Sequential(fm.Dense(4, 16, activation="relu"), fm.Dropout(0.5), fm.BatchNorm(16),
                      fm.Dense(16, 2), seed=0)
    X = rng.normal(size=(32, 4))
    assert m.training is True                        # as a new torch module
    assert m.eval() is m and m.training is False
    np.testing.assert_array_equal(m(X), m.predict(X))
    assert m.train() is m and m.training
    stats = m.buffers.copy()
    out = m(X)                                       # dropout on, batch statistics
    assert not np.array_equal(out, m.predict(X)) and not np.array_equal(m.buffers, stats)
    assert m.train(False) is m and not m.training
    with pytest.raises(TypeError, match="mode"):
        m.train("yes")


def test_torch_style_loop_trains_with_dropout(rng):
    """model.train(); out = model(X); loss.grad; backward; step: dropout masks change."""
    m = fm.Sequential(fm.Dense(4, 8, activation="relu"), fm.Dropout(0.5), fm.Dense(8, 2),
                      seed=0, dtype="float64")
    X, y = rng.normal(size=(16, 4)), rng.integers(0, 2, 16)
    loss, opt = fm.CrossEntropyLoss(), fm.SGD(lr=0.1)
    m.train()
    step = m.rng_step
    for _ in range(3):
        out = m(X)
        m.zero_grad()
        m.backward(loss.grad(out, y))
        opt.step(m)
    assert m.rng_step == step + 3


def test_clip_grad_value():
    m = fm.Sequential(fm.Dense(3, 2), dtype="float64")
    m.grads[:] = np.linspace(-3, 3, m.n_params)
    fm.clip_grad_value(m, 1.5)
    np.testing.assert_array_equal(m.grads, np.clip(np.linspace(-3, 3, m.n_params), -1.5, 1.5))
    with pytest.raises(ValueError, match="clip_value"):
        fm.clip_grad_value(m, -1.0)


def test_leaky_relu_and_gelu_torch_names(rng):
    X = rng.normal(size=(50, 3)) * 3
    leaky = fm.Sequential(fm.Dense(3, 3), fm.LeakyReLU(negative_slope=0.2), dtype="float64")
    assert leaky[1].negative_slope == 0.2 and leaky[1].alpha == 0.2
    Z = leaky[0].forward(X)
    np.testing.assert_allclose(leaky.predict(X), np.where(Z > 0, Z, 0.2 * Z))
    assert fm.LeakyReLU(0.3).negative_slope == 0.3
    tanh = fm.Sequential(fm.Dense(3, 3), fm.GELU(approximate="tanh"), dtype="float64", seed=0)
    exact = fm.Sequential(fm.Dense(3, 3), fm.GELU(), dtype="float64", seed=0)
    Z = tanh[0].forward(X)
    want = 0.5 * Z * (1 + np.tanh(math.sqrt(2 / math.pi) * (Z + 0.044715 * Z ** 3)))
    np.testing.assert_allclose(tanh.predict(X), want, rtol=1e-12)
    assert np.abs(tanh.predict(X) - exact.predict(X)).max() > 1e-6    # not the exact form
    assert fm.gradient_check(tanh, fm.MSELoss(), X[:5], np.zeros((5, 3))) < 1e-6
    with pytest.raises(ValueError, match="approximate"):
        fm.GELU(approximate="fast")
    back = fm.Sequential.from_config(tanh.get_config())
    assert back[1].approximate == "tanh"


SCHEDULES = [
    (MultiStepLR, dict(milestones=[3, 8, 20], gamma=0.5),
     lambda e, lr: lr * 0.5 ** sum(e >= m for m in (3, 8, 20))),
    (LambdaLR, dict(lr_lambda=lambda e: 0.95 ** e), lambda e, lr: lr * 0.95 ** e),
    (LinearLR, dict(), lambda e, lr: lr * (1 / 3 + (2 / 3) * min(e, 5) / 5)),
    (LinearLR, dict(start_factor=1.0, end_factor=0.1, total_iters=10),
     lambda e, lr: lr * (1 - 0.9 * min(e, 10) / 10)),
]


@pytest.mark.parametrize("cls,kw,formula", SCHEDULES, ids=lambda v: getattr(v, "__name__", ""))
def test_new_schedules_follow_torch_formulas(cls, kw, formula):
    opt = fm.SGD(lr=0.2)
    sched = cls(opt, **kw)
    for epoch in range(EPOCHS):
        if epoch:
            sched.step()
        assert opt.lr == pytest.approx(formula(epoch, 0.2), rel=1e-12)
        assert sched.lr_at(epoch) == pytest.approx(formula(epoch, 0.2), rel=1e-12)


def _torch_lrs(torch_cls, kw, steps, lr=0.2):
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    tsched = getattr(torch.optim.lr_scheduler, torch_cls)(topt, **kw)
    out = []
    for _ in range(steps):
        out.append(topt.param_groups[0]["lr"])
        topt.step()
        tsched.step()
    return out


@pytest.mark.parametrize("cls,kw,formula", SCHEDULES, ids=lambda v: getattr(v, "__name__", ""))
def test_new_schedules_match_torch(cls, kw, formula):
    want = _torch_lrs(cls.__name__, kw, EPOCHS)
    opt = fm.SGD(lr=0.2)
    sched = cls(opt, **kw)
    got = []
    for _ in range(EPOCHS):
        got.append(opt.lr)
        sched.step()
    np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("kw", [dict(max_lr=1.0, total_steps=30),
                                dict(max_lr=0.5, epochs=6, steps_per_epoch=5, pct_start=0.2,
                                     anneal_strategy="linear"),
                                dict(max_lr=1.0, total_steps=40, three_phase=True,
                                     div_factor=10.0, final_div_factor=100.0)])
def test_one_cycle_matches_torch(kw):
    total = kw.get("total_steps") or kw["epochs"] * kw["steps_per_epoch"]
    opt = fm.SGD(lr=0.2)
    sched = OneCycleLR(opt, cycle_momentum=False, **kw)
    got = []
    for _ in range(total):
        got.append(opt.lr)
        sched.step()
    assert got[0] == pytest.approx(kw["max_lr"] / kw.get("div_factor", 25.0))
    assert max(got) == pytest.approx(kw["max_lr"])
    want = _torch_lrs("OneCycleLR", dict(cycle_momentum=False, **kw), total)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_new_schedules_validate_their_arguments():
    opt = fm.SGD(lr=0.1)
    for make, match in [(lambda: MultiStepLR(opt, milestones=[5, 2]), "milestones"),
                        (lambda: LambdaLR(opt, lr_lambda=3), "lr_lambda"),
                        (lambda: LinearLR(opt, start_factor=0.0), "start_factor"),
                        (lambda: OneCycleLR(opt, max_lr=1.0), "total_steps"),
                        (lambda: OneCycleLR(opt, max_lr=1.0, total_steps=10,
                                            anneal_strategy="x"), "anneal_strategy"),
                        (lambda: OneCycleLR(opt, max_lr=1.0, total_steps=10,
                                            cycle_momentum=True), "cycle_momentum")]:
        with pytest.raises((ValueError, TypeError), match=match):
            make()
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=3, cycle_momentum=False)
    for _ in range(3):                     # as torch: total_steps steps after construction
        sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


class _PyIdentity(fm.Layer):
    def forward(self, X, training=False):
        return X

    def backward(self, dY):
        return dY


def _frozen_model(python=False, seed=0):
    layers = [fm.Dense(4, 8, activation="relu"), fm.BatchNorm(8), fm.Dense(8, 3)]
    if python:
        layers.insert(1, _PyIdentity())
    m = fm.Sequential(layers, dtype="float64", seed=seed)
    m[0].trainable = False
    return m


@pytest.mark.parametrize("optimizer", [lambda: fm.AdamW(lr=1e-2, weight_decay=0.1),
                                       lambda: fm.SGD(lr=0.1, momentum=0.9)])
def test_frozen_layers_stay_put_in_fit(rng, optimizer):
    """layer.trainable = False: neither the fused step nor the Python one moves it (nor
    weight decay), and both paths train the rest alike."""
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, 64)
    fused, python = _frozen_model(), _frozen_model(python=True)
    assert fused.is_fused and not python.is_fused
    W0, b0 = fused[0].W.copy(), fused[0].b.copy()
    for m in (fused, python):
        fm.Trainer(m, "cross_entropy", optimizer(), seed=0).fit(X, y, epochs=2, batch_size=16,
                                                                verbose=0)
        np.testing.assert_array_equal(m[0].W, W0)
        np.testing.assert_array_equal(m[0].b, b0)
    assert not np.array_equal(fused[-1].W, _frozen_model()[-1].W)
    np.testing.assert_allclose(fused[-1].W, python[-1].W, rtol=1e-10)
    fused[0].trainable = True                      # thawed: it trains again
    fm.Trainer(fused, "cross_entropy", optimizer(), seed=0).fit(X, y, verbose=0)
    assert not np.array_equal(fused[0].W, W0)


def test_frozen_layers_in_a_torch_style_loop_and_save(rng, tmp_path):
    m = _frozen_model()
    X, y = rng.normal(size=(16, 4)), rng.integers(0, 3, 16)
    W0 = m[0].W.copy()
    opt, loss = fm.Adam(lr=0.1, weight_decay=0.1), fm.CrossEntropyLoss()
    for _ in range(3):
        out = m(X)
        m.zero_grad()
        m.backward(loss.grad(out, y))
        opt.step(m)
    np.testing.assert_array_equal(m[0].W, W0)
    fm.save(m, tmp_path / "m.fmlp")
    back = fm.load(tmp_path / "m.fmlp")
    assert back[0].trainable is False and back[2].trainable is True
    with pytest.raises(TypeError, match="trainable"):
        m[0].trainable = "no"
    with pytest.raises(ValueError, match="frozen"):
        fm.Trainer(m, "cross_entropy", fm.LBFGS()).fit(X, y, verbose=0)


def test_nested_sequential(rng, tmp_path):
    """torch's nested nn.Sequential: the inner model's layers, with their weights, become a
    Chain of the outer one; fused, named by path, saved and restored."""
    inner = fm.Sequential(fm.Dense(4, 8, activation="relu"), fm.BatchNorm(8), seed=3)
    inner.buffers[:] = rng.random(inner.buffers.shape[0])
    W, stats = inner[0].W.copy(), inner.buffers[:16].copy()     # running mean and var
    X = rng.normal(size=(10, 4))
    h = inner.predict(X)
    outer = fm.Sequential(inner, fm.Dense(8, 2), seed=0)
    assert isinstance(outer[0], fm.layers.Chain) and outer.is_fused
    np.testing.assert_array_equal(outer[0][0].W, W)
    np.testing.assert_array_equal(outer.buffers[:16], stats)
    np.testing.assert_allclose(outer.predict(X), h @ outer[1].W + outer[1].b, rtol=1e-5)
    assert [n for n, _ in outer.named_parameters()][:3] == ["0.0.W", "0.0.b", "0.1.weight"]
    fm.Trainer(outer, "cross_entropy", "adam", seed=0).fit(X, rng.integers(0, 2, 10),
                                                           verbose=0)
    fm.save(outer, tmp_path / "o.fmlp")
    back = fm.load(tmp_path / "o.fmlp")
    np.testing.assert_array_equal(back.predict(X), outer.predict(X))
    deeper = fm.Sequential(fm.Sequential(fm.Sequential(fm.Dense(3, 3)), fm.Tanh()),
                           fm.Dense(3, 1))
    assert deeper.n_params == 16 and len(deeper) == 2
