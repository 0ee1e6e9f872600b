"""JSON on the wire, one rule in both directions (arguments to the worker, results back), and
decoding worker failures (the wire contract: ``protos/snakepit/bridge/v1/bridge.proto``).

The rule, enforced by the host for arguments and by the worker for results and stream chunks:

- values are JSON: dict (keys must be ``str``: ``{1: 2}`` is refused, never turned into
  ``{"1": 2}``), list/tuple, str, int, float, bool, None;
- floats are finite: NaN and +-inf are refused (JSON has no spelling for them), also when a
  non-Python peer sends the ``NaN`` / ``Infinity`` extension;
- nesting is bounded by the interpreter's recursion limit (about 900 levels): deeper values are
  refused instead of raising ``RecursionError``.

A refusal is a ``SerializationError`` whose ``reason`` says the direction ("args" or "result")
and whose message names the path (``args.x[3]``), the offending value and the fix. The hot path
stays one C encode: ``allow_nan=False`` and ``RecursionError`` are caught around it, and the
structure is walked only to name the path of a failure, or to check keys when the encoding shows
a nested object (an ``{`` after the first byte): free for flat arguments and arrays of numbers,
about the C encoder's own time again for values made of many small objects (100,000 records:
~90 ms on top of ~90 ms).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from snakepit_actors.errors import (
    FAILURE_CATEGORIES,
    InvalidArgumentsError,
    PayloadTooLargeError,
    SerializationError,
    SnakepitError,
)

__all__ = ["decode_value", "encode_args", "encode_value", "failure_to_error",
           "result_side"]

# One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_SHOWN = 60  # characters of an offending value shown in a message


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


_DECODE = json.JSONDecoder(parse_constant=_refuse_constant).decode


def result_side(root: str) -> bool:
    """Whether a message path root names the worker's side ("result", "chunk")."""
    return root.startswith(("result", "chunk"))


def encode_value(value: Any, root: str) -> bytes:
    """``value`` as compact UTF-8 JSON under the rule of this module.

    Args:
        value: what to encode.
        root: its name in messages and paths: "args", "result" or "chunk".

    Raises:
        SerializationError: reason "args" or "result" (from ``root``), naming the path.
    """
    try:
        data = _ENCODE(value).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise _refusal(value, root, exc) from None
    if data.find(b"{", 1) != -1:  # a nested object: check every key
        keys_ok = _str_keys(value)
    else:  # at most the top level is an object
        keys_ok = type(value) is not dict or all(type(k) is str for k in value)
    if not keys_ok:
        raise _error(root, _first_problem(value, root, keys_only=True) or f"{root}: a key is "
                     "not a str")
    return data


def decode_value(data: bytes, root: str) -> Any:
    """JSON bytes decoded under the rule of this module (no NaN/Infinity, bounded nesting).

    Raises:
        SerializationError: reason "args" or "result" (from ``root``); ``details["not_json"]``
            when ``data`` is not JSON at all.
    """
    try:
        return _DECODE(data.decode("utf-8")) if data else None
    except _NonFinite as exc:
        raise _error(root, f"{root} contains {exc}: NaN and infinity are not JSON; send null "
                     "or a string such as 'nan' instead") from None
    except RecursionError:
        raise _error(root, f"{root} nest too deeply to decode (over about "
                     f"{_depth_hint()} levels): flatten the structure") from None
    except ValueError as exc:
        error = _error(root, f"{root} is not valid UTF-8 JSON: {exc}")
        error.details["not_json"] = True
        raise error from None


def encode_args(tool: str, args: Any, limit_bytes: int | None = None) -> bytes:
    """``args`` as compact UTF-8 JSON.

    Raises:
        InvalidArgumentsError: ``args`` is not a mapping.
        SerializationError: a value breaks the rule of this module (reason "args").
        PayloadTooLargeError: the encoding is over ``limit_bytes`` (reason "args").
    """
    if not isinstance(args, Mapping):
        raise InvalidArgumentsError(
            f"args of {tool!r} must be a mapping of argument names to values, "
            f"got {type(args).__name__}: e.g. pool.execute({tool!r}, {{'x': 1}})")
    try:
        data = encode_value(args if type(args) is dict else dict(args), "args")
    except SerializationError as exc:
        raise SerializationError(f"{exc.message} (tool {tool!r})", reason="args",
                                 details=exc.details) from None
    if limit_bytes is not None and len(data) > limit_bytes:
        raise PayloadTooLargeError(
            f"args of {tool!r} encode to {len(data)} bytes, over max_payload_bytes={limit_bytes}"
            ": send less, or raise max_payload_bytes in the PoolConfig",
            reason="args", details={"size_bytes": len(data), "limit_bytes": limit_bytes})
    return data


