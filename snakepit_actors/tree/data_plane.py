"""DataPlane actor: the message API's requests at direct-path cost.

    PoolRoot
     ├─ Pool ──Execute | ExecuteBatch (unary, no session; reply_to and deadline filled in),
     │         CancelRequest, ClosePool──> DataPlane
     └─ DataPlane (this; permanent; a leaf: it creates no actors, so it may use grpc)
          ──LeaseBatch──> Pool ──LeaseGranted / Refused / Revoked / Recalled──> DataPlane
          ──gRPC ExecuteTool on call threads──> the leased workers' processes
          ──ExecuteResult | ExecuteFailed (ExecuteReplies per caller that asked)──> callers
          ──DataPlaneServed (the ids answered, batched)──> Pool

It holds worker leases exactly as the Python handle's direct path does (``core.leases``'
``LeaseBroker``, the Pool's lease messages, granted and returned in batches) and makes the
gRPC calls itself: requests wait in one FIFO, and one *runner* per leased slot, on a
persistent call thread, takes the next one as its call returns (``data_plane_calls.py``).
Finished calls come back to the actor loop through a wake pipe it watches (``ThespianWatch``),
never a blocking wait; while requests wait the wake is held briefly, so one pass answers
several. A request costs two Thespian messages (``Execute`` in, the reply out, both batched
when many are in flight) instead of four (to the Pool, to a Worker, the reply, the Worker's
check-in), and the Pool hears of it once more only in a batch (``DataPlaneServed``).

The contract is the Pool's: exactly one reply per request; the pool's ``max_queue`` (that many
requests waiting in the FIFO: the next gets ``PoolSaturatedError`` at once), queue deadline
(``QueueTimeoutError``, counted from the last time the line of waiting requests moved, as on
the direct path), deadline (``RequestTimeoutError``; the lease goes back for a recycle), a
``CancelRequest`` fails a waiting request or asks the process to cancel a running one, a worker
lost under a call fails it with the revocation's ``WorkerCrashedError`` or re-runs it once
elsewhere when idempotent.

If it dies, PoolRoot starts a new one and tells the Pool, which fails every forwarded request
it was not told was answered (``WorkerCrashedError(reason="data_plane_lost")``) and forwards to
the new one; the Pool sees its process gone and takes its leases back as returned for a
recycle (a call it left running is cancelled by replacing that worker's process). If the Pool
is restarted, the new one announces itself (``PoolReplaced``): the leases are dropped, the
lease requests sent again, running calls finish and are answered.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Any

from thespian.actors import ActorTypeDispatcher, ThespianWatch, WakeupMessage, WatchMessage

from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.leases import Handoff, Lease, LeaseBroker
from snakepit_actors.errors import (
    PoolNotReadyError,
    PoolSaturatedError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.messages import (
    CancelRequest,
    ClosePool,
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    ExecuteReplies,
    ExecuteResult,
    InitDataPlane,
    LeaseBatch,
    LeaseGranted,
    LeaseRecalled,
    LeaseRefused,
    LeaseRevoked,
    PoolReplaced,
)
from snakepit_actors.proctitle import bind_actor_process
from snakepit_actors.telemetry import get_logger, wants
from snakepit_actors.tree.data_plane_calls import (
    REVOCATION_WAIT_S,
    Call,
    DataPlaneCalls,
    RunnerEnded,
    unconfirmed,
)
from snakepit_actors.tree.data_plane_reports import PoolReports

log = get_logger("data_plane")

#: An idle lease goes back to the Pool after this long (seconds): longer than the direct
#: path's 5 ms, as requests reach the DataPlane in bursts (a batch per caller's pass), and
#: every lease given back and granted again costs the Pool and the DataPlane messages.
IDLE_RETURN_S = 0.02

Reply = ExecuteResult | ExecuteFailed


class DataPlane(ActorTypeDispatcher):
    """The DataPlane actor of one pool; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: DataPlaneCalls | None = None
        self._pool: Any = None
        self._cfg: Any = None
        self._broker: LeaseBroker[object] | None = None
        self._slots = 0
        self._runners = 0  # leases a runner works on
        self._asked: set[object] = set()  # tokens waiting in the broker for a lease each
        self._reports = PoolReports(time.monotonic())
        self._meter = self._reports.meter
        self._open: dict[str, Call] = {}  # by request id: not yet answered (for cancel)
        self._lost: dict[str, tuple[list[Call], float]] = {}  # lease id -> (calls, give up at)
        self._replies: dict[str, tuple[Any, list[Reply]]] = {}  # this pass, per caller
        self._timer_at: float | None = None  # monotonic: the wake-up asked for
        self._closed = False

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        """Every message is one pass: handle it, send what it produced, watch the wake pipe."""
        super().receiveMessage(message, sender)
        if self._calls is None:
            return None
        self._flush()
        return ThespianWatch([self._calls.wake_fd])

    @property
    def broker(self) -> LeaseBroker[object]:
        assert self._broker is not None, "InitDataPlane comes first"
        return self._broker

    @property
    def calls(self) -> DataPlaneCalls:
        assert self._calls is not None, "InitDataPlane comes first"
        return self._calls

    # --- set-up ---------------------------------------------------------------------------------

    def receiveMsg_InitDataPlane(self, msg: InitDataPlane, sender: Any) -> None:
        cfg = msg.config
        bind_actor_process("DataPlane", pool=cfg.name)
        self._cfg, self._pool = cfg, msg.pool
        self._slots = cfg.pool_size * cfg.capacity
        ids, prefix = itertools.count(), f"dp-{uuid.uuid4().hex[:8]}-"
        self._broker = LeaseBroker(lambda: f"{prefix}{next(ids)}", max_requests=self._slots,
                                   idle_return_s=IDLE_RETURN_S)
        self._calls = DataPlaneCalls(self._slots, cfg.max_payload_bytes, msg.worker_token,
                                     cfg.protocol)

    # --- requests -------------------------------------------------------------------------------

    def receiveMsg_Execute(self, msg: Execute, sender: Any) -> None:
        self._accept(msg, sender)
        self._want()

    def receiveMsg_ExecuteBatch(self, msg: ExecuteBatch, sender: Any) -> None:
        for request in msg.requests:
            self._accept(request, sender)
        self._want()

    def _accept(self, request: Execute, sender: Any) -> None:
        """Queue ``request``, or refuse it at once (closed; ``max_queue`` requests wait)."""
        call = Call(request, request.reply_to or sender, time.time())
        calls = self.calls
        if self._closed:
            self._fail(call, errs.closed_queued(self._cfg.name, request.request_id))
            return
        if self._cfg.max_queue is not None and len(calls.queue) >= self._cfg.max_queue:
            self._meter.refused()
            self._fail(call, PoolSaturatedError(
                f"pool {self._cfg.name!r} has {len(calls.queue)} requests waiting "
                f"(max_queue={self._cfg.max_queue})", reason="max_queue"))
            return
        self._open[request.request_id] = call
        calls.queue.append(call)
        calls.track_expiry(call, self._cfg.queue_timeout)

    def _want(self, trim: bool = False) -> None:
        """Idle leases start runners for the waiting requests; beyond those, keep one lease
        request out per waiting request, up to the slots not held (the runners of held ones
        serve the rest). The surplus is withdrawn on the timer only (``trim``): the FIFO
        empties and fills again with every caller's batch."""
        broker, queued, now = self.broker, len(self.calls.queue), time.monotonic()
        if self._closed:
            return
        while broker.idle and queued:
            token = object()
            lease = broker.acquire(token, None, now)
            if lease is None:  # not expected with an idle lease: it waits like the others
                self._asked.add(token)
                break
            self._run(lease)
            queued -= 1
        wanted = min(self._slots - broker.held, queued)
        while trim and len(self._asked) > wanted:
            broker.abandon(self._asked.pop())
        while len(self._asked) < wanted:
            token = object()
            lease = broker.acquire(token, None, now)
            if lease is None:
                self._asked.add(token)
            else:
                self._run(lease)

    def _run(self, lease: Lease) -> None:
        """A runner on ``lease`` while requests wait; else the lease goes idle."""
        now = time.monotonic()
        if lease.gone is not None or not self.calls.queue:
            self._hand(self.broker.release(lease, now))
            return
        self._runners += 1
        self.calls.run_on(lease)

    def _hand(self, handoffs: list[Handoff[object]]) -> None:
        for handoff in handoffs:
            self._asked.discard(handoff.item)
            self._run(handoff.lease)

    def receiveMsg_CancelRequest(self, msg: CancelRequest, sender: Any) -> None:
        """A waiting request fails (cancelled); a running call's tool is asked to stop (as
        the Worker does; the call then ends, answered as cancelled)."""
        call = self._open.get(msg.request_id)
        if call is not None and self.calls.claim(call):
            self._fail(call, errs.cancelled_queued(msg.request_id))
        elif call is not None and call.endpoint:
            self.calls.cancel_running(call)

    def receiveMsg_ClosePool(self, msg: ClosePool, sender: Any) -> None:
        """The pool closes: waiting requests fail (``PoolClosedError``); running calls end."""
        self._closed = True
        for call in list(self.calls.queue):
            if self.calls.claim(call):
                self._fail(call, errs.closed_queued(self._cfg.name, call.request.request_id))
        self.broker.close()
        self._asked.clear()

    # --- finished calls -------------------------------------------------------------------------

    def receiveMsg_WatchMessage(self, msg: WatchMessage, sender: Any) -> None:
        calls = self.calls
        calls.drain_wake()
        finished = calls.finished
        while not finished.empty():
            item = finished.get_nowait()
            if isinstance(item, RunnerEnded):
                self._runner_ended(item)
            else:
                self._settle(item)
        self._want()

    def _settle(self, call: Call) -> None:
        if call.expired:
            self._fail(call, errs.deadline_passed(call.request.request_id), queue_timeout=True)
            return
        ended = self.calls.ended(call)
        self._meter.ran(call.worker_id, None)
        if ended.reply is not None:
            ok = isinstance(ended.reply, ExecuteResult)
            latency_ms = (time.time() - call.arrived) * 1e3
            self._meter.finished(ok=ok, latency_ms=latency_ms)
            if wants("debug"):
                log.debug("request.completed", request_id=call.request.request_id, ok=ok,
                          worker_id=call.worker_id, duration_ms=latency_ms, path="actor")
            self._reply(call, ended.reply)
            return
        held = self.broker.lease(call.lease_id)
        if held is not None and held.gone is not None:  # the revocation came first
            self._retry_or_fail(call, held.gone)
            return
        calls, _at = self._lost.setdefault(call.lease_id, ([], 0.0))
        calls.append(call)
        self._lost[call.lease_id] = (calls, time.monotonic() + REVOCATION_WAIT_S)

    def _runner_ended(self, ended: RunnerEnded) -> None:
        self._runners -= 1
        self._hand(self.broker.release(ended.lease, time.monotonic(), ended.outcome,
                                       ended.detail))

    def _retry_or_fail(self, call: Call, error: SnakepitError) -> None:
        """The worker died under ``call``: run it once more elsewhere if idempotent."""
        if (call.attempt == 1 and not self._closed and isinstance(error, WorkerCrashedError)
                and (call.request.idempotent or self._cfg.retry_idempotent)):
            log.info("request.retried", request_id=call.request.request_id,
                     worker_id=error.details.get("worker_id"))
            call.attempt += 1
            self.calls.requeue(call)
            self._want()
            return
        self._fail(call, error)

    # --- the Pool's lease answers ---------------------------------------------------------------

    def receiveMsg_LeaseGranted(self, msg: LeaseGranted, sender: Any) -> None:
        self._hand(self.broker.granted(msg.request_id, msg.worker_id, msg.endpoint, msg.pid,
                                       time.monotonic()))

    def receiveMsg_LeaseRefused(self, msg: LeaseRefused, sender: Any) -> None:
        """The newest waiting request fails with the Pool's reason (as on the direct path)."""
        for refusal in self.broker.refused(msg.request_id, msg.error):
            self._asked.discard(refusal.item)
            for call in reversed(self.calls.queue):
                if self.calls.claim(call):
                    self._fail(call, refusal.error)
                    break

    def receiveMsg_LeaseRevoked(self, msg: LeaseRevoked, sender: Any) -> None:
        lease = self.broker.revoked(msg.request_id, msg.error)
        if lease is not None and lease.in_use:  # a call may wait on a dead process: end it
            self.calls.process_lost(lease.endpoint, lease.pid)
        lost = self._lost.pop(msg.request_id, None)
        for call in lost[0] if lost is not None else ():
            self._retry_or_fail(call, msg.error)

    def receiveMsg_LeaseRecalled(self, msg: LeaseRecalled, sender: Any) -> None:
        self.broker.recalled(msg.request_id)  # its runner ends after its current call

    def receiveMsg_PoolReplaced(self, msg: PoolReplaced, sender: Any) -> None:
        """A restarted Pool knows none of our leases: drop them, ask again; a call that failed
        on a vanished worker will hear no revocation: it fails (or re-runs) now."""
        self._pool = msg.pool
        self.broker.pool_replaced(PoolNotReadyError(
            "the pool's actor was restarted while the lease was held", reason="pool_restarted"))
        lost, self._lost = self._lost, {}
        for calls, _at in lost.values():
            for call in calls:
                self._retry_or_fail(call, unconfirmed(call))

    # --- timers ---------------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        """Housekeeping: idle leases back, queue deadlines, revocations that never came."""
        self._timer_at = None
        self._hand(self.broker.tick(time.monotonic()))
        self._expire_waiting(time.time())
        now = time.monotonic()
        for lease_id, (calls, give_up_at) in list(self._lost.items()):
            if give_up_at <= now:
                del self._lost[lease_id]
                for call in calls:
                    self._retry_or_fail(call, unconfirmed(call))
        self._want(trim=True)

    def _expire_waiting(self, now: float) -> None:
        for call, error in self.calls.expired(now, self._cfg.queue_timeout):
            self._fail(call, error, queue_timeout=True)

    # --- sending --------------------------------------------------------------------------------

    def _fail(self, call: Call, error: SnakepitError, *, queue_timeout: bool = False) -> None:
        self._meter.finished(ok=False, queue_timeout=queue_timeout)
        self._reply(call, ExecuteFailed(call.request.request_id, error))

    def _reply(self, call: Call, reply: Reply) -> None:
        """Exactly once per request: grouped per caller that asked for ``ExecuteReplies``."""
        if call.done:
            return
        call.done = True
        self._open.pop(call.request.request_id, None)
        self._reports.served(call.request.request_id)
        if not call.request.batch_replies:
            self.send(call.reply_to, reply)
            return
        self._replies.setdefault(str(call.reply_to), (call.reply_to, []))[1].append(reply)

    def _flush(self) -> None:
        """End of a pass: the replies, the lease traffic, the served ids, the next wake-up."""
        replies, self._replies = self._replies, {}
        for target, group in replies.values():
            self.send(target, group[0] if len(group) == 1 else ExecuteReplies(tuple(group)))
        now = time.monotonic()
        served = self._reports.due(now, self._waiting())
        if served is not None:
            self.send(self._pool, served)
        usage, broker = self._reports.usage(now), self.broker
        if broker.has_outgoing or usage is not None:
            out = broker.take_outgoing()
            self.send(self._pool, LeaseBatch(tuple(out.requests), tuple(out.withdrawn),
                                             tuple(out.returns), usage, holder_pid=os.getpid()))
        self._schedule(now)

    def _waiting(self) -> int:
        """Requests waiting here beyond the lease requests at the Pool (which it counts)."""
        return max(0, len(self.calls.queue) - len(self._asked))

    def _schedule(self, now: float) -> None:
        """One wake-up at a time, at the earliest thing due."""
        due = [self.broker.next_tick_at(now), *self._reports.next_at(self._waiting())]
        expiry = self.calls.next_expiry()
        if expiry is not None:
            due.append(now + max(0.0, expiry - time.time()))
        if self._lost:
            due.append(min(at for _calls, at in self._lost.values()))
        at = min((d for d in due if d is not None), default=None)
        if at is None or (self._timer_at is not None and self._timer_at <= at):
            return
        self._timer_at = at
        self.wakeupAfter(max(0.0, at - now))

    def receiveMsg_ActorExitRequest(self, msg: Any, sender: Any) -> None:
        if self._calls is not None:
            self._calls.stop()
