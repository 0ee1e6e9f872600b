"""The worker side of the wire: ``BridgeService`` over one adapter (``listener`` serves it).

Data flow inside one worker process::

    caller --gRPC--> grpc.server (ThreadPoolExecutor: capacity + 4 threads)
      ExecuteTool           find tool -> decode args -> bind -> call -> encode -> reply
      ExecuteStreamingTool  the same, one ToolChunk per yielded value, then a final chunk
      ExecuteBatch          the same for each item in turn, replies streamed (batch.py)
        async tools         run_coroutine_threadsafe on the one asyncio loop thread
      Ping, Heartbeat, Describe, sessions, health: answered from memory

The four spare threads (``listener.BridgeServer`` sizes the pool) let ``Ping`` / ``Heartbeat``
/ health answer while ``capacity`` tools run. A failed tool call is a normal reply carrying
``ToolFailure{category, type, message, traceback}`` (categories: "tool", "unknown_tool",
"invalid_arguments", "serialization", "payload_too_large", "internal"); gRPC status codes are
left to transport problems, deadlines and a dying process. ``ExecuteTool`` is the benchmarked
hot path: keep it free of logging, extra locks and allocations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc
from snakepit_actors.errors import SerializationError
from snakepit_actors.json_codec import decode_value, encode_value

from .adapter import (
    CTX_PARAM,
    AsyncRunner,
    BaseAdapter,
    BoundTool,
    SessionContext,
    adapter_name,
)
from .batch import run_batch
from .failures import Refused as _Refused
from .failures import failure_from as _failure_from
from .failures import usage as _usage
from .host_client import HostToolClient

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "PAYLOAD_OVERHEAD_BYTES", "BridgeServicer"]

#: Added to ``max_payload_bytes`` for gRPC's message limits: room for the envelope, so that an
#: oversized payload is refused by the bridge with a clear error rather than by gRPC.
PAYLOAD_OVERHEAD_BYTES = 1024 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_NO_DEADLINE_S = 1e7


def _remaining_s(context: grpc.ServicerContext) -> float | None:
    """Seconds left before the call's deadline; None when it has none (gRPC says ~forever)."""
    remaining: float | None = context.time_remaining()
    return None if remaining is None or remaining > _NO_DEADLINE_S else max(0.0, remaining)


def rss_bytes() -> int:
    """Resident set size of this process in bytes (0 when it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return 0


def _check_deadline(request: bridge_pb2.ExecuteToolRequest,
                    context: grpc.ServicerContext) -> None:
    """Abort with DEADLINE_EXCEEDED if the request's own deadline already passed."""
    if time.time() > request.deadline_unix_s:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                      f"the deadline of request {request.request_id!r} passed before it ran")


