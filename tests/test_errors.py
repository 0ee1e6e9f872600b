"""Errors: typed, categorised, and intact after crossing a process boundary."""

from __future__ import annotations

import inspect
import pickle

import pytest

import snakepit_actors.errors as errors
from snakepit_actors.errors import SnakepitError, ToolError

ERROR_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                 if issubclass(cls, SnakepitError)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_reason_and_details(cls: type[SnakepitError]) -> None:
    err = cls("what went wrong and how to fix it", reason="some_reason",
              details={"worker_id": "w1", "limit": 3})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and back == err
    assert (back.message, back.reason, back.details) == (
        "what went wrong and how to fix it", "some_reason", {"worker_id": "w1", "limit": 3})
    assert back.category == cls.category and cls.__doc__


def test_a_tool_error_exposes_the_python_side() -> None:
    err = ToolError("ValueError: x", details={"type": "ValueError", "message": "x",
                                                "traceback": "Traceback ..."})
    assert (err.python_type, err.python_message, err.python_traceback) == (
        "ValueError", "x", "Traceback ...")
    assert err.reason == "tool_raised" and err.category == "tool"


def test_config_errors_are_value_errors_too() -> None:
    assert issubclass(errors.ConfigError, ValueError)
