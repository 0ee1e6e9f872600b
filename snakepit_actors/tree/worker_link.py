"""The Worker actor's gRPC link to its process: the channel, the calls on it, and what their
ends mean for the caller.

    Worker (actor thread) ── WorkerLink.call / heartbeat / cleanup_session ──> process
           ^                                                                      │
           └── wake pipe <── done callbacks and StreamPumps (grpc threads) ───────┘

Unary calls run as blocking calls on the Worker's persistent ``CallThreads`` (a stream on a
``StreamPump``); their completion writes to the Worker's wake pipe, never calling Thespian from
another thread; the Worker then reads each finished call's ``outcome``: the reply for its
caller, or the process is lost. A request whose deadline passed while it waited in the call
threads' FIFO (sent ahead by the Pool) fails with ``QueueTimeoutError`` without running.
Only the Worker imports this module, from a leaf actor process, so grpc is imported lazily
here: the modules of actors that fork children must stay free of grpc.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

from snakepit_actors.core import pool_errors as errs
from snakepit_actors.errors import (
    PayloadTooLargeError,
    PoolNotReadyError,
    QueueTimeoutError,
    RequestCancelledError,
)
from snakepit_actors.json_codec import encode_args
from snakepit_actors.messages import ExecuteFailed, ExecuteResult, RunRequest, StreamChunk
from snakepit_actors.protocols import WireProtocol, wire_for
from snakepit_actors.tree.beat_line import BeatLine
from snakepit_actors.tree.call_threads import CallThreads
from snakepit_actors.tree.streaming import StreamPump
from snakepit_actors.worker_token import with_token

Wake = Callable[[Any], None]


@dataclass(slots=True)
class InFlight:
    """One call running in the process."""

    request: RunRequest
    future: Any  # a Future of the call threads, or the StreamPump of a streaming call
    started: float  # perf_counter: when the call started (a queued one: when it was queued)
    pump: StreamPump | None = None
    seq: int = 0  # the next StreamChunk's sequence number
    queue_expired: bool = False  # cancelled at its queue deadline, before a call thread took it
    never_ran: bool = False  # a call thread refused it: the process was found gone before
    cancelled: bool = False  # its caller cancelled it while it ran (``WorkerLink.cancel``)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a finished call ended: ``reply`` for its caller (``timed_out``: a
    ``RequestTimeoutError``), or ``lost`` (the process is gone or hopeless: the detail)."""

    reply: ExecuteResult | ExecuteFailed | None
    elapsed_ms: float
    timed_out: bool = False
    lost: str = ""
    handed_back: bool = False  # never started (a call before it timed out): back to the Pool


