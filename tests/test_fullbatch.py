"""Full-batch solvers: the objective against a direct full-batch pass, least squares against
numpy's lstsq, Newton's one-step solve of a quadratic, monotone gradient descent, MLP
convergence from one table, stopping, size limits, validation and state dicts."""
import math
import pathlib
import re

import numpy as np
import pytest

import fastmlp as fm
from fastmlp.optim import (BFGS, LBFGS, OPTIMIZERS, FullBatchSolver, GradientDescent, Newton,
                           get_optimizer, make_objective)
from fastmlp.optim.newton import hessian
from helpers import rel_err


def linear_problem(rng, n=200, d=5, noise=0.1):
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.5 + noise * rng.normal(size=n)
    return X, y


def linear_model(d, dtype="float64", seed=0):
    return fm.Sequential([fm.Dense(d, 1)], dtype=dtype, seed=seed)


def lstsq(X, y):
    """θ = [w; b] minimizing the mean squared error, and that minimum."""
    A = np.c_[X, np.ones(X.shape[0])]
    theta = np.linalg.lstsq(A, y, rcond=None)[0]
    return theta, float(np.mean((A @ theta - y) ** 2))


def xor_problem(rng, n=200):
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def mlp(dtype="float64", seed=1, n_out=2):
    return fm.Sequential([fm.Dense(2, 8, activation="tanh"), fm.Dense(8, n_out)],
                         dtype=dtype, seed=seed)


# --- the objective ------------------------------------------------------------------------------

def test_objective_gradient_is_the_least_squares_formula(rng):
    X, y = linear_problem(rng)
    model = linear_model(X.shape[1])
    model.params[...] = rng.normal(size=model.n_params)
    value = make_objective(model, fm.MSELoss(), X, y, chunk=37)()
    A, theta = np.c_[X, np.ones(X.shape[0])], model.params.copy()    # arena = [W; b]
    n = X.shape[0]
    assert value == pytest.approx(np.mean((A @ theta - y) ** 2), rel=1e-13)
    expected = (2 * A.T @ A @ theta - 2 * A.T @ y) / n
    assert rel_err(model.grads, expected) < 1e-12


class Penalty:
    """½ c ‖θ‖²: the regularizer protocol."""

    def __init__(self, c):
        self.c = c

    def __call__(self, model):
        return 0.5 * self.c * float(model.params @ model.params)

    def add_grad(self, model):
        model.grads += self.c * model.params


@pytest.mark.parametrize("loss,make_y", [
    (fm.MSELoss(), lambda rng, n: rng.normal(size=(n, 3))),
    (fm.CrossEntropyLoss(), lambda rng, n: rng.integers(0, 3, size=n)),
])
@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_objective_matches_a_direct_full_batch_pass(loss, make_y, chunk, rng):
    X = rng.normal(size=(50, 4))
    y, w = make_y(rng, 50), rng.uniform(0, 2, size=50)
    model = fm.Sequential([fm.Dense(4, 6, activation="tanh"), fm.Dense(6, 3)],
                          dtype="float64", seed=3)
    reg = Penalty(0.01)
    value = make_objective(model, loss, X, y, weights=w, regularizers=[reg], chunk=chunk)()
    grads = model.grads.copy()
    model.zero_grad()
    ref, g = loss.value_and_grad(model.forward(X, training=True), y, sample_weight=w)
    model.backward(g)
    reg.add_grad(model)
    assert value == pytest.approx(ref + reg(model), rel=1e-13)
    assert rel_err(grads, model.grads) < 1e-12


def test_objective_validates_its_data(rng):
    model, loss = linear_model(2), fm.MSELoss()
    X = rng.normal(size=(5, 2))
    with pytest.raises(ValueError, match="targets has 4 rows but X has 5"):
        make_objective(model, loss, X, np.zeros(4))
    with pytest.raises(ValueError, match="weights must have shape"):
        make_objective(model, loss, X, np.zeros(5), weights=np.ones(3))
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        make_objective(model, loss, X, np.zeros(5), weights=-np.ones(5))
    with pytest.raises(ValueError, match="Invalid chunk value: 0"):
        make_objective(model, loss, X, np.zeros(5), chunk=0)
    with pytest.raises(ValueError, match="no rows"):
        make_objective(model, loss, X[:0], np.zeros(0))


# --- least squares: the minimum numpy finds ---------------------------------------------------

@pytest.mark.parametrize("solver", [LBFGS(), BFGS(), Newton()], ids=repr)
def test_least_squares_reaches_the_lstsq_minimum(solver, rng):
    X, y = linear_problem(rng)
    model = linear_model(X.shape[1])
    objective = make_objective(model, fm.MSELoss(), X, y, chunk=64)
    result = solver.run(model, objective, 200, None)
    theta, best = lstsq(X, y)
    assert result["converged"], result
    assert result["loss"] == pytest.approx(best, rel=1e-9)
    assert objective() == pytest.approx(result["loss"], rel=1e-12)   # model at the end point
    np.testing.assert_allclose(model.params, theta, atol=1e-5)


