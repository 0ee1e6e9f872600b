"""Affinity holds on the client's side of the direct path: callers of a session waiting a
moment for the lease on their session's worker, as plain state (no clock of its own).

``LeaseBroker`` (leases.py) puts a caller here instead of in its FIFO when the caller's session
last ran on a worker whose lease is not idle now; that worker's next free lease goes to the
held caller before the FIFO head (``take_for``). A hold ends at ``until`` (the broker's
``affinity_wait_s`` after it began): ``expired`` returns the caller, which then takes any lease
like every other caller. This is the client's half of ``PoolConfig.affinity_wait_s``; the
Pool's half (``scheduling.Scheduler``) holds requests that reach the Pool the same way.

Every hold lasts the same time, so arrival order is expiry order: one deque gives both, and
entries of callers that left (served, abandoned, failed) are skipped when they surface. Each
call is O(1) amortised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Holds(Generic[T]):
    """Callers held for a worker, each until a time; see the module docstring."""

    def __init__(self) -> None:
        self._until: dict[T, tuple[str, float]] = {}  # live holds: item -> (worker, until)
        self._order: deque[tuple[float, T]] = deque()  # arrival (= expiry) order, lazy
        self._by_worker: dict[str, deque[T]] = {}  # worker -> held items, arrival order, lazy

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, item: object) -> bool:
        return item in self._until

    def hold(self, item: T, worker_id: str, until: float) -> None:
        """``item`` waits for ``worker_id``'s lease until ``until``."""
        self._until[item] = (worker_id, until)
        self._order.append((until, item))
        self._by_worker.setdefault(worker_id, deque()).append(item)

    def take_for(self, worker_id: str) -> T | None:
        """The oldest caller still held for ``worker_id`` (its hold ends), or None."""
        queue = self._by_worker.get(worker_id)
        while queue:
            item = queue.popleft()
            held = self._until.get(item)
            if held is not None and held[0] == worker_id:
                del self._until[item]
                self._trim()
                return item
        self._by_worker.pop(worker_id, None)
        return None

    def drop(self, item: T) -> bool:
        """``item`` stops being held (it left); False if it was not held."""
        found = self._until.pop(item, None) is not None
        self._trim()
        return found

    def expired(self, now: float) -> list[T]:
        """The callers whose hold ended by ``now``, oldest first; they are held no more."""
        out: list[T] = []
        while self._order and self._order[0][0] <= now:
            until, item = self._order.popleft()
            held = self._until.get(item)
            if held is not None and held[1] == until:
                del self._until[item]
                out.append(item)
        self._trim()
        return out

    def next_at(self) -> float | None:
        """When the oldest live hold ends (None: nothing is held)."""
        self._trim()
        return self._order[0][0] if self._order else None

    def pop_newest(self) -> T | None:
        """End the newest hold and return its caller (None: nothing is held)."""
        while self._order:
            until, item = self._order.pop()
            held = self._until.get(item)
            if held is not None and held[1] == until:
                del self._until[item]
                return item
        return None

    def items(self) -> list[T]:
        """Every held caller, oldest first."""
        return [item for until, item in self._order
                if self._until.get(item, ("", None))[1] == until]

    def _trim(self) -> None:
        while self._order and self._until.get(self._order[0][1], ("", None))[1] \
                != self._order[0][0]:
            self._order.popleft()
        if not self._until:
            self._order.clear()
            self._by_worker.clear()
