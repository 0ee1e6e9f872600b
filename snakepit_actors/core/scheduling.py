"""The Pool's queue and slots, as plain state with no actors and no clock of its own.

``Scheduler`` keeps the FIFO queue of waiting requests, the free slots of ready workers
(``capacity`` slots per worker) and what each worker holds. Every call takes ``now`` and returns
small decision records; ``pool_core.PoolCore`` turns them into the Pool's decisions. Each
decision is O(1) amortised:

* free slots are a deque of ``(worker_id, generation)`` tokens, checked lazily on pop, so a
  worker that leaves costs nothing until its stale tokens surface; a slot taken out of turn
  (affinity) leaves a debt that cancels that worker's next token;
* the queue is a deque in arrival order plus a heap of queue deadlines; an expired or dispatched
  entry is marked done and skipped when it reaches the front of either structure;
* a session's request whose preferred worker is busy is *held* for that worker up to
  ``affinity_wait_s`` (its reply and the worker's check-in travel separately, so a sequential
  caller's next request often arrives a moment before the worker is free again); when the hold
  ends it takes any free slot or joins the queue;
* *prefetch*: slots *ahead* per worker (``prefetch.AheadSlots``) for an ``ahead`` request
  that would queue: its busy worker starts it next. It counts as queued (and for max_queue).
* a *strict* request (``affinity.py``) is held for its worker until its queue deadline
  ("strict_queue") or refused at once ("strict_fail_fast"); if that worker leaves, the held
  strict requests are *stranded* (``take_stranded``): they must fail, not run elsewhere.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from snakepit_actors.core.prefetch import AheadSlots
from snakepit_actors.core.scheduling_decisions import (
    Dispatch,
    Expired,
    Queued,
    Rejected,
    queue_expiry,
)

__all__ = ["Dispatch", "Expired", "Queued", "Rejected", "Scheduler", "queue_expiry"]

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting(Generic[T]):
    request_id: str
    item: T
    enqueued_at: float
    expires_at: float | None
    reason: Literal["queue_timeout", "deadline_in_queue"]
    done: bool = False
    held_for: str | None = None  # the worker this request is held for (affinity), if any
    strict: bool = False  # held for that worker only: never runs elsewhere
    ahead: bool = False  # may take a slot ahead (prefetch) on a busy worker


@dataclass(slots=True)
class _Worker:
    generation: int
    in_flight: set[str] = field(default_factory=set)
    debt: int = 0  # tokens in the deque that stand for slots taken out of turn
    held: deque[_Waiting[Any]] = field(default_factory=deque)


class Scheduler(Generic[T]):
    """FIFO queue + available/busy bookkeeping for one pool.

    Args:
        capacity: concurrent requests per worker.
        max_queue: how many requests may wait; beyond it ``submit`` rejects ("queue_full").
        queue_timeout_s: how long a request may wait for a worker; None waits for its own
            deadline only.
        affinity_wait_s: how long a request may be held for its busy preferred worker.
        prefetch: slots ahead per worker, beyond ``capacity`` (see the module docstring).
    """

    def __init__(self, *, capacity: int = 1, max_queue: int = 1000,
                 queue_timeout_s: float | None = None, affinity_wait_s: float = 0.0,
                 prefetch: int = 0) -> None:
        self._capacity = capacity
        self._ahead = AheadSlots(prefetch)
        self._affinity_wait_s = affinity_wait_s
        self._holds: list[tuple[float, int, _Waiting[T]]] = []
        self._max_queue = max_queue
        self._queue_timeout_s = queue_timeout_s
        self._workers: dict[str, _Worker] = {}
        self._slots: deque[tuple[str, int]] = deque()
        self._free = 0
        self._queue: deque[_Waiting[T]] = deque()
        self._waiting: dict[str, _Waiting[T]] = {}
        self._queued = 0
        self._expiry: list[tuple[float, int, _Waiting[T]]] = []
        self._stranded: list[tuple[str, str, T]] = []
        self._seq = itertools.count()
        self._generations = itertools.count(1)
        self.closed = False

    # --- observations -------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def available(self) -> int:
        """Workers with at least one free slot."""
        return sum(1 for w in self._workers.values() if len(w.in_flight) < self._capacity)

    @property
    def busy(self) -> int:
        """Workers holding at least one request."""
        return sum(1 for w in self._workers.values() if w.in_flight)

    @property
    def queued(self) -> int:
        return self._queued + self._ahead.used(len(self._workers))

    @property
    def free_slots(self) -> int:
        """Slots of ready workers that could take a request now (not counting ahead)."""
        return self._free

    def in_flight(self, worker_id: str) -> int:
        worker = self._workers.get(worker_id)
        return len(worker.in_flight) if worker else 0

    def has_worker(self, worker_id: str) -> bool:
        return worker_id in self._workers

    # --- decisions ----------------------------------------------------------------------------

    def add_worker(self, worker_id: str, now: float) -> list[Dispatch[T]]:
        """A worker became ready (again): its slots take queued requests first."""
        self.remove_worker(worker_id)
        self._workers[worker_id] = _Worker(next(self._generations))
        for _ in range(self._capacity):
            self._give_slot(worker_id)
        self._ahead.add_worker(worker_id, self._workers[worker_id].generation)
        return self._drain(now)

    def remove_worker(self, worker_id: str) -> list[str]:
        """A worker left; returns the ids of the requests it held (they must be failed)."""
        worker = self._workers.pop(worker_id, None)
        if worker is None:
            return []
        running = len(worker.in_flight)
        self._free -= max(0, self._capacity - running)
        self._ahead.remove_worker(worker_id, running, self._capacity)
        for waiting in worker.held:  # released by the next release_held()
            if waiting.done:
                continue
            if waiting.strict:
                self._settle(waiting)
                self._stranded.append((worker_id, waiting.request_id, waiting.item))
            else:
                heapq.heappush(self._holds, (float("-inf"), next(self._seq), waiting))
        return sorted(worker.in_flight)

    def submit(self, request_id: str, item: T, now: float, deadline: float | None = None,
               preferred: str | None = None, *, expires: bool = True,
               strict: Literal["hint", "strict_queue", "strict_fail_fast"] = "hint",
               ahead: bool = False) -> Dispatch[T] | Queued | Rejected:
        """A new request: dispatch it to a free slot, queue it, or refuse it.

        ``preferred`` (affinity hint) takes that worker's free slot if it has one; otherwise
        any free slot, as usual. ``expires=False`` queues it with no queue deadline: it waits
        until dispatched, cancelled or closed (lease requests, whose callers keep their own).
        ``strict`` (with ``preferred``, a ready worker) runs it on that worker only: held until
        a slot frees ("strict_queue") or refused with "affinity_busy" ("strict_fail_fast").
        ``ahead``: it may take a slot ahead on a busy worker rather than queue (prefetch).
        """
        if self.closed:
            return Rejected("closed")
        if deadline is not None and deadline <= now:
            return Rejected("deadline_passed")
        slot = self._take_preferred(preferred) if preferred else None
        if slot is None and preferred is not None and strict != "hint":
            return self._submit_strict(preferred, request_id, item, now, deadline, expires,
                                       strict)
        if slot is None and preferred in self._workers and self._affinity_wait_s > 0 \
                and self._queued < self._max_queue:
            self._hold(preferred, request_id, item, now, deadline, expires)
            return Queued(self._queued)
        slot = slot or self._take_slot() or (
            self._take_ahead() if ahead and not self._queued and self.queued < self._max_queue
            else None)
        if slot is not None:
            self._add(slot, request_id, ahead)
            return Dispatch(slot, request_id, item)
        if self.queued >= self._max_queue:
            return Rejected("queue_full")
        self._enqueue(request_id, item, now, deadline, expires)
        self._queue[-1].ahead = ahead
        return Queued(self.queued)

    def _submit_strict(self, worker_id: str, request_id: str, item: T, now: float,
                       deadline: float | None, expires: bool,
                       strict: str) -> Queued | Rejected:
        if strict == "strict_fail_fast" or worker_id not in self._workers:
            return Rejected("affinity_busy")
        if self._queued >= self._max_queue:
            return Rejected("queue_full")
        waiting = self._new_waiting(request_id, item, now, deadline, expires)
        waiting.held_for, waiting.strict = worker_id, True
        self._workers[worker_id].held.append(waiting)
        return Queued(self._queued)

    def take_stranded(self) -> list[tuple[str, str, T]]:
        """Strict requests whose worker left while they waited for it, as
        ``(worker_id, request_id, item)``; they must fail (see the module docstring)."""
        out, self._stranded = self._stranded, []
        return out

    def checkin(self, worker_id: str, request_id: str, now: float,
                worker_lost: bool = False) -> list[Dispatch[T]]:
        """``worker_id`` finished ``request_id``; its slot serves the queue (unless lost)."""
        worker = self._workers.get(worker_id)
        if worker is None or request_id not in worker.in_flight:
            return []
        if worker_lost:
            self.remove_worker(worker_id)  # while the request still counts as holding a slot
            return []
        worker.in_flight.discard(request_id)
        self._ahead.done(worker_id, request_id)
        if len(worker.in_flight) >= self._capacity:  # the position freed was one ahead
            self._ahead.give(worker_id, worker.generation)
            return self._drain(now)
        while worker.held:
            waiting = worker.held.popleft()
            if not waiting.done:
                self._settle(waiting)
                self._add(worker_id, waiting.request_id, waiting.ahead)
                return [Dispatch(worker_id, waiting.request_id, waiting.item)]
        self._give_slot(worker_id)
        return self._drain(now)

    def cancel(self, request_id: str) -> T | None:
        """Take ``request_id`` out of the queue; returns its item, or None if it is not queued."""
        waiting = self._waiting.pop(request_id, None)
        if waiting is None or waiting.done:
            return None
        waiting.done = True
        self._queued -= 1
        self._trim_queue()
        return waiting.item

    def expire(self, now: float) -> list[Expired[T]]:
        """Remove and return every queued request whose queue deadline has passed."""
        out: list[Expired[T]] = []
        while self._expiry and self._expiry[0][0] <= now:
            _, _, waiting = heapq.heappop(self._expiry)
            if not waiting.done:
                waiting.done = True
                self._queued -= 1
                self._waiting.pop(waiting.request_id, None)
                out.append(Expired(waiting.request_id, waiting.item, waiting.reason))
        self._trim_queue()
        return out

    def release_held(self, now: float) -> list[Dispatch[T]]:
        """Requests whose affinity hold ended (or whose worker left) take any free slot or
        join the queue in arrival order."""
        out: list[Dispatch[T]] = []
        while self._holds and self._holds[0][0] <= now:
            _, _, waiting = heapq.heappop(self._holds)
            if waiting.done or waiting.held_for is None:
                continue
            waiting.held_for = None
            slot = self._take_slot()
            if slot is not None:
                self._settle(waiting)
                self._add(slot, waiting.request_id, waiting.ahead)
                out.append(Dispatch(slot, waiting.request_id, waiting.item))
            else:
                self._queue.append(waiting)
        return out

    def next_expiry(self) -> float | None:
        """When the next queued request expires or hold ends (for the actor's wakeup timer)."""
        while self._expiry and self._expiry[0][2].done:
            heapq.heappop(self._expiry)
        while self._holds and (self._holds[0][2].done or self._holds[0][2].held_for is None):
            heapq.heappop(self._holds)
        times = [heap[0][0] for heap in (self._expiry, self._holds) if heap]
        return min(times) if times else None

    def close(self) -> list[tuple[str, T]]:
        """Refuse new requests; returns the queued ones (they must be failed)."""
        self.closed = True
        return self.take_queued()

    def take_queued(self) -> list[tuple[str, T]]:
        """Empty the queue; returns what waited there, oldest first."""
        waiting = sorted((w for w in self._waiting.values() if not w.done),
                         key=lambda w: w.enqueued_at)
        out = [(w.request_id, w.item) for w in waiting]
        for w in waiting:
            w.done = True
        self._queue.clear()
        self._waiting.clear()
        self._holds.clear()
        self._expiry.clear()
        self._queued = 0
        return out

    # --- internals ----------------------------------------------------------------------------

    def _give_slot(self, worker_id: str) -> None:
        self._slots.append((worker_id, self._workers[worker_id].generation))
        self._free += 1

    def _add(self, worker_id: str, request_id: str, ahead: bool) -> None:
        self._workers[worker_id].in_flight.add(request_id)
        self._ahead.dispatched(worker_id, request_id, ahead)

    def _take_ahead(self) -> str | None:
        return self._ahead.take(self._generation_of)

    def _generation_of(self, worker_id: str) -> int | None:
        worker = self._workers.get(worker_id)
        return worker.generation if worker is not None else None

    def _take_preferred(self, worker_id: str) -> str | None:
        worker = self._workers.get(worker_id)
        if worker is None or len(worker.in_flight) >= self._capacity:
            return None
        worker.debt += 1
        self._free -= 1
        return worker_id

    def _take_slot(self) -> str | None:
        while self._slots and self._free > 0:
            worker_id, generation = self._slots.popleft()
            worker = self._workers.get(worker_id)
            if worker is None or worker.generation != generation:
                continue
            if worker.debt:
                worker.debt -= 1
                continue
            self._free -= 1
            return worker_id
        return None

    def _new_waiting(self, request_id: str, item: T, now: float,
                     deadline: float | None, expires: bool = True) -> _Waiting[T]:
        expires_at, reason = (queue_expiry(now, deadline, self._queue_timeout_s) if expires
                              else (None, "queue_timeout"))
        waiting: _Waiting[T] = _Waiting(request_id, item, now, expires_at, reason)
        self._waiting[request_id] = waiting
        self._queued += 1
        if expires_at is not None:
            heapq.heappush(self._expiry, (expires_at, next(self._seq), waiting))
        return waiting

    def _enqueue(self, request_id: str, item: T, now: float, deadline: float | None,
                 expires: bool = True) -> None:
        self._queue.append(self._new_waiting(request_id, item, now, deadline, expires))

    def _hold(self, worker_id: str, request_id: str, item: T, now: float,
              deadline: float | None, expires: bool = True) -> None:
        waiting = self._new_waiting(request_id, item, now, deadline, expires)
        waiting.held_for = worker_id
        self._workers[worker_id].held.append(waiting)
        heapq.heappush(self._holds, (now + self._affinity_wait_s, next(self._seq), waiting))

    def _settle(self, waiting: _Waiting[T]) -> None:
        """``waiting`` leaves the queue for a worker."""
        waiting.done = True
        waiting.held_for = None
        self._waiting.pop(waiting.request_id, None)
        self._queued -= 1

    def _drain(self, now: float) -> list[Dispatch[T]]:
        """Free slots take queued requests in arrival order. One whose queue deadline has
        passed is skipped, not dispatched: ``expire`` reports it."""
        out: list[Dispatch[T]] = []
        while self._free or self._ahead.free:
            self._trim_queue()
            if not self._queue:
                break
            waiting = self._queue.popleft()
            if waiting.expires_at is not None and waiting.expires_at <= now:
                continue  # still in the expiry heap: the next expire() returns it
            slot = self._take_slot() or (self._take_ahead() if waiting.ahead else None)
            if slot is None:
                self._queue.appendleft(waiting)
                break
            self._settle(waiting)
            self._add(slot, waiting.request_id, waiting.ahead)
            out.append(Dispatch(slot, waiting.request_id, waiting.item))
        return out

    def _trim_queue(self) -> None:
        while self._queue and self._queue[0].done:
            self._queue.popleft()
