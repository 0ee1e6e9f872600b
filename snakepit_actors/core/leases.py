"""Leases: the pure state of the direct data path, on both ends (DESIGN §3).

A *lease* is one worker slot the Pool lends to a client, which then calls that worker's gRPC
endpoint itself. The Pool stays the authority: a lease request is one more entry in its FIFO
queue (same max_queue, same affinity hint), and it decides which worker each lease gets.

The client's side, ``LeaseBroker`` (one per ``Pool`` handle; its caller holds a lock around it)::

    caller: acquire() -- an idle lease? --yes--> call the worker --> release()
                           | no                                       |
                           v                                          v
              wait in FIFO order; a RequestLease        the oldest waiter gets it at once;
              goes out for every waiter not yet          else it idles and tick() returns it
              covered by one                             after ``idle_return_s``

One lease serves many requests while local demand lasts, so a busy client sends no messages
at all in the steady state. Lease requests are not bound to one caller: a grant goes to the
oldest waiter, and requests left over when demand drops are withdrawn after ``idle_return_s``.
Each caller keeps its own queue deadline (``scheduling.queue_expiry``, the rule the Pool applies
to ``Execute``). A lease held longer than ``max_hold_s`` goes back to the Pool at its next
release, and our lease requests move to the back of its queue in the same message: anything
another client queued meanwhile gets that slot first, so clients take turns at least every
``max_hold_s``.

``UsageMeter`` counts the client's direct-path requests for the Pool's stats. (The Pool's side,
``LeaseLedger``, is in lease_ledger.py.) Nothing here does I/O, threads or actors; time comes in
as ``now`` arguments.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from snakepit_actors.errors import PoolClosedError, SnakepitError
from snakepit_actors.messages import RequestLease, ReturnLease, UsageReport, WorkerUsage

T = TypeVar("T", bound=Hashable)

#: An idle lease goes back to the Pool after this long (seconds).
IDLE_RETURN_S = 0.005
#: A lease held this long goes back to the Pool at its next release, even with callers waiting.
MAX_HOLD_S = 0.5
#: Lease requests no waiting caller needs are withdrawn once they have been surplus this long
#: (demand flickers under load: a caller between two requests is briefly not waiting).
WITHDRAW_AFTER_S = 0.05

Outcome = Literal["ok", "recycle", "lost"]


@dataclass(slots=True, eq=False)
class Lease:
    """One worker slot lent to this client. ``pid`` identifies the process behind
    ``endpoint`` (a restarted worker keeps its endpoint). ``gone`` is set when the Pool revoked
    it: the error a call that failed on it should raise."""

    lease_id: str
    worker_id: str
    endpoint: str
    pid: int
    granted_at: float
    in_use: bool = False
    idle_since: float = 0.0
    recalled: bool = False
    lost: bool = False
    gone: SnakepitError | None = None
    stub: Any = None  # the caller's gRPC stub for endpoint + pid, cached on first use


@dataclass(frozen=True, slots=True)
class Handoff(Generic[T]):
    """Give ``lease`` (already marked in use) to the waiting caller ``item``."""

    item: T
    lease: Lease


@dataclass(frozen=True, slots=True)
class Refusal(Generic[T]):
    """Fail the waiting caller ``item`` with ``error`` (it never reached a worker)."""

    item: T
    error: SnakepitError


@dataclass(slots=True)
class Outgoing:
    """What the broker wants sent to the Pool (one ``LeaseBatch``)."""

    requests: list[RequestLease] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    returns: list[ReturnLease] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.requests or self.withdrawn or self.returns)


class LeaseBroker(Generic[T]):
    """The client's leases, lease requests and waiting callers; see the module docstring.

    Args:
        new_id: makes a unique lease request id.
        idle_return_s: how long a lease may sit unused before it goes back.
        max_hold_s: how long a lease may be held before it goes back at its next release.
    """

    def __init__(self, new_id: Callable[[], str], *, idle_return_s: float = IDLE_RETURN_S,
                 max_hold_s: float = MAX_HOLD_S, withdraw_after_s: float = WITHDRAW_AFTER_S,
                 max_sessions: int = 10_000) -> None:
        self._new_id = new_id
        self._idle_return_s = idle_return_s
        self._withdraw_after_s = withdraw_after_s
        self._max_hold_s = max_hold_s
        self._max_sessions = max_sessions
        self._held: dict[str, Lease] = {}
        self._idle: dict[str, Lease] = {}  # insertion order: the longest idle first
        self._queue: deque[T] = deque()  # waiting callers, oldest first (lazily trimmed)
        self._waiting: dict[T, str | None] = {}  # live waiters -> their session
        self._tokens: dict[str, str | None] = {}  # lease requests out, oldest first -> session
        self._surplus_since: float | None = None
        self._idled = False  # a lease went idle since the last next_tick_at
        self._sessions: OrderedDict[str, str] = OrderedDict()  # session -> last worker
        self._out = Outgoing()
        self.closed = False

    # --- observations -------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def requested(self) -> int:
        """Lease requests sent and not yet answered or withdrawn."""
        return len(self._tokens)

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def in_use(self) -> int:
        return sum(1 for lease in self._held.values() if lease.in_use)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def lease(self, lease_id: str) -> Lease | None:
        """The held lease ``lease_id`` (None if not held)."""
        return self._held.get(lease_id)

    @property
    def has_outgoing(self) -> bool:
        """Something waits to be sent to the Pool (``take_outgoing``)."""
        out = self._out
        return bool(out.requests or out.withdrawn or out.returns)

    # --- the caller's side --------------------------------------------------------------------

    def acquire(self, item: T, session_id: str | None, now: float) -> Lease | None:
        """An idle lease (marked in use; the session's last worker preferred), or None: ``item``
        now waits for a ``Handoff`` or a ``Refusal``.

        Raises:
            PoolClosedError: the broker is closed.
        """
        if self.closed:
            raise PoolClosedError("the pool is closed", reason="closed")
        lease = self._take_idle(session_id)
        if lease is not None:
            lease.in_use = True
            return lease
        self._queue.append(item)
        self._waiting[item] = session_id
        if len(self._tokens) < len(self._waiting):
            self._request(session_id)
        return None

    def abandon(self, item: T) -> bool:
        """``item`` stops waiting (its queue deadline passed, or it was cancelled). False if it
        is not waiting any more: a ``Handoff`` or ``Refusal`` for it is already out."""
        return self._waiting.pop(item, False) is not False

    def ran(self, session_id: str | None, worker_id: str) -> None:
        """``session_id`` ran on ``worker_id``: prefer that worker's idle lease next time."""
        if session_id:
            self._sessions[session_id] = worker_id
            self._sessions.move_to_end(session_id)
            if len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)

    def release(self, lease: Lease, now: float, outcome: Outcome = "ok",
                reason: str = "") -> list[Handoff[T]]:
        """The call on ``lease`` ended. ``outcome``: "ok" (the worker answered, whatever the
        answer), "recycle" (the call passed its deadline: return it for a recycle) or "lost"
        (the worker seemed gone: report it; the Pool answers with a revocation)."""
        lease.in_use = False
        if lease.gone is not None:  # revoked while in use: the Pool already dropped it
            self._held.pop(lease.lease_id, None)
            return []
        if outcome == "lost":
            lease.lost = True
            self._out.returns.append(ReturnLease(lease.lease_id, lease.worker_id,
                                                 worker_lost=True, reason=reason))
            return []
        if outcome == "recycle":
            self._end(lease, recycle=True, reason=reason)
            return []
        if self.closed or lease.recalled:
            self._end(lease)
            return []
        if now - lease.granted_at >= self._max_hold_s:
            self._end(lease)
            self._requeue()
            return []
        return self._hand_over_or_idle(lease, now)

    # --- the Pool's answers -------------------------------------------------------------------

    def granted(self, lease_id: str, worker_id: str, endpoint: str, pid: int,
                now: float) -> list[Handoff[T]]:
        """The Pool lent a slot (for any of our requests, even a withdrawn one)."""
        self._tokens.pop(lease_id, None)
        lease = Lease(lease_id, worker_id, endpoint, pid, now)
        self._held[lease_id] = lease
        if self.closed:
            self._end(lease)
            return []
        return self._hand_over_or_idle(lease, now)

    def refused(self, lease_id: str, error: SnakepitError) -> list[Refusal[T]]:
        """The Pool refused a lease request: the newest callers it no longer covers fail."""
        if lease_id not in self._tokens:
            return []
        del self._tokens[lease_id]
        out: list[Refusal[T]] = []
        while len(self._tokens) < len(self._waiting):
            item = self._pop_newest()
            if item is None:
                break
            out.append(Refusal(item, error))
        return out

    def revoked(self, lease_id: str, error: SnakepitError) -> Lease | None:
        """The Pool revoked ``lease_id`` (its worker is gone). Returns the lease (with ``gone``
        set) if we held it; an unused one is dropped at once, one in use at its release."""
        lease = self._held.get(lease_id)
        if lease is None:
            return None
        lease.gone = error
        if not lease.in_use:
            self._held.pop(lease_id, None)
            self._idle.pop(lease_id, None)
        return lease

    def recalled(self, lease_id: str) -> None:
        """The Pool wants ``lease_id`` back: now if idle, else when its call ends."""
        lease = self._held.get(lease_id)
        if lease is None or lease.lost:
            return
        if self._idle.pop(lease_id, None) is not None:
            self._end(lease)
        else:
            lease.recalled = True

    # --- housekeeping (the gateway thread) ----------------------------------------------------

    def tick(self, now: float) -> None:
        """Return leases idle for ``idle_return_s``; withdraw lease requests no caller needs
        once they have been surplus for ``withdraw_after_s``."""
        while self._idle:
            lease = next(iter(self._idle.values()))
            if lease.idle_since + self._idle_return_s > now:  # the same sum as idle_deadline
                break
            self._end(lease)
        surplus = len(self._tokens) - len(self._waiting)
        if surplus <= 0:
            self._surplus_since = None
        elif self._surplus_since is None:
            self._surplus_since = now
        elif self._surplus_since + self._withdraw_after_s <= now:
            self._withdraw(list(reversed(self._tokens))[:surplus])
            self._surplus_since = None

    def idle_deadline(self) -> float | None:
        """When the longest-idle lease is due back (None: no idle lease)."""
        if not self._idle:
            return None
        return next(iter(self._idle.values())).idle_since + self._idle_return_s

    def next_tick_at(self, now: float) -> float | None:
        """When ``tick`` has something to do next (None: nothing). A lease that went idle
        since the last call and is in use again asks for a check ``idle_return_s`` from now: a
        client calling in sequence then needs one tick per period, not a wake-up per call;
        leases that never idle (a busy client) need none."""
        times = [at for at in (self.idle_deadline(),) if at is not None]
        if self._idled and self.in_use:
            times.append(now + self._idle_return_s)
        self._idled = False
        if len(self._tokens) > len(self._waiting):
            since = now if self._surplus_since is None else self._surplus_since
            times.append(since + self._withdraw_after_s)
        return min(times) if times else None

    def take_outgoing(self) -> Outgoing:
        """What to send to the Pool now (empties the outbox)."""
        out, self._out = self._out, Outgoing()
        return out

    def close(self) -> list[Refusal[T]]:
        """Stop: every waiting caller fails with ``PoolClosedError``, lease requests are
        withdrawn, idle leases returned; leases in use go back at their release."""
        self.closed = True
        error = PoolClosedError("the pool was closed before a worker was free for the request",
                                reason="closed_queued")
        out: list[Refusal[T]] = []
        while (item := self._pop_oldest()) is not None:
            out.append(Refusal(item, error))
        self._withdraw(list(self._tokens))
        for lease in list(self._idle.values()):
            self._end(lease)
        return out

    # --- internals ----------------------------------------------------------------------------

    def _hand_over_or_idle(self, lease: Lease, now: float) -> list[Handoff[T]]:
        item = self._pop_oldest()
        if item is not None:
            lease.in_use = True
            return [Handoff(item, lease)]
        lease.idle_since = now
        self._idle[lease.lease_id] = lease
        self._idled = True
        return []

    def _request(self, session_id: str | None) -> None:
        request_id = self._new_id()
        self._tokens[request_id] = session_id
        self._out.requests.append(RequestLease(request_id, session_id))

    def _requeue(self) -> None:
        """Move our lease requests to the back of the Pool's queue (withdraw them, ask again,
        in one batch, after the lease just returned): a request another client queued before
        now gets that slot first. Our requests stand for whichever caller waits next, so
        without this they would keep the places of callers served long ago."""
        sessions = list(self._tokens.values())
        self._withdraw(list(self._tokens))
        for session_id in sessions:
            self._request(session_id)

    def _withdraw(self, request_ids: list[str]) -> None:
        """Forget these lease requests: drop the ones not sent yet, withdraw the others."""
        for request_id in request_ids:
            del self._tokens[request_id]
        gone = set(request_ids)
        unsent = [r for r in self._out.requests if r.request_id in gone]
        if unsent:
            self._out.requests = [r for r in self._out.requests if r.request_id not in gone]
            gone -= {r.request_id for r in unsent}
        self._out.withdrawn.extend(r for r in request_ids if r in gone)

    def _take_idle(self, session_id: str | None) -> Lease | None:
        if not self._idle:
            return None
        worker_id = self._sessions.get(session_id) if session_id else None
        if worker_id is not None:
            for lease in reversed(self._idle.values()):
                if lease.worker_id == worker_id:
                    return self._idle.pop(lease.lease_id)
        return self._idle.pop(next(reversed(self._idle)))  # the most recently used: warm

    def _pop_oldest(self) -> T | None:
        while self._queue:
            item = self._queue.popleft()
            if self._waiting.pop(item, False) is not False:
                return item
        return None

    def _pop_newest(self) -> T | None:
        while self._queue:
            item = self._queue.pop()
            if self._waiting.pop(item, False) is not False:
                return item
        return None

    def _end(self, lease: Lease, recycle: bool = False, reason: str = "") -> None:
        self._held.pop(lease.lease_id, None)
        self._idle.pop(lease.lease_id, None)
        self._out.returns.append(ReturnLease(lease.lease_id, lease.worker_id, recycle=recycle,
                                             reason=reason))


