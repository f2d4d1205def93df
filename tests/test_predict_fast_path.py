"""predict's fast path (``fastmlp._validation.matrix_ready``): an array the core can take
as it is skips the general conversion, and everything else still goes through it, so
the result and the errors are those of the general path."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp._validation import as_float_matrix, matrix_ready


@pytest.fixture
def model():
    return fm.Sequential([fm.Dense(5, 4, activation="relu"), fm.Dense(4, 3)], seed=0,
                         dtype="float32")


def test_ready_arrays_take_the_fast_path(rng):
    x = rng.normal(size=(7, 5)).astype(np.float32)
    assert matrix_ready(x, np.dtype(np.float32), 5)
    assert matrix_ready(x.astype(np.float64), np.dtype(np.float64), 5)


@pytest.mark.parametrize("make", [
    lambda x: x.astype(np.float64),                  # another dtype
    lambda x: x.astype(">f4"),                       # byte-swapped
    lambda x: np.asfortranarray(x),                  # not C-contiguous
    lambda x: x[:, :4],                              # wrong column count (and strided)
    lambda x: x[:0],                                 # no rows
    lambda x: x.reshape(-1),                         # 1-D
    lambda x: x.tolist(),                            # not an ndarray
    lambda x: np.where(np.arange(5) == 2, np.nan, x).astype(np.float32),   # NaN
    lambda x: np.where(np.arange(5) == 4, -np.inf, x).astype(np.float32),  # inf
    lambda x: x.astype(np.int64),                    # integers
], ids=["f64", "swapped", "fortran", "cols", "empty", "1d", "list", "nan", "inf", "int"])
def test_everything_else_goes_the_general_way(rng, model, make):
    x = make(rng.normal(size=(6, 5)).astype(np.float32))
    assert not matrix_ready(x, model.dtype, 5)
    try:
        converted = as_float_matrix(x, model.dtype, "X", 5, allow_empty=True)
    except (ValueError, TypeError) as general:
        with pytest.raises(type(general), match="X"):
            model.predict(x)
    else:
        np.testing.assert_array_equal(model.predict(x), model.predict(converted))


def test_fast_and_general_paths_agree(rng, model):
    x = rng.normal(size=(9, 5)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), model.predict(x.tolist()))
    np.testing.assert_array_equal(model.predict(x[:1]), model.predict(x)[:1])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, 2**31])
def test_batch_size_still_checked(rng, model, bad):
    x = rng.normal(size=(2, 5)).astype(np.float32)
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        model.predict(x, batch_size=bad)
