"""OpenTelemetry in the worker process: a tool call joins its caller's trace.

    caller: span "snakepit.execute" --gRPC metadata traceparent / tracestate-->
    worker: TraceContext interceptor: extract the context, span "snakepit.tool" (SERVER)
        around the call -> your tool's own spans are its children, in the caller's trace

Installed by ``listener.BridgeServer`` only when the ``opentelemetry`` package is importable
in the worker process (the ``[otel]`` extra); a call without ``traceparent`` passes untouched.
Spans are recorded and exported only if the adapter configured an OpenTelemetry SDK
``TracerProvider`` (e.g. in ``setup()``); otherwise the API's no-op provider costs next to
nothing. Never imports thespian or the host side.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from typing import Any

import grpc

#: The W3C trace-context metadata keys carried by a traced call.
TRACE_KEYS = ("traceparent", "tracestate")


def tracing_available() -> bool:
    """Whether the ``opentelemetry`` API can be imported here (without importing it)."""
    return importlib.util.find_spec("opentelemetry") is not None


def preload() -> bool:
    """Import what ``TraceContext`` needs, if ``opentelemetry`` is installed. A fork server's
    template does, so its workers share it instead of each importing it at its first traced
    call (about 25 ms of CPU and 1-2 MB each). Starts no thread. Returns whether it is
    installed."""
    if not tracing_available():
        return False
    from opentelemetry import context, propagate, trace  # noqa: F401

    return True


class TraceContext(grpc.ServerInterceptor):
    """Runs every ``ExecuteTool`` / ``ExecuteStreamingTool`` call that carries a
    ``traceparent`` inside a SERVER span whose parent is the caller's span."""

    _METHODS = ("/ExecuteTool", "/ExecuteStreamingTool")

    def __init__(self) -> None:
        self._loaded = False  # OpenTelemetry is imported by the first traced call (``_load``)
        self._lock = threading.Lock()
        self._context: Any = None
        self._propagate: Any = None
        self._tracer: Any = None
        self._server_kind: Any = None

    def _load(self) -> None:
        """Import OpenTelemetry once, at the first call that carries a ``traceparent``: a
        spawned worker then does not pay for it (about 25 ms of CPU) unless a caller traces."""
        with self._lock:
            if self._loaded:
                return
            from opentelemetry import context, propagate, trace

            self._context, self._propagate = context, propagate
            self._tracer = trace.get_tracer("snakepit_actors.bridge")
            self._server_kind = trace.SpanKind.SERVER
            self._loaded = True

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not str(details.method).endswith(self._METHODS):
            return handler
        carrier = {k: v for k, v in details.invocation_metadata or () if k in TRACE_KEYS}
        if "traceparent" not in carrier:
            return handler
        if not self._loaded:
            self._load()
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, carrier),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            self._unary(handler.unary_unary, carrier),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def _span(self, request: Any) -> Any:
        return self._tracer.start_as_current_span(
            "snakepit.tool", kind=self._server_kind,
            attributes={"snakepit.tool": request.tool, "snakepit.request_id": request.request_id,
                        "rpc.system": "grpc"})

    def _unary(self, behaviour: Any, carrier: dict[str, str]) -> Any:
        def traced(request: Any, context: Any) -> Any:
            token = self._context.attach(self._propagate.extract(carrier))
            try:
                with self._span(request):
                    return behaviour(request, context)
            finally:
                self._context.detach(token)

        return traced

    def _streaming(self, behaviour: Any, carrier: dict[str, str]) -> Any:
        def traced(request: Any, context: Any) -> Iterator[Any]:
            token = self._context.attach(self._propagate.extract(carrier))
            try:
                with self._span(request):
                    yield from behaviour(request, context)
            finally:
                self._context.detach(token)

        return traced