class WorkerLink:
    """The channel to one process (replaced when a swapped-in process takes over), speaking
    ``protocol`` (``protocols.wire_for``)."""

    def __init__(self, worker_id: str, max_payload_bytes: int, token: str = "",
                 protocol: str = "snakepit_actors", capacity: int = 1) -> None:
        self.worker_id = worker_id
        self.limit = max_payload_bytes
        self.token = token
        self.protocol = protocol
        self._wire: WireProtocol | None = None
        self._channel: Any = None  # opened by the first call (``_stub_now``)
        self._stub: Any = None
        self._address = ""
        self._beats: BeatLine | None = None  # heartbeats without gRPC (our protocol)
        self._capacity = capacity
        self._threads: CallThreads | None = None  # started by the first unary call
        self._cancels: set[Any] = set()  # CancelTool calls in flight (a dropped one is cancelled)
        self._broken = False  # a call found the process gone: queued calls do not start
        self._held = False  # a call passed its deadline: queued calls go back (until resume())

    def open(self, address: str, beat_fd: int | None = None) -> None:
        """Use the process at ``address`` and ping it (blocks up to 10 s): over its beat line
        ``beat_fd`` (our protocol; the gRPC channel then opens with the first call), else
        over a new gRPC channel.

        Raises:
            PoolNotReadyError: the process did not answer the ping.
        """
        import grpc

        self.close()
        self._wire = wire = wire_for(self.protocol)
        self._broken = self._held = False
        self._address = address
        if beat_fd is not None and self.protocol == "snakepit_actors":
            self._beats = BeatLine(beat_fd)
            if not self._beats.ping(10.0):
                raise self._no_ping(address, "no answer on its beat line")
            return
        try:
            wire.ping(self._stub_now(), 10.0)
        except grpc.RpcError as exc:
            raise self._no_ping(address, exc.code().name) from None

    def _no_ping(self, address: str, why: str) -> PoolNotReadyError:
        return PoolNotReadyError(
            f"worker {self.worker_id} announced {address} but did not answer a ping: {why}",
            reason="worker_start_failed", details={"worker_id": self.worker_id})

    def _stub_now(self) -> Any:
        """The stub of the channel to the process, opened on first use."""
        if self._stub is None:
            import grpc

            limit = self.limit + 1024 * 1024
            self._channel = grpc.insecure_channel(self._address, options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit), ("grpc.enable_http_proxy", 0)])
            self._stub = self._link_wire().stub(with_token(self._channel, self.token))
        return self._stub

    def watch_fds(self) -> list[int]:
        """What the Worker watches for beat answers (nothing on a gRPC-only link)."""
        return [self._beats.fd] if self._beats is not None and not self._beats.gone else []

    def read_beats(self, ready: list[int]) -> None:
        """Settle the beats answered, if the beat line is among ``ready``."""
        if self._beats is not None and self._beats.fd in ready:
            self._beats.read()

    def close(self) -> None:
        """Close the channel and forget the beat line (its process closes it)."""
        if self._channel is not None:
            with contextlib.suppress(Exception):  # a broken channel must not fail a stop
                self._channel.close()
        self._channel = self._stub = self._beats = None

    def stop(self) -> None:
        """Close the channel and end the call threads (queued calls are cancelled)."""
        self.close()
        if self._threads is not None:
            self._threads.stop()

    def resume(self) -> None:
        """The process was probed after a timeout and kept: queued calls may start again."""
        self._held = False

    def waiting_calls(self) -> int:
        """Unary calls queued for a call thread (not started)."""
        return self._threads.waiting() if self._threads is not None else 0

    def call(self, msg: RunRequest, wake: Wake) -> InFlight:
        """Start ``msg`` in the process, or queue it behind the calls running (a unary call
        runs when a call thread is free); ``wake`` runs (on another thread) when it ends.

        Raises:
            PayloadTooLargeError, SerializationError: the args cannot be sent.
        """
        request = self._encode(msg)
        deadline = msg.deadline_unix_s
        trace = msg.request.trace_context or None  # the caller's span (OpenTelemetry)
        if msg.request.stream:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            call = self._stub_now().ExecuteStreamingTool(request, timeout=timeout, metadata=trace)
            pump = StreamPump(call, wake, self._link_wire(), self.worker_id)
            return InFlight(msg, pump, time.perf_counter(), pump)
        import grpc

        flight = InFlight(msg, None, time.perf_counter())
        method, queue_deadline = self._stub_now().ExecuteTool, msg.queue_deadline_unix_s

        def run() -> Any:
            flight.started, now = time.perf_counter(), time.time()
            if self._broken:
                flight.never_ran = True
                raise _ProcessGone()
            if self._held:
                raise _HeldBack()
            if queue_deadline is not None and now >= queue_deadline:
                raise _ExpiredInQueue("queue_timeout")
            if deadline is not None and deadline <= now:
                raise _ExpiredInQueue("deadline_in_queue")
            try:
                return method(request, timeout=None if deadline is None else deadline - now,
                              metadata=trace)
            except grpc.RpcError as exc:
                self._broken = self._broken or not _answered(exc, flight)
                self._held = self._held or exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                raise

        if self._threads is None:
            self._threads = CallThreads(self._capacity, lambda: wake(None),
                                        name=f"snakepit-call-{self.worker_id}")
        flight.future = self._threads.submit(run)
        return flight

    def heartbeat(self, timeout_s: float, wake: Wake) -> Any:
        """A beat on the beat line (its answer wakes the Worker through ``watch_fds``), else
        a Heartbeat call. Either's answer counts the tool calls running in the process, where
        the protocol can say."""
        if self._beats is not None:
            return self._beats.send()
        return self.probe(timeout_s, wake)

    def probe(self, timeout_s: float, wake: Wake) -> Any:
        """A Heartbeat call (gRPC: it ends within ``timeout_s``, answered or not)."""
        future = self._link_wire().heartbeat(self._stub_now(), timeout_s)
        future.add_done_callback(wake)
        return future

    def cleanup_session(self, session_id: str) -> Any:
        return self._link_wire().cleanup_session(self._stub_now(), session_id)

    def _link_wire(self) -> WireProtocol:
        assert self._wire is not None, "open() has not run"
        return self._wire

    def _encode(self, msg: RunRequest) -> Any:
        req, limit = msg.request, self.limit
        args = (req.args_json if req.args_json is not None
                else encode_args(req.tool, req.args, limit))
        if len(args) > limit:
            raise PayloadTooLargeError(
                f"args of {req.tool!r} are {len(args)} bytes, over max_payload_bytes={limit}",
                reason="args", details={"size_bytes": len(args), "limit_bytes": limit})
        return self._link_wire().request(
            req.request_id, req.session_id or "", req.tool, args, msg.deadline_unix_s or 0.0,
            msg.session_moved_from)

    def cancel(self, flight: InFlight) -> bool:
        """Cancel ``flight`` for its caller: a queued call or a stream at once; a running unary
        call (a blocking call on a call thread cannot be cancelled) by asking the process to
        cancel its tool, which then ends the call, answered as cancelled. False: it cannot be
        (the protocol has no such call; the tool runs to its end)."""
        if flight.pump is not None:  # it ends CANCELLED: the caller's, not a lost process
            flight.cancelled = True
            flight.pump.cancel()
            return False  # it ends through the wake pipe, as every stream does
        if flight.future.cancel():
            return True
        if self._stub is None:
            return False
        future = self._link_wire().cancel(self._stub, flight.request.request.request_id)
        if future is None:
            return False
        flight.cancelled = True
        self._cancels.add(future)
        future.add_done_callback(self._cancels.discard)
        return True

    def outcome(self, flight: InFlight) -> Outcome:
        """How ``flight`` (done) ended; a CANCELLED call, or one whose tool was cancelled
        (``cancel``), was cancelled by its caller."""
        found = self._outcome(flight)
        if flight.cancelled and found.reply is not None and not found.timed_out:
            rid = flight.request.request.request_id
            return Outcome(ExecuteFailed(rid, errs.cancelled_running(rid, self.worker_id)),
                           found.elapsed_ms)
        return found

    def _outcome(self, flight: InFlight) -> Outcome:
        import grpc

        elapsed_ms = (time.perf_counter() - flight.started) * 1000.0
        rid, wid = flight.request.request.request_id, self.worker_id
        cancelled = Outcome(ExecuteFailed(rid, RequestCancelledError(
            f"request {rid} was cancelled", details={"worker_id": wid})), elapsed_ms)
        try:
            if flight.pump is not None:
                return _stream_outcome(flight.pump, rid, wid, elapsed_ms)
            response = flight.future.result()
        except CancelledError:  # cancelled while it waited for a call thread: never ran
            if flight.queue_expired:
                return Outcome(ExecuteFailed(rid, _queue_timeout(
                    rid, wid, "queue_timeout", elapsed_ms)), elapsed_ms)
            return Outcome(ExecuteFailed(rid, RequestCancelledError(
                f"request {rid} was cancelled before it started", details={"worker_id": wid})),
                elapsed_ms)
        except grpc.FutureCancelledError:  # a unary call's future, cancelled (CancelRequest)
            return cancelled
        except _HeldBack:
            return Outcome(None, elapsed_ms, handed_back=True)
        except _ProcessGone:
            return Outcome(None, elapsed_ms, lost="the process was gone before the call started")
        except _ExpiredInQueue as exc:
            return Outcome(ExecuteFailed(rid, _queue_timeout(rid, wid, exc.args[0], elapsed_ms)),
                           elapsed_ms)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and flight.cancelled:
                return cancelled  # else its server stopped under it: lost, below
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(ExecuteFailed(rid, errs.timed_out_on(
                    rid, flight.request.request.tool, wid)), elapsed_ms, timed_out=True)
            failure = self._link_wire().call_failure(exc, wid)  # the tool failed: a reply
            if failure is not None:
                return Outcome(ExecuteFailed(rid, failure), elapsed_ms)
            return Outcome(None, elapsed_ms, lost=f"{exc.code().name}: {exc.details()}")
        value, error = self._link_wire().decode(response, wid)
        return Outcome(ExecuteFailed(rid, error) if error is not None
                       else ExecuteResult(rid, value, wid, elapsed_ms), elapsed_ms)