def test_newton_solves_linear_regression_in_one_iteration(rng):
    X, y = linear_problem(rng, noise=1.0)
    model = linear_model(X.shape[1])
    seen = []
    result = Newton().run(model, make_objective(model, fm.MSELoss(), X, y), 10,
                          lambda it, loss: seen.append(it) and False)
    theta, best = lstsq(X, y)
    assert (result["n_iter"], result["converged"], seen) == (1, True, [0])
    np.testing.assert_allclose(model.params, theta, rtol=1e-8)   # H by differences
    assert result["loss"] == pytest.approx(best, rel=1e-13)


def test_hessian_of_a_quadratic_is_exact(rng):
    X, y = linear_problem(rng)
    model = linear_model(X.shape[1])
    model.params[...] = rng.normal(size=model.n_params) * 10
    before = model.params.copy()
    H = hessian(model, make_objective(model, fm.MSELoss(), X, y))
    A = np.c_[X, np.ones(X.shape[0])]
    assert rel_err(H, 2 * A.T @ A / X.shape[0]) < 1e-8
    np.testing.assert_array_equal(model.params, before)


# --- gradient descent ---------------------------------------------------------------------------

def test_gradient_descent_decreases_the_loss_monotonically(rng):
    X, y = linear_problem(rng)
    model = linear_model(X.shape[1])
    losses = []
    result = GradientDescent(lr=0.05).run(model, make_objective(model, fm.MSELoss(), X, y),
                                          50, lambda it, loss: losses.append(loss) and False)
    assert result["n_iter"] == len(losses) == 50
    assert np.all(np.diff(losses) < 0)
    assert result["loss"] == losses[-1]


def test_gradient_descent_step_is_the_rule(rng):
    X, y = linear_problem(rng)
    model = linear_model(X.shape[1])
    objective = make_objective(model, fm.MSELoss(), X, y)
    objective()
    expected = model.params - 0.05 * model.grads
    GradientDescent(lr=0.05).run(model, objective, 1)
    np.testing.assert_allclose(model.params, expected, rtol=1e-15)


def test_gradient_descent_reads_lr_every_iteration(rng):
    X, y = linear_problem(rng)
    one = linear_model(X.shape[1])
    GradientDescent(lr=0.05).run(one, make_objective(one, fm.MSELoss(), X, y), 1)
    model = linear_model(X.shape[1])
    gd = GradientDescent(lr=0.05)

    def freeze(it, loss):           # as a schedule or ReduceLROnPlateau would
        gd.lr = 0.0
        return False
    gd.run(model, make_objective(model, fm.MSELoss(), X, y), 5, freeze)
    np.testing.assert_array_equal(model.params, one.params)
    assert gd.step_count == 5


def test_gradient_descent_undoes_a_step_to_a_nonfinite_loss():
    model = fm.Sequential([fm.Dense(1, 1)], dtype="float32", seed=0)
    X, y = np.ones((4, 1)), np.full(4, 1e18)       # float32 overflows within two steps
    objective = make_objective(model, fm.MSELoss(), X, y)
    seen = [model.params.copy()]
    result = GradientDescent(lr=1e3).run(model, objective, 10,
                                         lambda it, loss: seen.append(model.params.copy()))
    assert not result["converged"] and "the loss became nan" in result["message"]
    assert result["n_iter"] == len(seen) - 1 < 10
    np.testing.assert_array_equal(model.params, seen[-1])     # the last finite iterate
    assert np.isfinite(model.params).all() and math.isfinite(result["loss"])


# --- every solver on a small MLP ----------------------------------------------------------------

@pytest.mark.parametrize("solver,iters,factor", [
    (GradientDescent(lr=0.5), 300, 2.0),
    (LBFGS(), 100, 10.0),
    (BFGS(), 100, 10.0),
    (Newton(), 50, 10.0),
], ids=lambda v: repr(v) if isinstance(v, FullBatchSolver) else str(v))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_solvers_fit_an_xor_mlp(solver, iters, factor, dtype, rng):
    X, y = xor_problem(rng)
    model = mlp(dtype)
    objective = make_objective(model, fm.CrossEntropyLoss(), X, y)
    start = objective()
    result = solver.run(model, objective, iters)
    assert result["loss"] < start / factor, result
    assert result["loss"] == pytest.approx(objective(), rel=1e-6)
    if not isinstance(solver, GradientDescent):     # XOR learned
        assert (model.forward(X).argmax(axis=1) == y).mean() >= 0.95


