"""This project's own protocol (``protos/snakepit/bridge/v1/bridge.proto``), spoken with
``python -m snakepit_actors.bridge``: JSON bytes in ``args_json`` / ``result_json``, a
``ToolFailure`` with a category for every failure, a final chunk ending each stream."""

from __future__ import annotations

import time
from typing import Any

from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc
from snakepit_actors.errors import SerializationError, SnakepitError
from snakepit_actors.json_codec import decode_value, failure_to_error
from snakepit_actors.protocols.wire import NO_VALUE, Chunk


class OurWire:
    """``WireProtocol`` for this project's bridge. Stateless."""

    name = "snakepit_actors"

    def stub(self, channel: Any) -> Any:
        return bridge_pb2_grpc.BridgeServiceStub(channel)

    def ping(self, stub: Any, timeout_s: float) -> None:
        stub.Ping(bridge_pb2.PingRequest(message="ready"), timeout=timeout_s,
                  wait_for_ready=True)

    def request(self, request_id: str, session_id: str, tool: str, args_json: bytes,
                deadline_unix_s: float, session_moved_from: str) -> Any:
        return bridge_pb2.ExecuteToolRequest(
            request_id=request_id, session_id=session_id, tool=tool, args_json=args_json,
            deadline_unix_s=deadline_unix_s, session_moved_from=session_moved_from)

    def succeeded(self, response: Any) -> bool:
        return bool(response.WhichOneof("outcome") != "error")

    def decode(self, response: Any, worker_id: str) -> tuple[Any, SnakepitError | None]:
        outcome = response.WhichOneof("outcome")
        if outcome == "result_json":
            try:
                return decode_value(response.result_json, "result"), None
            except SerializationError as exc:
                return None, exc
        if outcome == "binary_result":
            return bytes(response.binary_result), None
        return None, failure_to_error(response.error, worker_id)

    def chunk(self, chunk: Any, worker_id: str) -> Chunk:
        if chunk.is_final:
            error = failure_to_error(chunk.error, worker_id) if chunk.HasField("error") else None
            return True, NO_VALUE, error
        return False, decode_value(chunk.data_json, "chunk"), None

    def call_failure(self, exc: Any, worker_id: str) -> SnakepitError | None:
        return None  # our bridge answers a tool's failure with a ToolFailure, never a status

    def heartbeat(self, stub: Any, timeout_s: float) -> Any:
        return stub.Heartbeat.future(bridge_pb2.HeartbeatRequest(client_time_ns=time.time_ns()),
                                     timeout=timeout_s)


    def cleanup_session(self, stub: Any, session_id: str) -> Any:
        return stub.CleanupSession.future(bridge_pb2.CleanupSessionRequest(session_id=session_id),
                                          timeout=5.0)

    def cancel(self, stub: Any, request_id: str) -> Any:
        return stub.CancelTool.future(bridge_pb2.CancelToolRequest(request_id=request_id),
                                      timeout=5.0)
