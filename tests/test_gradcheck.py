"""gradient_check on stochastic and stateful models: masks held fixed, every buffer and the
RNG counter left as they were (issue 16, item 5)."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import WeightedSumLoss


def _noisy(backend):
    return fm.Sequential([fm.Dense(4, 6, activation="tanh"), fm.BatchNorm(6), fm.Dropout(0.3),
                          fm.GaussianNoise(0.5), fm.Dense(6, 3)],
                         dtype="float64", seed=1, backend=backend)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_masks_held_fixed_and_state_left_alone(backend, rng):
    model = _noisy(backend)
    X = rng.normal(size=(5, 4))
    model.forward(X, training=True)                # running statistics away from their init
    params, buffers, step = model.params.copy(), model.buffers.copy(), model.rng_step
    assert fm.gradient_check(model, WeightedSumLoss(3), X, None) < 1e-6
    np.testing.assert_array_equal(model.params, params)
    for b in model.buffer_info:                    # but the core's scratch of the last forward
        if not b["name"].startswith("_"):
            sl = slice(b["offset"], b["offset"] + int(np.prod(b["shape"])))
            np.testing.assert_array_equal(model.buffers[sl], buffers[sl])
    assert model.rng_step == step


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_gradients_left_are_those_of_the_fixed_masks(backend, rng):
    model = _noisy(backend)
    X = rng.normal(size=(5, 4))
    loss = WeightedSumLoss(3)
    fm.gradient_check(model, loss, X, None)
    grads = model.grads.copy()
    step = model.rng_step
    model.rng_step = step                          # the same masks as the check's
    out = model.forward(X, training=True)
    model.zero_grad()
    model.backward(loss.grad(out))
    np.testing.assert_allclose(model.grads, grads, rtol=1e-12, atol=1e-15)
