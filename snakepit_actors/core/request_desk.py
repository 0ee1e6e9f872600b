"""How each request the Pool accepts gets exactly one outcome: run, lent, or refused.

    Execute ──request_deadline──> Pending ─┐
    RequestLease (holder alive) ─> Pending ─┴─> gate (starting? degraded?) ─> route (session pin)
       ─> Scheduler.submit ─> Dispatch: Run (RunRequest) | GrantLease     ─> one outcome
                            ─> Queued: wait; ExpireQueue fails it at its queue deadline
                            ─> Rejected: Reply (ExecuteFailed | LeaseRefused)

A request's deadline is fixed once, here, when the Pool first sees it (``request_deadline``); its
queue deadline, the Worker's gRPC deadline and a retry elsewhere all derive from it. The desk
owns the ``Scheduler``, the requests running on the actor path and the counters; ``PoolCore``
owns the desk and feeds it the slots that worker facts, check-ins and returns free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.core import pool_errors as errs
from snakepit_actors.core.lease_book import EXIT_STATUS_GRACE_S, LeaseBook, recalls
from snakepit_actors.core.pool_decisions import Decision, Forward, GrantLease, Reply, Run, WakeAt
from snakepit_actors.core.pool_records import GONE, Counters, Pending, WorkerRecord
from snakepit_actors.core.readiness import Readiness
from snakepit_actors.core.request_checks import execute_problem
from snakepit_actors.core.scheduling import Scheduler
from snakepit_actors.core.scheduling_decisions import Dispatch, Queued, queue_expiry
from snakepit_actors.core.session_pins import SessionPins
from snakepit_actors.core.timers import ExpireQueue, RevokeParked
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import (
    CancelRequest,
    Checkin,
    Execute,
    ExecuteFailed,
    LeaseGranted,
    LeaseRefused,
    PoolStats,
    RequestLease,
    RunRequest,
    UsageReport,
)
from snakepit_actors.telemetry import LatencyWindow, get_logger, wants

log = get_logger("pool")

Decisions = list[Decision]


def request_deadline(request: Execute, now: float, default_timeout_s: float | None,
                     ) -> float | None:
    """A request's one absolute deadline (Unix seconds; None: none), fixed when the Pool first
    sees it at ``now``: ``deadline_unix_s`` if given, else ``now + timeout_s``, else ``now``
    plus the pool's ``request_timeout`` (``default_timeout_s``)."""
    if request.deadline_unix_s is not None:
        return request.deadline_unix_s
    timeout = request.timeout_s if request.timeout_s is not None else default_timeout_s
    return None if timeout is None else now + timeout


