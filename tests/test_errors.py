"""Errors: typed, categorised, and intact after crossing a process boundary."""

from __future__ import annotations

import inspect
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

import snakepit_actors
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


ROOT = Path(__file__).resolve().parent.parent
ERRORS_PAGE = ROOT / "docs" / "errors.md"


@pytest.mark.parametrize("cls", [errors.QueueTimeoutError, errors.RequestTimeoutError],
                         ids=lambda c: c.__name__)
def test_the_timeout_errors_are_builtin_timeout_errors_too(cls: type[SnakepitError]) -> None:
    with pytest.raises(TimeoutError) as caught:
        raise cls("too slow", reason="r", details={"waited_s": 1.0})
    err = caught.value
    assert isinstance(err, SnakepitError) and (err.category, err.reason) == (cls.category, "r")
    assert str(err) == "too slow" and err.details == {"waited_s": 1.0}


def test_errors_pickled_in_another_process_arrive_whole() -> None:
    """What an actor process sends is unpickled here with class, category, reason, details."""
    code = ("import pickle, sys\n"
            "import snakepit_actors.errors as e\n"
            "errs = [cls('from the child', reason='child', details={'pid': 1})\n"
            "        for cls in vars(e).values() if isinstance(cls, type)\n"
            "        and issubclass(cls, e.SnakepitError)]\n"
            "sys.stdout.buffer.write(pickle.dumps(errs))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    received = pickle.loads(done.stdout)
    assert sorted(type(err).__name__ for err in received) == sorted(
        cls.__name__ for cls in ERROR_CLASSES)
    for err in received:
        assert (err.message, err.reason, err.details) == ("from the child", "child", {"pid": 1})
        assert err.category == type(err).category
    timeouts = [err for err in received if isinstance(err, TimeoutError)]
    assert {type(err).__name__ for err in timeouts} == {"QueueTimeoutError",
                                                         "RequestTimeoutError"}


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_exported_from_the_package(cls: type[SnakepitError]) -> None:
    assert cls.__name__ in snakepit_actors.__all__
    assert getattr(snakepit_actors, cls.__name__) is cls


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_documented_on_the_errors_page(cls: type[SnakepitError]) -> None:
    page = ERRORS_PAGE.read_text(encoding="utf-8")
    assert f"\n### {cls.__name__}\n" in page, f"docs/errors.md has no section {cls.__name__}"
    if cls is not SnakepitError:  # the table: whose fault, may it have run, what to do
        assert re.search(rf"^\| `{cls.__name__}` \|( [^|]+ \|){{3}}$", page, re.MULTILINE), (
            f"docs/errors.md has no table row for {cls.__name__}")
        section = page.split(f"\n### {cls.__name__}\n", 1)[1].split("\n### ", 1)[0]
        section = " ".join(section.split())
        for question in ("*Whose fault:*", "*May it have run:*", "*What to do:*"):
            assert question in section, (cls.__name__, question)
