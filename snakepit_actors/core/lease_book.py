"""The Pool's side of the direct data path (docs/architecture.md, "Two data paths"), as plain state
around ``LeaseLedger``.

    client --LeaseBatch--> Pool --LeaseGranted / Refused / Revoked / Recalled--> client
                            └--RecycleWorker--> Worker --WorkerProcessLost--> Pool

A lease request is one more entry in the Pool's ``Scheduler`` queue (FIFO with ``Execute``, the
same max_queue and affinity hint; no queue deadline: the client keeps its callers' deadlines and
withdraws what it no longer needs). When a slot frees, the Pool grants it where it would have
sent ``RunRequest``; the slot stays taken until the lease comes back. The ledger remembers
holder and worker of every lease, so a worker's death revokes exactly its leases, and a worker
that must be recycled drains them first.

When only a Starter's fact says a worker is gone, its leases are *parked* for up to
``EXIT_STATUS_GRACE_S`` so they are revoked with the Worker's own report of how the process
died. A client that dies holding leases would keep those slots forever: while leases are out
the Pool checks the holders every ``HOLDER_CHECK_S`` (the actor does the psutil part, see
``tree/holder_watch.py``); a dead holder's leases end as if returned with ``recycle`` and its
requests still queued are dropped when they come up. ``PoolCore`` owns one ``LeaseBook``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from snakepit_actors.core.lease_ledger import LeaseEntry, LeaseLedger
from snakepit_actors.core.pool_decisions import Decision, Recall, Revoke, WakeAt
from snakepit_actors.core.timers import CheckHolders, RevokeParked
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import LeaseRecalled, LeaseRevoked

#: How often the Pool checks that the client processes holding leases still live (seconds).
HOLDER_CHECK_S = 0.25

#: How long revocations wait for the Worker's own report of how its process died, when a
#: Starter's fact (a different sender, so it may overtake the Worker's) says it is gone.
EXIT_STATUS_GRACE_S = 0.25

#: Holders found dead that the Pool remembers, to drop their late messages.
MAX_DEAD_HOLDERS = 1024

Leases = list[tuple[str, LeaseEntry[Any]]]


class LeaseBook:
    """The ledger of lent slots, the leases parked for an exit status, and which holders died
    (bounded) and when they are checked next. ``token``: what every call on a lease must
    carry (the pool's worker token), handed out with each ``LeaseGranted``."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.ledger: LeaseLedger[Any] = LeaseLedger()
        self._parked: dict[str, tuple[Leases, SnakepitError]] = {}
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._check_scheduled = False

    def holder_dead(self, holder: Any) -> bool:
        """Whether ``holder`` (an address) was found dead: drop what it sends or waits for."""
        return str(holder) in self._dead

    def watch_holders(self, wanted: bool, now: float) -> list[Decision]:
        """Check the holders in ``HOLDER_CHECK_S`` if ``wanted`` and no check is due yet."""
        if not wanted or self._check_scheduled:
            return []
        self._check_scheduled = True
        return [WakeAt(now + HOLDER_CHECK_S, CheckHolders())]

    def holders_died(self, dead: Sequence[tuple[str, int]]) -> list[tuple[int, Leases]]:
        """The check ran and found ``dead`` (holder key, pid): remember them; returns, per dead
        holder, its pid and the leases to reclaim (those not reported lost). The next check is
        due only once ``watch_holders`` is called again."""
        self._check_scheduled = False
        for key, _pid in dead:
            self._dead[key] = None
            if len(self._dead) > MAX_DEAD_HOLDERS:
                self._dead.popitem(last=False)
        return [(pid, [(lid, e) for lid, e in self.ledger.held_by(key) if not e.lost])
                for key, pid in dead]

    def revoke_worker(self, worker_id: str, error: SnakepitError, now: float,
                      defer: bool = False) -> list[Decision]:
        """Every lease on ``worker_id`` ends with ``error``. ``defer``: the error lacks the
        process's exit status; park the leases up to ``EXIT_STATUS_GRACE_S`` for the Worker's
        ``WorkerProcessLost`` (which revokes them with it)."""
        leases = self.ledger.revoke_worker(worker_id)
        parked, _ = self._parked.pop(worker_id, ([], error))
        leases += parked
        if defer and leases:
            self._parked[worker_id] = (leases, error)
            return [WakeAt(now + EXIT_STATUS_GRACE_S, RevokeParked(worker_id))]
        return _revocations(worker_id, leases, error)

    def revoke_parked(self, worker_id: str) -> list[Decision]:
        """The grace for ``worker_id``'s exit status ended: revoke what is still parked."""
        parked = self._parked.pop(worker_id, None)
        return [] if parked is None else _revocations(worker_id, *parked)


def recalls(worker_id: str, leases: Iterable[tuple[str, LeaseEntry[Any]]]) -> list[Decision]:
    """Ask each holder of ``leases`` (on ``worker_id``) to give it back when its call ends."""
    return [Recall(lease.holder, LeaseRecalled(lease_id, worker_id)) for lease_id, lease in leases]


def _revocations(worker_id: str, leases: Leases, error: SnakepitError) -> list[Decision]:
    return [Revoke(lease.holder, LeaseRevoked(lease_id, worker_id, error))
            for lease_id, lease in leases]
