"""The Pool's decisions as plain state: ``PoolCore`` is the Pool actor minus Thespian.

    worker facts, requests, leases, timers --method(..., now)--> PoolCore --[Decision]--> actor
        worker records (pool_records) ── RequestDesk (Scheduler, running requests, counters)
        Readiness (started / degraded) ── LeaseBook (LeaseLedger) ── SessionPins (AffinityTable)

One object per pool owns the worker records (a Worker's address is an opaque value), the
requests running on the actor path, the lease ledger of the direct path, graceful recycles,
session pins, the counters and whether the pool has started or is degraded. Every input is a
method taking explicit arguments, ``now`` (Unix seconds) among them, and returning decisions
(``pool_decisions``: sends with their messages built, and wake-ups) for the actor to execute.
No I/O, no clock, no actors: a client's liveness is checked by the actor and comes in through
``holders_checked``. A worker's displayed state is derived from its record when asked.

Rebuilding: a new ``PoolCore`` fed the WorkerRegistry's latest fact per worker routes as the
old one did (a worker record needs nothing but its ``WorkerReady``; pass ``started=True`` if
the pool had started). It cannot know the requests running and leases out (their check-ins and
returns are ignored, and their slots count as free at once, so a worker may briefly hold more
than ``capacity``), per-process request counts, session pins or the counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.lease_book import LeaseBook, recalls
from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.core.pool_decisions import Decision, Recycle, Reply, WakeAt
from snakepit_actors.core.pool_records import Phase, WorkerRecord
from snakepit_actors.core.readiness import Readiness
from snakepit_actors.core.request_desk import RequestDesk
from snakepit_actors.core.session_pins import SessionPins
from snakepit_actors.core.timers import StartupDeadline
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import (
    GRACEFUL_RECYCLE_REASONS,
    CancelRequest,
    Checkin,
    Execute,
    LeaseBatch,
    PoolClosed,
    PoolStats,
    RecycleRequested,
    RecycleWorker,
    RequestLease,
    RequestRecycle,
    ReturnLease,
    SessionCommand,
    SessionsEnded,
    UsageReport,
    WorkerAbandoned,
    WorkerExited,
    WorkerList,
    WorkerProcessLost,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.telemetry import get_logger

log = get_logger("pool")

Decisions = list[Decision]


class PoolCore:
    """One pool's decisions; see the module docstring.

    Args:
        config: the pool's configuration.
        pool: the Pool actor's own address (for ``PoolStarted``).
        start_reply_to: whom to tell ``PoolStarted`` / ``PoolStartFailed`` (None: nobody).
        report_progress: also tell it ``StartProgress`` as each worker becomes ready.
        session_store: the SessionStore's address (None: sessions are not tracked).
        started: the pool had already started (a core rebuilt under a running pool).
        worker_token: the pool's worker token, handed out with every lease.
    """

    def __init__(self, config: PoolConfig, *, pool: Any = None, start_reply_to: Any = None,
                 report_progress: bool = False, session_store: Any = None,
                 started: bool = False, worker_token: str = "") -> None:
        self.config = config
        self.workers: dict[str, WorkerRecord] = {}
        self.readiness = Readiness(config, pool=pool, start_reply_to=start_reply_to,
                                   report_progress=report_progress, started=started)
        self.leases = LeaseBook(worker_token)
        self.ledger = self.leases.ledger
        self.sessions = SessionPins(config.affinity, session_store)
        self.desk = RequestDesk(config, self.workers, self.leases, self.sessions, self.readiness)
        self.scheduler = self.desk.scheduler
        self.counters = self.desk.counters
        self._policy = RecyclePolicy.from_config(config)

    # --- set-up and worker facts --------------------------------------------------------------

    def start(self, now: float) -> Decisions:
        """``InitPool`` arrived: give the workers ``startup_timeout`` to become ready."""
        log.info("pool.init_started", pool=self.config.name, size=self.config.pool_size)
        return [WakeAt(now + self.config.startup_timeout, StartupDeadline())]

    def worker_ready(self, fact: WorkerReady, now: float) -> Decisions:
        """A worker's process (new, or the same one back after a timeout) is ready at
        ``fact.address``: what the old record held ends, and a fresh record takes work."""
        record = self.workers.get(fact.worker_id)
        if fact.reannounced and record is not None and record.runs(fact):
            return []  # the same process, re-announced to a new WorkerRegistry
        out = self._fail_held(fact.worker_id, "replaced", now, "down")
        self._recycle_done(fact.worker_id, replaced=True)
        self.workers[fact.worker_id] = WorkerRecord.from_fact(fact)
        if fact.restarts:
            log.info("worker.restarted", worker_id=fact.worker_id, pid=fact.pid,
                     restarts=fact.restarts)
        out += self.desk.run(self.scheduler.add_worker(fact.worker_id, now), now)
        return out + self.readiness.worker_ready(fact.worker_id, self.scheduler.workers)

    def worker_start_failed(self, fact: WorkerStartFailed, now: float) -> Decisions:
        return self.readiness.start_failed(fact.worker_id, fact.error)

    def worker_exited(self, fact: WorkerExited, now: float) -> Decisions:
        """Its Starter says the worker is gone; a restart is coming (or not)."""
        out = self._fail_held(fact.worker_id, fact.reason, now,
                              "lost" if fact.node_lost else "down", fact.exit_code)
        self._recycle_done(fact.worker_id, replaced=False)
        return out

    def worker_abandoned(self, fact: WorkerAbandoned, now: float) -> Decisions:
        """Its Starter gave up; the WorkerSupervisor may restart the Starter."""
        out = self._fail_held(fact.worker_id, fact.reason, now, "parked"
                              if fact.reason == "no_matching_node" else "abandoned")
        self.readiness.abandoned(fact.worker_id)
        return out + self._check_degraded()

    def pool_degraded(self, reason: str, now: float) -> Decisions:
        """The WorkerSupervisor gave up: no worker will come back."""
        self.readiness.supervisor_gone()
        out: Decisions = []
        for worker_id in list(self.workers):
            out += self._fail_held(worker_id, reason, now, "abandoned")
        return out + self._check_degraded()

    def worker_process_lost(self, msg: WorkerProcessLost, now: float,
                            sender: Any = None) -> Decisions:
        """The Worker ``sender`` saw its process die (``msg.error``: the exit status) and exits
        next; what it was sent and did not check in never reached it: it runs elsewhere."""
        unseen = self.desk.unseen(msg.worker_id, sender)
        return self._fail_held(msg.worker_id, "process_lost", now, "leaving",
                               error=msg.error) + self.desk.rerun(unseen, now)

    # --- requests (the actor path) ------------------------------------------------------------

    def execute(self, msg: Execute, sender: Any, now: float) -> Decisions:
        """Run ``msg`` on a worker, queue it, or reply why not: exactly one outcome."""
        return self.desk.execute(msg, sender, now)

    def cancel(self, msg: CancelRequest, now: float) -> Decisions:
        return self.desk.cancel(msg)

    def checkin(self, msg: Checkin, now: float, sender: Any = None) -> Decisions:
        """A Worker (``sender``) finished a request: it replied, or crashed under it (then
        the Pool replies, or retries an idempotent request elsewhere)."""
        if self.desk.stale(msg, sender):
            return []
        if msg.worker_lost:  # out of rotation first: a retry must not land on it
            self.scheduler.checkin(msg.worker_id, msg.request_id, now, worker_lost=True)
        recycle: Decisions = []
        record = self.workers.get(msg.worker_id)
        if record is not None:
            self._left_rotation(msg.worker_id)
            record.requests += 1
            recycle = self._check_recycle(msg.worker_id, now)  # before its slot takes work
        dispatches = [] if msg.worker_lost else self.scheduler.checkin(
            msg.worker_id, msg.request_id, now)
        return (self.desk.finished(msg, now) + recycle + self.desk.run(dispatches, now)
                + self._fail_stranded())

    # --- leases (the direct data path) --------------------------------------------------------

    def request_lease(self, msg: RequestLease, holder: Any, now: float,
                      watched: bool = False) -> Decisions:
        """A client asks for a slot. ``watched``: the actor watches the holder's process."""
        return self.leases.watch_holders(watched, now) + self.desk.request_lease(msg, holder, now)

    def lease_batch(self, msg: LeaseBatch, holder: Any, now: float,
                    watched: bool = False) -> Decisions:
        """A client's lease traffic, in field order: withdrawn, returns, requests, usage."""
        out = self.leases.watch_holders(watched, now)
        for request_id in msg.withdrawn:
            self.scheduler.cancel(request_id)
        for returned in msg.returns:
            out += self.return_lease(returned, now)
        for request in msg.requests:
            out += self.desk.request_lease(request, holder, now)
        if msg.usage is not None:
            out += self.usage_report(msg.usage, now)
        return out

    def return_lease(self, msg: ReturnLease, now: float) -> Decisions:
        """A lease comes back: plainly, for a recycle (a call on it timed out), or because the
        client could not reach its worker."""
        lease = self.ledger.get(msg.request_id)
        if lease is None:
            return []  # revoked meanwhile: the worker is gone already
        worker_id, record = lease.worker_id, self.workers.get(lease.worker_id)
        if msg.worker_lost:
            return self._unreachable(msg, worker_id, now)
        self.ledger.end(msg.request_id)
        dispatches = self.scheduler.checkin(worker_id, msg.request_id, now,
                                            worker_lost=msg.recycle)
        out: Decisions = []
        if msg.recycle:
            log.info("request.timeout", worker_id=worker_id, reason=msg.reason)
            out += recalls(worker_id, self.ledger.drain(worker_id, "request_timeout"))
        reason = self.ledger.recycle_due(worker_id)
        if record is not None:
            if reason is not None:
                out.append(Recycle(record.address, RecycleWorker(worker_id, reason, msg.reason)))
            self._left_rotation(worker_id)
        out += self.desk.run(dispatches + self.scheduler.release_held(now), now)
        return out + self._fail_stranded()

    def usage_report(self, usage: UsageReport, now: float) -> Decisions:
        """Counters of a client's direct-path calls: stats, per-worker counts, session pins."""
        out = self.desk.count_usage(usage)
        for used in usage.workers:
            record = self.workers.get(used.worker_id)
            if record is not None:
                record.requests += used.requests
                out += self._check_recycle(used.worker_id, now)
            for session_id in used.sessions:
                out += self.desk.remember_session(session_id, used.worker_id, now)
        return out

    def holders_checked(self, dead: Sequence[tuple[str, int]], now: float) -> Decisions:
        """``CheckHolders`` fired and the actor found these holders (key, pid) dead: their
        leases end as if returned with ``recycle``; their queued requests are dropped when they
        come up. Checks again while leases are out or requests wait."""
        out: Decisions = []
        for pid, reclaimed in self.leases.holders_died(dead):
            log.warning("lease.holder_died", holder_pid=pid, leases=len(reclaimed))
            for lease_id, entry in reclaimed:
                out += self.return_lease(ReturnLease(lease_id, entry.worker_id, recycle=True,
                                                     reason=f"its client (pid {pid}) died"), now)
        wanted = bool(len(self.ledger) or self.scheduler.queued)
        return out + self.leases.watch_holders(wanted, now)

    # --- recycling, sessions, timers ----------------------------------------------------------

    def request_recycle(self, msg: RequestRecycle, sender: Any, now: float) -> Decisions:
        accepted, detail, out = self._begin_recycle(msg.worker_id, msg.reason, now)
        if msg.request_id:
            out.append(Reply(sender, RecycleRequested(msg.request_id, msg.worker_id, accepted,
                                                      detail)))
        return out

    def session_command(self, msg: SessionCommand, sender: Any, now: float) -> Decisions:
        """Forward to the SessionStore, after the accesses it has not heard of yet."""
        return self.sessions.command(msg, sender, now)

    def sessions_ended(self, msg: SessionsEnded, now: float) -> Decisions:
        return self.sessions.ended(msg, self._address)

    def flush_sessions(self, now: float) -> Decisions:
        """``FlushSessions``: tell the store which sessions ran since the last flush."""
        return self.sessions.flush(now)

    def expire_queue(self, now: float) -> Decisions:
        """``ExpireQueue``: fail what waited past its queue deadline; end affinity holds."""
        return self.desk.expire(now)

    def startup_deadline(self, now: float) -> Decisions:
        """``StartupDeadline``: not started within ``startup_timeout``: the start failed."""
        return self.readiness.startup_deadline(self.scheduler.workers)

    def revoke_parked(self, worker_id: str, now: float) -> Decisions:
        """``RevokeParked``: no exit status came for ``worker_id``: revoke with what we have."""
        return self.leases.revoke_parked(worker_id) + self.desk.unpark(worker_id, now)

    # --- observation and closing --------------------------------------------------------------

    def stats(self, request_id: str = "") -> PoolStats:
        return self.desk.stats(request_id, self.readiness.state(self.scheduler.closed),
                               restarts=sum(r.restarts for r in self.workers.values()))

    def worker_list(self, request_id: str = "") -> WorkerList:
        """Every worker by id, its state derived from its record (``pool_records.state_of``)."""
        return WorkerList(tuple(self.workers[w].info(self.scheduler.in_flight(w))
                                for w in sorted(self.workers)), request_id)

    def close(self, sender: Any, now: float) -> Decisions:
        """Refuse new work and fail what is queued; what runs finishes."""
        queued = self.scheduler.close()
        out = self.desk.refuse_all(queued, lambda rid: errs.closed_queued(self.config.name, rid))
        log.info("pool.closing", pool=self.config.name, failed_queued=len(queued))
        return [*out, Reply(sender, PoolClosed(len(queued)))]

    # --- steps --------------------------------------------------------------------------------

    def _fail_held(self, worker_id: str, reason: str, now: float, phase: Phase,
                   exit_code: int | None = None, error: SnakepitError | None = None) -> Decisions:
        """``worker_id`` is gone (its record is in ``phase`` now): fail (or retry) what it ran
        and revoke its leases (with ``error`` when its Worker reported how its process died,
        else after a grace for that report); what was held for it goes elsewhere."""
        record, out = self.workers.get(worker_id), []
        if record is not None:
            record.enter(phase, reason)
        self.scheduler.remove_worker(worker_id)  # first: a retry must not land on it
        defer = error is None and reason != "replaced"  # its Worker may still report
        out += self.desk.fail_gone(worker_id, record.address if defer and record else None,
                                   error, reason, exit_code, now)
        out += self.leases.revoke_worker(
            worker_id, error or errs.lease_crash_error(worker_id, reason, exit_code), now,
            defer=defer)
        return out + self.desk.run(self.scheduler.release_held(now), now) + self._fail_stranded()

    def _fail_stranded(self) -> Decisions:
        """Strict requests held for a worker that left rotation fail (its per-session state
        is gone): at once, whichever way it left."""
        out: Decisions = []
        for worker, request_id, pending in self.scheduler.take_stranded():
            session_id = pending.request.session_id
            out += self.desk.refuse(pending, errs.stranded(request_id, session_id, worker))
            self.sessions.forget(session_id)
        return out

    def _unreachable(self, msg: ReturnLease, worker_id: str, now: float) -> Decisions:
        """A client could not reach ``worker_id``: no more grants; its Worker checks (and
        replaces) the process; the lease ends with the revocation that follows."""
        self.ledger.mark_lost(msg.request_id)
        self.scheduler.remove_worker(worker_id)  # what it runs ends when the Worker exits
        record, out = self.workers.get(worker_id), []
        if record is not None:
            record.phase = "unreachable"
            out.append(Recycle(record.address, RecycleWorker(worker_id, "unreachable",
                                                             msg.reason)))
        return out + self.desk.run(self.scheduler.release_held(now), now) + self._fail_stranded()

    def _check_degraded(self) -> Decisions:
        """No worker left and none coming back soon: fail what waits (new requests are
        refused by ``Readiness``)."""
        if not self.readiness.check_degraded(self.scheduler.workers):
            return []
        error = self.readiness.degraded_error()
        return self.desk.refuse_all(self.scheduler.take_queued(), lambda _rid: error)

    def _check_recycle(self, worker_id: str, now: float) -> Decisions:
        """After counting requests of ``worker_id``: recycle it if the policy says so."""
        record = self.workers.get(worker_id)
        if record is None or record.recycle_reason is not None or not self._policy.enabled \
                or self._policy.due(now=now, requests=record.requests) is None:
            return []
        return self._begin_recycle(worker_id, "max_requests", now)[2]

    def _begin_recycle(self, worker_id: str, reason: str,
                       now: float) -> tuple[bool, str, Decisions]:
        """Take ``worker_id`` out of rotation (what it runs finishes normally), recall its
        leases and have its Worker start the replacement (``drained`` once no lease is out).
        Returns whether it was accepted, why not, and the decisions."""
        record = self.workers.get(worker_id)
        if reason not in GRACEFUL_RECYCLE_REASONS:
            return False, f"reason must be one of {sorted(GRACEFUL_RECYCLE_REASONS)}", []
        if record is None:
            return False, f"no worker {worker_id!r}; known: {sorted(self.workers)}", []
        if record.recycle_reason is not None:
            return False, f"worker {worker_id} is already being recycled", []
        if not self.scheduler.has_worker(worker_id) or self.scheduler.closed:
            state = record.info(self.scheduler.in_flight(worker_id)).state
            return False, f"worker {worker_id} is {state}, not ready", []
        record.recycle_reason, record.phase = reason, "recycling"
        self.scheduler.remove_worker(worker_id)
        log.info("worker.recycling", worker_id=worker_id, reason=reason,
                 requests=record.requests)
        out = recalls(worker_id, self.ledger.drain(worker_id, reason))
        drained = self.ledger.recycle_due(worker_id) is not None
        out.append(Recycle(record.address, RecycleWorker(worker_id, reason, drained=drained)))
        out += self.desk.run(self.scheduler.release_held(now), now)
        return True, "", out + self._fail_stranded()

    def _recycle_done(self, worker_id: str, replaced: bool) -> None:
        """``worker_id`` is ready again (``replaced``: its new process) or gone."""
        record = self.workers.get(worker_id)
        if record is None or record.recycle_reason is None:
            return
        if replaced:
            self.counters.recycled += 1
            log.info("worker.recycled", worker_id=worker_id, reason=record.recycle_reason)
        record.recycle_reason = None

    def _left_rotation(self, worker_id: str) -> None:
        """After a check-in or a return with ``worker_lost``: a ready worker the scheduler let
        go is leaving (its process is checked or replaced)."""
        record = self.workers.get(worker_id)
        if record is not None and record.phase == "ready" \
                and not self.scheduler.has_worker(worker_id):
            record.phase = "leaving"

    def _address(self, worker_id: str) -> Any:
        record = self.workers.get(worker_id)
        return None if record is None else record.address