def _answered(exc: Any, flight: InFlight) -> bool:
    """The process is fine after ``exc``: a deadline passed, or a cancel its caller asked
    for ended the call (CANCELLED nobody asked for is its server stopping)."""
    import grpc

    code = exc.code()
    return code == grpc.StatusCode.DEADLINE_EXCEEDED or (
        code == grpc.StatusCode.CANCELLED and flight.cancelled)


def _queue_timeout(rid: str, worker_id: str, reason: str, waited_ms: float) -> QueueTimeoutError:
    return QueueTimeoutError(
        f"request {rid} waited {waited_ms / 1000:.3f}s for worker {worker_id}, sent ahead "
        f"(PoolConfig.prefetch), and never ran ({reason.replace('_', ' ')})", reason=reason,
        details={"worker_id": worker_id})


class _HeldBack(Exception):
    """A queued call not started: an earlier call passed its deadline (never escapes)."""


class _ProcessGone(Exception):
    """A queued call not started: an earlier call found the process gone (never escapes)."""


class _ExpiredInQueue(Exception):
    """A queued call's queue deadline or deadline passed before a call thread took it
    (``args[0]``: the QueueTimeoutError's reason; never escapes this module)."""


def _stream_outcome(pump: StreamPump, rid: str, worker_id: str, elapsed_ms: float) -> Outcome:
    """A stream's end: its failure, or the count of values it sent (or raises its RpcError)."""
    if pump.rpc_error is not None:
        raise pump.rpc_error
    if pump.failure is not None:
        return Outcome(ExecuteFailed(rid, pump.failure), elapsed_ms)
    return Outcome(ExecuteResult(rid, pump.count, worker_id, elapsed_ms), elapsed_ms)


def next_chunk(flight: InFlight) -> StreamChunk | None:
    """The values a stream produced since the last chunk, as the next ``StreamChunk``."""
    values = flight.pump.drain() if flight.pump is not None else None
    if not values:
        return None
    flight.seq += 1
    return StreamChunk(flight.request.request.request_id, flight.seq - 1, tuple(values))
