"""Leases: the pure state of the direct data path, on both ends (docs/architecture.md, "Two data
paths"). A *lease* is one worker slot the Pool lends to a client, which then calls that worker's
gRPC endpoint itself. The Pool stays the authority: a lease request is one more entry in its
FIFO queue (same max_queue, same affinity hint), and it decides which worker each lease gets.

The client's side, ``LeaseBroker`` (one per ``Pool`` handle; its caller holds a lock around it)::

    caller: acquire() -- an idle lease? --yes--> call the worker --> release()
                           | no                                       |
                           v                                          v
              wait in FIFO order; a RequestLease        the oldest waiter gets it at once;
              goes out for every waiter not yet          else it idles and tick() returns it
              covered by one                             after ``idle_return_s``

One lease serves many requests while local demand lasts: a busy client sends no messages in
the steady state. A grant goes to the oldest waiter; requests left over when demand drops are
withdrawn. Each caller keeps its own queue deadline (``scheduling.queue_expiry``). A lease held
longer than ``max_hold_s`` goes back at its next release, and our lease requests move to the
back of the Pool's queue in the same message: clients take turns at least every ``max_hold_s``.
One lease goes back so per ``rotate_every_s`` at most (others need *a* turn; every lease each
``max_hold_s`` made the messages a second grow with the pool: docs/scaling.md).

Session affinity (hint mode, ``affinity_wait_s`` > 0): a caller whose session last ran on worker
W takes W's idle lease; else it is *held* for W (``holds.Holds``) up to ``affinity_wait_s``, and
W's next free lease goes to it first. When the hold ends it takes any lease: the session *moves*
(``Lease.session_from`` names the worker it left, for the call to tell the worker process).
Lease requests out and the bounds on waiting callers: ``lease_requests.LeaseRequests``; the
waiting callers: ``wait_line.WaitLine``; the Pool's side: ``lease_ledger.LeaseLedger``. No
I/O, threads or actors here; time comes in as ``now`` arguments.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from snakepit_actors.core.holds import Holds
from snakepit_actors.core.lease_records import Handoff, Lease, Outcome, Outgoing, Refusal
from snakepit_actors.core.lease_requests import LeaseRequests
from snakepit_actors.core.wait_line import WaitLine
from snakepit_actors.errors import PoolClosedError, SnakepitError
from snakepit_actors.messages import ReturnLease

__all__ = ["Handoff", "Lease", "LeaseBroker", "Outcome", "Outgoing", "Refusal"]

T = TypeVar("T", bound=Hashable)

#: An idle lease goes back to the Pool after this long (seconds).
IDLE_RETURN_S = 0.005
#: A lease held this long goes back to the Pool at its next release, even with callers waiting.
MAX_HOLD_S = 0.5
#: At most one lease held past ``MAX_HOLD_S`` goes back per this long (the turns of other
#: clients stay within MAX_HOLD_S; the messages a second no longer grow with the pool's size).
ROTATE_EVERY_S = MAX_HOLD_S / 8
#: Surplus lease requests are withdrawn after this long (demand flickers under load).
WITHDRAW_AFTER_S = 0.05


class LeaseBroker(Generic[T]):
    """The client's leases, lease requests and waiting callers; see the module docstring.

    Args:
        new_id: makes a unique lease request id.
        idle_return_s: how long a lease may sit unused before it goes back.
        max_hold_s: how long a lease may be held before it goes back at its next release.
        rotate_every_s: at most one lease goes back for ``max_hold_s`` per this long.
        affinity_wait_s: a session's caller is held this long for its worker (0: never).
        max_requests: lease requests out at once (the pool's slots; None: one per waiter).
        max_waiting: callers waiting beyond the slots not held (the pool's ``max_queue``).
    """

    def __init__(self, new_id: Callable[[], str], *, idle_return_s: float = IDLE_RETURN_S,
                 max_hold_s: float = MAX_HOLD_S, withdraw_after_s: float = WITHDRAW_AFTER_S,
                 rotate_every_s: float = ROTATE_EVERY_S,
                 max_sessions: int = 10_000, affinity_wait_s: float = 0.0,
                 max_requests: int | None = None, max_waiting: int | None = None) -> None:
        self._affinity_wait_s = affinity_wait_s
        self._holds: Holds[T] = Holds()  # callers waiting a moment for their session's worker
        self._idle_return_s = idle_return_s
        self._withdraw_after_s = withdraw_after_s
        self._max_hold_s = max_hold_s
        self._rotate_every_s = rotate_every_s
        self._rotated_at: float | None = None  # when a lease last went back for max_hold_s
        self._max_sessions = max_sessions
        self._held: dict[str, Lease] = {}
        self._idle: dict[str, Lease] = {}  # insertion order: the longest idle first
        self._waiting: WaitLine[T] = WaitLine()
        self._requests = LeaseRequests(new_id, max_requests)
        self._max_waiting = max_waiting
        self._surplus_since: float | None = None
        self._idled = False  # a lease went idle since the last next_tick_at
        self._sessions: OrderedDict[str, tuple[str, int]] = OrderedDict()  # -> (worker, pid)
        self._out = Outgoing()
        self.closed = False

    # --- observations -------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def requested(self) -> int:
        """Lease requests sent and not yet answered or withdrawn."""
        return len(self._requests)

    @property
    def waiting_on_own_slots(self) -> int:
        """Waiting callers the Pool's queue does not count (``LeaseRequests.beyond``)."""
        return self._requests.beyond(len(self._waiting))

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
        return bool(self._out)

    # --- the caller's side --------------------------------------------------------------------

    def acquire(self, item: T, session_id: str | None, now: float) -> Lease | None:
        """An idle lease (marked in use; the session's last worker preferred), or None: ``item``
        now waits for a ``Handoff`` or a ``Refusal`` (held a moment for its session's worker
        first, when that worker's lease is not idle; see the module docstring).

        Raises:
            PoolClosedError: the broker is closed.
            PoolSaturatedError: ``max_waiting`` callers wait beyond the slots not held.
        """
        if self.closed:
            raise PoolClosedError("the pool is closed", reason="closed")
        last = self._sessions.get(session_id) if session_id else None
        pinned = last[0] if last is not None else None
        lease = self._take_idle(pinned, hold=self._affinity_wait_s > 0)
        if lease is not None:
            return self._give(lease, session_id)
        error = self._requests.room_error(len(self._waiting), len(self._held),
                                          self._max_waiting)
        if error is not None:
            raise error
        if pinned is not None and self._affinity_wait_s > 0:
            self._holds.hold(item, pinned, now + self._affinity_wait_s)
        self._waiting.wait(item, session_id, in_line=pinned is None or not self._affinity_wait_s)
        self._requests.cover(self._demand(), session_id, self._out, new_caller=True)
        return None

    def abandon(self, item: T) -> bool:
        """``item`` stops waiting (its queue deadline passed, or it was cancelled). False if it
        is not waiting any more: a ``Handoff`` or ``Refusal`` for it is already out."""
        self._holds.drop(item)
        return self._waiting.leave(item)

    def ran(self, session_id: str | None, worker_id: str, pid: int = 0) -> None:
        """``session_id`` ran on ``worker_id`` (process ``pid``): prefer that worker next time."""
        if session_id:
            self._sessions[session_id] = (worker_id, pid)
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
            self._cover()
            return []
        if outcome == "lost":
            lease.lost = True
            self._out.returns.append(ReturnLease(lease.lease_id, lease.worker_id,
                                                 worker_lost=True, reason=reason))
            return []
        if outcome == "recycle":
            self._end(lease, recycle=True, reason=reason)
            self._cover()
            return []
        if self.closed or lease.recalled:
            self._end(lease)
            self._cover()
            return []
        if now - lease.granted_at >= self._max_hold_s and self._may_rotate(now):
            self._rotated_at = now
            self._end(lease)
            self._cover()
            self._requests.requeue(self._out)
            return []
        return self._hand_over_or_idle(lease, now)

    def _may_rotate(self, now: float) -> bool:
        """Whether a lease may go back for ``max_hold_s`` now (one per ``rotate_every_s``)."""
        return self._rotated_at is None or now - self._rotated_at >= self._rotate_every_s

    # --- the Pool's answers -------------------------------------------------------------------

    def granted(self, lease_id: str, worker_id: str, endpoint: str, pid: int,
                now: float) -> list[Handoff[T]]:
        """The Pool lent a slot (for any of our requests, even a withdrawn one)."""
        self._requests.answered(lease_id)
        lease = Lease(lease_id, worker_id, endpoint, pid, now)
        self._held[lease_id] = lease
        if self.closed:
            self._end(lease)
            return []
        handoffs = self._hand_over_or_idle(lease, now)
        if handoffs:  # a caller beyond the requests out may need one now
            self._requests.cover(self._demand(), None, self._out)
        return handoffs

    def refused(self, lease_id: str, error: SnakepitError) -> list[Refusal[T]]:
        """The Pool refused a lease request: the newest caller fails (none if the requests
        still out cover every caller they should), and the next one gets its request."""
        if not self._requests.answered(lease_id):
            return []
        if len(self._requests) >= self._requests.wanted(self._demand()):
            return []
        item = self._pop_newest()
        self._requests.cover(self._demand(), None, self._out)
        return [] if item is None else [Refusal(item, error)]

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
            self._cover()
        return lease

    def pool_replaced(self, error: SnakepitError) -> None:
        """A restarted Pool knows none of our leases: revoke all, send every request again."""
        for lease_id in list(self._held):
            self.revoked(lease_id, error)
        self._out = self._requests.resend_all()

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

    def tick(self, now: float) -> list[Handoff[T]]:
        """End the affinity holds due (those callers take an idle lease or queue up); return
        leases idle for ``idle_return_s``; withdraw lease requests no caller needs once they
        have been surplus for ``withdraw_after_s``. Returns the leases handed over."""
        handoffs = self._end_holds(now)
        while self._idle:
            lease = next(iter(self._idle.values()))
            if lease.idle_since + self._idle_return_s > now:  # the same sum as idle_deadline
                break
            self._end(lease)
        surplus = self._requests.surplus(self._demand())
        if surplus <= 0:
            self._surplus_since = None
        elif self._surplus_since is None:
            self._surplus_since = now
        elif self._surplus_since + self._withdraw_after_s <= now:
            self._requests.withdraw_newest(surplus, self._out)
            self._surplus_since = None
        return handoffs

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
        times = [at for at in (self.idle_deadline(), self._holds.next_at()) if at is not None]
        if self._idled and self.in_use:
            times.append(now + self._idle_return_s)
        self._idled = False
        if self._requests.surplus(self._demand()) > 0:
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
        out = [Refusal(item, error) for item in self._waiting]  # in arrival order
        self._waiting.clear()
        self._holds = Holds()
        self._requests.withdraw_all(self._out)
        for lease in list(self._idle.values()):
            self._end(lease)
        return out

    # --- internals ----------------------------------------------------------------------------

    def next_hold_end(self) -> float | None:
        """When the oldest affinity hold ends (None: no caller is held)."""
        return self._holds.next_at()

    def _hand_over_or_idle(self, lease: Lease, now: float) -> list[Handoff[T]]:
        """A caller held for the lease's worker first, else the oldest waiter, else idle."""
        item = self._holds.take_for(lease.worker_id)
        if item is None:
            item = self._waiting.oldest()
        if item is not None:
            return [Handoff(item, self._give(lease, self._waiting.served(item)))]
        lease.idle_since = now
        self._idle[lease.lease_id] = lease
        self._idled = True
        return []

    def _give(self, lease: Lease, session_id: str | None) -> Lease:
        """Mark ``lease`` in use by a caller of ``session_id``; note if the session moves."""
        lease.in_use = True
        last = self._sessions.get(session_id) if session_id else None
        moved = last is not None and last != (lease.worker_id, lease.pid)
        lease.session_from = last[0] if last is not None and moved else ""
        return lease

    def _take_idle(self, worker_id: str | None, hold: bool) -> Lease | None:
        """An idle lease: ``worker_id``'s if it has one; else (unless ``hold`` and a worker is
        named) the most recently used, still warm."""
        if not self._idle:
            return None
        if worker_id is not None:
            for lease in reversed(self._idle.values()):
                if lease.worker_id == worker_id:
                    return self._idle.pop(lease.lease_id)
            if hold:
                return None
        return self._idle.pop(next(reversed(self._idle)))

    def _end_holds(self, now: float) -> list[Handoff[T]]:
        """Callers whose hold ended take an idle lease, or wait in the FIFO (at its back) covered
        by a lease request (a grant of their own request may have gone idle and back)."""
        out: list[Handoff[T]] = []
        for item in self._holds.expired(now):  # a held caller is always in _waiting
            lease = self._take_idle(None, hold=False)
            if lease is not None:
                out.append(Handoff(item, self._give(lease, self._waiting.served(item))))
                continue
            self._waiting.line(item)
            self._requests.cover(self._demand(), self._waiting.session(item), self._out,
                                 new_caller=True)
        return out

    def _pop_newest(self) -> T | None:
        item = self._waiting.pop_newest()
        if item is None and (item := self._holds.pop_newest()) is not None:
            self._waiting.leave(item)
        return item

    def _end(self, lease: Lease, recycle: bool = False, reason: str = "") -> None:
        self._held.pop(lease.lease_id, None)
        self._idle.pop(lease.lease_id, None)
        self._out.returns.append(ReturnLease(lease.lease_id, lease.worker_id, recycle=recycle,
                                             reason=reason))

    def _cover(self) -> None:
        """A lease we held is gone while callers wait: ask for its slot. (Not when an idle
        lease goes back: only callers held for another worker can wait then, and asking again
        would bring the same lease back and forth until their hold ends.)"""
        self._requests.cover(self._demand(), None, self._out)

    def _demand(self) -> int:
        return self._requests.demand(len(self._waiting), len(self._held))