@pytest.mark.parametrize("solver", [LBFGS(), BFGS(), Newton()], ids=repr)
def test_smooth_regression_mlp(solver, rng):
    X = rng.uniform(-2, 2, size=(150, 2))
    y = np.sin(X[:, 0]) * np.cos(X[:, 1])
    model = mlp(n_out=1)
    objective = make_objective(model, fm.MSELoss(), X, y)
    start = objective()
    assert solver.run(model, objective, 60)["loss"] < start / 20


# --- stopping and the model's final point --------------------------------------------------------

@pytest.mark.parametrize("solver", [GradientDescent(lr=0.5), LBFGS(), BFGS(), Newton()],
                         ids=repr)
@pytest.mark.parametrize("stop_at", [0, 3])
def test_on_iteration_true_stops_at_the_reported_iterate(solver, stop_at, rng):
    X, y = xor_problem(rng)
    model = mlp()
    loss = fm.CrossEntropyLoss()
    seen = []

    def on_iteration(it, value):
        seen.append((it, model.params.copy(), value))
        # the model holds the iterate whose loss is reported
        assert value == pytest.approx(loss(model.forward(X), y), rel=1e-10)
        return it == stop_at
    result = solver.run(model, make_objective(model, loss, X, y), 50, on_iteration)
    assert [s[0] for s in seen] == list(range(stop_at + 1))
    assert result["n_iter"] == stop_at + 1 and not result["converged"]
    assert result["message"] == "stopped by on_iteration"
    np.testing.assert_array_equal(model.params, seen[-1][1])
    assert result["loss"] == seen[-1][2]
    assert solver.step_count >= stop_at + 1


@pytest.mark.parametrize("cls", [GradientDescent, LBFGS, BFGS, Newton])
def test_max_iter(cls, rng):
    X, y = xor_problem(rng)
    model = mlp()
    objective = make_objective(model, fm.CrossEntropyLoss(), X, y)
    start = model.params.copy()
    result = cls().run(model, objective, 0)
    assert result["n_iter"] == 0 and not result["converged"]
    np.testing.assert_array_equal(model.params, start)
    result = cls().run(model, objective, 2)
    assert result["n_iter"] == 2 and result["message"] != "stopped by on_iteration"
    with pytest.raises(ValueError, match="Invalid max_iter value: -1"):
        cls().run(model, objective, -1)


def test_converged_at_the_start_takes_no_iteration(rng):
    X, y = linear_problem(rng)
    model = linear_model(X.shape[1])
    objective = make_objective(model, fm.MSELoss(), X, y)
    model.params[...] = lstsq(X, y)[0]
    for solver in (GradientDescent(), Newton()):
        result = solver.run(model, objective, 10, lambda it, loss: pytest.fail("called"))
        assert (result["n_iter"], result["converged"]) == (0, True)


# --- size limits, validation, state -------------------------------------------------------------

@pytest.mark.parametrize("solver", [Newton(max_params=20), BFGS(max_params=20)], ids=repr)
def test_dense_solvers_refuse_big_models(solver, rng):
    X, y = xor_problem(rng)
    model = mlp()                                   # 2*8+8 + 8*2+2 = 42 parameters
    start = model.params.copy()
    with pytest.raises(ValueError, match="the model has 42 parameters, more than "
                                         "max_params=20"):
        solver.run(model, make_objective(model, fm.CrossEntropyLoss(), X, y), 5)
    np.testing.assert_array_equal(model.params, start)


@pytest.mark.parametrize("make,error,match", [
    (lambda: GradientDescent(lr=-1.0), ValueError, r"Invalid learning rate: -1.0"),
    (lambda: GradientDescent(lr=math.nan), ValueError, r"Invalid learning rate: nan"),
    (lambda: GradientDescent(tol=-1e-3), ValueError, r"Invalid tol value: -0.001"),
    (lambda: LBFGS(tol=math.inf), ValueError, r"Invalid tol value: inf"),
    (lambda: LBFGS(history_size=0), ValueError, r"Invalid history_size value: 0"),
    (lambda: LBFGS(max_fun=-5), ValueError, r"Invalid max_fun value: -5"),
    (lambda: LBFGS(history_size=2.5), TypeError, r"history_size must be an integer"),
    (lambda: BFGS(tol=-1), ValueError, r"Invalid tol value: -1.0"),
    (lambda: BFGS(max_params=0), ValueError, r"Invalid max_params value: 0"),
    (lambda: Newton(damping=0), ValueError, r"Invalid damping value: 0.0"),
    (lambda: Newton(damping=-1e-4), ValueError, r"Invalid damping value: -0.0001"),
    (lambda: Newton(max_params=True), TypeError, r"max_params must be an integer"),
    (lambda: Newton(tol="1e-9"), TypeError, r"tol must be a real number"),
])
def test_invalid_hyperparameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_assignment_is_validated_and_repr():
    gd = GradientDescent(lr=0.1)
    gd.lr = 0.5
    assert gd.lr == 0.5
    with pytest.raises(ValueError, match="Invalid learning rate: -1.0"):
        gd.lr = -1.0
    assert repr(gd) == "GradientDescent(lr=0.5, tol=1e-06)"
    assert repr(LBFGS()) == "LBFGS(tol=1e-09, history_size=10, max_fun=15000)"
    assert repr(BFGS()) == "BFGS(tol=1e-09, max_params=4000)"
    assert repr(Newton()) == "Newton(damping=0.0001, max_params=2000, tol=1e-09)"
    assert all(cls.strategy == "full_batch" for cls in (GradientDescent, LBFGS, BFGS, Newton))


