"""Snakepit 0.13.0's encoding, read and written by this project (pure: no grpc).

Facts taken from Snakepit's Python side (nshkrdotcom/snakepit v0.13.0, MIT;
``snakepit_bridge/serialization.py`` and ``grpc_server.py``):

- each argument is JSON inside a ``google.protobuf.Any`` whose type URL names StringValue and
  whose value is the raw JSON (not a packed StringValue);
- a result is an ``Any`` with type URL ``type.googleapis.com/snakepit.<kind>`` (map, list,
  string, boolean, float: integers come back as floats) and a JSON value;
- a failed call has ``success=false`` and ``error_message``, a JSON object
  ``{type, message, stacktrace, traceback, context}``; a tool failing mid-stream ends the stream
  with status INTERNAL and that JSON as the details;
- a streamed chunk's ``data`` is JSON, or the raw UTF-8 of a str, or raw bytes; the last chunk
  has ``is_final`` (usually with no data).

Their adapters report an unknown tool as ``AttributeError: Tool 'x' not found in ...`` and bad
arguments as the tool function's ``TypeError``; both become this project's typed errors.
"""

from __future__ import annotations

import json
import re
from typing import Any

from snakepit_actors.errors import (
    InvalidArgumentsError,
    SerializationError,
    SnakepitError,
    ToolError,
    UnknownToolError,
)
from snakepit_actors.json_codec import decode_value

__all__ = ["ARG_TYPE_URL", "chunk_value", "encode_parameters", "error_from_payload",
           "result_value"]

#: The type URL Snakepit's decoder reads as "plain JSON" (its last dotted part, "StringValue",
#: names no conversion).
ARG_TYPE_URL = "type.googleapis.com/google.protobuf.StringValue"
_UNKNOWN_TOOL = re.compile(r"^Tool '(?P<tool>.*)' not found")
_ARGUMENT_WORDS = ("argument", "keyword")


def encode_parameters(args_json: bytes) -> dict[str, bytes]:
    """The per-argument JSON values of a JSON object (``args_json``), keyed by name.

    Raises:
        InvalidArgumentsError: ``args_json`` is not a JSON object (Snakepit tools take keyword
            arguments only).
    """
    try:
        args = json.loads(args_json) if args_json else {}
    except ValueError as exc:
        raise SerializationError(f"args are not JSON: {exc}", reason="args") from None
    if not isinstance(args, dict):
        raise InvalidArgumentsError(
            f"args of a Snakepit tool must be a JSON object (keyword arguments), got "
            f"{type(args).__name__}: pass a dict, e.g. {{'a': 1}}", reason="not_an_object")
    return {str(k): json.dumps(v, separators=(",", ":"), allow_nan=False).encode()
            for k, v in args.items()}


def result_value(value: bytes) -> Any:
    """A successful result's value (empty: None).

    Raises:
        SerializationError: reason "result": the value is not JSON.
    """
    return decode_value(value, "result") if value else None


def chunk_value(data: bytes) -> Any:
    """A streamed chunk's value: JSON, else the text, else the bytes as they came."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(data)


def error_from_payload(text: str, worker_id: str, tool: str = "") -> SnakepitError:
    """The typed error for Snakepit's JSON error payload ``text`` (or any text: a ToolError).

    ``UnknownToolError`` for an unknown tool, ``InvalidArgumentsError`` for a ``TypeError``
    about arguments, else ``ToolError``; ``details`` keeps type, message and traceback.
    """
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {"type": "SnakepitError", "message": text}
    type_name = str(payload.get("type") or "Exception")
    message = str(payload.get("message") or "")
    traceback = payload.get("traceback") or "".join(payload.get("stacktrace") or [])
    details = {"type": type_name, "message": message, "traceback": str(traceback),
               "worker_id": worker_id}
    unknown = _UNKNOWN_TOOL.match(message)
    if type_name == "AttributeError" and unknown:
        return UnknownToolError(f"unknown tool {unknown['tool']!r} ({message})",
                                reason="unknown_tool", details=details)
    if type_name == "TypeError" and any(word in message for word in _ARGUMENT_WORDS):
        where = f" of {tool!r}" if tool else ""
        return InvalidArgumentsError(f"invalid arguments{where}: {message}",
                                     reason="invalid_arguments", details=details)
    return ToolError(f"{type_name}: {message}", details=details)
