"""The Trainer warns when the model's output unit does not match its loss."""
import warnings

import pytest

import fastmlp as fm


def _model(last):
    return fm.Sequential([fm.Dense(3, 4, activation="relu")] + last, seed=0)


@pytest.mark.parametrize("last, loss, remedy", [
    ([fm.Dense(4, 2), fm.Softmax()], fm.CrossEntropyLoss(), "remove the final Softmax"),
    ([fm.Dense(4, 1, activation="sigmoid")], fm.BCEWithLogitsLoss(), "activation=None"),
    ([fm.Dense(4, 1), fm.Sigmoid()], fm.BCEWithLogitsLoss(), "remove the final Sigmoid"),
    ([fm.Dense(4, 2), fm.Softmax()], fm.MultiMarginLoss(), "remove the final Softmax"),
    ([fm.Dense(4, 2), fm.Softmax()], fm.MSELoss(), "CrossEntropyLoss"),
])
def test_mismatched_output_unit_warns_with_the_remedy(last, loss, remedy):
    with pytest.warns(UserWarning, match=remedy):
        fm.Trainer(_model(last), loss, fm.SGD(lr=0.1))


@pytest.mark.parametrize("last, loss", [
    ([fm.Dense(4, 2)], fm.CrossEntropyLoss()),
    ([fm.Dense(4, 1)], fm.BCEWithLogitsLoss()),
    ([fm.Dense(4, 1)], fm.MSELoss()),
    ([fm.Dense(4, 1, activation="tanh")], fm.MSELoss()),
    ([fm.Dense(4, 2), fm.Softmax()], fm.L1Loss()),
    ([fm.Dense(4, 1), fm.Sigmoid()], fm.MSELoss()),      # regression onto [0, 1]
])
def test_matched_output_unit_is_silent(last, loss):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.Trainer(_model(last), loss, fm.SGD(lr=0.1))
