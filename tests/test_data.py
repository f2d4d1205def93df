"""Data helpers: index splits, train/validation/test split, one_hot, Standardizer."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp.data import split_indices


def ids_and_labels(n=1000, weights=(0.5, 0.3, 0.15, 0.05), seed=0):
    y = np.random.default_rng(seed).choice(len(weights), size=n, p=weights)
    return np.arange(n)[:, None].astype(float), y


# -- split_indices (validation_split) -----------------------------------------------------------
@pytest.mark.parametrize("n, fraction", [(100, 0.1), (101, 0.25), (7, 0.5), (10, 0.01)])
def test_split_indices_sizes_and_disjoint(n, fraction):
    y = np.arange(n) % 3
    for labels in (None, y):
        first, second = split_indices(n, fraction, np.random.default_rng(0), labels)
        assert len(second) == max(1, round(fraction * n)) and len(first) == n - len(second)
        assert first.dtype == second.dtype == np.int64
        np.testing.assert_array_equal(np.sort(np.concatenate([first, second])), np.arange(n))
        assert np.all(np.diff(first) > 0) and np.all(np.diff(second) > 0)


def test_split_indices_stratified_exact_total():
    y = np.repeat(np.arange(10), 20)
    _, second = split_indices(200, 0.01, np.random.default_rng(0), y)
    assert len(second) == 2                              # not one per class
    y = np.repeat([0, 1, 2], [34, 33, 33])
    _, second = split_indices(100, 0.1, np.random.default_rng(1), y)
    assert len(second) == 10 and sorted(np.bincount(y[second])) == [3, 3, 4]
    _, y = ids_and_labels()
    _, second = split_indices(1000, 0.2, np.random.default_rng(2), y)
    share = np.bincount(y[second], minlength=4) - np.bincount(y) * 0.2
    assert np.abs(share).max() < 1


def test_split_indices_random_and_seeded():
    a = split_indices(50, 0.3, np.random.default_rng(5))
    b = split_indices(50, 0.3, np.random.default_rng(5))
    c = split_indices(50, 0.3, np.random.default_rng(6))
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[1], np.arange(35, 50))
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="fraction"):
            split_indices(50, bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cannot split"):
        split_indices(2, 0.9, np.random.default_rng(0))


# -- train_val_test_split ---------------------------------------------------------------------
def test_train_val_test_split_sizes_disjoint_stratified():
    X, y = ids_and_labels()
    (Xtr, ytr), (Xv, yv), (Xte, yte) = fm.train_val_test_split(X, y, (0.7, 0.1, 0.2), seed=3)
    assert (len(ytr), len(yv), len(yte)) == (700, 100, 200)
    ids = [part[:, 0].astype(int) for part in (Xtr, Xv, Xte)]
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), np.arange(1000))
    for part_ids, part_y in zip(ids, (ytr, yv, yte)):
        np.testing.assert_array_equal(y[part_ids], part_y)        # rows stay paired
        share = np.bincount(part_y, minlength=4) / len(part_y)
        assert np.abs(share - np.bincount(y) / 1000).max() < 0.011
    assert not np.array_equal(ids[2], np.arange(800, 1000))       # shuffled


def test_train_val_test_split_seed_and_regression():
    X, y = ids_and_labels(200)
    a = fm.train_val_test_split(X, y, seed=1)
    b = fm.train_val_test_split(X, y, seed=1)
    c = fm.train_val_test_split(X, y, seed=2)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa[0], pb[0])
    assert not np.array_equal(a[2][0], c[2][0])
    t = np.random.default_rng(0).normal(size=200)                  # regression: not strata
    (_, ttr), (_, tv), (_, tte) = fm.train_val_test_split(X, t, seed=0)
    assert (len(ttr), len(tv), len(tte)) == (160, 20, 20)
    (_, ytr), _, (_, yte) = fm.train_val_test_split(X, y, (0.5, 0.0, 0.5), stratify=False,
                                                    seed=0)
    assert len(ytr) == len(yte) == 100


def test_train_val_test_split_errors():
    X, y = ids_and_labels(20)
    with pytest.raises(ValueError, match="rows"):
        fm.train_val_test_split(X, y[:10])
    for sizes in ((0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)):
        with pytest.raises(ValueError, match="sizes"):
            fm.train_val_test_split(X, y, sizes)


# -- one_hot ------------------------------------------------------------------------------------
def test_one_hot():
    out = fm.one_hot([2, 0, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3)[[2, 0, 1, 2]])
    out = fm.one_hot(np.array([1, 1]), n_classes=4, dtype=np.float64)
    assert out.shape == (2, 4) and out.dtype == np.float64 and out.sum() == 2
    assert fm.one_hot(np.array([], dtype=int), n_classes=3).shape == (0, 3)
    for bad in ([0.5, 1.0], ["a", "b"], [[0, 1]], [-1, 2]):
        with pytest.raises(ValueError, match="y"):
            fm.one_hot(bad)
    with pytest.raises(ValueError, match="n_classes"):
        fm.one_hot([0, 3], n_classes=3)


# -- Standardizer -------------------------------------------------------------------------------
def test_standardizer_fits_on_training_only(rng):
    Xtr = rng.normal(loc=[5, -2, 0], scale=[2, 0.5, 1], size=(500, 3))
    Xtr[:, 2] = 7.0                                                  # a constant feature
    Xte = rng.normal(loc=[10, 0, 7], size=(50, 3))
    sc = fm.Standardizer().fit(Xtr)
    Z = sc.transform(Xtr)
    np.testing.assert_allclose(Z[:, :2].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(0), 1, rtol=1e-12)
    np.testing.assert_array_equal(Z[:, 2], 0)
    np.testing.assert_allclose(sc.transform(Xte), (Xte - Xtr.mean(0)) / np.where(
        Xtr.std(0) > 0, Xtr.std(0), 1), rtol=1e-12)                  # training statistics
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(Xte)), Xte, rtol=1e-12)
    np.testing.assert_allclose(fm.Standardizer().fit_transform(Xtr), Z, rtol=1e-12)
    assert sc.transform(Xte.astype(np.float32)).dtype == np.float32
    assert sc.transform(Xte.astype(int)).dtype == np.float64


def test_standardizer_errors(rng):
    with pytest.raises(ValueError, match="not fitted"):
        fm.Standardizer().transform(np.zeros((2, 2)))
    sc = fm.Standardizer().fit(rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="shape"):
        sc.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="shape"):
        sc.inverse_transform(np.zeros(3))
    for bad in (np.zeros(3), np.zeros((0, 3)), np.array([[np.nan, 1.0]])):
        with pytest.raises(ValueError, match="X"):
            fm.Standardizer().fit(bad)
