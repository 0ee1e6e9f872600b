"""The Pool actor's lease desk: the direct data path's handlers (DESIGN §3), mixed into ``Pool``.

    client --LeaseBatch--> Pool (this desk) --LeaseGranted/Refused/Revoked/Recalled--> client
                            └--RecycleWorker--> Worker --WorkerProcessLost--> Pool

A lease request is one more entry in the Pool's ``PoolCore`` queue (FIFO with ``Execute``, the
same max_queue and affinity hint; no queue deadline: the client keeps its callers' deadlines and
withdraws what it no longer needs). When a slot frees, the Pool replies ``LeaseGranted`` where
it would have sent ``RunRequest``; the slot stays taken until the lease comes back. The
``LeaseLedger`` remembers holder and worker of every lease, so a worker's death revokes exactly
its leases, and a worker that must be recycled drains them first.

A client that dies holding leases would keep those slots forever: a client gives its pid
(``holder_pid``), and while leases are out the Pool checks every ``HOLDER_CHECK_S`` that each
holder process still lives (``HolderWatch``). A dead holder's leases end as if returned with
``recycle`` (a call it left running keeps its worker busy until the process is replaced) and
its lease requests still queued are dropped when they come up.

Split from ``pool.py`` to keep each file readable; it uses the Pool's state (``_core``,
``_workers``, counters) and is not an actor on its own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from snakepit_actors.core.lease_ledger import LeaseLedger
from snakepit_actors.errors import PoolNotReadyError, SnakepitError, WorkerCrashedError
from snakepit_actors.messages import (
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
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.pool_desk import PoolDesk

if TYPE_CHECKING:
    from snakepit_actors.core.scheduling import Dispatch
    from snakepit_actors.telemetry import LatencyWindow

log = get_logger("pool")

A = TypeVar("A")

#: How often the Pool checks that the client processes holding leases still live (seconds).
HOLDER_CHECK_S = 0.25

#: How long revocations wait for the Worker's own report of how its process died, when a
#: Starter's fact (a different sender, so it may overtake the Worker's) says it is gone.
EXIT_STATUS_GRACE_S = 0.25


class LeaseDesk(PoolDesk):
    """Lease handlers of the Pool actor; see the module docstring."""

    if TYPE_CHECKING:  # provided by Pool / Thespian
        _counters: Any
        _latency: LatencyWindow
        _started: bool
        _degraded: str | None

        def _degraded_error(self) -> PoolNotReadyError: ...
        def _offer(self, pending: Any, now: float) -> str | None: ...
        def _rejection(self, reason: str, msg: Any) -> SnakepitError: ...
        def _remember_session(self, session_id: str | None, worker_id: str) -> None: ...
        def _new_pending(self, request: RequestLease, reply_to: Any, now: float) -> Any: ...
        def _fail_held(self, worker_id: str, reason: str, exit_code: int | None = None,
                       error: SnakepitError | None = None) -> None: ...
        def _check_recycle(self, worker_id: str) -> None: ...

    _ledger: LeaseLedger[Any]
    _holders: HolderWatch
    # worker_id -> leases taken off a gone worker, waiting for its exit status to revoke them
    _parked: dict[str, tuple[list[tuple[str, Any]], SnakepitError]]

    # --- handlers -----------------------------------------------------------------------------

    def receiveMsg_RequestLease(self, msg: RequestLease, sender: Any) -> None:
        self._watch_holder(sender, msg.holder_pid)
        self._submit_lease(msg, sender, time.time())

    def receiveMsg_ReturnLease(self, msg: ReturnLease, sender: Any) -> None:
        self._return_lease(msg, time.time())

    def receiveMsg_UsageReport(self, msg: UsageReport, sender: Any) -> None:
        self._count_usage(msg)

    def receiveMsg_LeaseBatch(self, msg: LeaseBatch, sender: Any) -> None:
        self._watch_holder(sender, msg.holder_pid)
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

    def _watch_holder(self, holder: Any, pid: int) -> None:
        if pid and self._holders.watch(str(holder), pid) and not self._holders.scheduled:
            self._holders.scheduled = True
            self.wakeupAfter(HOLDER_CHECK_S, payload="holders")

    def _check_holders(self) -> None:
        """Wake-up: reclaim the leases of holders that died; check again while leases are out."""
        self._holders.scheduled = False
        now = time.time()
        for key, pid in self._holders.dead():
            reclaimed = [(lid, e) for lid, e in self._ledger.held_by(key) if not e.lost]
            log.warning("lease.holder_died", holder_pid=pid, leases=len(reclaimed))
            for lease_id, entry in reclaimed:
                self._return_lease(ReturnLease(lease_id, entry.worker_id, recycle=True,
                                               reason=f"its client (pid {pid}) died"), now)
        if len(self._ledger) or self._core.queued:
            self._holders.scheduled = True
            self.wakeupAfter(HOLDER_CHECK_S, payload="holders")

    def _submit_lease(self, msg: RequestLease, holder: Any, now: float) -> None:
        assert self._config is not None
        if self._holders.is_dead(str(holder)):
            return  # a late message of a dead client
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
        if self._holders.is_dead(str(holder)):  # queued before its client died: free the slot
            self._send_dispatches(self._core.checkin(dispatch.worker_id, dispatch.request_id,
                                                     time.time()))
            if not self._core.in_flight(dispatch.worker_id):
                entry.info = replace(entry.info, state="ready")
            return
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
                self._check_recycle(used.worker_id)
            for session_id in used.sessions:
                self._remember_session(session_id, used.worker_id)


def lease_crash_error(worker_id: str, reason: str, exit_code: int | None) -> WorkerCrashedError:
    """The error leases on ``worker_id`` are revoked with when only the Starter's fact (no exit
    status of the process) says it is gone."""
    return WorkerCrashedError(
        f"worker {worker_id} exited ({reason}) while a direct call held it",
        details={"worker_id": worker_id, "exit_code": exit_code,
                 "signal": -exit_code if exit_code is not None and exit_code < 0 else None})


class HolderWatch:
    """The client processes that asked for leases, by holder address (``str``): pid and start
    time, so a reused pid is not taken for the client. ``dead`` checks them (psutil; a few
    microseconds each); holders found dead are remembered (bounded) so their late messages and
    queued requests are dropped."""

    def __init__(self, max_dead: int = 1024) -> None:
        self._alive: dict[str, tuple[int, float]] = {}
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._max_dead = max_dead
        self.scheduled = False

    def watch(self, key: str, pid: int) -> bool:
        """Remember holder ``key`` with ``pid``; True if it is watched. A pid with no live
        process here at first sight is not watched (a client on another host, whose pid means
        nothing here): its leases come back only when it returns them."""
        if key in self._alive:
            return True
        if key in self._dead:
            return False
        started = _create_time(pid)
        if started is None:
            return False
        self._alive[key] = (pid, started)
        return True

    def is_dead(self, key: str) -> bool:
        return key in self._dead

    def dead(self) -> list[tuple[str, int]]:
        """Holders that died since the last call: (key, pid)."""
        gone = [(key, pid) for key, (pid, started) in self._alive.items()
                if _create_time(pid) != started]
        for key, _pid in gone:
            del self._alive[key]
            self._bury(key)
        return gone

    def _bury(self, key: str) -> None:
        self._dead[key] = None
        if len(self._dead) > self._max_dead:
            self._dead.popitem(last=False)


def _create_time(pid: int) -> float | None:
    """The start time of the live process ``pid`` (None: gone or a zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except psutil.Error:
        return None
