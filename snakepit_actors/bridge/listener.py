"""Where a worker listens: the gRPC server around one ``BridgeServicer`` (bind to a 0600 unix
socket or an exact TCP host, start, stop) and the standard ``grpc.health.v1.Health`` service.

``__main__`` builds one ``BridgeServer`` per worker process; ``server.BridgeServicer`` answers
the calls.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from snakepit_actors._proto import bridge_pb2_grpc, health_pb2, health_pb2_grpc
from snakepit_actors.worker_token import TOKEN_METADATA_KEY

from .adapter import BaseAdapter
from .server import DEFAULT_MAX_PAYLOAD_BYTES, PAYLOAD_OVERHEAD_BYTES, BridgeServicer

__all__ = ["BridgeServer", "HealthServicer"]

#: Threads beyond ``capacity``, so that ``Ping`` / ``Heartbeat`` / health answer while tools run.
SPARE_THREADS = 4
_UNIX_PATH_MAX = 107
_SERVICE_NAMES = frozenset({"", "snakepit.bridge.v1.BridgeService"})


class HealthServicer(health_pb2_grpc.HealthServicer):
    """The standard health service: SERVING until shutdown begins, then NOT_SERVING.

    Args:
        stopping: set when the server begins to shut down.
    """

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping

    def _status(self, service: str) -> health_pb2.HealthCheckResponse.ServingStatus:
        if service not in _SERVICE_NAMES:
            return health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        if self._stopping.is_set():
            return health_pb2.HealthCheckResponse.NOT_SERVING
        return health_pb2.HealthCheckResponse.SERVING

    def Check(self, request: health_pb2.HealthCheckRequest,
              context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        """The current status; NOT_FOUND for a service this worker does not serve."""
        if request.service not in _SERVICE_NAMES:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self._status(request.service))

    def Watch(self, request: health_pb2.HealthCheckRequest,
              context: grpc.ServicerContext) -> Iterator[health_pb2.HealthCheckResponse]:
        """Send the status now, then NOT_SERVING once shutdown begins. Holds one thread."""
        yield health_pb2.HealthCheckResponse(status=self._status(request.service))
        done = threading.Event()
        if not context.add_callback(done.set):
            return  # the call already ended
        while not done.wait(0.25):
            if self._stopping.is_set():
                yield health_pb2.HealthCheckResponse(status=self._status(request.service))
                return


class RequireToken(grpc.ServerInterceptor):
    """Refuses (UNAUTHENTICATED, before the handler runs) every call whose metadata lacks the
    pool's token (``snakepit_actors.worker_token``)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        for key, value in details.invocation_metadata or ():
            if key == TOKEN_METADATA_KEY:
                given = value.encode() if isinstance(value, str) else bytes(value)
                if hmac.compare_digest(given, self._token):
                    return handler
        if handler is None:
            return None

        def refuse(request: Any, context: Any) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          f"call {details.method} without the pool's token "
                          f"(metadata {TOKEN_METADATA_KEY!r}): only the pool may call its workers")

        kind = {(False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                (True, True): grpc.stream_stream_rpc_method_handler}
        return kind[(handler.request_streaming, handler.response_streaming)](refuse)


def _interceptors(token: str) -> list[Any] | None:
    """The token check first (an unauthenticated call never reaches tracing), then the
    caller's trace context when OpenTelemetry is installed here (``tracing.py``)."""
    from .tracing import TraceContext, tracing_available

    found: list[Any] = [RequireToken(token)] if token else []
    if tracing_available():
        found.append(TraceContext())
    return found or None


class BridgeServer:
    """A gRPC server for one adapter: build, ``bind``, ``start``, ``stop``.

    Args:
        adapter: the adapter instance (already set up).
        worker_id: this worker's id.
        capacity: tool calls expected at once; the server gets ``capacity + 4`` threads.
        max_payload_bytes: the largest args / result; gRPC's limits get 1 MiB more.
        token: the pool's token every call must carry ("" = none required).
    """

    def __init__(self, adapter: BaseAdapter, *, worker_id: str, capacity: int = 1,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 host_tools: str = "", token: str = "") -> None:
        limit = max_payload_bytes + PAYLOAD_OVERHEAD_BYTES
        self.stopping = threading.Event()
        self.servicer = BridgeServicer(adapter, worker_id=worker_id,
                                       max_payload_bytes=max_payload_bytes,
                                       host_tools=host_tools)
        self._executor = ThreadPoolExecutor(max_workers=capacity + SPARE_THREADS,
                                            thread_name_prefix="bridge-rpc")
        self._server = grpc.server(self._executor, options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ], interceptors=_interceptors(token))
        health = HealthServicer(self.stopping)
        bridge_pb2_grpc.add_BridgeServiceServicer_to_server(
            self.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(
            health, self._server)
        self.unix_path: str | None = None

    def bind(self, listen: str) -> str:
        """Listen on ``unix:PATH`` (socket file mode 0600) or ``HOST:PORT`` (port 0 = any).

        Args:
            listen: where to listen; TCP binds exactly the host given (use 127.0.0.1 / [::1]).

        Returns:
            The address callers should dial: ``unix:/abs/path`` or ``HOST:PORT`` (real port).

        Raises:
            ValueError: ``listen`` is malformed or the socket path too long.
            RuntimeError: gRPC could not bind.
        """
        if listen.startswith("unix:"):
            return self._bind_unix(listen.removeprefix("unix:").removeprefix("//"))
        host, sep, port_text = listen.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise ValueError(f"listen must be 'unix:PATH' or 'HOST:PORT' (e.g. 127.0.0.1:0), "
                             f"got {listen!r}")
        port = self._server.add_insecure_port(listen)
        if not port:
            raise RuntimeError(f"gRPC could not bind {listen!r}")
        return f"{host}:{port}"

    def _bind_unix(self, path: str) -> str:
        path = os.path.abspath(path)
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise ValueError(f"unix socket path is {len(os.fsencode(path))} bytes, over the "
                             f"{_UNIX_PATH_MAX}-byte limit: {path!r}; use a shorter run directory")
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier run with the same id
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o177)
        try:
            port = self._server.add_insecure_port(f"unix:{path}")
        finally:
            os.umask(old_umask)
        if not port:
            raise RuntimeError(f"gRPC could not bind unix socket {path!r}")
        os.chmod(path, 0o600)
        self.unix_path = path
        return f"unix:{path}"

    def start(self) -> None:
        """Start serving (returns at once)."""
        self._server.start()

    def stop(self, grace_s: float | None = 2.0) -> None:
        """Refuse new calls, let in-flight ones finish for ``grace_s``, then cancel the rest.

        Blocks until the server stopped. Removes the unix socket file.
        """
        self.begin_stop(grace_s).wait()
        self.finish_stop()

    def begin_stop(self, grace_s: float | None = 2.0) -> threading.Event:
        """``stop`` without the wait: the event is set once the server stopped (then call
        ``finish_stop``)."""
        self.stopping.set()
        stopped: threading.Event = self._server.stop(grace_s)
        return stopped

    def finish_stop(self) -> None:
        """What follows a stopped server: the servicer closes, the unix socket file goes."""
        self.servicer.close()
        self.remove_socket()

    def remove_socket(self) -> None:
        """Remove the unix socket file if there is one (safe to call at any time)."""
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)
