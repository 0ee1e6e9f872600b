"""Encoding request arguments for the wire, and decoding worker failures (the wire contract:
``protos/snakepit/bridge/v1/bridge.proto``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from snakepit_actors.errors import (
    FAILURE_CATEGORIES,
    InvalidArgumentsError,
    PayloadTooLargeError,
    SerializationError,
    SnakepitError,
)

# One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def encode_args(tool: str, args: Any, limit_bytes: int | None = None) -> bytes:
    """``args`` as compact UTF-8 JSON.

    Raises:
        InvalidArgumentsError: ``args`` is not a mapping with string keys.
        SerializationError: a value is not JSON-serialisable (reason "args").
        PayloadTooLargeError: the encoding is over ``limit_bytes``.
    """
    if not isinstance(args, Mapping):
        raise InvalidArgumentsError(
            f"args of {tool!r} must be a mapping of argument names to values, "
            f"got {type(args).__name__}: e.g. pool.execute({tool!r}, {{'x': 1}})")
    try:
        data = _ENCODE(args).encode()
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"args of {tool!r} are not JSON-serialisable: {exc}",
                                 reason="args") from None
    if limit_bytes is not None and len(data) > limit_bytes:
        raise PayloadTooLargeError(
            f"args of {tool!r} encode to {len(data)} bytes, over max_payload_bytes={limit_bytes}",
            reason="args", details={"size_bytes": len(data), "limit_bytes": limit_bytes})
    return data


def failure_to_error(failure: Any, worker_id: str) -> SnakepitError:
    """The typed error for a worker's ``ToolFailure`` (type, message, traceback preserved)."""
    cls = FAILURE_CATEGORIES.get(failure.category, SnakepitError)
    text = (f"{failure.type}: {failure.message}" if failure.category == "tool"
            else failure.message)
    reason = None
    if failure.category == "serialization":
        reason = "result" if "result" in failure.message else "args"
    return cls(text, reason=reason, details={
        "type": failure.type, "message": failure.message, "traceback": failure.traceback,
        "worker_id": worker_id})
