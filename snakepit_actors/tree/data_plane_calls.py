"""The DataPlane's gRPC side: its FIFO of requests, one *slot runner* per leased worker slot
making blocking unary calls, and what a finished call means for its caller.

    DataPlane (actor thread) ── queue.append(call) ──> FIFO <── popleft ── runner on lease L1..Ln
              ^                                                             │ gRPC ExecuteTool
              └──── wake pipe (held while the FIFO is not empty) <── finished FIFO ─┘

A runner takes the next request the moment its call returns, with no actor message in
between, and keeps its lease while requests wait; when the FIFO is empty (or the lease must go
back: its worker seems lost, a call passed its deadline, the Pool revoked or recalled it, or
it was held ``MAX_HOLD_S``) it ends with ``RunnerEnded``. The actor is woken at once when
nothing waits, else after up to ``HOLD_S`` or ``MAX_HELD`` finished calls, so one pass
answers several calls (one message per caller).

A request is *claimed* exactly once, under one lock: by a runner (it runs), or by the actor
(cancelled, past its queue deadline, the pool closed). The runners never call Thespian. Only
the DataPlane imports this module, in its own leaf actor process (it creates no children), so
grpc is imported lazily, when the DataPlane starts.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.leases import MAX_HOLD_S, Lease, Outcome
from snakepit_actors.core.scheduling_decisions import queue_expiry
from snakepit_actors.errors import (
    PayloadTooLargeError,
    QueueTimeoutError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.json_codec import encode_args
from snakepit_actors.messages import Execute, ExecuteFailed, ExecuteResult
from snakepit_actors.protocols import (
    WireProtocol,
    close_lost_channel,
    lease_channel_options,
    wire_for,
)
from snakepit_actors.tree.call_threads import CallThreads
from snakepit_actors.tree.held_wake import HeldWake
from snakepit_actors.worker_token import token_metadata, with_token

#: How long a call that failed on a vanished worker waits for the Pool's revocation.
REVOCATION_WAIT_S = 3.0
#: While requests wait, the actor's wake is held this long at most (seconds) ...
HOLD_S = 0.002
#: ... or until this many calls finished.
MAX_HELD = 8

QUEUED, CLAIMED = 0, 1


@dataclass(eq=False, slots=True)
class Call:
    """One request in the DataPlane, from its arrival to its reply."""

    request: Execute
    reply_to: Any
    arrived: float  # Unix seconds: when the DataPlane got it (its queue wait counts from here)
    started: float = 0.0  # perf_counter: when its gRPC call started
    attempt: int = 1
    state: int = QUEUED
    worker_id: str = ""
    lease_id: str = ""
    response: Any = None
    error: BaseException | None = None
    expired: bool = False  # its deadline passed before a runner started it: never ran
    endpoint: str = ""  # where it runs (for a cancel)
    cancelled: bool = False  # its caller cancelled it while it ran
    done: bool = False  # answered: nothing more happens to it


@dataclass(frozen=True, slots=True)
class RunnerEnded:
    """A runner gave its lease back to the actor: ``outcome`` says how (``detail``: why)."""

    lease: Lease
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Ended:
    """How a call ended: ``reply`` for its caller, or None: its worker seems lost."""

    reply: ExecuteResult | ExecuteFailed | None
    detail: str = ""


class DataPlaneCalls:
    """The FIFO, the runners and the channels of one DataPlane.

    Args:
        slots: runner threads (the pool's worker slots: one per lease it can hold).
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
        self._token = token
        self._cancels: set[Any] = set()  # CancelTool calls in flight
        self._channels: dict[str, tuple[int, Any, Any]] = {}  # endpoint -> (pid, channel, stub)
        self.queue: deque[Call] = deque()
        self.finished: queue.SimpleQueue[Call | RunnerEnded] = queue.SimpleQueue()
        #: Unix seconds: when a runner last took a request (the line moved)
        self.line_moved_at = 0.0
        self._claims = threading.Lock()
        self._expiries: list[tuple[float, int, Call]] = []  # (queue expiry, seq, call)
        self._seq = itertools.count()
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        self._threads = CallThreads(slots, self._wake, hold_s=0.0, name="snakepit-dataplane")
        self._held_wake = HeldWake(self._wake, hold_s=HOLD_S, max_held=MAX_HELD,
                                   name="snakepit-dataplane")
        self._stopped = False

    # --- claims ---------------------------------------------------------------------------------

    def claim(self, call: Call) -> bool:
        """Take ``call`` out of the FIFO's reach (any thread); False: someone else has it."""
        with self._claims:
            if call.state != QUEUED:
                return False
            call.state = CLAIMED
            return True

    # --- queue deadlines ------------------------------------------------------------------------

    def track_expiry(self, call: Call, queue_timeout_s: float | None) -> None:
        """Actor thread: ``call`` waits; remember when it stops waiting."""
        expiry, _why = queue_expiry(max(call.arrived, self.line_moved_at),
                                    call.request.deadline_unix_s, queue_timeout_s)
        if expiry is not None:
            heapq.heappush(self._expiries, (expiry, next(self._seq), call))

    def next_expiry(self) -> float | None:
        """Unix seconds: the earliest queue deadline to check (None: none)."""
        return self._expiries[0][0] if self._expiries else None

    def expired(self, now: float, queue_timeout_s: float | None,
                ) -> list[tuple[Call, QueueTimeoutError]]:
        """Actor thread: the waiting requests past their queue deadline at ``now``, claimed
        (queue_timeout counts from the last time the line moved: a line that moves does not
        time out), each with its error."""
        out = []
        while self._expiries and self._expiries[0][0] <= now:
            _at, _seq, call = heapq.heappop(self._expiries)
            if call.state != QUEUED:
                continue
            expiry, why = queue_expiry(max(call.arrived, self.line_moved_at),
                                       call.request.deadline_unix_s, queue_timeout_s)
            if expiry is not None and expiry > now:
                heapq.heappush(self._expiries, (expiry, next(self._seq), call))
            elif self.claim(call):
                out.append((call, QueueTimeoutError(
                    f"request {call.request.request_id} waited {now - call.arrived:.3f}s in "
                    f"the queue and never reached a worker ({why.replace('_', ' ')})",
                    reason=why)))
        return out

    def requeue(self, call: Call) -> None:
        """Actor thread: run ``call`` again (first in line)."""
        call.state, call.error, call.response = QUEUED, None, None
        self.queue.appendleft(call)

    # --- runners --------------------------------------------------------------------------------

    def run_on(self, lease: Lease) -> None:
        """Actor thread: start a runner on ``lease``; it ends with ``RunnerEnded``."""
        stub = self._stub(lease)
        self._threads.submit(lambda: self._run(lease, stub.ExecuteTool))

    def _run(self, lease: Lease, method: Any) -> None:
        outcome: Outcome = "ok"
        detail = ""
        grpc = self._grpc
        while not self._stopped and lease.gone is None and not lease.recalled \
                and time.monotonic() - lease.granted_at < MAX_HOLD_S:
            try:
                call = self.queue.popleft()
            except IndexError:
                break
            if not self.claim(call):
                continue
            now = time.time()
            self.line_moved_at = now
            call.worker_id, call.lease_id = lease.worker_id, lease.lease_id
            call.endpoint = lease.endpoint
            deadline = call.request.deadline_unix_s
            if deadline is not None and deadline <= now:
                call.expired = True
            else:
                try:
                    call.started = time.perf_counter()
                    if call.cancelled:  # cancelled as it was taken: it never starts
                        raise _CancelledBeforeStart()
                    call.response = method(self._message(call.request, lease),
                                           metadata=self._metadata + call.request.trace_context
                                           or None,
                                           timeout=None if deadline is None else deadline - now)
                except BaseException as exc:  # carried to the actor thread
                    call.error = exc
                    if isinstance(exc, grpc.RpcError):
                        outcome, detail = self._lease_outcome(exc, call)
            self.finished.put(call)
            if outcome != "ok":
                break
            self._held_wake.finished(more_waiting=bool(self.queue))
        self.finished.put(RunnerEnded(lease, outcome, detail))
        self._wake()

    def _message(self, req: Execute, lease: Lease) -> Any:
        args = req.args_json if req.args_json is not None else encode_args(
            req.tool, req.args, self._limit)
        if len(args) > self._limit:
            raise PayloadTooLargeError(
                f"args of {req.tool!r} are {len(args)} bytes, over max_payload_bytes="
                f"{self._limit}", reason="args",
                details={"size_bytes": len(args), "limit_bytes": self._limit})
        return self.wire.request(req.request_id, "", req.tool, args,
                                 req.deadline_unix_s or 0.0, lease.session_from)

    def _lease_outcome(self, exc: Any, call: Call) -> tuple[Outcome, str]:
        """What a failed call means for its lease: a tool failure, or a tool its caller
        cancelled, leaves it "ok"; CANCELLED that nobody asked for is a server shutting down."""
        code = exc.code()
        if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
            return "recycle", "a request passed its deadline"
        if code == self._grpc.StatusCode.CANCELLED and call.cancelled:
            return "ok", ""
        if self.wire.call_failure(exc, call.worker_id) is not None:
            return "ok", ""
        return "lost", f"{code.name}: {exc.details()}"

    # --- waking the actor -----------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def drain_wake(self) -> None:
        """Actor thread: empty the wake pipe (before reading ``finished``)."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.wake_fd, 4096):
                pass

    # --- outcomes -------------------------------------------------------------------------------

    def ended(self, call: Call) -> Ended:
        """What the finished ``call`` means for its caller (actor thread)."""
        rid, wid = call.request.request_id, call.worker_id
        elapsed_ms = (time.perf_counter() - call.started) * 1000.0 if call.started else 0.0
        exc = call.error
        if call.cancelled and not self._timed_out(exc):  # as the Worker answers it
            return Ended(ExecuteFailed(rid, errs.cancelled_running(rid, wid)))
        if exc is None:
            value, error = self.wire.decode(call.response, wid)
            return Ended(ExecuteFailed(rid, error) if error is not None
                         else ExecuteResult(rid, value, wid, elapsed_ms))
        if isinstance(exc, SnakepitError):  # its args could not be sent: it never ran
            return Ended(ExecuteFailed(rid, exc))
        grpc = self._grpc
        code = exc.code() if isinstance(exc, grpc.RpcError) else None
        # CANCELLED here was not asked for (that is answered above): the worker's server
        # stopped under the call (its Worker is stopping), so the worker is lost, as below
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Ended(ExecuteFailed(rid, errs.timed_out_on(rid, call.request.tool, wid)))
        failure = None if code is None else self.wire.call_failure(exc, wid)
        if failure is not None:  # the process answered: the tool failed
            return Ended(ExecuteFailed(rid, failure))
        return Ended(None, f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
                     if code is not None else f"{type(exc).__name__}: {exc}")

    def _timed_out(self, exc: BaseException | None) -> bool:
        return isinstance(exc, self._grpc.RpcError) and \
            exc.code() == self._grpc.StatusCode.DEADLINE_EXCEEDED

    def cancel_running(self, call: Call) -> bool:
        """Actor thread: ask the process running ``call`` to cancel its tool (the call then
        ends, answered as cancelled); False: the protocol cannot (the tool runs to its end)."""
        call.cancelled = True  # a runner that has not started the call yet never will
        entry = self._channels.get(call.endpoint)
        if not call.started or entry is None:
            return True
        stub = self.wire.stub(with_token(entry[1], self._token))
        future = self.wire.cancel(stub, call.request.request_id)
        call.cancelled = future is not None  # False: no such call; it answers as it ends
        if future is not None:  # held until done: a collected grpc future cancels its RPC
            self._cancels.add(future)
            future.add_done_callback(self._cancels.discard)
        return call.cancelled

    # --- channels -------------------------------------------------------------------------------

    def _stub(self, lease: Lease) -> Any:
        """The stub for the lease's process: one channel per endpoint, replaced when a new
        process (pid) serves it."""
        if lease.stub is not None:
            return lease.stub
        entry = self._channels.get(lease.endpoint)
        if entry is None or entry[0] != lease.pid:
            if entry is not None:
                entry[1].close()
            channel = self._grpc.insecure_channel(
                lease.endpoint, options=lease_channel_options(self._limit))
            entry = (lease.pid, channel, self.wire.stub(channel))
            self._channels[lease.endpoint] = entry
        lease.stub = entry[2]
        return lease.stub

    def process_lost(self, endpoint: str, pid: int) -> None:
        """Actor thread: a lease on ``endpoint`` (process ``pid``) was revoked while a runner
        called it. That channel is closed a grace later (``close_lost_channel``), which ends
        a call still waiting on it (its runner then reports it lost, as any failed call)."""
        close_lost_channel(self._channels, endpoint, pid)

    def stop(self) -> None:
        """Stop the runners after their current call and close the channels."""
        self._stopped = True
        self._held_wake.stop()
        self._threads.stop()
        for _pid, channel, _stub in self._channels.values():
            with contextlib.suppress(Exception):
                channel.close()
        self._channels.clear()


def unconfirmed(call: Call) -> WorkerCrashedError:
    """A call failed on a worker that seemed gone, and no revocation came in time."""
    return WorkerCrashedError(
        f"the worker running request {call.request.request_id} could not be reached; its exit "
        f"was not confirmed within {REVOCATION_WAIT_S}s",
        details={"worker_id": call.worker_id, "exit_code": None, "signal": None})


class _CancelledBeforeStart(Exception):
    """A call cancelled after a runner took it, before its RPC began (never escapes)."""