class BridgeServicer(bridge_pb2_grpc.BridgeServiceServicer):
    """``BridgeService`` over one adapter instance. Thread-safe: gRPC calls it from many threads.

    Args:
        adapter: the adapter instance (already set up).
        worker_id: reported by Ping / Describe and given to ``SessionContext``.
        max_payload_bytes: the largest encoded args / result / chunk accepted or sent.
        host_tools: the host's tool service address ("" = none): ``ctx.call_host_tool``.
    """

    def __init__(self, adapter: BaseAdapter, *, worker_id: str,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 host_tools: str = "") -> None:
        self._adapter = adapter
        self._host = HostToolClient(host_tools, max_payload_bytes) if host_tools else None
        self._tools = adapter.tools()
        self._available = sorted(self._tools)
        self._worker_id = worker_id
        self._pid = os.getpid()
        self._max_payload = max_payload_bytes
        self._sessions: dict[str, SessionContext] = {}
        self._lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}  # running request id -> cancellation
        self._in_flight = 0
        self._served = 0
        # Plain tools of an adapter not declared thread-safe run one at a time.
        self._serial = contextlib.nullcontext() if adapter.thread_safe else threading.Lock()
        has_async = any(t.info.is_async for t in self._tools.values())
        self._runner = AsyncRunner() if has_async else None

    def close(self) -> None:
        """Stop the asyncio loop thread (if any). Call after the gRPC server stopped."""
        if self._runner is not None:
            self._runner.stop()

    # --- the request path -----------------------------------------------------------------

    def ExecuteTool(self, request: bridge_pb2.ExecuteToolRequest,
                    context: grpc.ServicerContext) -> bridge_pb2.ExecuteToolResponse:
        """Run one tool; every failure becomes a ``ToolFailure`` in the reply."""
        if request.deadline_unix_s:
            _check_deadline(request, context)
        return self.run_one(request, context)

    def ExecuteBatch(self, request: bridge_pb2.ExecuteBatchRequest,
                     context: grpc.ServicerContext) -> Iterator[bridge_pb2.ExecuteBatchReply]:
        """Run the items one after another; stream their replies in order (``batch.py``)."""
        return run_batch(self, request, context)

    def run_one(self, request: bridge_pb2.ExecuteToolRequest,
                context: grpc.ServicerContext) -> bridge_pb2.ExecuteToolResponse:
        """``ExecuteTool`` without the deadline check: one item of a batch, too."""
        started = time.perf_counter()
        with self._lock:
            self._in_flight += 1
        try:
            tool, kwargs = self._prepare(request, context)
            try:
                result = self._call(tool, kwargs, context)
            except Exception as exc:
                raise _failure_from(exc) from None
            data = self._encode(result, request.tool, "result")
            return bridge_pb2.ExecuteToolResponse(
                request_id=request.request_id, result_json=data,
                execution_time_ms=(time.perf_counter() - started) * 1000.0)
        except _Refused as refused:
            failure = refused.failure
        except Exception as exc:
            failure = _failure_from(exc, "internal").failure
        finally:
            with self._lock:
                self._in_flight -= 1
                self._served += 1
        return bridge_pb2.ExecuteToolResponse(
            request_id=request.request_id, error=failure,
            execution_time_ms=(time.perf_counter() - started) * 1000.0)

    def ExecuteStreamingTool(self, request: bridge_pb2.ExecuteToolRequest,
                             context: grpc.ServicerContext) -> Iterator[bridge_pb2.ToolChunk]:
        """Yield one chunk per value of a generator tool, then a final chunk.

        A non-generator tool yields its single result. The final chunk carries the error when
        the tool raised or a value could not be encoded (no further values are produced).
        """
        rid = request.request_id
        chunk_id = 0
        failure: bridge_pb2.ToolFailure | None = None
        if request.deadline_unix_s:
            _check_deadline(request, context)
        with self._lock:
            self._in_flight += 1
        try:
            try:
                tool, kwargs = self._prepare(request, context)
                for value in self._iterate(tool, kwargs, context):
                    data = self._encode(value, request.tool, "chunk")
                    yield bridge_pb2.ToolChunk(request_id=rid, chunk_id=chunk_id, data_json=data)
                    chunk_id += 1
            except _Refused as refused:
                failure = refused.failure
            except Exception as exc:
                failure = _failure_from(exc).failure
            yield bridge_pb2.ToolChunk(request_id=rid, chunk_id=chunk_id, is_final=True,
                                       error=failure)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._served += 1

    def _prepare(self, request: bridge_pb2.ExecuteToolRequest, context: grpc.ServicerContext,
                 ) -> tuple[BoundTool, dict[str, Any]]:
        """Find the tool, decode and bind the arguments, add ``ctx``. Raises ``_Refused``."""
        name = request.tool
        tool = self._tools.get(name)
        if tool is None:
            raise _Refused("unknown_tool", "LookupError",
                           f"unknown tool {name!r}; available tools: {self._available}")
        raw = request.args_json
        if len(raw) > self._max_payload:
            raise _Refused("payload_too_large", "ValueError",
                           f"args of tool {name!r} are {len(raw)} bytes, over the limit of "
                           f"{self._max_payload} bytes (max_payload_bytes)")
        try:
            args = decode_value(raw, "args") if raw else {}
        except SerializationError as exc:
            raise _Refused("invalid_arguments" if exc.details.get("not_json") else "serialization",
                           "SerializationError", f"{exc.message} (tool {name!r})") from None
        if type(args) is not dict:
            raise _Refused("invalid_arguments", "TypeError",
                           f"the args of tool {name!r} must be a JSON object, "
                           f"got {type(args).__name__}: {raw[:80]!r}")
        try:
            tool.signature.bind(**args)
        except TypeError as exc:
            raise _Refused("invalid_arguments", "TypeError",
                           f"invalid arguments for tool {name}{_usage(tool)}: {exc}") from None
        if tool.info.takes_ctx:
            if CTX_PARAM in args:
                raise _Refused("invalid_arguments", "TypeError",
                               f"tool {name!r}: 'ctx' is reserved for the session context and "
                               "cannot be passed as an argument")
            args[CTX_PARAM] = self._request_context(request, context)
        return tool, args

    def _call(self, tool: BoundTool, kwargs: dict[str, Any],
              context: grpc.ServicerContext) -> Any:
        info = tool.info
        if not info.is_async:
            with self._serial:
                result = tool.func(**kwargs)
                return list(result) if info.streaming else result
        assert self._runner is not None
        if info.streaming:
            return list(self._runner.iterate(tool.func(**kwargs), _remaining_s(context)))
        return self._runner.run(tool.func(**kwargs), _remaining_s(context))

    def _iterate(self, tool: BoundTool, kwargs: dict[str, Any],
                 context: grpc.ServicerContext) -> Iterator[Any]:
        info = tool.info
        if not info.streaming:
            yield self._call(tool, kwargs, context)
        elif info.is_async:
            assert self._runner is not None
            yield from self._runner.iterate(tool.func(**kwargs), _remaining_s(context))
        else:
            with self._serial:
                yield from tool.func(**kwargs)

    def _encode(self, value: Any, name: str, what: str) -> bytes:
        """``value`` as JSON (``json_codec``'s rule); failures start with ``what`` ("result",
        "chunk"): the host reads the direction from it (``failure_to_error``)."""
        try:
            data = encode_value(value, what)
        except SerializationError as exc:
            raise _Refused("serialization", "SerializationError",
                           f"{exc.message} (tool {name!r})") from None
        if len(data) > self._max_payload:
            raise _Refused("payload_too_large", "ValueError",
                           f"{what} of tool {name!r} is {len(data)} bytes, over the limit of "
                           f"{self._max_payload} bytes (max_payload_bytes): return less, or "
                           "raise max_payload_bytes in the PoolConfig")
        return data

    # --- sessions and health of the process -----------------------------------------------

    def _request_context(self, request: bridge_pb2.ExecuteToolRequest,
                         context: grpc.ServicerContext) -> SessionContext:
        """The session's context as seen by one request: its cancellation is set when the
        call ends for any reason (cancelled by the caller, deadline passed, answered)."""
        cancel, rid = threading.Event(), request.request_id
        with self._lock:
            self._cancels[rid] = cancel

        def ended() -> None:
            cancel.set()
            with self._lock:
                if self._cancels.get(rid) is cancel:
                    del self._cancels[rid]

        context.add_callback(ended)
        remaining = _remaining_s(context)
        moved = bool(request.session_id and request.session_moved_from)
        session = (self._moved_in(request.session_id) if moved
                   else self._session(request.session_id))
        return dataclasses.replace(
            session, request_id=request.request_id, cancel_event=cancel, host=self._host,
            deadline_s=None if remaining is None else time.monotonic() + remaining,
            session_moved=moved)

    def _moved_in(self, session_id: str) -> SessionContext:
        """The sender says the session moved here (``session_moved_from``): its state lives
        elsewhere, so it starts afresh; a stale copy from an earlier visit here is replaced
        (its metadata kept). The sender decides: the bridge cannot know where else it ran."""
        with self._lock:
            known = self._sessions.get(session_id)
            fresh = SessionContext(session_id, self._worker_id,
                                   metadata=known.metadata if known is not None else {})
            self._sessions[session_id] = fresh
        return fresh

    def _session(self, session_id: str) -> SessionContext:
        if not session_id:
            return SessionContext("", self._worker_id)
        ctx = self._sessions.get(session_id)
        if ctx is None:
            with self._lock:
                ctx = self._sessions.setdefault(session_id,
                                                SessionContext(session_id, self._worker_id))
        return ctx

    def InitializeSession(self, request: bridge_pb2.InitializeSessionRequest,
                          context: grpc.ServicerContext) -> bridge_pb2.InitializeSessionResponse:
        """Create the session's context (idempotent); merge the given metadata into it."""
        if not request.session_id:
            return bridge_pb2.InitializeSessionResponse(success=False,
                                                        error_message="session_id is empty")
        self._session(request.session_id).metadata.update(request.metadata)
        return bridge_pb2.InitializeSessionResponse(success=True)

    def CleanupSession(self, request: bridge_pb2.CleanupSessionRequest,
                       context: grpc.ServicerContext) -> bridge_pb2.CleanupSessionResponse:
        """Forget the session's context; ``resources_cleaned`` is 1 if it existed."""
        with self._lock:
            existed = self._sessions.pop(request.session_id, None) is not None
        return bridge_pb2.CleanupSessionResponse(success=True, resources_cleaned=int(existed))

    def CancelTool(self, request: bridge_pb2.CancelToolRequest,
                   context: grpc.ServicerContext) -> bridge_pb2.CancelToolResponse:
        """Set the cancellation of the running request ``request_id`` (its tool sees
        ``ctx.cancelled``); ``found`` is False if no such request runs here."""
        with self._lock:
            cancel = self._cancels.get(request.request_id)
        if cancel is not None:
            cancel.set()
        return bridge_pb2.CancelToolResponse(found=cancel is not None)

    def in_flight(self) -> int:
        """The tool calls running now (a beat line's answer)."""
        return self._in_flight

    def Ping(self, request: bridge_pb2.PingRequest,
             context: grpc.ServicerContext) -> bridge_pb2.PingResponse:
        """Echo the message (default "pong") with this worker's id and pid."""
        return bridge_pb2.PingResponse(message=request.message or "pong",
                                       server_time_ns=time.time_ns(),
                                       worker_id=self._worker_id, pid=self._pid)

    def Heartbeat(self, request: bridge_pb2.HeartbeatRequest,
                  context: grpc.ServicerContext) -> bridge_pb2.HeartbeatResponse:
        """Load figures: requests in flight, requests served, resident memory."""
        return bridge_pb2.HeartbeatResponse(
            server_time_ns=time.time_ns(), pid=self._pid, in_flight=self._in_flight,
            rss_bytes=rss_bytes(), requests_served=self._served)

    def Describe(self, request: bridge_pb2.DescribeRequest,
                 context: grpc.ServicerContext) -> bridge_pb2.DescribeResponse:
        """The adapter's name and tools."""
        specs = [bridge_pb2.ToolSpec(name=name, description=t.info.description,
                                     streaming=t.info.streaming, is_async=t.info.is_async)
                 for name, t in self._tools.items()]
        return bridge_pb2.DescribeResponse(adapter=adapter_name(type(self._adapter)),
                                           worker_id=self._worker_id, pid=self._pid,
                                           tools=specs)
