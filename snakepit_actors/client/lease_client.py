"""The thread-safe shell around the client's ``LeaseBroker``: callers take and give back
leases through it, and the gateway thread sends its traffic and hands it the Pool's answers.

    caller threads / tasks --acquire / release / abandon-->  LeaseClient (one lock)
    gateway thread         --flush (-> LeaseBatch) / handle (LeaseGranted ...)-->  LeaseClient

Waiting callers are woken through their waiter object: a bare lock for a thread, the event
loop for a task. The gateway is woken only when a message must go out or a lease goes idle:
every gateway loop costs ~0.15 ms of CPU in Thespian's transport, so a busy client must not
wake it per request (surplus lease requests are the gateway's own, unhurried, business).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from snakepit_actors.core.leases import Handoff, Lease, LeaseBroker, Outcome, Refusal
from snakepit_actors.core.usage import UsageMeter
from snakepit_actors.errors import (
    PoolClosedError,
    PoolSaturatedError,
    QueueTimeoutError,
    SnakepitError,
)
from snakepit_actors.messages import (
    LeaseBatch,
    LeaseGranted,
    LeaseRecalled,
    LeaseRefused,
    LeaseRevoked,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("client")

#: Direct-path counters reach the Pool at least this often (and before every stats query).
REPORT_EVERY_S = 1.0


class ThreadWaiter:
    """A caller thread waiting for a lease; ``give``/``fail`` wake it (any thread)."""

    __slots__ = ("_lock", "error", "lease")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.lease: Lease | None = None
        self.error: SnakepitError | None = None

    def give(self, lease: Lease) -> bool:
        """Hand over ``lease`` (True: taken)."""
        self.lease = lease
        self._lock.release()
        return True

    def fail(self, error: SnakepitError) -> None:
        """No lease: the caller raises ``error``."""
        self.error = error
        self._lock.release()

    def wait(self, timeout_s: float | None) -> bool:
        """Block until answered or ``timeout_s`` passed (None: no limit); True if answered.
        Call it again only after it returned False."""
        return self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s)

    def outcome(self) -> Lease:
        """The lease handed over. Raises the error it failed with (a copy per caller)."""
        if self.error is not None:
            raise copy.copy(self.error)
        assert self.lease is not None
        return self.lease


class TaskWaiter:
    """A task waiting for a lease: answers are handed to its event loop."""

    __slots__ = ("_leases", "_loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, leases: LeaseClient) -> None:
        self._loop = loop
        self._leases = leases
        self.future: asyncio.Future[Lease] = loop.create_future()

    def give(self, lease: Lease) -> bool:
        """Hand over ``lease`` (False: the loop is gone; the caller gives it back)."""
        try:
            if asyncio._get_running_loop() is self._loop:  # a call on this loop released it
                self._loop.call_soon(self._set, lease)  # no self-pipe write
            else:
                self._loop.call_soon_threadsafe(self._set, lease)
        except RuntimeError:  # the loop is closed: nobody waits
            return False
        return True

    def _set(self, lease: Lease) -> None:
        if self.future.done():  # the task was cancelled meanwhile
            self._leases.release_unused(lease)
        else:
            self.future.set_result(lease)

    def fail(self, error: SnakepitError) -> None:
        """No lease: the awaiting task raises ``error``."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._fail, copy.copy(error))

    def _fail(self, error: SnakepitError) -> None:
        if not self.future.done():
            self.future.set_exception(error)


Waiter = ThreadWaiter | TaskWaiter


