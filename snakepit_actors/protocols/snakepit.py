"""Snakepit 0.13.0's protocol (``protos/snakepit/compat/snakepit_wire.proto``), spoken with
Snakepit's own ``grpc_server.py`` started by ``snakepit_actors.compat.shim``.

The encoding is ``snakepit_codec``'s. Liveness is a Ping (their worker has no call count:
after a timeout the Worker cannot learn whether the tool stopped, so it recycles the process,
the only way to stop a Snakepit tool). A failing tool mid-stream ends with status INTERNAL and
Snakepit's JSON error payload: a ``ToolError``, not a lost process.
"""

from __future__ import annotations

from typing import Any

import grpc

from snakepit_actors._proto import snakepit_wire_pb2 as pb2
from snakepit_actors._proto import snakepit_wire_pb2_grpc as pb2_grpc
from snakepit_actors.errors import InvalidArgumentsError, SnakepitError, UnknownToolError
from snakepit_actors.protocols.snakepit_codec import (
    ARG_TYPE_URL,
    chunk_value,
    encode_parameters,
    error_from_payload,
    result_value,
)
from snakepit_actors.protocols.wire import NO_VALUE, Chunk


class SnakepitWire:
    """``WireProtocol`` for Snakepit's Python workers. Stateless."""

    name = "snakepit"

    def stub(self, channel: Any) -> Any:
        return pb2_grpc.BridgeServiceStub(channel)

    def ping(self, stub: Any, timeout_s: float) -> None:
        stub.Ping(pb2.PingRequest(message="ready"), timeout=timeout_s, wait_for_ready=True)

    def request(self, request_id: str, session_id: str, tool: str, args_json: bytes,
                deadline_unix_s: float, session_moved_from: str) -> Any:
        request = pb2.ExecuteToolRequest(session_id=session_id, tool_name=tool,
                                         metadata={"request_id": request_id})
        for key, value in encode_parameters(args_json).items():
            slot = request.parameters[key]
            slot.type_url, slot.value = ARG_TYPE_URL, value
        return request

    def succeeded(self, response: Any) -> bool:
        return bool(response.success)

    def decode(self, response: Any, worker_id: str) -> tuple[Any, SnakepitError | None]:
        if not response.success:
            return None, error_from_payload(response.error_message, worker_id)
        if response.binary_result and not response.result.value:
            return bytes(response.binary_result), None
        try:
            return result_value(response.result.value), None
        except SnakepitError as exc:
            return None, exc

    def chunk(self, chunk: Any, worker_id: str) -> Chunk:
        value = chunk_value(chunk.data) if chunk.data else (NO_VALUE if chunk.is_final else None)
        return bool(chunk.is_final), value, None

    def call_failure(self, exc: Any, worker_id: str) -> SnakepitError | None:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        details = exc.details() if callable(getattr(exc, "details", None)) else ""
        if code == grpc.StatusCode.INTERNAL:
            return error_from_payload(details or "", worker_id)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgumentsError(f"the worker refused the arguments: {details}",
                                         details={"worker_id": worker_id})
        if code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND):
            return UnknownToolError(f"the worker has no such tool: {details}",
                                    details={"worker_id": worker_id})
        return None

    def heartbeat(self, stub: Any, timeout_s: float) -> Any:
        return stub.Ping.future(pb2.PingRequest(message="heartbeat"), timeout=timeout_s)


    def cleanup_session(self, stub: Any, session_id: str) -> Any:
        return stub.CleanupSession.future(pb2.CleanupSessionRequest(session_id=session_id),
                                          timeout=5.0)

    def cancel(self, stub: Any, request_id: str) -> Any:
        return None  # their worker has no such call: a running unary tool runs to its end
