"""ImageAugment: the core's resampling vs the NumPy twin, identity cases, the adjoint,
reproducibility across thread counts, evaluation mode, validation."""
import numpy as np
import pytest

import fastmlp as fm
from helpers import RTOL, fused_and_python_params, python_identity, rel_err


def _model(aug, n_in, dtype="float64", python=False, seed=0):
    layers = [aug, fm.Dense(n_in, 3)] + ([python_identity()] if python else [])
    return fm.Sequential(layers, dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(6, 5), (4, 7, 3)])
def test_core_matches_reference(rng, dtype, shape):
    aug = fm.ImageAugment(shape, max_shift=1.5, max_rotation=25, max_scale=0.2, flip=True)
    n = int(np.prod(shape))
    X = rng.normal(size=(9, n)).astype(dtype)
    model = _model(aug, n, dtype)
    twin = _model(fm.ImageAugment(shape, max_shift=1.5, max_rotation=25, max_scale=0.2,
                                  flip=True), n, dtype)
    twin.backend = "numpy"
    twin.set_weights(model.get_weights())
    assert not np.allclose(model.forward(X), model.forward(X, training=True))
    twin.rng_step = model.rng_step = 4
    a = model.forward(X, training=True)
    b = twin.forward(X, training=True)
    assert rel_err(a, b) < 10 * RTOL[np.dtype(dtype).type]
    g = rng.normal(size=a.shape).astype(dtype)
    model.zero_grad()
    twin.zero_grad()
    da, db = model.backward(g), twin.backward(g)
    assert rel_err(da, db) < 10 * RTOL[np.dtype(dtype).type]


def test_identity_transforms_and_flip():
    X = np.arange(12.0).reshape(1, 12)
    same = fm.ImageAugment((3, 4))
    np.testing.assert_array_equal(same.forward(X, training=True), X)
    flip = fm.ImageAugment((3, 4), flip=True)
    flip._draw_key = lambda: (0, 0, 0)
    m = flip.maps(1)
    out = flip.forward(X, training=True)
    img = X.reshape(3, 4)
    expect = img[:, ::-1] if m[0, 1] < 0 else img
    np.testing.assert_allclose(out.reshape(3, 4), expect, atol=1e-12)


def test_shift_by_one_pixel_moves_the_image():
    X = np.zeros((1, 25))
    X[0, 12] = 1.0                                   # centre pixel of a 5x5 image
    aug = fm.ImageAugment((5, 5), max_shift=1.0)
    aug._draw_key = lambda: (3, 0, 1)
    m = aug.maps(1)[0]
    out = aug.forward(X, training=True).reshape(5, 5)
    tx, ty = -m[0], -m[3]                            # scale 1, no rotation: sx = j - tx
    assert 0 < max(abs(tx), abs(ty)) <= 1
    i, j = np.mgrid[0:5, 0:5]
    assert out.sum() == pytest.approx(1.0, rel=1e-12)
    assert (out * i).sum() == pytest.approx(2 + ty, rel=1e-12)   # the centre of mass moved
    assert (out * j).sum() == pytest.approx(2 + tx, rel=1e-12)


def test_adjoint_is_the_transpose(rng):
    shape = (5, 6, 2)
    aug = fm.ImageAugment(shape, max_shift=2, max_rotation=30, max_scale=0.3, flip=True)
    aug._draw_key = lambda: (11, 2, 7)
    X, G = rng.normal(size=(3, 60)), rng.normal(size=(3, 60))
    A = aug.forward(X, training=True)
    dX = aug.backward(G)
    assert np.sum(A * G) == pytest.approx(np.sum(X * dX), rel=1e-12)


def test_seed_reproduces_whatever_the_thread_count(rng):
    X = rng.normal(size=(64, 64))
    y = rng.integers(0, 3, 64)
    params = []
    for threads in (1, 2):
        with fm.limit_threads(threads):
            model = _model(fm.ImageAugment((8, 8), max_shift=1, max_rotation=10), 64, seed=4)
            fm.Trainer(model, fm.CrossEntropyLoss(), fm.Adam(lr=1e-2), seed=1).fit(
                X, y, epochs=2, batch_size=16, verbose=0)
            params.append(model.params.copy())
    np.testing.assert_array_equal(params[0], params[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_and_python_training_agree_and_eval_is_identity(rng, dtype):
    X = rng.normal(size=(48, 36))
    y = rng.integers(0, 3, 48)
    def make(python):
        aug = fm.ImageAugment((6, 6), max_shift=1, max_rotation=15, max_scale=0.1)
        return fm.Trainer(_model(aug, 36, dtype, python, seed=2), fm.CrossEntropyLoss(),
                          fm.SGD(lr=0.05), seed=3)
    out = fused_and_python_params(make, X, y, epochs=2, batch_size=12)
    model = make(False).model
    model.set_weights(np.concatenate([out[0], model.buffers]))
    assert rel_err(out[1], out[0]) <= 100 * RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(model.predict(X), X.astype(dtype) @ model[1].W + model[1].b,
                               rtol=1e-5)


def test_validation():
    with pytest.raises(ValueError, match="shape"):
        fm.ImageAugment((8,))
    with pytest.raises(ValueError, match="max_scale"):
        fm.ImageAugment((8, 8), max_scale=1.0)
    with pytest.raises(ValueError, match="max_rotation"):
        fm.ImageAugment((8, 8), max_rotation=200)
    with pytest.raises(TypeError, match="flip"):
        fm.ImageAugment((8, 8), flip="yes")
    with pytest.raises(ValueError, match="64 input"):
        fm.Sequential([fm.Dense(10, 63), fm.ImageAugment((8, 8))])
    model = _model(fm.ImageAugment((2, 2), max_shift=1.0), 4)
    with pytest.raises(ValueError, match="deterministic"):
        fm.Trainer(model, fm.CrossEntropyLoss(), fm.LBFGS()).fit(np.ones((4, 4)), [0, 1, 2, 0],
                                                                 verbose=0)
    assert repr(fm.ImageAugment((8, 8), max_shift=1.0)) == \
        "ImageAugment(shape=(8, 8), max_shift=1.0)"
