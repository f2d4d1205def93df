"""The package face (issue 16, item 19): the command line's version and usage line, and
``dir(fastmlp)`` listing every public name."""
import os
import subprocess
import sys

import pytest

import fastmlp as fm


def _run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_version_flag():
    out = _run([sys.executable, "-m", "fastmlp", "--version"])
    assert out.returncode == 0 and out.stdout.strip() == f"fastmlp {fm.__version__}"


def test_usage_line_names_how_it_was_called():
    out = _run([sys.executable, "-m", "fastmlp", "--help"])
    assert out.stdout.startswith("usage: python -m fastmlp")
    script = os.path.join(os.path.dirname(sys.executable), "fastmlp")
    if not os.path.exists(script):
        pytest.skip("the console script is not installed next to this Python")
    out = _run([script, "--help"])
    assert out.returncode == 0 and out.stdout.startswith("usage: fastmlp ")


def test_dir_lists_every_public_name():
    names = dir(fm)
    for name in fm.__all__:
        assert name in names and getattr(fm, name) is not None
    for name in ("MLPClassifier", "MLPRegressor", "get_loss", "clip_grad_value", "io"):
        assert name in names
