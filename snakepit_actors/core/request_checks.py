"""The parameters of one request, checked where they enter: the ``Pool`` handle's ``execute``
family and session API (raise), and an ``Execute`` message as the Pool actor receives it from
any actor (refused with ``ExecuteFailed``). One set of rules for both.

    tool        a non-empty str
    args        a mapping (its JSON is checked by ``json_codec`` when it is encoded)
    session_id  None or a non-empty str
    timeout     None (the pool's request_timeout) or a finite number of seconds > 0
    idempotent  a bool

Every refusal is an ``InvalidArgumentsError`` (nothing ran) whose ``reason`` is
``invalid_<parameter>`` and whose message names the parameter, the value and the fix. The checks
are a few ``type()`` comparisons: the hot path does not notice them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from snakepit_actors.errors import InvalidArgumentsError
from snakepit_actors.messages import Execute

__all__ = ["check_call", "check_seconds", "check_session_call", "check_session_id",
           "check_timeout", "execute_problem"]

_SHOWN = 60


def _show(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= _SHOWN else text[:_SHOWN] + "...") + f" ({type(value).__name__})"


def _bad(name: str, value: Any, rule: str, example: str) -> InvalidArgumentsError:
    return InvalidArgumentsError(f"{name} must be {rule}, got {_show(value)}: e.g. {example}",
                                 reason=f"invalid_{name}", details={"parameter": name})


def check_timeout(timeout: Any, name: str = "timeout") -> float | None:
    """``timeout`` as float seconds (None stays None). Raises InvalidArgumentsError."""
    if timeout is None:
        return None
    if (type(timeout) not in (float, int) and not (
            isinstance(timeout, int | float) and not isinstance(timeout, bool))):
        raise _bad(name, timeout, "a number of seconds or None",
                   f"{name}=5.0 (None: the pool's request_timeout)")
    if not (math.isfinite(timeout) and timeout > 0):
        raise _bad(name, timeout, "finite and > 0 (None means the pool's request_timeout)",
                   f"{name}=5.0")
    return float(timeout)


def check_seconds(value: Any, name: str = "timeout") -> float:
    """A required number of seconds, finite and > 0. Raises InvalidArgumentsError."""
    if value is None:
        raise _bad(name, value, "a number of seconds", f"{name}=5.0")
    seconds = check_timeout(value, name)
    assert seconds is not None
    return seconds


def check_session_id(session_id: Any, name: str = "session_id") -> None:
    """None or a non-empty str. Raises InvalidArgumentsError."""
    if session_id is not None and (type(session_id) is not str or not session_id):
        raise _bad(name, session_id, "a non-empty str or None", f"{name}='user-42'")


def check_call(tool: Any, args: Any, session_id: Any, timeout: Any,
               idempotent: Any) -> float | None:
    """The parameters of one ``execute`` call; returns ``timeout`` as float (or None).

    Raises:
        InvalidArgumentsError: the first parameter that breaks the rules of this module.
    """
    _check_request(tool, args, session_id, idempotent)
    return check_timeout(timeout)


def _check_request(tool: Any, args: Any, session_id: Any, idempotent: Any) -> None:
    if type(tool) is not str or not tool:
        raise _bad("tool", tool, "a non-empty str (the tool's name)", "pool.execute('echo', {})")
    if args is not None and not isinstance(args, Mapping):
        raise _bad("args", args, "a mapping of argument names to values, or None",
                   f"pool.execute({tool!r}, {{'x': 1}})")
    check_session_id(session_id)
    if type(idempotent) is not bool:
        raise _bad("idempotent", idempotent, "True or False", "idempotent=True")


def execute_problem(msg: Execute) -> InvalidArgumentsError | None:
    """What is wrong with an ``Execute`` from an actor (None: nothing). ``args`` is checked
    only for being a mapping; its JSON when the Worker encodes it (``json_codec``)."""
    try:
        _check_request(msg.tool, msg.args, msg.session_id, msg.idempotent)
        check_timeout(msg.timeout_s, "timeout_s")
        deadline = msg.deadline_unix_s
        if deadline is not None and (type(deadline) not in (float, int)
                                     or not math.isfinite(deadline)):
            raise _bad("deadline_unix_s", deadline, "a finite Unix time in seconds or None",
                       "deadline_unix_s=time.time() + 5.0")
        if msg.args_json is not None and type(msg.args_json) is not bytes:
            raise _bad("args_json", msg.args_json, "UTF-8 JSON bytes or None",
                       "args_json=None (the Worker encodes args)")
        if type(msg.stream) is not bool:
            raise _bad("stream", msg.stream, "True or False", "stream=False")
    except InvalidArgumentsError as exc:
        return InvalidArgumentsError(f"Execute {msg.request_id!r}: {exc.message}",
                                     reason=exc.reason, details=exc.details)
    return None


def check_session_call(session_id: Any = None, *, required: bool = True, ttl: Any = None,
                       metadata: Any = None, data: Any = None, timeout: Any = 1.0,
                       name: Any = "program") -> None:
    """The parameters of one session-API call (``Pool.create_session`` and friends).

    Raises:
        InvalidArgumentsError: the first parameter that breaks the rules of this module (and:
            ``metadata`` a str -> str mapping, ``data`` a mapping, ``name`` a non-empty str,
            ``timeout`` required here).
    """
    if required and session_id is None:
        raise _bad("session_id", session_id, "a non-empty str", "session_id='user-42'")
    check_session_id(session_id)
    check_timeout(ttl, "ttl")
    if metadata is not None and (not isinstance(metadata, Mapping) or not all(
            type(k) is str and type(v) is str for k, v in metadata.items())):
        raise _bad("metadata", metadata, "a mapping of str to str, or None",
                   "metadata={'user': 'ada'}")
    if data is not None and not isinstance(data, Mapping):
        raise _bad("data", data, "a mapping, or None", "data={'step': 1}")
    if type(name) is not str or not name:
        raise _bad("name", name, "a non-empty str", "set_program('prompt', value)")
    check_seconds(timeout)
