"""The interface every wire protocol implements (see the package docstring)."""

from __future__ import annotations

from typing import Any, Protocol

from snakepit_actors.errors import SnakepitError

#: The reserved host-tool name whose call answers the names of the registered host tools
#: (Snakepit's workers list the host's tools before calling one: GetExposedElixirTools).
LIST_HOST_TOOLS = "snakepit_actors.list_host_tools"

#: One streamed message, read: (is it the last, its value (if any), the failure it carries).
Chunk = tuple[bool, Any, SnakepitError | None]
NO_VALUE: Any = object()  # a chunk that carries no value (an empty final chunk)


class WireProtocol(Protocol):
    """What the host needs from a worker protocol. Every method may raise grpc errors where it
    calls; none blocks except ``ping``."""

    name: str

    def stub(self, channel: Any) -> Any:
        """The service stub on ``channel``."""

    def ping(self, stub: Any, timeout_s: float) -> None:
        """One Ping, waiting for the process to serve (raises ``grpc.RpcError``)."""

    def request(self, request_id: str, session_id: str, tool: str, args_json: bytes,
                deadline_unix_s: float, session_moved_from: str) -> Any:
        """The ExecuteTool / ExecuteStreamingTool request (``args_json``: a JSON object)."""

    def succeeded(self, response: Any) -> bool:
        """Whether a unary response carries a result (cheap: no decoding)."""

    def decode(self, response: Any, worker_id: str) -> tuple[Any, SnakepitError | None]:
        """A unary response as (value, None) or (None, the typed error)."""

    def chunk(self, chunk: Any, worker_id: str) -> Chunk:
        """One streamed message (value ``NO_VALUE`` when it carries none)."""

    def call_failure(self, exc: Any, worker_id: str) -> SnakepitError | None:
        """The typed error a call's gRPC status stands for when the process answered it (a
        tool failed), or None: the status means what it means for every protocol (deadline,
        cancelled, the process is lost)."""

    def heartbeat(self, stub: Any, timeout_s: float) -> Any:
        """A liveness call as a grpc future (an answer with ``in_flight`` counts the tool calls
        running in the process; one without cannot say)."""


    def cleanup_session(self, stub: Any, session_id: str) -> Any:
        """Free ``session_id``'s state in the process, as a grpc future."""

    def cancel(self, stub: Any, request_id: str) -> Any:
        """Ask the process to cancel the running request's tool, as a grpc future (None: the
        protocol has no such call; only a recycle stops the tool)."""


