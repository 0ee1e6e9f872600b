"""The parameters of a request (``core.request_checks``), without a pool."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.request_checks import check_call, check_session_call, execute_problem
from snakepit_actors.errors import InvalidArgumentsError
from snakepit_actors.messages import Execute

_any = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                      st.integers(), max_size=2))


@given(tool=_any, args=_any, session_id=_any, timeout=_any, idempotent=_any)
def test_any_parameters_are_accepted_or_refused_with_an_invalid_arguments_error(
        tool: Any, args: Any, session_id: Any, timeout: Any, idempotent: Any) -> None:
    try:
        checked = check_call(tool, args, session_id, timeout, idempotent)
    except InvalidArgumentsError as exc:
        assert exc.reason.startswith("invalid_") and " must be " in exc.message
    else:
        assert checked is None or (math.isfinite(checked) and checked > 0)
        assert isinstance(tool, str) and isinstance(idempotent, bool)


def test_good_parameters_pass_and_the_timeout_becomes_a_float() -> None:
    assert check_call("echo", {"x": 1}, "s1", 5, False) == 5.0
    assert check_call("echo", None, None, None, True) is None


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, "5", True, [5]])
def test_a_timeout_must_be_finite_and_positive(timeout: Any) -> None:
    with pytest.raises(InvalidArgumentsError, match="timeout must be") as caught:
        check_call("echo", {}, None, timeout, False)
    assert caught.value.reason == "invalid_timeout" and repr(timeout) in caught.value.message


def test_an_execute_message_names_its_own_field() -> None:
    problem = execute_problem(Execute("r1", "echo", {}, timeout_s="5"))  # type: ignore[arg-type]
    assert problem is not None and problem.message.startswith("Execute 'r1': timeout_s must be")
    assert execute_problem(Execute("r2", "echo", {"x": 1}, timeout_s=1.0)) is None


def test_the_session_api_requires_a_session_id_and_checks_ttl_metadata_and_name() -> None:
    with pytest.raises(InvalidArgumentsError, match="session_id must be"):
        check_session_call(None)
    with pytest.raises(InvalidArgumentsError, match="ttl must be"):
        check_session_call("s", ttl=math.inf)
    with pytest.raises(InvalidArgumentsError, match="metadata must be"):
        check_session_call("s", metadata={"a": 1})
    with pytest.raises(InvalidArgumentsError, match="name must be"):
        check_session_call(required=False, name="")
    check_session_call("s", ttl=5, metadata={"a": "b"}, data={"x": 1})
