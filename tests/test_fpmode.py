"""The floating-point mode of the fused training loop (``fastmlp.fpmode``,
``include/fastmlp/fpmode.h``): subnormals flushed to zero while training steps run and
only then, on the calling thread and on the core's worker threads; IEEE subnormals kept
with ``set_flush_denormal(False)``, exactly as the NumPy reference computes them."""
import numpy as np
import pytest

import fastmlp as fm

TINY32 = np.finfo(np.float32).tiny


@pytest.fixture
def restore_flush():
    before = fm.get_flush_denormal()
    yield
    fm.set_flush_denormal(before)


def _subnormal_count(a):
    a = np.asarray(a)
    return int(((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)).sum())


def _tiny_gradient_fit(backend="core", steps=3):
    """A float32 fit whose weight gradients are ~1e-19: Adam's second moments
    (1 - beta2) g^2 ~ 1e-41 fall in the subnormal range from the first step."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((64, 8)) * 1e-19).astype(np.float32)
    y = rng.standard_normal((64, 2)).astype(np.float32)
    model = fm.Sequential([fm.Dense(8, 32, activation="tanh"), fm.Dense(32, 2)], seed=0,
                          backend=backend)
    trainer = fm.Trainer(model, "mse", fm.Adam(1e-3))
    trainer.fit(X, y, epochs=steps, batch_size=64, verbose=0, shuffle=False)
    return model, trainer.optimizer


def test_default_flushes_and_is_supported_here():
    assert fm.get_flush_denormal() is True
    assert fm.set_flush_denormal(True) is True       # x86-64: FTZ and DAZ exist


def test_flushed_training_leaves_no_subnormal_moments(restore_flush):
    fm.set_flush_denormal(True)
    _, opt = _tiny_gradient_fit()
    v = opt.state["exp_avg_sq"]
    assert _subnormal_count(v) == 0
    assert (v[:8 * 32] == 0).all()        # the first layer's W: g^2 flushed to zero


def test_ieee_training_keeps_subnormals_and_equals_the_reference(restore_flush):
    fm.set_flush_denormal(False)
    core, core_opt = _tiny_gradient_fit("core")
    ref, ref_opt = _tiny_gradient_fit("numpy")
    v, v_ref = core_opt.state["exp_avg_sq"], ref_opt.state["exp_avg_sq"]
    assert _subnormal_count(v) > 100 and _subnormal_count(v_ref) > 100
    # within the reference tolerance, subnormals included (a few of their 1.4e-45 steps)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5, atol=3e-44)
    np.testing.assert_allclose(core.params, ref.params, rtol=1e-5, atol=1e-7)


def test_the_mode_ends_with_the_steps(restore_flush):
    fm.set_flush_denormal(True)
    _tiny_gradient_fit()
    x = np.array([TINY32 / 4], dtype=np.float32)
    assert x[0] != 0 and (x * np.float32(1))[0] == x[0]   # this thread: IEEE again
    # the workers that ran flushed chunks take this thread's (IEEE) mode for the next job:
    # a product split over two threads keeps its subnormal results, as NumPy does
    rng = np.random.default_rng(1)
    model = fm.Sequential([fm.Dense(512, 512)], seed=0)
    model.params[...] = (rng.standard_normal(model.params.shape) * 1e-20).astype(np.float32)
    model.layers[0].b[...] = 0
    X = (rng.standard_normal((256, 512)) * 1e-20).astype(np.float32)
    with fm.limit_threads(2):
        out = model.predict(X)
    W, b = model.layers[0].W, model.layers[0].b
    expected = (X.astype(np.float64) @ W + b).astype(np.float32)
    assert _subnormal_count(out) > 1000
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-42)  # subnormals: a grid of 1.4e-45


def test_bad_mode_is_refused():
    with pytest.raises(TypeError, match="mode must be True or False"):
        fm.set_flush_denormal(1)


def test_show_config_names_the_mode(capsys):
    fm.show_config()
    assert "subnormals flushed to zero" in capsys.readouterr().out
