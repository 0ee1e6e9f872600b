"""The Pool's record of lent slots (the direct data path's server side), as plain state.

A lease is one worker slot lent to a client (its *holder*, an opaque address here). The ledger
remembers holder and worker of every lease, indexed by worker, so a worker's death revokes
exactly its leases, and a worker that must be recycled *drains* first: its leases are recalled
and the recycle goes ahead when the last one is back. ``PoolCore`` owns one; the client's side
is ``leases.LeaseBroker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

A = TypeVar("A")


@dataclass(slots=True)
class LeaseEntry(Generic[A]):
    """One lease the Pool lent: to ``holder`` (an actor address), on ``worker_id``. ``lost``:
    the holder reported the worker unreachable and waits for the revocation."""

    holder: A
    worker_id: str
    lost: bool = False


class LeaseLedger(Generic[A]):
    """Lease id -> holder and worker, indexed by worker, and the workers that drain (wait for
    their leases) before a recycle."""

    def __init__(self) -> None:
        self._leases: dict[str, LeaseEntry[A]] = {}
        self._by_worker: dict[str, set[str]] = {}
        self._draining: dict[str, str] = {}  # worker_id -> why it will be recycled

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, lease_id: object) -> bool:
        return lease_id in self._leases

    def grant(self, lease_id: str, holder: A, worker_id: str) -> None:
        self._leases[lease_id] = LeaseEntry(holder, worker_id)
        self._by_worker.setdefault(worker_id, set()).add(lease_id)

    def get(self, lease_id: str) -> LeaseEntry[A] | None:
        return self._leases.get(lease_id)

    def on_worker(self, worker_id: str) -> int:
        return len(self._by_worker.get(worker_id, ()))

    def end(self, lease_id: str) -> LeaseEntry[A] | None:
        """The holder gave ``lease_id`` back; returns its entry (None if unknown)."""
        entry = self._leases.pop(lease_id, None)
        if entry is not None:
            ids = self._by_worker.get(entry.worker_id)
            if ids is not None:
                ids.discard(lease_id)
                if not ids:
                    del self._by_worker[entry.worker_id]
        return entry

    def mark_lost(self, lease_id: str) -> LeaseEntry[A] | None:
        entry = self._leases.get(lease_id)
        if entry is not None:
            entry.lost = True
        return entry

    def drain(self, worker_id: str, reason: str) -> list[tuple[str, LeaseEntry[A]]]:
        """``worker_id`` is to be recycled once its leases are back; returns the leases on it
        to recall (those not already reported lost)."""
        self._draining.setdefault(worker_id, reason)
        return [(lid, self._leases[lid]) for lid in sorted(self._by_worker.get(worker_id, ()))
                if not self._leases[lid].lost]

    def leases_on(self, worker_id: str) -> list[tuple[str, LeaseEntry[A]]]:
        """The live leases on ``worker_id`` (to recall them), not those reported lost."""
        return [(lid, self._leases[lid]) for lid in sorted(self._by_worker.get(worker_id, ()))
                if not self._leases[lid].lost]

    def recycle_due(self, worker_id: str) -> str | None:
        """The recycle reason if ``worker_id`` drains and its last lease is back (once)."""
        if worker_id in self._draining and not self._by_worker.get(worker_id):
            return self._draining.pop(worker_id)
        return None

    def held_by(self, holder_key: str) -> list[tuple[str, LeaseEntry[A]]]:
        """The leases lent to the holder whose address reads ``holder_key``."""
        return [(lid, e) for lid, e in sorted(self._leases.items())
                if str(e.holder) == holder_key]

    def revoke_worker(self, worker_id: str) -> list[tuple[str, LeaseEntry[A]]]:
        """``worker_id`` is gone: forget (and return, to revoke) every lease on it."""
        self._draining.pop(worker_id, None)
        ids = sorted(self._by_worker.pop(worker_id, ()))
        return [(lid, self._leases.pop(lid)) for lid in ids]