def failure_to_error(failure: Any, worker_id: str) -> SnakepitError:
    """The typed error for a worker's ``ToolFailure`` (type, message, traceback preserved).
    Serialization and size failures say their direction by the start of their message
    ("result ..." / "chunk ..." from the worker's encoder; anything else is about the args)."""
    cls = FAILURE_CATEGORIES.get(failure.category, SnakepitError)
    text = (f"{failure.type}: {failure.message}" if failure.category == "tool"
            else failure.message)
    reason = None
    if failure.category in ("serialization", "payload_too_large"):
        reason = "result" if result_side(failure.message) else "args"
    return cls(text, reason=reason, details={
        "type": failure.type, "message": failure.message, "traceback": failure.traceback,
        "worker_id": worker_id})


# --- naming what went wrong (only on the failure path, or to check nested keys) --------------

def _error(root: str, message: str) -> SerializationError:
    return SerializationError(message, reason="result" if result_side(root) else "args")


def _refusal(value: Any, root: str, exc: BaseException) -> SerializationError:
    if isinstance(exc, RecursionError):
        return _error(root, f"{root} nest too deeply for JSON (over about {_depth_hint()} "
                      "levels): flatten the structure")
    problem = _first_problem(value, root, keys_only=False)
    return _error(root, problem or f"{root} cannot be encoded as JSON: {exc}")


_CONTAINERS = (dict, list, tuple)


def _str_keys(value: Any) -> bool:
    """Whether every object key in ``value`` (already known to encode) is a str: the fast
    check, without paths (about as long as the C encoder on object-heavy values)."""
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, dict):
            for key in item:
                if type(key) is not str:
                    return False
            push([v for v in item.values() if isinstance(v, _CONTAINERS)])
        elif isinstance(item, list | tuple):
            push([v for v in item if isinstance(v, _CONTAINERS)])
    return True


def _first_problem(value: Any, root: str, *, keys_only: bool) -> str | None:
    """The first offending item, described with its path; None when there is none. Iterative
    (a depth-first stack), so deep values cannot overflow it."""
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        item, path = stack.pop()
        kind = type(item)
        if kind is dict or isinstance(item, Mapping):
            for key, sub in item.items():
                if type(key) is not str:
                    return (f"{_path(path)} has the key {_show(key)} ({type(key).__name__}): "
                            "JSON object keys must be str; convert it, e.g. str(key)")
                stack.append((sub, (path, "." + key if key.isidentifier() else f"[{key!r}]")))
        elif kind is list or kind is tuple:
            stack.extend((sub, (path, f"[{i}]")) for i, sub in enumerate(item))
        elif kind is str and not keys_only:
            try:
                item.encode()
            except UnicodeEncodeError:
                return (f"{_path(path)} is {_show(item)}, which is not UTF-8 (a lone surrogate):"
                        " decode your bytes with errors='replace' or send base64 text")
        elif keys_only or kind in (str, int, bool) or item is None:
            continue
        elif kind is float or isinstance(item, float):
            if not math.isfinite(item):
                return (f"{_path(path)} is {item!r}: NaN and infinity are not JSON; send None "
                        "or a string such as 'nan' instead")
        elif not isinstance(item, str | int):
            return (f"{_path(path)} is {_show(item)} ({type(item).__name__}), not JSON: "
                    "send dict, list, str, int, float, bool or None (e.g. a list for a set, "
                    "base64 text for bytes)")
    return None


def _path(node: Any) -> str:
    parts: list[str] = []
    while isinstance(node, tuple):
        node, part = node
        parts.append(part)
    return str(node) + "".join(reversed(parts))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _depth_hint() -> int:
    import sys

    return max(1, sys.getrecursionlimit() - 100)
