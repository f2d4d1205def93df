"""Optimizers: each update against its rule written out here, core vs reference, convergence
from one table, state dicts, validation, clipping, and torch.optim when it is importable."""
import math

import numpy as np
import pytest

from fastmlp import _optim
from fastmlp._ops import CoreOps
from fastmlp.threads import limit_threads
from fastmlp.optim import (SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop,
                           clip_grad_norm, get_optimizer)
from helpers import RTOL, rel_err


class Arena:
    """The model contract: flat ``params`` and ``grads`` (and an optional backend)."""

    def __init__(self, params, backend="core"):
        self.params = np.ascontiguousarray(params)
        self.grads = np.zeros_like(self.params)
        self.backend = backend


# --- the update rules, written out independently of fastmlp ----------------------------------

def sgd_rule(p, g, s, t, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
    g = g + weight_decay * p
    if momentum != 0:
        s["b"] = g.copy() if t == 1 else momentum * s["b"] + (1 - dampening) * g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def adagrad_rule(p, g, s, t, lr, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10):
    g = g + weight_decay * p
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s["sum"]) + eps)


def rmsprop_rule(p, g, s, t, lr, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False):
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["m"] = alpha * s.get("m", 0) + (1 - alpha) * g
        v = v - s["m"] ** 2
    update = g / (np.sqrt(v) + eps)
    if momentum > 0:
        s["b"] = momentum * s.get("b", 0) + update
        update = s["b"]
    return p - lr * update


def adadelta_rule(p, g, s, t, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0):
    g = g + weight_decay * p
    s["v"] = rho * s.get("v", 0) + (1 - rho) * g * g
    delta = np.sqrt(s.get("u", 0) + eps) / np.sqrt(s["v"] + eps) * g
    s["u"] = rho * s.get("u", 0) + (1 - rho) * delta ** 2
    return p - lr * delta


def adam_rule(p, g, s, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
              amsgrad=False, decoupled=False):
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
    v = s["v"]
    if amsgrad:
        s["vmax"] = v = np.maximum(s.get("vmax", 0), v)
    m_hat, v_hat = s["m"] / (1 - b1 ** t), v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw_rule(p, g, s, t, weight_decay=0.01, **kw):
    return adam_rule(p, g, s, t, weight_decay=weight_decay, decoupled=True, **kw)


RULES = {SGD: sgd_rule, Adagrad: adagrad_rule, RMSprop: rmsprop_rule,
         Adadelta: adadelta_rule, Adam: adam_rule, AdamW: adamw_rule}

#: Every option combination that changes the update.
CASES = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, weight_decay=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, dict(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.05)),
    (Adagrad, dict(lr=0.1)),
    (Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5)),
    (RMSprop, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, weight_decay=0.1, alpha=0.9)),
    (RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01, alpha=0.3)),
    (Adadelta, dict()),
    (Adadelta, dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, eps=1e-6)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.05, betas=(0.0, 0.5))),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}"
       for cls, kw in CASES]


def run(opt, model, grads_seq):
    for g in grads_seq:
        model.grads[...] = g
        opt.step(model)
    return model.params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_steps_match_written_out_rule(cls, hyper, dtype, rng):
    p0 = rng.normal(size=37).astype(dtype)
    grads_seq = [rng.normal(size=37).astype(dtype) for _ in range(8)]
    model = Arena(p0.copy())
    run(cls(**hyper), model, grads_seq)
    p, s = p0.astype(np.float64), {}
    for t, g in enumerate(grads_seq, start=1):
        p = RULES[cls](p, g.astype(np.float64), s, t, **hyper)
    assert model.params.dtype == dtype
    assert rel_err(model.params, p) < (1e-13 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 7, 1001])
