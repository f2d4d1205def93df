"""Learning-rate schedules: closed forms, ReduceLROnPlateau bookkeeping, state dicts,
validation, and torch.optim.lr_scheduler when torch is importable."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from fastmlp.optim import SGD, Adam
from fastmlp.schedules import (CosineAnnealingLR, ExponentialLR, InverseScalingLR,
                               ReduceLROnPlateau, StepLR)

EPOCHS = 40

#: (class, kwargs, formula of (epoch, base_lr)) for the closed-form schedules.
CLOSED = [
    (StepLR, dict(step_size=7), lambda e, lr: lr * 0.1 ** (e // 7)),
    (StepLR, dict(step_size=3, gamma=0.5), lambda e, lr: lr * 0.5 ** (e // 3)),
    (ExponentialLR, dict(gamma=0.9), lambda e, lr: lr * 0.9 ** e),
    (CosineAnnealingLR, dict(T_max=10),
     lambda e, lr: lr * (1 + math.cos(math.pi * e / 10)) / 2),
    (CosineAnnealingLR, dict(T_max=15, eta_min=0.01),
     lambda e, lr: 0.01 + (lr - 0.01) * (1 + math.cos(math.pi * e / 15)) / 2),
    (CosineAnnealingLR, dict(T_max=10, warmup_epochs=4),
     lambda e, lr: lr * (e + 1) / 5 if e < 4
     else lr * (1 + math.cos(math.pi * (e - 4) / 10)) / 2),
    (InverseScalingLR, dict(), lambda e, lr: lr / (e + 1) ** 0.5),
    (InverseScalingLR, dict(power_t=0.25), lambda e, lr: lr / (e + 1) ** 0.25),
]
IDS = [f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CLOSED)]


@pytest.mark.parametrize("cls,kw,formula", CLOSED, ids=IDS)
def test_closed_form_schedules_follow_their_formula(cls, kw, formula):
    opt = SGD(lr=0.2)
    sched = cls(opt, **kw)
    assert sched.base_lr == 0.2
    for epoch in range(EPOCHS):
        if epoch:
            sched.step()
        expect = formula(epoch, 0.2)
        assert sched.last_epoch == epoch
        assert opt.lr == pytest.approx(expect, rel=1e-12, abs=1e-15)
        assert sched.get_last_lr() == [opt.lr]
        assert sched.lr_at(epoch) == opt.lr == sched(epoch, 123.0)


@pytest.mark.parametrize("cls,kw,formula", CLOSED, ids=IDS)
def test_schedule_as_a_plain_function_of_the_epoch(cls, kw, formula):
    sched = cls(0.05, **kw)              # a base lr instead of an optimizer
    assert sched.optimizer is None
    assert [sched.lr_at(e) for e in range(EPOCHS)] == pytest.approx(
        [formula(e, 0.05) for e in range(EPOCHS)], rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="epoch"):
        sched.lr_at(-1)


def test_cosine_warmup_is_linear_from_zero_and_joins_the_cosine():
    sched = CosineAnnealingLR(1.0, T_max=20, warmup_epochs=3)
    lrs = [sched.lr_at(e) for e in range(25)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])    # line from 0 at epoch -1
    assert all(lr > 0 for lr in lrs[:23])
    assert lrs[23] == pytest.approx(0.0, abs=1e-15)           # end of the cosine (3 + 20)
    assert np.all(np.diff(lrs[3:24]) < 0)


def test_inverse_scaling_matches_scikit_learn():
    mod = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    sk = mod.SGDOptimizer([np.zeros(1)], learning_rate_init=0.1, lr_schedule="invscaling",
                          power_t=0.3)
    sched = InverseScalingLR(0.1, power_t=0.3)
    for t in range(1, 30):
        sk.iteration_ends(t - 1)         # sklearn: lr0 / (time_step + 1) ** power_t
        assert sched.lr_at(t - 1) == pytest.approx(sk.learning_rate, rel=1e-14)


def test_works_with_any_object_that_has_lr():
    opt = SimpleNamespace(lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    sched.step()
    assert opt.lr == 0.25
    with pytest.raises(TypeError, match="lr"):
        StepLR(object(), step_size=1)


# --- ReduceLROnPlateau -------------------------------------------------------------------------

def plateau_lrs(metrics, **kw):
    opt = SGD(lr=1.0)
    sched = ReduceLROnPlateau(opt, **kw)
    out = []
    for m in metrics:
        sched.step(m)
        out.append(opt.lr)
        assert sched.get_last_lr() == [opt.lr]
    return out


def test_plateau_reduces_after_patience():
    lrs = plateau_lrs([5, 4, 4, 4, 4, 3, 3, 3, 3], patience=2, factor=0.5)
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_plateau_threshold_modes_and_max_mode():
    # rel: 0.99 is not better than 1 * (1 - 0.1); abs: 0.95 is better than 1 - 0.01
    assert plateau_lrs([1.0, 0.99, 0.99], patience=1, threshold=0.1) == [1, 1, 0.1]
    assert plateau_lrs([1.0, 0.95, 0.90], patience=0, threshold=0.01,
                       threshold_mode="abs") == [1, 1, 1]
    assert plateau_lrs([1.0, 2.0, 2.0, 2.0], mode="max", patience=1) == [1, 1, 1, 0.1]


def test_plateau_cooldown_min_lr_and_eps():
    lrs = plateau_lrs([1.0] * 8, patience=0, cooldown=2, factor=0.5)
    assert lrs == [1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert plateau_lrs([1.0] * 5, patience=0, min_lr=0.3, factor=0.5) == [1, 0.5, 0.3, 0.3, 0.3]
    assert plateau_lrs([1.0] * 3, patience=0, eps=0.6, factor=0.5) == [1, 1, 1]


def test_plateau_validate_classmethod():
    assert ReduceLROnPlateau.validate(mode="max", factor=0.5)["mode"] == "max"
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau.validate(factor=1.0)


# --- state dicts and validation --------------------------------------------------------------

@pytest.mark.parametrize("make,drive", [
    (lambda o: StepLR(o, step_size=3), lambda s, e: s.step()),
    (lambda o: CosineAnnealingLR(o, T_max=9, warmup_epochs=2), lambda s, e: s.step()),
    (lambda o: ReduceLROnPlateau(o, patience=1, cooldown=1), lambda s, e: s.step(e % 3)),
])
def test_state_dict_round_trip_continues_identically(make, drive):
    opt = Adam(lr=0.1)
    sched = make(opt)
    for e in range(5):
        drive(sched, e)
    sd, lr_mid = sched.state_dict(), opt.lr
    tail = []
    for e in range(5, 15):
        drive(sched, e)
        tail.append(opt.lr)
    opt2 = Adam(lr=lr_mid)
    sched2 = make(Adam(lr=7.0))
    sched2.optimizer = opt2
    sched2.load_state_dict(sd)
    tail2 = []
    for e in range(5, 15):
        drive(sched2, e)
        tail2.append(opt2.lr)
    assert tail2 == tail


def test_load_state_dict_validates():
    sched = StepLR(0.1, step_size=3)
    sd = sched.state_dict()
    with pytest.raises(ValueError, match="missing keys"):
        sched.load_state_dict({k: v for k, v in sd.items() if k != "gamma"})
    with pytest.raises(ValueError, match="unexpected keys"):
        sched.load_state_dict({**sd, "T_max": 3})
    with pytest.raises(ValueError, match="step_size"):
        sched.load_state_dict({**sd, "step_size": 0})


@pytest.mark.parametrize("make,name", [
    (lambda: StepLR(0.1, step_size=0), "step_size"),
    (lambda: StepLR(0.1, step_size=2, gamma=0.0), "gamma"),
    (lambda: ExponentialLR(0.1, gamma=-0.5), "gamma"),
    (lambda: CosineAnnealingLR(0.1, T_max=0), "T_max"),
    (lambda: CosineAnnealingLR(0.1, T_max=5, eta_min=-1.0), "eta_min"),
    (lambda: CosineAnnealingLR(0.1, T_max=5, warmup_epochs=-1), "warmup_epochs"),
    (lambda: InverseScalingLR(0.1, power_t=-0.5), "power_t"),
    (lambda: ReduceLROnPlateau(0.1, mode="lowest"), "mode"),
    (lambda: ReduceLROnPlateau(0.1, factor=1.5), "factor"),
    (lambda: ReduceLROnPlateau(0.1, patience=-1), "patience"),
    (lambda: ReduceLROnPlateau(0.1, threshold=-1e-4), "threshold"),
    (lambda: ReduceLROnPlateau(0.1, threshold_mode="relative"), "threshold_mode"),
    (lambda: ReduceLROnPlateau(0.1, cooldown=-2), "cooldown"),
    (lambda: ReduceLROnPlateau(0.1, min_lr=-0.1), "min_lr"),
    (lambda: StepLR(-0.1, step_size=2), "base learning rate"),
])
def test_invalid_arguments_name_the_argument(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_step_size_must_be_an_integer():
    with pytest.raises(TypeError, match="step_size"):
        StepLR(0.1, step_size=2.5)


# --- torch.optim.lr_scheduler, when importable ---------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="torch is not installed: the comparison with "
                               "torch.optim.lr_scheduler is skipped (formulas still run)")


@pytest.mark.parametrize("cls,kw", [(StepLR, dict(step_size=7)),
                                    (StepLR, dict(step_size=2, gamma=0.7)),
                                    (ExponentialLR, dict(gamma=0.9)),
                                    (CosineAnnealingLR, dict(T_max=10)),
                                    (CosineAnnealingLR, dict(T_max=6, eta_min=0.01))])
def test_matches_torch_lr_scheduler(cls, kw):
    torch = _torch()
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    tsched = getattr(torch.optim.lr_scheduler, cls.__name__)(topt, **kw)
    opt = SGD(lr=0.2)
    sched = cls(opt, **kw)
    for _ in range(EPOCHS):
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        topt.step()
        tsched.step()
        sched.step()


@pytest.mark.parametrize("kw", [dict(patience=2), dict(patience=0, cooldown=2, factor=0.5),
                                dict(mode="max", threshold=0.05, threshold_mode="abs"),
                                dict(patience=1, min_lr=0.05)])
def test_plateau_matches_torch(kw, rng):
    torch = _torch()
    metrics = np.round(rng.normal(size=60).cumsum() * 0.1, 1).tolist()
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    opt = SGD(lr=1.0)
    sched = ReduceLROnPlateau(opt, **kw)
    for m in metrics:
        tsched.step(m)
        sched.step(m)
        assert opt.lr == topt.param_groups[0]["lr"]