class RequestDesk:
    """The request path of one pool; see the module docstring. ``workers`` is the core's own
    table of records (read here for addresses and pids), the other parts are shared too."""

    def __init__(self, config: PoolConfig, workers: dict[str, WorkerRecord], leases: LeaseBook,
                 sessions: SessionPins, readiness: Readiness) -> None:
        self.scheduler: Scheduler[Pending] = Scheduler(
            capacity=config.capacity, max_queue=config.max_queue,
            queue_timeout_s=config.queue_timeout,
            affinity_wait_s=config.affinity_wait_s if config.affinity == "hint" else 0.0,
            prefetch=config.prefetch)
        self.running: dict[str, Pending] = {}  # actor-path requests on a worker, by id
        #: worker id -> (its gone Worker actor, why, exit code): its requests wait (``park``)
        self._parked: dict[str, tuple[Any, str, int | None]] = {}
        self.counters = Counters()
        self.latency = LatencyWindow()
        self._config, self._workers, self._leases = config, workers, leases
        self._sessions, self._readiness = sessions, readiness
        self._expiry_at: float | None = None  # the earliest ExpireQueue wake-up asked for
        #: The DataPlane's address (set by the Pool actor): a session waiting for its worker
        #: recalls the DataPlane's leases on it, which it would otherwise hold while it has work
        self.data_plane: Any = None

    def execute(self, msg: Execute, sender: Any, now: float) -> Decisions:
        self.counters.requests += 1
        problem = execute_problem(msg)
        if problem is not None:
            return self.refuse(Pending(msg, msg.reply_to or sender, None, now), problem)
        deadline = request_deadline(msg, now, self._config.request_timeout)
        return self.submit(Pending(msg, msg.reply_to or sender, deadline, now), now)

    def request_lease(self, msg: RequestLease, holder: Any, now: float) -> Decisions:
        if self._leases.holder_dead(holder):
            return []  # a late message of a dead client
        return self.submit(Pending(msg, holder, None, now), now)

    def submit(self, pending: Pending, now: float) -> Decisions:
        """Run ``pending``, queue it, or refuse it: exactly one of the three."""
        refusal = None if self.scheduler.closed else self._readiness.refusal()
        if refusal is not None:
            return self.refuse(pending, refusal)
        return self._offer_or_refuse(pending, now)

    def cancel(self, msg: CancelRequest) -> Decisions:
        """Fail ``msg.request_id`` if queued; pass the cancel to its Worker if running."""
        queued = self.scheduler.cancel(msg.request_id)
        if queued is not None:
            return self.refuse(queued, errs.cancelled_queued(msg.request_id))
        running = self.running.get(msg.request_id)
        if running is not None and running.worker_id in self._workers:
            return [Forward(self._workers[running.worker_id].address, msg)]
        return []

    def stale(self, msg: Checkin, sender: Any) -> bool:
        """A check-in from an earlier Worker actor of ``msg.worker_id`` for a request offered
        again since (to its successor, under the same worker id): it changes nothing."""
        pending = self.running.get(msg.request_id)
        return pending is not None and None not in (sender, pending.sent_to) \
            and sender != pending.sent_to

    def unseen(self, worker_id: str, sent_to: Any = None) -> list[Pending]:
        """Take the requests sent to ``worker_id`` (to its Worker actor ``sent_to``, if given)
        that it has not checked in."""
        ids = [rid for rid, p in self.running.items()
               if p.worker_id == worker_id and sent_to in (None, p.sent_to)]
        return [self.running.pop(rid) for rid in ids]

    def fail_gone(self, worker_id: str, actor: Any, error: SnakepitError | None, reason: str,
                  exit_code: int | None, now: float) -> Decisions:
        """``worker_id`` is gone: fail (or retry) what it was sent, with ``error`` (else the
        Starter's ``reason``). With ``actor`` (its gone Worker actor, when only its Starter
        said so), wait ``EXIT_STATUS_GRACE_S`` first (``unpark``): the Worker's own check-ins
        and ``WorkerProcessLost``, which say what never ran, may still be on their way."""
        if actor is not None:
            if worker_id in self._parked or not any(
                    p.worker_id == worker_id for p in self.running.values()):
                return []  # (parked already: its first grace still runs)
            self._parked[worker_id] = (actor, reason, exit_code)
            return [WakeAt(now + EXIT_STATUS_GRACE_S, RevokeParked(worker_id))]
        return self._fail_each(self.unseen(worker_id), worker_id, error, reason, exit_code, now)

    def unpark(self, worker_id: str, now: float) -> Decisions:
        """The grace ended: what the gone Worker actor did not account for may have run."""
        actor, reason, exit_code = self._parked.pop(worker_id, (None, "", None))
        return [] if actor is None else self._fail_each(
            self.unseen(worker_id, actor), worker_id, None, reason, exit_code, now)

    def _fail_each(self, pendings: list[Pending], worker_id: str, error: SnakepitError | None,
                   reason: str, exit_code: int | None, now: float) -> Decisions:
        out: Decisions = []
        for pending in pendings:
            out += self.retry_or_fail(pending, error or errs.crashed_under(
                worker_id, reason, pending.request.request_id, exit_code), now)
        return out

    def rerun(self, pendings: list[Pending], now: float) -> Decisions:
        """Offer ``pendings`` again: they never reached their Worker, which checked in all
        it had before it reported its process lost (its messages arrive in order)."""
        return [d for pending in pendings for d in self._offer_or_refuse(pending, now)]

    def finished(self, msg: Checkin, now: float) -> Decisions:
        """A Worker checked ``msg.request_id`` in: count it, or (it crashed under the request
        and did not reply) fail or retry it. The slot is the caller's business."""
        pending = self.running.pop(msg.request_id, None)
        if pending is None:
            return []
        if msg.crash is not None and msg.never_ran:  # it waited there: run it elsewhere
            out, rejected = self._offer(pending, now)
            return out if rejected is None else out + self.refuse(pending, msg.crash)
        if msg.crash is not None:
            return self.retry_or_fail(pending, msg.crash, now)
        self.latency.add((now - pending.submitted) * 1000.0 - msg.held_ms)
        self.counters.errors += 0 if msg.ok else 1
        self.counters.queue_timeouts += msg.queue_timed_out
        if wants("debug"):
            log.debug("request.completed", request_id=msg.request_id, worker_id=msg.worker_id,
                      ok=msg.ok, duration_ms=msg.elapsed_ms,
                      session_id=pending.request.session_id, path="actor")
        return []

    def count_usage(self, usage: UsageReport) -> Decisions:
        """Add a client's direct-path totals (requests, errors, latencies, moves) to the stats."""
        c = self.counters
        c.requests += usage.requests
        c.errors += usage.errors
        c.queue_timeouts += usage.queue_timeouts
        c.saturated += usage.saturated
        c.session_moves += usage.session_moves
        for latency_ms in usage.latencies_ms:
            self.latency.add(latency_ms)
        return []

    def stats(self, request_id: str, state: str, restarts: int) -> PoolStats:
        """``PoolStats`` of the desk's counters, with the pool's ``state`` and ``restarts``."""
        s, c, lat = self.scheduler, self.counters, self.latency
        return PoolStats(
            workers=s.workers, available=s.available, busy=s.busy, queued=s.queued,
            requests=c.requests, errors=c.errors, queue_timeouts=c.queue_timeouts,
            saturated=c.saturated, restarts=restarts, latency_p50_ms=lat.percentile(0.5),
            latency_p99_ms=lat.percentile(0.99), request_id=request_id, state=state,
            recycled=c.recycled, latency_buckets_ms=lat.buckets(), latency_sum_ms=lat.sum_ms,
            session_moves=c.session_moves,
            lost_workers=sum(1 for r in self._workers.values() if r.phase in GONE))

    def expire(self, now: float) -> Decisions:
        """Fail what waited past its queue deadline; requests whose affinity hold ended go
        elsewhere; wake again for the next deadline."""
        self._expiry_at = None
        out: Decisions = []
        for expired in self.scheduler.expire(now):
            self.counters.queue_timeouts += 1
            waited = now - expired.item.submitted
            log.info("request.queue_timeout", request_id=expired.request_id, waited_s=waited)
            out += self.refuse(expired.item,
                               errs.queue_timeout(expired.request_id, waited, expired.reason))
        return out + self.run(self.scheduler.release_held(now), now) + self._schedule_expiry()

    def _offer_or_refuse(self, pending: Pending, now: float) -> Decisions:
        """Run or queue ``pending``; refused, with the scheduler's reason, if it cannot wait."""
        out, rejected = self._offer(pending, now)
        if rejected is not None:
            out += self.refuse(pending, self._rejection(rejected, pending.request))
        return out

    def retry_or_fail(self, pending: Pending, error: SnakepitError, now: float) -> Decisions:
        """The worker died under ``pending``: run it once more elsewhere if it is idempotent
        (and the pool allows), else fail it with ``error``."""
        assert isinstance(pending.request, Execute)
        idempotent = pending.request.idempotent or self._config.retry_idempotent
        if pending.attempt > 1 or not idempotent or self.scheduler.closed:
            return self.refuse(pending, error)
        log.info("request.retried", request_id=pending.request.request_id,
                 worker_id=error.details.get("worker_id"))
        pending.attempt += 1
        out, rejected = self._offer(pending, now)
        return out if rejected is None else out + self.refuse(pending, error)

    def run(self, dispatches: list[Dispatch[Pending]], now: float) -> Decisions:
        """Slots the scheduler handed out: run each request, or lend the slot (a lease)."""
        out: Decisions = []
        for d in dispatches:
            record, pending = self._workers[d.worker_id], d.item
            moved_from = self._sessions.moved_from(pending.request, d.worker_id,
                                                   self.incarnation(d.worker_id))
            self.counters.session_moves += bool(moved_from)
            out += self.remember_session(pending.request.session_id, d.worker_id, now)
            if isinstance(pending.request, RequestLease):
                out += self._grant(d, record, now)
                continue
            self.running[d.request_id] = pending
            pending.worker_id, pending.sent_to = d.worker_id, record.address
            queue_deadline = self._queue_deadline_ahead(pending, d.worker_id)
            out.append(Run(record.address, RunRequest(pending.request, pending.reply_to,
                                                      pending.deadline_unix_s, moved_from,
                                                      queue_deadline), d.worker_id))
        return out

    def _queue_deadline_ahead(self, pending: Pending, worker_id: str) -> float | None:
        """A request sent ahead (prefetch: its worker holds more than ``capacity``) keeps its
        queue deadline while it waits there; None for one that starts at once."""
        if self.scheduler.in_flight(worker_id) <= self._config.capacity:
            return None
        return queue_expiry(pending.submitted, pending.deadline_unix_s,
                            self._config.queue_timeout)[0]

    def refuse(self, pending: Pending, error: SnakepitError) -> Decisions:
        """The one reply of a request the Pool will not run (a client counts its own callers'
        errors, so a refused lease request is not counted here)."""
        if isinstance(pending.request, RequestLease):
            return [Reply(pending.reply_to, LeaseRefused(pending.request.request_id, error))]
        self.counters.errors += 1
        return [Reply(pending.reply_to, ExecuteFailed(pending.request.request_id, error))]

    def refuse_all(self, queued: list[tuple[str, Pending]],
                   error_of: Callable[[str], SnakepitError]) -> Decisions:
        """Refuse each of ``queued`` with ``error_of(request_id)``."""
        out: Decisions = []
        for request_id, pending in queued:
            out += self.refuse(pending, error_of(request_id))
        return out

    def remember_session(self, session_id: str | None, worker_id: str, now: float) -> Decisions:
        return self._sessions.remember(session_id, worker_id, self.incarnation(worker_id) or 0,
                                       now)

    def incarnation(self, worker_id: str) -> int | None:
        """The pid of ``worker_id``'s process if it is in rotation (None: it is not)."""
        record = self._workers.get(worker_id)
        return record.pid if record is not None and self.scheduler.has_worker(worker_id) else None

    # --- steps --------------------------------------------------------------------------------

    def _offer(self, pending: Pending, now: float) -> tuple[Decisions, str | None]:
        """Dispatch or queue ``pending`` with its session's affinity; else the reason why not
        (the caller refuses it). A strict session whose worker died is refused here."""
        route = self._sessions.route(pending.request, self.incarnation)
        if isinstance(route, SnakepitError):
            return self.refuse(pending, route), None
        request = pending.request
        decision = self.scheduler.submit(
            request.request_id, pending, now, pending.deadline_unix_s, route.preferred,
            expires=not pending.is_lease, strict=route.strict, ahead=_may_go_ahead(pending))
        out: Decisions = []
        if route.strict == "strict_queue" and route.preferred \
                and not isinstance(decision, Dispatch):  # direct callers hog its worker
            out += recalls(route.preferred, self._leases.ledger.leases_on(route.preferred))
        elif route.preferred and self.data_plane is not None \
                and not isinstance(decision, Dispatch):  # so does the DataPlane (any mode)
            out += recalls(route.preferred, [(lease_id, lease) for lease_id, lease in
                                             self._leases.ledger.leases_on(route.preferred)
                                             if lease.holder == self.data_plane])
        if isinstance(decision, Dispatch):
            return out + self.run([decision], now), None
        if isinstance(decision, Queued):
            log.debug("request.queued", request_id=request.request_id,
                      position=decision.position)
            return out + self._schedule_expiry(), None
        return out, decision.reason

    def _rejection(self, reason: str, request: Execute | RequestLease) -> SnakepitError:
        log.debug("request.rejected", request_id=request.request_id, reason=reason)
        if reason == "queue_full":
            self.counters.saturated += 1
            log.warning("pool.saturated", pool=self._config.name, queued=self.scheduler.queued)
            return errs.saturated(self._config.name, self.scheduler.workers,
                                  self._config.max_queue)
        if reason == "affinity_busy":
            return self._sessions.busy_error(request.session_id)
        if reason == "closed":
            return errs.closed(self._config.name)
        self.counters.queue_timeouts += 1
        return errs.deadline_passed(request.request_id)

    def _grant(self, d: Dispatch[Pending], record: WorkerRecord, now: float) -> Decisions:
        holder = d.item.reply_to
        if self._leases.holder_dead(holder):  # queued before its client died: free the slot
            return self.run(self.scheduler.checkin(d.worker_id, d.request_id, now), now)
        self._leases.ledger.grant(d.request_id, holder, d.worker_id)
        return [GrantLease(holder, LeaseGranted(d.request_id, d.worker_id, record.endpoint,
                                                record.pid or 0, self._leases.token))]

    def _schedule_expiry(self) -> Decisions:
        """Wake at the next queue deadline or hold end, if earlier than the wake-up asked for."""
        at = self.scheduler.next_expiry()
        if at is None or (self._expiry_at is not None and at >= self._expiry_at):
            return []
        self._expiry_at = at
        return [WakeAt(at, ExpireQueue())]


def _may_go_ahead(pending: Pending) -> bool:
    """A request that may wait at a busy worker (prefetch): unary, actor path, no session."""
    request = pending.request
    return isinstance(request, Execute) and not request.stream and request.session_id is None
