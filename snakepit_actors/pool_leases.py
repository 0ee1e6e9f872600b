"""The Pool actor's lease desk: the direct data path's handlers (DESIGN §3), mixed into ``Pool``.

    client --LeaseBatch--> Pool (this desk) --LeaseGranted/Refused/Revoked/Recalled--> client
                            └--RecycleWorker--> Worker --WorkerProcessLost--> Pool

A lease request is one more entry in the Pool's ``PoolCore`` queue (FIFO with ``Execute``, the
same max_queue and affinity hint; no queue deadline: the client keeps its callers' deadlines and
withdraws what it no longer needs). When a slot frees, the Pool replies ``LeaseGranted`` where
it would have sent ``RunRequest``; the slot stays taken until the lease comes back. The
``LeaseLedger`` remembers holder and worker of every lease, so a worker's death revokes exactly
its leases, and a worker that must be recycled drains them first.

Split from ``pool.py`` to keep each file readable; it uses the Pool's state (``_core``,
``_workers``, counters) and is not an actor on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import PoolNotReadyError, SnakepitError, WorkerCrashedError
from .messages import (
    LeaseBatch,
    LeaseGranted,
    LeaseRecalled,
    LeaseRefused,
    LeaseRevoked,
    RecycleWorker,
    RequestLease,
    ReturnLease,
    UsageReport,
    WorkerProcessLost,
)
from .telemetry import get_logger

if TYPE_CHECKING:
    from .config import PoolConfig
    from .scheduling import Dispatch, PoolCore
    from .telemetry import LatencyWindow

log = get_logger("pool")

A = TypeVar("A")

#: How long revocations wait for the Worker's own report of how its process died, when a
#: Starter's fact (a different sender, so it may overtake the Worker's) says it is gone.
EXIT_STATUS_GRACE_S = 0.25


class LeaseDesk:
    """Lease handlers of the Pool actor; see the module docstring."""

    if TYPE_CHECKING:  # provided by Pool / Thespian
        _config: PoolConfig | None
        _core: PoolCore[Any]
        _workers: dict[str, Any]
        _counters: Any
        _latency: LatencyWindow
        _started: bool
        _degraded: str | None

        def send(self, target: Any, message: Any) -> None: ...
        def wakeupAfter(self, timePeriod: Any, payload: Any = None) -> None: ...
        def _degraded_error(self) -> PoolNotReadyError: ...
        def _offer(self, pending: Any, now: float) -> str | None: ...
        def _rejection(self, reason: str, msg: Any) -> SnakepitError: ...
        def _remember_session(self, session_id: str | None, worker_id: str) -> None: ...
        def _send_dispatches(self, dispatches: list[Dispatch[Any]]) -> None: ...
        def _new_pending(self, request: RequestLease, reply_to: Any, now: float) -> Any: ...
        def _fail_held(self, worker_id: str, reason: str, exit_code: int | None = None,
                       error: SnakepitError | None = None) -> None: ...

    _ledger: LeaseLedger[Any]
    # worker_id -> leases taken off a gone worker, waiting for its exit status to revoke them
    _parked: dict[str, tuple[list[tuple[str, Any]], SnakepitError]]

    # --- handlers -----------------------------------------------------------------------------

    def receiveMsg_RequestLease(self, msg: RequestLease, sender: Any) -> None:
        self._submit_lease(msg, sender, time.time())

    def receiveMsg_ReturnLease(self, msg: ReturnLease, sender: Any) -> None:
        self._return_lease(msg, time.time())

    def receiveMsg_UsageReport(self, msg: UsageReport, sender: Any) -> None:
        self._count_usage(msg)

    def receiveMsg_LeaseBatch(self, msg: LeaseBatch, sender: Any) -> None:
        now = time.time()
        for request_id in msg.withdrawn:
            self._core.cancel(request_id)
        for returned in msg.returns:
            self._return_lease(returned, now)
        for request in msg.requests:
            self._submit_lease(request, sender, now)
        if msg.usage is not None:
            self._count_usage(msg.usage)

    def receiveMsg_WorkerProcessLost(self, msg: WorkerProcessLost, sender: Any) -> None:
        self._fail_held(msg.worker_id, "process_lost", error=msg.error)
        entry = self._workers.get(msg.worker_id)
        if entry is not None:
            entry.info = replace(entry.info, state="stopping")

    # --- steps --------------------------------------------------------------------------------

    def _submit_lease(self, msg: RequestLease, holder: Any, now: float) -> None:
        assert self._config is not None
        pending = self._new_pending(msg, holder, now)
        if not self._started and not self._core.closed:
            self._refuse_lease(pending, PoolNotReadyError(
                f"pool {self._config.name!r} is still starting", reason="starting"))
        elif self._degraded is not None and not self._core.closed:
            self._refuse_lease(pending, self._degraded_error())
        else:
            rejected = self._offer(pending, now)
            if rejected is not None:
                self._refuse_lease(pending, self._rejection(rejected, msg))

    def _refuse_lease(self, pending: Any, error: SnakepitError) -> None:
        self.send(pending.reply_to, LeaseRefused(pending.request.request_id, error))

    def _grant_lease(self, dispatch: Dispatch[Any]) -> None:
        """``dispatch`` of a lease request: lend the slot to its holder."""
        entry = self._workers[dispatch.worker_id]
        holder = dispatch.item.reply_to
        self._ledger.grant(dispatch.request_id, holder, dispatch.worker_id)
        self.send(holder, LeaseGranted(dispatch.request_id, dispatch.worker_id,
                                       entry.info.endpoint, entry.info.pid))

    def _return_lease(self, msg: ReturnLease, now: float) -> None:
        lease = self._ledger.get(msg.request_id)
        if lease is None:
            return  # revoked meanwhile: the worker is gone already
        worker = self._workers.get(lease.worker_id)
        if msg.worker_lost:
            self._ledger.mark_lost(msg.request_id)
            self._core.remove_worker(lease.worker_id)  # no more grants; the rest ends on exit
            if worker is not None:
                worker.info = replace(worker.info, state="unhealthy")
                self.send(worker.address, RecycleWorker(lease.worker_id, "unreachable",
                                                        msg.reason))
            self._send_dispatches(self._core.release_held(now))
            return
        self._ledger.end(msg.request_id)
        dispatches = self._core.checkin(lease.worker_id, msg.request_id, now,
                                        worker_lost=msg.recycle)
        if msg.recycle:
            log.info("request.timeout", worker_id=lease.worker_id, reason=msg.reason)
            for lease_id, other in self._ledger.drain(lease.worker_id, "request_timeout"):
                self.send(other.holder, LeaseRecalled(lease_id, lease.worker_id))
        reason = self._ledger.recycle_due(lease.worker_id)
        if worker is not None:
            if reason is not None:
                self.send(worker.address, RecycleWorker(lease.worker_id, reason, msg.reason))
            state = ("stopping" if not self._core.has_worker(lease.worker_id)
                     else "busy" if self._core.in_flight(lease.worker_id) else "ready")
            worker.info = replace(worker.info, state=state)
        self._send_dispatches(dispatches + self._core.release_held(now))

    def _revoke_leases(self, worker_id: str, error: SnakepitError, defer: bool = False) -> None:
        """Every lease on ``worker_id`` ends with ``error``. ``defer``: the error lacks the
        process's exit status; park the leases up to ``EXIT_STATUS_GRACE_S`` for the Worker's
        ``WorkerProcessLost`` (which revokes them with it)."""
        leases = self._ledger.revoke_worker(worker_id)
        parked, _ = self._parked.pop(worker_id, ([], error))
        leases += parked
        if defer and leases:
            self._parked[worker_id] = (leases, error)
            self.wakeupAfter(EXIT_STATUS_GRACE_S, payload=f"revoke:{worker_id}")
            return
        for lease_id, lease in leases:
            self.send(lease.holder, LeaseRevoked(lease_id, worker_id, error))

    def _revoke_parked(self, worker_id: str) -> None:
        """The grace for ``worker_id``'s exit status ended: revoke what is still parked."""
        parked = self._parked.pop(worker_id, None)
        if parked is not None:
            for lease_id, lease in parked[0]:
                self.send(lease.holder, LeaseRevoked(lease_id, worker_id, parked[1]))

    def _count_usage(self, usage: UsageReport) -> None:
        c = self._counters
        c.requests += usage.requests
        c.errors += usage.errors
        c.queue_timeouts += usage.queue_timeouts
        for latency_ms in usage.latencies_ms:
            self._latency.add(latency_ms)
        for used in usage.workers:
            entry = self._workers.get(used.worker_id)
            if entry is not None:
                entry.info = replace(entry.info, requests=entry.info.requests + used.requests)
            for session_id in used.sessions:
                self._remember_session(session_id, used.worker_id)