class LeaseClient:
    """Leases of one ``Pool`` handle, shared by every caller thread and the gateway.

    Args:
        pool: the Pool actor's address (where ``flush``'s batch goes).
        new_id: makes unique lease request ids.
        wake: wakes the gateway thread (it then calls ``flush``); cheap, any thread.
        affinity_wait_s: how long a session's caller waits for its worker's lease (hint mode;
            0: never).
        max_requests: lease requests out at most (the pool's worker slots; None: one per
            waiting caller).
        max_waiting: callers that may wait beyond those (the pool's max_queue; None: any).
    """

    def __init__(self, pool: Any, new_id: Callable[[], str], wake: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic, *,
                 affinity_wait_s: float = 0.0, max_requests: int | None = None,
                 max_waiting: int | None = None) -> None:
        self.pool = pool
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._broker: LeaseBroker[Waiter] = LeaseBroker(
            new_id, affinity_wait_s=affinity_wait_s, max_requests=max_requests,
            max_waiting=max_waiting)
        #: When a waiting caller last got a lease (Unix seconds): the line of waiting callers
        #: moves. A waiting caller's queue_timeout counts from it (``waited_since``).
        self.line_moved_at = 0.0
        self._meter = UsageMeter()
        self._gone: dict[str, Future[SnakepitError]] = {}  # lost leases -> their revocation
        self._wake_at: float | None = None  # when the gateway will call flush next
        self._reported_at = clock()
        self.closed = False
        self._close_error: SnakepitError | None = None  # the actor system died
        #: Called (gateway thread) with (endpoint, pid) when a lease with a call running on it
        #: is revoked: that process is gone or being killed (``DirectPath.process_lost``).
        self.on_lost_in_use: Callable[[str, int], None] | None = None

    @property
    def busy(self) -> int:
        """Leases with a call running on them now."""
        with self._lock:
            return self._broker.in_use

    @property
    def waiting_on_own_slots(self) -> int:
        """Callers waiting for a slot this client holds (``LeaseBroker.waiting_on_own_slots``):
        queued, though not in the Pool's queue."""
        with self._lock:
            return self._broker.waiting_on_own_slots

    # --- the callers' side --------------------------------------------------------------------

    def acquire(self, waiter: Waiter, session_id: str | None) -> Lease | None:
        """An idle lease now, or None: ``waiter`` will be handed one (or fail).

        Raises:
            PoolClosedError: the pool is closed.
            PoolSaturatedError: max_queue callers wait already, beyond one per worker slot.
        """
        with self._lock:
            try:
                lease = self._broker.acquire(waiter, session_id, self._clock())
            except PoolSaturatedError:
                self._meter.refused()
                raise
            wake = self._gateway_needed()
        if wake:
            self._wake()
        return lease

    def abandon(self, waiter: Waiter) -> bool:
        """``waiter`` stops waiting; False if an answer for it is already on its way."""
        with self._lock:
            abandoned = self._broker.abandon(waiter)
            wake = self._gateway_needed() or self._wake_at is None  # withdraw its request
            self._wake_at = self._wake_at or 0.0
        if wake:
            self._wake()
        return abandoned

    def release(self, lease: Lease, outcome: Outcome, session_id: str | None,
                 started: float | None, *, ok: bool, reason: str = "") -> None:
        """A call on ``lease`` ended: give it back and count the call (and the request, when
        ``started`` is given: it is final)."""
        moved_from = lease.session_from  # read before the lease may serve another caller
        with self._lock:
            self._meter.ran(lease.worker_id, session_id)
            self._broker.ran(session_id, lease.worker_id, lease.pid)
            if moved_from:
                self._meter.session_moved()
            if started is not None:
                self._meter.finished(ok=ok, latency_ms=(time.perf_counter() - started) * 1e3)
            handoffs = self._broker.release(lease, self._clock(), outcome, reason)
            wake = self._gateway_needed()
        if handoffs:
            self._deliver(handoffs, [])
        if wake:
            self._wake()
        if moved_from:
            log.info("session.moved", session_id=session_id, from_worker=moved_from,
                     worker_id=lease.worker_id, path="direct")

    def release_unused(self, lease: Lease) -> None:
        """Give back a lease no call ran on (any thread)."""
        with self._lock:
            handoffs = self._broker.release(lease, self._clock())
            wake = self._gateway_needed()
        self._deliver(handoffs, [])
        if wake:
            self._wake()

    def count_failure(self, error: SnakepitError) -> None:
        """A request ended with ``error`` before any worker answered it."""
        with self._lock:
            self._meter.finished(ok=False, queue_timeout=isinstance(error, QueueTimeoutError))

    def forget_gone(self, lease: Lease) -> None:
        """Stop waiting for ``lease``'s revocation."""
        with self._lock:
            self._gone.pop(lease.lease_id, None)

    def waited_since(self, started: float) -> float:
        """Since when a caller waiting since ``started`` (Unix seconds) counts its queue_timeout:
        the last time the line of waiting callers moved, if later. A line that moves never
        times out, however long; one the pool serves no lease for does, after queue_timeout."""
        moved = self.line_moved_at
        return moved if moved > started else started

    def _deliver(self, handoffs: list[Handoff[Waiter]], refusals: list[Refusal[Waiter]]) -> None:
        if handoffs:
            self.line_moved_at = time.time()
        for handoff in handoffs:
            if not handoff.item.give(handoff.lease):
                self.release_unused(handoff.lease)
        for refusal in refusals:
            refusal.item.fail(refusal.error)

    def gone_future(self, lease: Lease) -> Future[SnakepitError]:
        """Resolves with the error of the lease's revocation (or PoolClosedError)."""
        future: Future[SnakepitError] = Future()
        with self._lock:
            if self.closed:
                future.set_result(self._close_error or PoolClosedError(
                    "the pool was closed while the request ran", reason="closed_in_flight"))
            elif lease.gone is not None:
                future.set_result(lease.gone)
            else:
                self._gone[lease.lease_id] = future
        return future

    # --- the gateway's side -------------------------------------------------------------------

    def _gateway_needed(self) -> bool:
        """Under the lock: must the gateway run before its planned wake-up? (Only for messages
        to send and a lease going idle; see the module docstring.)"""
        if self._broker.has_outgoing:
            return True
        for at in (self._broker.idle_deadline(), self._broker.next_hold_end()):
            if at is not None and (self._wake_at is None or at < self._wake_at):
                self._wake_at = at
                return True
        return False

    def flush(self, force_usage: bool = False) -> LeaseBatch | None:
        """Gateway thread: housekeeping, then the batch to send to ``pool`` (None: nothing).
        ``force_usage`` includes pending counters (a stats query is about to go out)."""
        now = self._clock()
        with self._lock:
            handoffs = self._broker.tick(now)
            out = self._broker.take_outgoing()
            usage = None
            if self._meter.pending and (force_usage or now - self._reported_at >= REPORT_EVERY_S):
                usage = self._meter.take()
                self._reported_at = now
            at = self._broker.next_tick_at(now)
            if self._meter.pending:
                report_at = self._reported_at + REPORT_EVERY_S
                at = report_at if at is None else min(at, report_at)
            self._wake_at = at
        self._deliver(handoffs, [])
        if not out and usage is None:
            return None
        return LeaseBatch(tuple(out.requests), tuple(out.withdrawn), tuple(out.returns), usage,
                          holder_pid=os.getpid())

    def next_wait_s(self) -> float | None:
        """Gateway thread: how long it may sleep before ``flush`` is due (None: until woken)."""
        at = self._wake_at
        return None if at is None else max(0.0, at - self._clock())

    def handle(self, message: Any) -> bool:
        """Gateway thread: act on a lease answer from the Pool; False if ``message`` is not
        one."""
        handoffs: list[Handoff[Waiter]] = []
        refusals: list[Refusal[Waiter]] = []
        gone: Future[SnakepitError] | None = None
        revoked: Lease | None = None
        with self._lock:
            if isinstance(message, LeaseGranted):
                handoffs = self._broker.granted(message.request_id, message.worker_id,
                                                message.endpoint, message.pid, self._clock())
            elif isinstance(message, LeaseRefused):
                refusals = self._broker.refused(message.request_id, message.error)
            elif isinstance(message, LeaseRevoked):
                revoked = self._broker.revoked(message.request_id, message.error)
                gone = self._gone.pop(message.request_id, None)
            elif isinstance(message, LeaseRecalled):
                self._broker.recalled(message.request_id)
            else:
                return False
            self._gateway_needed()
        self._deliver(handoffs, refusals)
        if gone is not None and isinstance(message, LeaseRevoked):
            with contextlib.suppress(InvalidStateError):
                gone.set_result(message.error)
        lost = self.on_lost_in_use
        if revoked is not None and revoked.in_use and lost is not None:  # (a LeaseRevoked)
            lost(revoked.endpoint, revoked.pid)
        return True

    def pool_replaced(self, pool: Any, error: SnakepitError) -> None:
        """Gateway thread: the Pool was restarted at ``pool``. Our leases are revoked with
        ``error`` (calls running on them go on; idle ones are dropped), our lease requests go
        to ``pool`` again: waiting callers keep waiting, none of them ran."""
        with self._lock:
            self.pool = pool
            self._broker.pool_replaced(error)
            self._wake_at = None
        self._wake()

    def close(self, error: SnakepitError | None = None) -> None:
        """Refuse new requests: waiting callers fail with ``PoolClosedError`` (``error`` if
        given, for every waiter and running call: the actor system is gone); leases come back
        as their calls end (the gateway sends them while it runs). Idempotent."""
        with self._lock:
            self.closed = True
            self._close_error = self._close_error or error
            refusals = self._broker.close()
            gone = list(self._gone.values())
            self._gone.clear()
        error = self._close_error
        if error is not None:
            refusals = [Refusal(refusal.item, error) for refusal in refusals]
        self._deliver([], refusals)
        for future in gone:
            with contextlib.suppress(InvalidStateError):
                future.set_result(error or PoolClosedError(
                    "the pool was closed while the request ran", reason="closed_in_flight"))
        self._wake()
