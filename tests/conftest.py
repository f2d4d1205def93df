"""Fixtures. Tests import the *installed* fastmlp (see pyproject addopts)."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