def lease_crash_error(worker_id: str, reason: str, exit_code: int | None) -> WorkerCrashedError:
    """The error leases on ``worker_id`` are revoked with when only the Starter's fact (no exit
    status of the process) says it is gone."""
    return WorkerCrashedError(
        f"worker {worker_id} exited ({reason}) while a direct call held it",
        details={"worker_id": worker_id, "exit_code": exit_code,
                 "signal": -exit_code if exit_code is not None and exit_code < 0 else None})


@dataclass(slots=True)
class LeaseEntry(Generic[A]):
    """One lease the Pool lent: to ``holder`` (an actor address), on ``worker_id``. ``lost``:
    the holder reported the worker unreachable and waits for the revocation."""

    holder: A
    worker_id: str
    lost: bool = False


class LeaseLedger(Generic[A]):
    """The Pool's record of lent slots: lease id -> holder and worker, indexed by worker, and
    the workers that drain (wait for their leases) before a recycle."""

    def __init__(self) -> None:
        self._leases: dict[str, LeaseEntry[A]] = {}
        self._by_worker: dict[str, set[str]] = {}
        self._draining: dict[str, str] = {}  # worker_id -> why it will be recycled

    def __len__(self) -> int:
        return len(self._leases)

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

    def leases_on(self, worker_id: str) -> list[str]:
        """The ids of the live leases on ``worker_id`` (to recall them)."""
        return [lid for lid in sorted(self._by_worker.get(worker_id, ()))
                if not self._leases[lid].lost]

    def recycle_due(self, worker_id: str) -> str | None:
        """The recycle reason if ``worker_id`` drains and its last lease is back (once)."""
        if worker_id in self._draining and not self._by_worker.get(worker_id):
            return self._draining.pop(worker_id)
        return None

    def revoke_worker(self, worker_id: str) -> list[tuple[str, LeaseEntry[A]]]:
        """``worker_id`` is gone: forget (and return, to revoke) every lease on it."""
        self._draining.pop(worker_id, None)
        ids = sorted(self._by_worker.pop(worker_id, ()))
        return [(lid, self._leases.pop(lid)) for lid in ids]
