"""The worker side of host tools: ``ctx.call_host_tool(name, **kwargs)`` becomes one
``HostToolService.CallHostTool`` call to the host (``snakepit_actors.client.host_tools``).

The address comes from ``SNAKEPIT_HOST_TOOLS`` (set by the pool at spawn); the channel opens
on the first call. Failures come back typed: ``HostToolError`` (the host tool raised, or is
unknown: ``category`` says which), ``TimeoutError`` (no answer within the timeout),
``ConnectionError`` (no host tool service: none was ever registered).
"""

from __future__ import annotations

import threading
from typing import Any

import grpc

from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc
from snakepit_actors.errors import SerializationError
from snakepit_actors.json_codec import decode_value, encode_value

__all__ = ["HostToolClient", "HostToolError"]


class HostToolError(Exception):
    """A host tool failed. ``category``: "tool" (it raised ``type``), "unknown_tool",
    "invalid_arguments" or "serialization"; ``remote_traceback``: the host's traceback."""

    def __init__(self, category: str, type_name: str, message: str, tb: str = "") -> None:
        super().__init__(f"host tool failed ({category}): {type_name}: {message}")
        self.category = category
        self.type = type_name
        self.remote_message = message
        self.remote_traceback = tb


class HostToolClient:
    """Calls the host's tools over one lazily opened channel. Thread-safe."""

    def __init__(self, address: str, max_payload_bytes: int) -> None:
        self.address = address
        self._limit = max_payload_bytes + 1024 * 1024
        self._lock = threading.Lock()
        self._stub: Any = None

    def call(self, name: str, kwargs: dict[str, Any], *, timeout_s: float | None,
             session_id: str = "", request_id: str = "") -> Any:
        """Run host tool ``name(**kwargs)`` and return its (JSON-decoded) result.

        Blocks until the answer or ``timeout_s`` (None: no limit).

        Raises:
            HostToolError: the host tool raised, is unknown, or its args/result are not JSON.
            TimeoutError: no answer within ``timeout_s``.
            ConnectionError: the host serves no host tools.
        """
        try:
            args = encode_value(kwargs, "args")
        except SerializationError as exc:
            raise HostToolError("invalid_arguments", type(exc).__name__,
                                f"{exc.message} (host tool {name!r})") from None
        request = bridge_pb2.HostToolRequest(name=name, args_json=args, session_id=session_id,
                                             request_id=request_id)
        try:
            response = self._get_stub().CallHostTool(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError(f"host tool {name!r} gave no answer within "
                                   f"{timeout_s}s") from None
            raise ConnectionError(f"host tool {name!r}: cannot reach the host's tool service at "
                                  f"{self.address} ({code.name}); register a host tool with "
                                  "pool.register_host_tool first") from None
        if response.WhichOneof("outcome") == "error":
            err = response.error
            raise HostToolError(err.category, err.type, err.message, err.traceback)
        try:
            return decode_value(response.result_json, "result")
        except SerializationError as exc:
            raise HostToolError("serialization", type(exc).__name__,
                                f"{exc.message} (host tool {name!r})") from None

    def _get_stub(self) -> Any:
        with self._lock:
            if self._stub is None:
                channel = grpc.insecure_channel(self.address, options=[
                    ("grpc.max_send_message_length", self._limit),
                    ("grpc.max_receive_message_length", self._limit),
                    ("grpc.enable_http_proxy", 0)])
                self._stub = bridge_pb2_grpc.HostToolServiceStub(channel)
            return self._stub