class UsageMeter:
    """Counters of the client's direct-path requests since the last report (``take``). A
    report carries at most ``max_latencies`` latencies, thinned evenly from the most recent
    ``4 * max_latencies``."""

    def __init__(self, max_latencies: int = 256, max_sessions: int = 256) -> None:
        self._max_latencies = max_latencies
        self._max_sessions = max_sessions
        self._reset()

    def _reset(self) -> None:
        self._requests = 0
        self._errors = 0
        self._queue_timeouts = 0
        self._latencies: deque[float] = deque(maxlen=4 * self._max_latencies)
        self._calls: dict[str, int] = {}  # worker_id -> calls
        self._sessions: dict[str, dict[str, None]] = {}  # worker_id -> sessions (ordered set)

    @property
    def pending(self) -> bool:
        return bool(self._requests or self._calls)

    def ran(self, worker_id: str, session_id: str | None) -> None:
        """One call went to ``worker_id`` (a retried request counts on both workers)."""
        self._calls[worker_id] = self._calls.get(worker_id, 0) + 1
        if session_id:
            sessions = self._sessions.setdefault(worker_id, {})
            if len(sessions) < self._max_sessions:
                sessions[session_id] = None

    def finished(self, *, ok: bool, latency_ms: float | None = None,
                 queue_timeout: bool = False) -> None:
        """One request ended; ``latency_ms`` when a worker answered it (as the Pool counts)."""
        self._requests += 1
        self._errors += 0 if ok else 1
        self._queue_timeouts += 1 if queue_timeout else 0
        if latency_ms is not None:
            self._latencies.append(latency_ms)

    def take(self) -> UsageReport | None:
        """The report since the last one, or None if nothing happened."""
        if not self.pending:
            return None
        step = max(1, -(-len(self._latencies) // self._max_latencies))  # ceiling division
        report = UsageReport(self._requests, self._errors, self._queue_timeouts,
                             tuple(list(self._latencies)[::step]), tuple(
                                 WorkerUsage(w, n, tuple(self._sessions.get(w, ())))
                                 for w, n in self._calls.items()))
        self._reset()
        return report