def test_registry_names():
    for name, cls in [("gd", GradientDescent), ("lbfgs", LBFGS), ("bfgs", BFGS),
                      ("newton", Newton)]:
        assert OPTIMIZERS[name] is cls
        assert type(get_optimizer(name.upper())) is cls
    assert get_optimizer("lbfgs", history_size=5).history_size == 5


@pytest.mark.parametrize("solver", [GradientDescent(lr=0.2, tol=1e-7),
                                    LBFGS(tol=1e-6, history_size=4, max_fun=99),
                                    BFGS(tol=1e-7, max_params=10), Newton(damping=1e-3)],
                         ids=repr)
def test_state_dict_round_trip(solver, rng):
    X, y = xor_problem(rng)
    model = mlp()
    solver_max = getattr(solver, "max_params", None)
    if solver_max is not None and solver_max < model.n_params:
        solver.max_params = model.n_params
    solver.run(model, make_objective(model, fm.CrossEntropyLoss(), X, y), 2)
    d = solver.state_dict()
    assert d["step"] == solver.step_count == 2 and d["state"] == {}
    other = type(solver)()
    other.load_state_dict({**d, "hyper": {k: np.asarray(v) for k, v in d["hyper"].items()},
                           "step": np.asarray(d["step"])})
    assert repr(other) == repr(solver) and other.step_count == 2


def test_load_state_dict_validates():
    d = LBFGS(history_size=3).state_dict()
    target = LBFGS()
    with pytest.raises(ValueError, match="not 'LBFGS'"):
        target.load_state_dict({**d, "type": "BFGS"})
    with pytest.raises(ValueError, match="missing keys"):
        target.load_state_dict({k: v for k, v in d.items() if k != "step"})
    with pytest.raises(ValueError, match="Invalid history_size value: 0"):
        target.load_state_dict({**d, "hyper": {**d["hyper"], "history_size": 0}})
    with pytest.raises(ValueError, match="unexpected keys"):
        target.load_state_dict({**d, "hyper": {**d["hyper"], "lr": 0.1}})
    assert repr(target) == repr(LBFGS())      # unchanged


def test_trainer_full_batch_epochs_end_as_mini_batch_ones(rng):
    """One way to end an epoch: with a full-batch solver too, the History records the logs
    after the callbacks (with what they added) and a callback's stop ends the run."""
    X = rng.standard_normal((40, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]])

    class Mark(fm.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["mark"] = float(epoch)
            self.trainer.stop_training = epoch == 2

    for solver in (LBFGS(), GradientDescent(lr=0.05)):
        model = fm.Sequential([fm.Dense(3, 1)], seed=0)
        history = fm.Trainer(model, fm.MSELoss(), solver).fit(
            X, y, epochs=10, callbacks=[Mark()], verbose=0)
        assert history.history["mark"] == [0.0, 1.0, 2.0]


def test_the_trainer_picks_its_loop_from_the_strategy_not_the_class_hierarchy():
    """One protocol: every optimizer declares ``strategy``; the Trainer dispatches on it, and
    no module branches on Optimizer vs FullBatchSolver."""
    assert all(cls.strategy in ("mini_batch", "full_batch") for cls in OPTIMIZERS.values())
    assert fm.SGD.strategy == "mini_batch" and LBFGS.strategy == "full_batch"

    class Sometimes(fm.SGD):
        strategy = "sometimes"

    model = fm.Sequential(fm.Dense(2, 1), seed=0)
    with pytest.raises(ValueError, match="Sometimes.strategy must be one of"):
        fm.Trainer(model, "mse", Sometimes(lr=0.1))
    src = pathlib.Path(fm.__file__).parent
    found = [f"{path.name}:{n}" for path in src.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"isinstance\(.*FullBatchSolver|\"full_batch\", False", line)]
    assert not found, found
