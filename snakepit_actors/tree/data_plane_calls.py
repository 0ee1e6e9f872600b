"""The DataPlane's gRPC side: one channel per worker process, blocking unary calls on the
persistent ``CallThreads``, and what a finished call means for its caller.

    DataPlane (actor thread) ── DataPlaneCalls.start(call) ──> CallThreads ──gRPC──> process
              ^                                                     │
              └──── wake pipe <── finished FIFO (call, response | exception) ──┘

The call threads never call Thespian: a finished call goes into a FIFO and the wake pipe the
actor watches gets one byte. Only the DataPlane imports this module, in its own leaf actor
process (it creates no children), so grpc is imported lazily, when the DataPlane starts.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from dataclasses import dataclass
from typing import Any

from snakepit_actors.core.leases import Lease
from snakepit_actors.errors import PayloadTooLargeError, RequestTimeoutError, SnakepitError
from snakepit_actors.json_codec import encode_args
from snakepit_actors.messages import Execute, ExecuteFailed, ExecuteResult
from snakepit_actors.protocols import WireProtocol, wire_for
from snakepit_actors.tree.call_threads import CallThreads
from snakepit_actors.worker_token import token_metadata

_CHANNEL_OVERHEAD_BYTES = 1024 * 1024


@dataclass(eq=False, slots=True)
class Call:
    """One request in the DataPlane, from its arrival to its reply (hashable by identity: the
    lease broker queues it while it waits for a lease)."""

    request: Execute
    reply_to: Any
    arrived: float  # Unix seconds: when the DataPlane got it (its queue wait counts from here)
    started: float = 0.0  # perf_counter: when its gRPC call started
    attempt: int = 1
    lease: Lease | None = None
    response: Any = None
    error: BaseException | None = None
    done: bool = False  # answered (or given up): nothing more happens to it


@dataclass(frozen=True, slots=True)
class Ended:
    """How a call ended: ``reply`` for the caller, and what it means for the lease
    (``outcome``: "ok", "recycle" or "lost", with ``detail`` for the last two)."""

    reply: ExecuteResult | ExecuteFailed | None
    outcome: str = "ok"
    detail: str = ""


class DataPlaneCalls:
    """Channels, call threads and the finished FIFO of one DataPlane.

    Args:
        slots: call threads (the pool's worker slots: one per lease it can hold).
        max_payload_bytes: the pool's payload limit.
        token: the pool's worker token (sent with every call).
        protocol: the workers' wire protocol name.
    """

    def __init__(self, slots: int, max_payload_bytes: int, token: str, protocol: str) -> None:
        import grpc

        self._grpc = grpc
        self.wire: WireProtocol = wire_for(protocol)
        self._limit = max_payload_bytes
        self._metadata = token_metadata(token) or ()
        self._channels: dict[str, tuple[int, Any, Any]] = {}  # endpoint -> (pid, channel, stub)
        self.finished: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        self._threads = CallThreads(slots, self._wake, hold_s=0.0, name="snakepit-dataplane")

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def drain_wake(self) -> None:
        """Actor thread: empty the wake pipe (before reading ``finished``)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.wake_fd, 4096):
                pass

    def start(self, call: Call, lease: Lease) -> None:
        """Start ``call`` on ``lease`` (a call thread is always free: one per lease).

        Raises:
            PayloadTooLargeError, SerializationError: its args cannot be sent.
        """
        req = call.request
        args = req.args_json if req.args_json is not None else encode_args(
            req.tool, req.args, self._limit)
        if len(args) > self._limit:
            raise PayloadTooLargeError(
                f"args of {req.tool!r} are {len(args)} bytes, over max_payload_bytes="
                f"{self._limit}", reason="args",
                details={"size_bytes": len(args), "limit_bytes": self._limit})
        message = self.wire.request(req.request_id, "", req.tool, args,
                                    req.deadline_unix_s or 0.0, lease.session_from)
        method = self._stub(lease).ExecuteTool
        metadata = self._metadata + req.trace_context or None
        deadline = req.deadline_unix_s
        call.lease = lease
        call.started = time.perf_counter()
        finished = self.finished

        def run() -> None:
            try:
                call.response = method(message, metadata=metadata, timeout=None
                                       if deadline is None else max(0.001, deadline - time.time()))
            except BaseException as exc:  # carried to the actor thread
                call.error = exc
            finished.put(call)

        self._threads.submit(run)

    def ended(self, call: Call, worker_id: str) -> Ended:
        """What the finished ``call`` on ``worker_id`` means (actor thread)."""
        rid = call.request.request_id
        elapsed_ms = (time.perf_counter() - call.started) * 1000.0
        exc = call.error
        if exc is None:
            value, error = self.wire.decode(call.response, worker_id)
            return Ended(ExecuteFailed(rid, error) if error is not None
                         else ExecuteResult(rid, value, worker_id, elapsed_ms))
        grpc = self._grpc
        code = exc.code() if isinstance(exc, grpc.RpcError) else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Ended(ExecuteFailed(rid, RequestTimeoutError(
                f"request {rid} ({call.request.tool!r}) passed its deadline on worker "
                f"{worker_id}; the worker is recycled to cancel it",
                details={"worker_id": worker_id})), "recycle",
                f"request {rid} passed its deadline")
        failure: SnakepitError | None = None if code is None else self.wire.call_failure(
            exc, worker_id)
        if failure is not None:  # the process answered: the tool failed
            return Ended(ExecuteFailed(rid, failure))
        detail = (f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
                  if code is not None else f"{type(exc).__name__}: {exc}")
        return Ended(None, "lost", detail)

    def _stub(self, lease: Lease) -> Any:
        """The stub for the lease's process: one channel per endpoint, replaced when a new
        process (pid) serves it."""
        if lease.stub is not None:
            return lease.stub
        entry = self._channels.get(lease.endpoint)
        if entry is None or entry[0] != lease.pid:
            if entry is not None:
                entry[1].close()
            limit = self._limit + _CHANNEL_OVERHEAD_BYTES
            channel = self._grpc.insecure_channel(lease.endpoint, options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit), ("grpc.enable_http_proxy", 0),
                ("grpc.use_local_subchannel_pool", 1)])
            entry = (lease.pid, channel, self.wire.stub(channel))
            self._channels[lease.endpoint] = entry
        lease.stub = entry[2]
        return lease.stub

    def stop(self) -> None:
        """Stop the call threads (running calls end on their own) and close the channels."""
        self._threads.stop()
        for _pid, channel, _stub in self._channels.values():
            with contextlib.suppress(Exception):
                channel.close()
        self._channels.clear()
