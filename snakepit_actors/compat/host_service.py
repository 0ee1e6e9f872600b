"""The host side of Snakepit's protocol: what a Snakepit worker calls back on its "Elixir"
address, served on a 0600 Unix socket.

    Snakepit grpc_server.py ──(--elixir-address unix:<run dir>/<worker>.host.sock)──> HostService
        Ping, InitializeSession, RegisterTools, Heartbeat,        answered here (the pool keeps
        CleanupSession, GetSession                                 sessions; this only agrees)
        GetExposedElixirTools, ExecuteElixirTool     ──> the pool's host tools (SNAKEPIT_HOST_TOOLS)

Their worker pings the host before it binds (it exits after ~110 s without an answer), and
sends a Heartbeat every 2 s per session it has seen; when heartbeats fail it exits. The shim
serves this from the worker's own process, so the dependency holds exactly as long as the
process lives: the process itself dies with its Worker actor (``shim``).

The messages are those of whichever generated module is passed in (``pb2``/``pb2_grpc``):
Snakepit's own, inside their process (a second module declaring the same ``snakepit.bridge``
messages cannot be loaded next to theirs), or this project's ``snakepit_wire_pb2`` elsewhere.
Facts from Snakepit 0.13.0 (nshkrdotcom/snakepit, MIT): the RPC set and how their
``SessionContext.call_elixir_tool`` encodes arguments (str and bool packed as wrappers,
numbers as JSON) and decodes results (``Any`` with a ``snakepit.<kind>`` type URL, JSON value).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from snakepit_actors.bridge.host_client import HostToolClient, HostToolError
from snakepit_actors.protocols import LIST_HOST_TOOLS

__all__ = ["HostService", "serve"]

_RESULT_TYPE_URL = "type.googleapis.com/snakepit.json"  # Snakepit's decoder: plain JSON
_HOST_TOOL_TIMEOUT_S = 60.0


class HostService:
    """Duck-typed servicer of Snakepit's ``BridgeService`` for the host side.

    Args:
        pb2: the generated messages module (Snakepit's or ``snakepit_wire_pb2``).
        host_tools: the pool's host-tool address ("" = none: no host tools exposed).
        max_payload_bytes: the largest host-tool args / result.
    """

    def __init__(self, pb2: ModuleType, host_tools: str, max_payload_bytes: int) -> None:
        self._pb2 = pb2
        self._host = HostToolClient(host_tools, max_payload_bytes) if host_tools else None
        self._lock = threading.Lock()
        self.sessions: set[str] = set()
        self.heartbeats = 0

    def Ping(self, request: Any, context: Any) -> Any:
        response = self._pb2.PingResponse(message=f"pong: {request.message}")
        response.server_time.GetCurrentTime()
        return response

    def InitializeSession(self, request: Any, context: Any) -> Any:
        with self._lock:
            self.sessions.add(request.session_id)
        return self._pb2.InitializeSessionResponse(success=True)

    def CleanupSession(self, request: Any, context: Any) -> Any:
        with self._lock:
            self.sessions.discard(request.session_id)
        return self._pb2.CleanupSessionResponse(success=True)

    def GetSession(self, request: Any, context: Any) -> Any:
        return self._pb2.GetSessionResponse(session_id=request.session_id)

    def Heartbeat(self, request: Any, context: Any) -> Any:
        with self._lock:
            self.heartbeats += 1
        response = self._pb2.HeartbeatResponse(session_valid=True)
        response.server_time.GetCurrentTime()
        return response

    def RegisterTools(self, request: Any, context: Any) -> Any:
        return self._pb2.RegisterToolsResponse(
            success=True, tool_ids={t.name: f"{request.session_id}:{t.name}"
                                    for t in request.tools})

    def GetExposedElixirTools(self, request: Any, context: Any) -> Any:
        names: list[str] = []
        if self._host is not None:
            with contextlib.suppress(HostToolError, ConnectionError, TimeoutError):
                names = list(self._host.call(LIST_HOST_TOOLS, {}, timeout_s=5.0))
        return self._pb2.GetExposedElixirToolsResponse(tools=[
            self._pb2.ToolSpec(name=name, description="host tool of the snakepit_actors pool")
            for name in names])

    def ExecuteElixirTool(self, request: Any, context: Any) -> Any:
        response = self._pb2.ExecuteElixirToolResponse()
        try:
            if self._host is None:
                raise ConnectionError("this pool serves no host tools: register one with "
                                      "pool.register_host_tool first")
            kwargs = {k: _argument(v) for k, v in request.parameters.items()}
            value = self._host.call(request.tool_name, kwargs, timeout_s=_HOST_TOOL_TIMEOUT_S,
                                    session_id=request.session_id)
        except Exception as exc:
            response.success = False
            response.error_message = json.dumps({
                "type": getattr(exc, "type", type(exc).__name__), "message": str(exc),
                "traceback": getattr(exc, "remote_traceback", "") or traceback.format_exc()})
            return response
        response.success = True
        response.result.type_url = _RESULT_TYPE_URL
        response.result.value = json.dumps(value).encode()
        return response

    def ExecuteTool(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the host runs no Python tools")

    def ExecuteStreamingTool(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the host runs no Python tools")

    def StreamTelemetry(self, request_iterator: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the host reads no telemetry stream")


def _argument(value: Any) -> Any:
    """One argument as Snakepit's ``call_elixir_tool`` packed it."""
    url = value.type_url
    if url.endswith("google.protobuf.StringValue"):
        return wrappers_pb2.StringValue.FromString(value.value).value
    if url.endswith("google.protobuf.BoolValue"):
        return wrappers_pb2.BoolValue.FromString(value.value).value
    return json.loads(value.value) if value.value else None


def serve(path: str, pb2: ModuleType, pb2_grpc: ModuleType, host_tools: str = "",
          max_payload_bytes: int = 64 * 1024 * 1024) -> tuple[Any, HostService]:
    """Serve a ``HostService`` on the Unix socket ``path`` (mode 0600); returns the started
    server and the service.

    Raises:
        RuntimeError: the socket could not be bound.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a stale socket of an earlier process of this worker
    service = HostService(pb2, host_tools, max_payload_bytes)
    server = grpc.server(ThreadPoolExecutor(4, thread_name_prefix="snakepit-host"),
                         options=[("grpc.so_reuseport", 0)])
    pb2_grpc.add_BridgeServiceServicer_to_server(service, server)
    old_umask = os.umask(0o177)
    try:
        bound = server.add_insecure_port("unix:" + path)
    finally:
        os.umask(old_umask)
    if not bound:
        raise RuntimeError(f"cannot bind the Snakepit host service on {path!r}")
    os.chmod(path, 0o600)
    server.start()
    return server, service
