"""OpenTelemetry on the caller's side: a span per request, whose context travels to the worker.

    pool.execute(tool)  -> span "snakepit.execute" (CLIENT; attributes snakepit.tool, .pool,
                           .session_id; an error is recorded on it)
        Execute.trace_context = W3C traceparent/tracestate of the current context
        direct path: gRPC metadata of the call;  actor path: the Execute message carries it
        to the Worker, whose gRPC call sends it as metadata
    worker process: bridge/tracing.py continues the trace (span "snakepit.tool")

Active only when the ``opentelemetry`` API is installed (the ``[otel]`` extra) and your
program set a tracer provider (``trace.set_tracer_provider``, or the SDK's auto
configuration); until then nothing is done per call but one check. Streams
(``execute_stream*``) get no span of their own but carry the current context (your span) to
the worker.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

#: The W3C trace-context keys sent to workers (gRPC metadata keys are lower case).
TRACE_KEYS = ("traceparent", "tracestate")

AVAILABLE = importlib.util.find_spec("opentelemetry") is not None
#: How long "no tracer provider yet" is trusted (seconds): requests made within this time of
#: your ``set_tracer_provider`` may go untraced.
RECHECK_S = 1.0
_modules: tuple[Any, Any, Any] | None = None
_configured = False
_checked_at = -RECHECK_S

F = TypeVar("F", bound=Callable[..., Any])


def _otel() -> tuple[Any, Any, Any]:
    """(trace, propagate, the library's tracer), imported on the first traced call."""
    global _modules
    if _modules is None:
        trace = importlib.import_module("opentelemetry.trace")
        propagate = importlib.import_module("opentelemetry.propagate")
        _modules = (trace, propagate, trace.get_tracer("snakepit_actors"))
    return _modules


def configured() -> bool:
    """Whether your program set an OpenTelemetry tracer provider (before that, the API's
    proxy records nothing, and the library skips its spans: a clock read a call instead of
    about 20 us of no-op spans). A provider, once set, stays; its absence is re-checked at
    most every ``RECHECK_S``."""
    global _configured, _checked_at
    if _configured or not AVAILABLE:
        return _configured
    now = time.monotonic()
    if now - _checked_at >= RECHECK_S:
        _checked_at = now
        trace = _otel()[0]
        _configured = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _configured


def trace_context() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata pairs; () without OpenTelemetry, a tracer
    provider or an active span."""
    if not configured():
        return ()
    carrier: dict[str, str] = {}
    _otel()[1].inject(carrier)
    return tuple((k, v) for k, v in carrier.items() if k in TRACE_KEYS)


def with_trace(metadata: tuple[tuple[str, str], ...] | None,
               trace: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...] | None:
    """``metadata`` (the pool's token, or None) plus the request's trace context."""
    if not trace:
        return metadata
    return (*(metadata or ()), *trace)


def _span(pool: Any, tool: str, session_id: str | None) -> Any:
    trace, _, tracer = _otel()
    return tracer.start_as_current_span(
        "snakepit.execute", kind=trace.SpanKind.CLIENT,
        attributes={"snakepit.tool": str(tool), "snakepit.pool": pool.config.name,
                    "snakepit.session_id": session_id or "", "rpc.system": "grpc"})


def traced(method: F) -> F:
    """Decorates ``Pool.execute`` / ``execute_async``: the call runs inside a CLIENT span (a
    plain call when OpenTelemetry is not installed)."""
    if not AVAILABLE:
        return method
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def traced_async(self: Any, tool: str, *args: Any, **kwargs: Any) -> Any:
            if not configured():
                return await method(self, tool, *args, **kwargs)
            with _span(self, tool, kwargs.get("session_id")):
                return await method(self, tool, *args, **kwargs)

        return traced_async  # type: ignore[return-value]

    @functools.wraps(method)
    def traced_sync(self: Any, tool: str, *args: Any, **kwargs: Any) -> Any:
        if not configured():
            return method(self, tool, *args, **kwargs)
        with _span(self, tool, kwargs.get("session_id")):
            return method(self, tool, *args, **kwargs)

    return traced_sync  # type: ignore[return-value]