@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_core_kernel_matches_reference(cls, hyper, n, dtype, rng):
    p0 = rng.normal(size=n).astype(dtype)
    grads_seq = [rng.normal(size=n).astype(dtype) for _ in range(5)]
    core, ref = Arena(p0.copy(), "core"), Arena(p0.copy(), "numpy")
    opt_core, opt_ref = cls(**hyper), cls(**hyper)
    run(opt_core, core, grads_seq)
    run(opt_ref, ref, grads_seq)
    assert rel_err(core.params, ref.params) < RTOL[dtype]
    assert set(opt_core.state) == set(opt_ref.state)
    for name, buf in opt_core.state.items():
        assert buf.dtype == dtype
        assert rel_err(buf, opt_ref.state[name]) < RTOL[dtype], name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_threaded_update_equals_serial_and_reference(cls, hyper, dtype, rng):
    """An arena large enough to be split over threads (> 2 x 32768 elements, odd length)
    gets exactly the serial result, which is exactly the reference's: every element is
    the same expression, and the build does not contract a*b+c into FMAs."""
    n = 3 * 2**15 + 11
    p0 = rng.normal(size=n).astype(dtype)
    grads_seq = [rng.normal(size=n).astype(dtype) for _ in range(3)]
    out = []
    for threads in (1, 2, 3):
        with limit_threads(threads):
            out.append(run(cls(**hyper), Arena(p0.copy()), grads_seq))
    ref = run(cls(**hyper), Arena(p0.copy(), "numpy"), grads_seq)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_all_finite_finds_every_position(dtype, threads):
    n = 3 * 2**18 + 5              # split over threads (2**18 elements a thread at least)
    with limit_threads(threads):
        x = np.ones(n, dtype)
        assert _optim.all_finite_memview(x)
        for i in (0, 17, n // 2, n - 1):
            for bad in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[i] = bad
                assert not _optim.all_finite_memview(y), (i, bad)
        big = np.full(n, np.finfo(dtype).max, dtype)
        assert _optim.all_finite_memview(big)      # finite, even if a sum would overflow
        assert _optim.all_finite_memview(x[:0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_rows", [1, 1000, 2**22 // 64 + 3])   # the last one is split
def test_input_check_finds_every_position(dtype, n_rows):
    """array_is_finite (the entry of the input checks) runs on one thread below 2**22
    elements and splits above: both find a bad value anywhere in a 2-D array."""
    x = np.ones((n_rows, 64), dtype)
    with limit_threads(2):
        assert _optim.array_is_finite(x)
        for i in {0, x.size // 2, x.size - 1}:
            for bad in (np.nan, np.inf, -np.inf):
                x.flat[i] = bad
                assert not _optim.array_is_finite(x), (i, bad)
                x.flat[i] = 1
    with pytest.raises(ValueError, match="C-contiguous"):
        _optim.array_is_finite(np.ones((4, 4), dtype)[:, ::2])


def test_sgd_first_step_sets_buffer_to_grad():
    model = Arena(np.zeros(3))
    model.grads[...] = [1.0, -2.0, 3.0]
    opt = SGD(lr=0.5, momentum=0.9, dampening=0.5)
    opt.step(model)
    np.testing.assert_array_equal(opt.state["momentum_buffer"], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(model.params, [-0.5, 1.0, -1.5])


def test_adam_first_step_moves_each_param_by_lr():
    model = Arena(np.zeros(4))
    model.grads[...] = [1e-3, -5.0, 2.0, -0.1]
    Adam(lr=0.01, eps=0.0).step(model)
    np.testing.assert_allclose(model.params, [-0.01, 0.01, -0.01, 0.01], rtol=1e-12)


# --- convergence on a convex quadratic, every optimizer from one table ----------------------

CONVERGENCE = [
    (SGD, dict(lr=0.1), 300),
    (SGD, dict(lr=0.05, momentum=0.9), 300),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True), 300),
    (Adagrad, dict(lr=0.5), 300),
    (RMSprop, dict(lr=0.01), 1000),             # constant lr: settles within ~1% of x*
    (RMSprop, dict(lr=0.005, centered=True, momentum=0.5), 1000),
    (Adadelta, dict(lr=0.3), 3000),             # lr = 1 oscillates: the Hessian's top is 5
    (Adam, dict(lr=0.05), 1000),
    (Adam, dict(lr=0.05, amsgrad=True), 1000),
    (AdamW, dict(lr=0.05, weight_decay=0.0), 1000),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls,hyper,steps", CONVERGENCE,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CONVERGENCE)])
def test_converges_on_convex_quadratic(cls, hyper, steps, dtype):
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    A = Q @ np.diag(np.linspace(1.0, 5.0, 6)) @ Q.T        # SPD, condition number 5
    b = rng.normal(size=6)
    x_star = np.linalg.solve(A, b)
    model, opt = Arena(np.zeros(6, dtype)), cls(**hyper)
    for _ in range(steps):
        model.grads[...] = A @ model.params - b             # ∇ ½xᵀAx − bᵀx
        opt.step(model)
    assert np.linalg.norm(model.params - x_star) < 0.01 * np.linalg.norm(x_star)


# --- state dicts ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(cls, hyper, rng):
    grads_seq = [rng.normal(size=9) for _ in range(10)]
    model = Arena(rng.normal(size=9))
    opt = cls(**hyper)
    run(opt, model, grads_seq[:5])
    sd, p_mid = opt.state_dict(), model.params.copy()
    run(opt, model, grads_seq[5:])
    assert sd["step"] == 5 and sd["hyper"] == opt.hyperparameters
    other, twin = cls(), Arena(p_mid)
    other.load_state_dict(sd)
    assert other.hyperparameters == opt.hyperparameters
    run(other, twin, grads_seq[5:])
    np.testing.assert_array_equal(twin.params, model.params)


@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_state_buffers_start_on_a_cache_line(cls, hyper, rng):
    """The fused update streams the arena and its state buffers together; like the arena
    (fastmlp._aligned) they start on a 64-byte boundary, new or loaded (at NumPy's 16)."""
    model = Arena(rng.normal(size=1000))
    opt = cls(**hyper)
    run(opt, model, [rng.normal(size=1000)])
    assert all(buf.ctypes.data % 64 == 0 for buf in opt.state.values())
    sd = opt.state_dict()
    misaligned = {k: np.empty(v.shape[0] + 2, v.dtype)[1:-1] for k, v in sd["state"].items()}
    for k, v in misaligned.items():
        v[...] = sd["state"][k]
    other = cls()
    other.load_state_dict({**sd, "state": misaligned})
    run(other, Arena(model.params.copy()), [rng.normal(size=1000)])
    assert all(buf.ctypes.data % 64 == 0 for buf in other.state.values())


def test_load_state_dict_validates(rng):
    model = Arena(rng.normal(size=5))
    opt = Adam(amsgrad=True)
    model.grads[...] = 1.0
    opt.step(model)
    good = opt.state_dict()

    def bad(**changes):
        with pytest.raises(ValueError):
            Adam(amsgrad=True).load_state_dict({**good, **changes})
    bad(type="SGD")
    bad(step=-1)
    bad(hyper={**good["hyper"], "betas": (1.5, 0.9)})
    bad(hyper={**good["hyper"], "momentum": 0.9})
    bad(state={k: v for k, v in good["state"].items() if k != "max_exp_avg_sq"})
    bad(state={**good["state"], "exp_avg": np.zeros(4)})
    bad(state={**good["state"], "exp_avg": np.zeros((5, 1))})
    bad(state={**good["state"], "exp_avg": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match="missing keys"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "step"})
    with pytest.raises(ValueError, match="does not match the bound arena"):
        opt.load_state_dict({**good, "state": {k: np.zeros(6) for k in good["state"]}})
    fresh = Adam(amsgrad=True)
    fresh.load_state_dict(good)
    with pytest.raises(ValueError, match="does not match the model"):
        fresh.step(Arena(np.zeros(6)))


def test_state_dict_arrays_are_copies():
    model, opt = Arena(np.ones(3)), SGD(momentum=0.9)
    model.grads[...] = 1.0
    opt.step(model)
    sd = opt.state_dict()
    opt.step(model)
    np.testing.assert_array_equal(sd["state"]["momentum_buffer"], 1.0)


def test_pickled_optimizer_continues_identically():
    import pickle
    model, opt = Arena(np.ones(3)), RMSprop(momentum=0.9, centered=True)
    model.grads[...] = [0.1, -0.2, 0.3]
    opt.step(model)
    twin, copy = Arena(model.params.copy()), pickle.loads(pickle.dumps(opt))
    twin.grads[...] = model.grads
    opt.step(model)
    copy.step(twin)
    np.testing.assert_array_equal(twin.params, model.params)


# --- binding, hyperparameters, validation -----------------------------------------------------

def test_binding_rules():
    a, b = Arena(np.zeros(4)), Arena(np.zeros(4))
    opt = Adam()
    opt.step(a)
    with pytest.raises(ValueError, match="another model"):
        opt.step(b)
    a.params, a.grads = np.zeros(5), np.zeros(5)
    with pytest.raises(ValueError, match="arena changed"):
        opt.step(a)
    a.params, a.grads = np.zeros(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="arena changed"):
        opt.step(a)
    opt.reset()
    opt.step(b)
    assert opt.step_count == 1 and opt.state["exp_avg"].shape == (4,)


@pytest.mark.parametrize("params,grads", [
    (np.zeros(4), np.zeros(5)), (np.zeros(4), np.zeros(4, np.float32)),
    (np.zeros((2, 2)), np.zeros((2, 2))), (np.zeros(8)[::2], np.zeros(4)),
    (np.zeros(4, np.int64), np.zeros(4, np.int64))])
def test_model_arrays_are_checked(params, grads):
    model = Arena(np.zeros(1))
    model.params, model.grads = params, grads
    with pytest.raises(ValueError):
        SGD().step(model)


def test_lr_is_settable_and_other_hyperparameters_are_fixed():
    model, opt = Arena(np.ones(2)), SGD(lr=0.1)
    opt.lr = 0.0
    model.grads[...] = 1.0
    opt.step(model)
    np.testing.assert_array_equal(model.params, 1.0)
    with pytest.raises(ValueError, match="Invalid learning rate: -1.0"):
        opt.lr = -1.0
    with pytest.raises(AttributeError, match="fixed"):
        opt.momentum = 0.5
    assert repr(opt) == ("SGD(lr=0.0, momentum=0.0, dampening=0.0, weight_decay=0.0, "
                         "nesterov=False)")


@pytest.mark.parametrize("make,match", [
    (lambda: SGD(lr=-1.0), r"Invalid learning rate: -1.0"),
    (lambda: Adam(lr=float("nan")), r"Invalid learning rate: nan"),
    (lambda: SGD(momentum=-0.1), r"Invalid momentum value: -0.1"),
    (lambda: SGD(weight_decay=-1), r"Invalid weight_decay value: -1.0"),
    (lambda: SGD(nesterov=True), r"Nesterov momentum requires"),
    (lambda: SGD(momentum=0.9, dampening=0.1, nesterov=True), r"Nesterov momentum requires"),
    (lambda: Adam(betas=(1.2, 0.9)), r"Invalid beta parameter at index 0: 1.2"),
    (lambda: AdamW(betas=(0.9, -0.1)), r"Invalid beta parameter at index 1: -0.1"),
    (lambda: Adam(betas=(0.9,)), r"betas must be a pair"),
    (lambda: Adam(eps=-1e-8), r"Invalid epsilon value: -1e-08"),
    (lambda: AdamW(weight_decay=-0.01), r"Invalid weight_decay value: -0.01"),
    (lambda: Adam(amsgrad="yes"), r"amsgrad must be True or False"),
    (lambda: RMSprop(alpha=-0.5), r"Invalid alpha value: -0.5"),
    (lambda: RMSprop(momentum=-1), r"Invalid momentum value: -1.0"),
    (lambda: RMSprop(eps=-1), r"Invalid epsilon value: -1.0"),
    (lambda: Adagrad(lr_decay=-1), r"Invalid lr_decay value: -1.0"),
    (lambda: Adagrad(initial_accumulator_value=-1), r"Invalid initial_accumulator_value"),
    (lambda: Adadelta(rho=1.5), r"Invalid rho value: 1.5"),
    (lambda: Adadelta(lr=math.inf), r"Invalid learning rate: inf"),
])
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_get_optimizer():
    assert type(get_optimizer("ADAM", lr=0.1)) is Adam
    assert get_optimizer("adamw").weight_decay == 0.01
    for name, cls in [("sgd", SGD), ("RMSprop", RMSprop), ("adagrad", Adagrad),
                      ("Adadelta", Adadelta)]:
        assert type(get_optimizer(name)) is cls
    opt = SGD()
    assert get_optimizer(opt) is opt
    assert get_optimizer(Adam, lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="valid names: sgd, adam, adamw"):
        get_optimizer("nadam")
    with pytest.raises(ValueError):
        get_optimizer(opt, lr=0.1)
    with pytest.raises(TypeError):
        get_optimizer(3)
    assert isinstance(opt, Optimizer)


def test_kernel_wrappers_check_lengths_and_step():
    p, g = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="exp_avg has 2 elements"):
        _optim.adam_step_memview(p, g, np.zeros(2), np.zeros(3), None, 1, lr=0.1)
    with pytest.raises(ValueError, match="step must be >= 1"):
        _optim.adam_step_memview(p, g, np.zeros(3), np.zeros(3), None, 0, lr=0.1)
    _optim.sgd_step_memview(np.zeros(0), np.zeros(0), None, 1, lr=0.1)   # empty arena: no-op


@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_fused_binding_drives_the_same_kernel(cls, hyper, rng):
    """The fused trainer's contract: (family, kernel kwargs, states, t), t the optimizer's
    own step count, which the loop advances in place."""
    fused, plain = Arena(rng.normal(size=6)), Arena(rng.normal(size=6))
    plain.params[...] = fused.params
    opt_f, opt_p = cls(**hyper), cls(**hyper)
    for _ in range(3):
        fused.grads[...] = plain.grads[...] = rng.normal(size=6)
        family, kwargs, states, t = opt_f._fused_binding(fused)
        assert all(s is None or s is opt_f.state[k] for s, k in zip(states, opt_f._slots))
        getattr(CoreOps, opt_f.kernel.op)(fused.params, fused.grads, *states, t[0] + 1,
                                          **kwargs)
        t[0] += 1
        opt_p.step(plain)
    np.testing.assert_array_equal(fused.params, plain.params)
    assert opt_f.step_count == 3 and isinstance(family, int)


# --- clipping ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 5, 1003])
def test_norm_kernels_match_numpy(n, dtype, rng):
    x = rng.normal(size=n).astype(dtype)
    ss = np.dot(x.astype(np.float64), x.astype(np.float64))
    assert abs(_optim.sq_norm_memview(x) - ss) <= RTOL[dtype] * ss
    y = x.copy()
    _optim.scale_memview(y, 0.3)
    assert rel_err(y, x * dtype(0.3)) < RTOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_numpy(max_norm, norm_type, dtype, rng):
    model = Arena(np.zeros(50, dtype))
    g = rng.normal(size=50).astype(dtype)
    model.grads[...] = g
    total = clip_grad_norm(model, max_norm, norm_type)
    expect = np.linalg.norm(g.astype(np.float64), ord=norm_type)
    assert abs(total - expect) <= 1e-6 * expect
    coef = max_norm / (expect + 1e-6)
    assert rel_err(model.grads, g * min(coef, 1.0)) < RTOL[dtype] * 10
    if coef < 1:
        assert abs(np.linalg.norm(model.grads.astype(np.float64), ord=norm_type)
                   - max_norm) < 1e-5 * max_norm


def test_clip_grad_norm_edge_cases():
    model = Arena(np.zeros(3))
    model.grads[...] = [np.inf, 1.0, 0.0]
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm(model, 1.0, error_if_nonfinite=True)
    for bad in [dict(max_norm=-1.0), dict(max_norm=1.0, norm_type=0.0)]:
        with pytest.raises(ValueError):
            clip_grad_norm(model, **bad)
    empty = Arena(np.zeros(0))
    assert clip_grad_norm(empty, 1.0) == 0.0


# --- torch.optim, when importable ------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-6), (np.float32, 1e-5)])
@pytest.mark.parametrize("cls,hyper", CASES, ids=IDS)
def test_trajectory_matches_torch(cls, hyper, dtype, tol, rng):
    torch = pytest.importorskip("torch", reason="torch is not installed: the comparison with "
                                "torch.optim is skipped (the written-out rules still run)")
    p0 = rng.normal(size=23).astype(dtype)
    grads_seq = [rng.normal(size=23).astype(dtype) for _ in range(10)]
    model = Arena(p0.copy())
    opt = cls(**hyper)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = getattr(torch.optim, cls.__name__)([tp], foreach=False, **hyper)
    for g in grads_seq:
        model.grads[...] = g
        opt.step(model)
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        assert rel_err(model.params, tp.detach().numpy()) < tol


# --- optimizers without a kernel -----------------------------------------------------------

class _PlainSGD(Optimizer):
    """A user optimizer written in NumPy: no kernel, its own ``_update``."""

    def __init__(self, lr=0.1):
        super().__init__(lr)

    @classmethod
    def _validate(cls):
        return {}

    def _update(self, model, params, grads):
        params -= self.lr * grads


class _NoRule(_PlainSGD):
    _update = Optimizer._update


def _mlp_and_data(seed=0):
    import fastmlp as fm
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    return fm.Sequential([fm.Dense(3, 5, activation="tanh"), fm.Dense(5, 1)], seed=1), X, y


def test_optimizer_without_kernel_trains_through_the_python_step():
    """A fused model with a kernel-less optimizer falls back to the Python step (never the
    fused loop, which would need a family code) and matches SGD's kernel."""
    import fastmlp as fm
    assert not hasattr(_PlainSGD(), "_fused_binding") and hasattr(SGD(), "_fused_binding")
    params = []
    for opt in (_PlainSGD(lr=0.1), SGD(lr=0.1)):
        model, X, y = _mlp_and_data()
        assert model.is_fused
        fm.Trainer(model, fm.MSELoss(), opt, seed=0).fit(X, y, epochs=2, batch_size=8,
                                                          verbose=0)
        params.append(model.params.copy())
    np.testing.assert_allclose(params[0], params[1], rtol=1e-12, atol=1e-14)


def test_optimizer_without_kernel_or_update_refuses_clearly():
    import fastmlp as fm
    model, X, y = _mlp_and_data()
    with pytest.raises(TypeError, match="_NoRule declares no kernel"):
        _NoRule().step(model)
    with pytest.raises(TypeError, match="_NoRule declares no kernel"):
        fm.Trainer(model, fm.MSELoss(), _NoRule()).fit(X, y, epochs=1, verbose=0)


def test_a_subclass_overriding_the_step_of_a_kernel_optimizer_trains_with_its_own_step():
    """Its ``_update`` runs (the fused loop would silently run the parent's kernel);
    declaring ``kernel`` again opts back into the fused loop."""
    import fastmlp as fm

    class Counted(Adam):
        calls = 0

        def _update(self, model, params, grads):
            type(self).calls += 1
            super()._update(model, params, grads)

    class Fused(Counted):
        kernel = Adam.kernel

    assert not hasattr(Counted(), "_fused_binding") and hasattr(Fused(), "_fused_binding")
    assert all(cls._runs_kernel() for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta))
    params = []
    for opt in (Counted(lr=0.01), Adam(lr=0.01)):
        model, X, y = _mlp_and_data()
        fm.Trainer(model, fm.MSELoss(), opt, seed=0).fit(X, y, epochs=2, batch_size=8,
                                                          verbose=0)
        params.append(model.params.copy())
    assert Counted.calls == 10                   # 2 epochs of 5 batches
    np.testing.assert_allclose(params[0], params[1], rtol=1e-12, atol=1e-14)
