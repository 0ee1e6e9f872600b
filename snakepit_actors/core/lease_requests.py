"""The lease requests a client has out at the Pool, as plain state for ``LeaseBroker``
(leases.py): which are out, which still have to go, which to withdraw.

A request stands for a waiting caller of the client, not for one in particular: the Pool grants
it to the client, whose oldest waiter takes the lease. A client needs at most one request per
worker slot of the pool (``cap``), and the broker asks for none for the slots it holds
(``LeaseBroker._demand``): a burst of 10,000 callers puts ``cap`` requests in the Pool's
queue, not 10,000; the others wait in the client's own line (bounded by the broker's
``max_waiting``, the pool's max_queue) and are served by the leases those requests bring, each
lease serving caller after caller. So one more waiting caller costs O(1) on both ends, whatever
the burst.

    acquire -> cover(waiting) --request ids--> outbox (RequestLease) --> Pool queue
    grant / refusal -> answered(id) -> cover(waiting) again (the next caller's request)
    surplus (callers left) -> withdraw; max_hold_s -> requeue (to the back of the Pool's queue)

No I/O, threads or actors here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from snakepit_actors.core.lease_records import Outgoing
from snakepit_actors.errors import PoolSaturatedError
from snakepit_actors.messages import RequestLease


class LeaseRequests:
    """Lease requests out at the Pool, oldest first, each with the session it was asked for
    (the Pool's affinity hint). ``cap``: at most this many out at once (None: one per waiting
    caller, no bound)."""

    def __init__(self, new_id: Callable[[], str], cap: int | None = None) -> None:
        self._new_id = new_id
        self.cap = cap
        self._out: dict[str, str | None] = {}  # request id -> session, oldest first
        self._sessions: deque[str | None] = deque()  # sessions of callers not covered yet

    def __len__(self) -> int:
        return len(self._out)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._out

    def demand(self, waiting: int, held: int) -> int:
        """Of ``waiting`` callers, those that need a request out: no more than the slots not
        ``held`` (a request for a slot we hold could only be granted once we gave it back,
        and each rotation would move every such request to the back of the Pool's queue)."""
        return waiting if self.cap is None else min(waiting, max(0, self.cap - held))

    def beyond(self, waiting: int) -> int:
        """Waiting callers beyond our requests out (up to ``cap``): they wait for slots we
        hold, so the Pool's queue does not count them."""
        return max(0, self.wanted(waiting) - len(self._out))

    def room_error(self, waiting: int, held: int,
                   max_waiting: int | None) -> PoolSaturatedError | None:
        """The Pool's max_queue rule for a client's own callers: as many may wait as there
        are slots not ``held`` (they may be free), plus ``max_waiting``."""
        if self.cap is None or max_waiting is None or waiting < max(
                0, self.cap - held) + max_waiting:
            return None
        return PoolSaturatedError(
            f"pool is saturated: {held} worker slots busy for this handle and "
            f"max_queue={max_waiting} of its callers waiting already: back off and retry, or "
            "raise max_queue / pool_size", details={"max_queue": max_waiting})

    def wanted(self, waiting: int) -> int:
        """How many requests ``waiting`` callers need out."""
        return waiting if self.cap is None else min(waiting, self.cap)

    def cover(self, waiting: int, session_id: str | None, out: Outgoing,
              new_caller: bool = False) -> None:
        """Send requests until ``waiting`` callers are covered (up to ``cap``). ``new_caller``:
        a caller of ``session_id`` just started waiting; its session rides on the next request
        that goes out (now, or when a request comes back while it still waits)."""
        if new_caller:
            self._sessions.append(session_id)
            while len(self._sessions) > waiting:
                self._sessions.popleft()
        while len(self._out) < self.wanted(waiting):
            self._send(self._sessions.popleft() if self._sessions else None, out)

    def answered(self, request_id: str) -> bool:
        """The Pool granted or refused ``request_id``; False if it is not ours any more."""
        return self._out.pop(request_id, False) is not False

    def surplus(self, waiting: int) -> int:
        """Requests out beyond what ``waiting`` callers need."""
        return len(self._out) - self.wanted(waiting)

    def withdraw_newest(self, count: int, out: Outgoing) -> None:
        self.withdraw(list(reversed(self._out))[:count], out)

    def withdraw_all(self, out: Outgoing) -> None:
        self.withdraw(list(self._out), out)

    def requeue(self, out: Outgoing) -> None:
        """Move our requests to the back of the Pool's queue (withdraw them, ask again, in
        one batch, after a lease held ``max_hold_s`` went back): a request another client
        queued before now gets that slot first. Ours stand for whichever caller waits next, so
        without this they would keep the places of callers served long ago."""
        sessions = list(self._out.values())
        self.withdraw(list(self._out), out)
        for session_id in sessions:
            self._send(session_id, out)

    def resend_all(self) -> Outgoing:
        """A restarted Pool knows none of our requests: a fresh outbox asking for all again."""
        sessions, self._out = list(self._out.values()), {}
        out = Outgoing()
        for session_id in sessions:
            self._send(session_id, out)
        return out

    def withdraw(self, request_ids: list[str], out: Outgoing) -> None:
        """Forget these requests: drop the ones not sent yet, withdraw the others."""
        for request_id in request_ids:
            del self._out[request_id]
        gone = set(request_ids)
        unsent = [r for r in out.requests if r.request_id in gone]
        if unsent:
            out.requests = [r for r in out.requests if r.request_id not in gone]
            gone -= {r.request_id for r in unsent}
        out.withdrawn.extend(r for r in request_ids if r in gone)

    def _send(self, session_id: str | None, out: Outgoing) -> None:
        request_id = self._new_id()
        self._out[request_id] = session_id
        out.requests.append(RequestLease(request_id, session_id))
