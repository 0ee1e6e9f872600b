"""Pool actor: the single authority over which request runs on which worker.

    PoolRoot
     ├─ WorkerRegistry  ──facts (WorkerReady / WorkerStartFailed / WorkerExited)──┐
     └─ Pool (this)  <─────────────────────────────────────────────────────────────┘

A thin shell around ``scheduling.PoolCore``: every handler is message -> core call -> sends.
The Pool never does I/O and never waits; what it needs (worker addresses and states) is a local
dict kept current by registry notifications. Replies go from the Worker straight to the caller;
the Worker then tells the Pool ``Checkin``. Lease requests of the direct data path queue in the
same ``PoolCore`` and get ``LeaseGranted`` instead of a ``RunRequest`` (``pool_leases.LeaseDesk``
holds those handlers).

If a worker dies, the requests it held fail with ``WorkerCrashedError`` (by the Worker when it
can, else here when the registry reports the exit); queued requests wait for the replacement.
If the Pool itself crashes its parent (PoolRoot) stops the pool: callers get no reply from a
dead Pool, so the Python handle turns its silence into ``PoolClosedError`` on close.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from thespian.actors import ActorTypeDispatcher, WakeupMessage

from snakepit_actors.config import PoolConfig
from snakepit_actors.core.lease_ledger import LeaseLedger
from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.core.scheduling import Dispatch, Expired, Queued, Scheduler
from snakepit_actors.errors import (
    PoolClosedError,
    PoolNotReadyError,
    PoolSaturatedError,
    QueueTimeoutError,
    RequestCancelledError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.messages import (
    CancelRequest,
    Checkin,
    ClosePool,
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    GetStats,
    InitPool,
    ListWorkers,
    PoolClosed,
    PoolDegraded,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RequestLease,
    RunRequest,
    StartProgress,
    SubscribeWorkers,
    WorkerAbandoned,
    WorkerExited,
    WorkerInfo,
    WorkerList,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.telemetry import LatencyWindow, get_logger, wants
from snakepit_actors.tree.pool_leases import HolderWatch, LeaseDesk, lease_crash_error
from snakepit_actors.tree.pool_recycling import RecycleDesk
from snakepit_actors.tree.pool_sessions import SessionDesk

log = get_logger("pool")

@dataclass(slots=True)
class _Pending:
    """One request the Pool has accepted and not yet seen finish."""

    request: Execute | RequestLease  # a lease request gets a slot lent, not run
    reply_to: Any
    deadline_unix_s: float | None
    submitted: float
    attempt: int = 1
    worker_id: str = ""


@dataclass(slots=True)
class _WorkerEntry:
    address: Any
    info: WorkerInfo


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    errors: int = 0
    queue_timeouts: int = 0
    saturated: int = 0
    restarts: int = 0


class Pool(SessionDesk, RecycleDesk, LeaseDesk, ActorTypeDispatcher):
    """FIFO queue, available/busy sets and stats for one pool; see the module docstring.
    The lease handlers of the direct data path come from ``LeaseDesk`` (pool_leases.py), the
    graceful recycling from ``RecycleDesk`` (pool_recycling.py), affinity routing and
    sessions from ``SessionDesk`` (pool_sessions.py)."""

    def __init__(self) -> None:
        super().__init__()
        self._config: PoolConfig | None = None
        self._core: Scheduler[_Pending] = Scheduler()
        self._workers: dict[str, _WorkerEntry] = {}
        self._running: dict[str, _Pending] = {}
        self._ledger: LeaseLedger[Any] = LeaseLedger()
        self._holders = HolderWatch()
        self._parked = {}
        self._start_reply_to: Any = None
        self._report_progress = False
        self._started = False
        self._wakeup_at: float | None = None
        self._counters = _Counters()
        self._latency = LatencyWindow()
        self._init_sessions()
        self._abandoned: set[str] = set()
        self._last_start_error: SnakepitError | None = None
        self._degraded: str | None = None  # why no worker will take requests, if so
        self._supervisor_gone = False
        self._recycling = {}
        self._recycled = 0
        self._policy = RecyclePolicy()

    # --- set-up and worker facts --------------------------------------------------------------

    def receiveMsg_InitPool(self, msg: InitPool, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        cfg = self._config = msg.config
        self._core = Scheduler(capacity=cfg.capacity, max_queue=cfg.max_queue,
                              queue_timeout_s=cfg.queue_timeout,
                              affinity_wait_s=cfg.affinity_wait_s if cfg.affinity == "hint"
                              else 0.0)
        self._start_reply_to = msg.start_reply_to
        self._report_progress = msg.report_progress
        self._policy = RecyclePolicy.from_config(cfg)
        self._init_sessions(cfg, msg.session_store)
        self.send(msg.worker_registry, SubscribeWorkers(self.myAddress))
        self.wakeupAfter(cfg.startup_timeout, payload="startup_timeout")
        log.info("pool.init_started", pool=cfg.name, size=cfg.pool_size)

    def receiveMsg_WorkerReady(self, msg: WorkerReady, sender: Any) -> None:
        self._fail_held(msg.worker_id, "replaced")
        self._recycle_done(msg.worker_id, replaced=True)
        self._abandoned.discard(msg.worker_id)
        if not self._supervisor_gone:
            self._degraded = None
        self._workers[msg.worker_id] = _WorkerEntry(msg.address, WorkerInfo(
            msg.worker_id, msg.pid, "ready", msg.node, msg.endpoint, 0, msg.restarts,
            msg.started_at))
        self._counters.restarts = sum(e.info.restarts for e in self._workers.values())
        if msg.restarts:
            log.info("worker.restarted", worker_id=msg.worker_id, pid=msg.pid,
                     restarts=msg.restarts)
        self._send_dispatches(self._core.add_worker(msg.worker_id, time.time()))
        self._maybe_started()

    def receiveMsg_WorkerStartFailed(self, msg: WorkerStartFailed, sender: Any) -> None:
        self._last_start_error = msg.error
        if not self._started and self._start_reply_to is not None:
            self._announce(PoolStartFailed(msg.error))
        log.warning("worker.start_failed", worker_id=msg.worker_id, error=str(msg.error))

    def receiveMsg_WorkerAbandoned(self, msg: WorkerAbandoned, sender: Any) -> None:
        self._fail_held(msg.worker_id, msg.reason)
        self._abandoned.add(msg.worker_id)
        self._check_degraded()

    def receiveMsg_PoolDegraded(self, msg: PoolDegraded, sender: Any) -> None:
        self._supervisor_gone = True
        for worker_id in list(self._workers):
            self._fail_held(worker_id, msg.reason)
        self._check_degraded()

    def _check_degraded(self) -> None:
        """No worker left and none coming back soon: fail what waits, refuse what comes."""
        assert self._config is not None
        if self._core.workers or not (
                self._supervisor_gone or len(self._abandoned) >= self._config.pool_size):
            return
        cause = f": {self._last_start_error}" if self._last_start_error else ""
        self._degraded = (f"pool {self._config.name!r} is degraded: no worker is running and "
                          f"restarts keep failing{cause}")
        log.error("pool.degraded", pool=self._config.name, reason=self._degraded)
        for _rid, pending in self._core.take_queued():
            self._reply_failed(pending, self._degraded_error())

    def _degraded_error(self) -> PoolNotReadyError:
        return PoolNotReadyError(self._degraded or "pool is degraded", reason="degraded",
                                 details={"abandoned": sorted(self._abandoned)})

    def receiveMsg_WorkerExited(self, msg: WorkerExited, sender: Any) -> None:
        self._fail_held(msg.worker_id, msg.reason, msg.exit_code)
        self._recycle_done(msg.worker_id, replaced=False)
        entry = self._workers.get(msg.worker_id)
        if entry is not None:
            entry.info = replace(entry.info, state="starting")

    def _fail_held(self, worker_id: str, reason: str, exit_code: int | None = None,
                   error: SnakepitError | None = None) -> None:
        """``worker_id`` is gone: fail (or retry) what it ran, revoke its leases (with
        ``error`` when the Worker reported how its process died)."""
        for rid in self._core.remove_worker(worker_id):
            pending = self._running.pop(rid, None)
            if pending is not None:
                self._retry_or_fail(pending, error or WorkerCrashedError(
                    f"worker {worker_id} exited ({reason}) while running request {rid}",
                    details={"worker_id": worker_id, "exit_code": exit_code}))
        self._revoke_leases(worker_id, error or lease_crash_error(worker_id, reason, exit_code),
                            defer=error is None and reason != "replaced")
        self._send_dispatches(self._core.release_held(time.time()))  # held for it: go elsewhere
        self._fail_stranded()  # held strictly for it: fail

    def _retry_or_fail(self, pending: _Pending, error: SnakepitError) -> None:
        """The worker died under ``pending``: run it once more elsewhere if it is idempotent
        (and the pool allows), else reply ``error``."""
        assert self._config is not None and isinstance(pending.request, Execute)
        idempotent = pending.request.idempotent or self._config.retry_idempotent
        if pending.attempt > 1 or not idempotent or self._core.closed:
            self._reply_failed(pending, error)
            return
        log.info("request.retried", request_id=pending.request.request_id,
                 worker_id=error.details.get("worker_id"))
        pending.attempt += 1
        if self._offer(pending, time.time()) is not None:
            self._reply_failed(pending, error)

    def _maybe_started(self) -> None:
        assert self._config is not None
        if not self._started and self._report_progress and self._start_reply_to is not None:
            self.send(self._start_reply_to, StartProgress(self._core.workers,
                                                          self._config.pool_size))
        if not self._started and self._core.workers >= self._config.pool_size:
            self._announce(PoolStarted(self.myAddress, self._config.name, self._core.workers))
            self._started = True
            log.info("pool.init_complete", pool=self._config.name, workers=self._core.workers)

    def _announce(self, msg: PoolStarted | PoolStartFailed) -> None:
        if self._start_reply_to is not None:
            self.send(self._start_reply_to, msg)
            self._start_reply_to = None

    # --- requests -----------------------------------------------------------------------------

    def receiveMsg_Execute(self, msg: Execute, sender: Any) -> None:
        self._submit(msg, sender, time.time())

    def receiveMsg_ExecuteBatch(self, msg: ExecuteBatch, sender: Any) -> None:
        now = time.time()
        for request in msg.requests:
            self._submit(request, sender, now)

    def _submit(self, msg: Execute, sender: Any, now: float) -> None:
        assert self._config is not None
        self._counters.requests += 1
        pending = _Pending(msg, msg.reply_to or sender, self._deadline(msg, now), now)
        if not self._started and not self._core.closed:
            self._reply_failed(pending, PoolNotReadyError(
                f"pool {self._config.name!r} is still starting", reason="starting"))
            return
        if self._degraded is not None and not self._core.closed:
            self._reply_failed(pending, self._degraded_error())
            return
        rejected = self._offer(pending, now)
        if rejected is not None:
            self._reply_failed(pending, self._rejection(rejected, msg))

    def _offer(self, pending: _Pending, now: float) -> str | None:
        """Dispatch or queue ``pending``; returns the rejection reason if neither."""
        try:
            decision = self._submit_routed(pending, now)
        except SnakepitError as exc:  # a strict session's worker died
            self._reply_failed(pending, exc)
            return None
        if isinstance(decision, Dispatch):
            self._send_dispatches([decision])
        elif isinstance(decision, Queued):
            log.debug("request.queued", request_id=pending.request.request_id,
                      position=decision.position)
            self._schedule_expiry()
        else:
            return decision.reason
        return None

    def _deadline(self, msg: Execute, now: float) -> float | None:
        assert self._config is not None
        if msg.deadline_unix_s is not None:
            return msg.deadline_unix_s
        timeout = msg.timeout_s if msg.timeout_s is not None else self._config.request_timeout
        return None if timeout is None else now + timeout

    def _new_pending(self, request: RequestLease, reply_to: Any, now: float) -> _Pending:
        return _Pending(request, reply_to, None, now)

    def _rejection(self, reason: str, msg: Execute | RequestLease) -> SnakepitError:
        assert self._config is not None
        log.debug("request.rejected", request_id=msg.request_id, reason=reason)
        if reason == "queue_full":
            self._counters.saturated += 1
            log.warning("pool.saturated", pool=self._config.name, queued=self._core.queued)
            return PoolSaturatedError(
                f"pool {self._config.name!r} is saturated: {self._core.workers} workers busy and "
                f"max_queue={self._config.max_queue} requests waiting",
                details={"max_queue": self._config.max_queue})
        if reason == "affinity_busy":
            return self._affinity_busy(msg)
        if reason == "closed":
            return PoolClosedError(f"pool {self._config.name!r} is closed")
        self._counters.queue_timeouts += 1
        return QueueTimeoutError(f"request {msg.request_id} arrived after its deadline",
                                 reason="deadline_passed")

    def _send_dispatches(self, dispatches: list[Dispatch[_Pending]]) -> None:
        for d in dispatches:
            entry = self._workers[d.worker_id]
            entry.info = replace(entry.info, state="busy")
            self._remember_session(d.item.request.session_id, d.worker_id)
            if isinstance(d.item.request, RequestLease):
                self._grant_lease(d)
                continue
            self._running[d.request_id] = d.item
            d.item.worker_id = d.worker_id
            self.send(entry.address, RunRequest(d.item.request, d.item.reply_to,
                                                d.item.deadline_unix_s))

    def receiveMsg_CancelRequest(self, msg: CancelRequest, sender: Any) -> None:
        queued = self._core.cancel(msg.request_id)
        if queued is not None:
            self._reply_failed(queued, RequestCancelledError(
                f"request {msg.request_id} was cancelled before it reached a worker",
                reason="cancelled_queued"))
            return
        running = self._running.get(msg.request_id)
        if running is not None and running.worker_id in self._workers:
            self.send(self._workers[running.worker_id].address, msg)

    def receiveMsg_Checkin(self, msg: Checkin, sender: Any) -> None:
        now = time.time()
        pending = self._running.pop(msg.request_id, None)
        if pending is not None and msg.crash is not None:
            self._retry_or_fail(pending, msg.crash)
        elif pending is not None:
            self._latency.add((now - pending.submitted) * 1000.0)
            self._counters.errors += 0 if msg.ok else 1
            if wants("debug"):
                log.debug("request.completed", request_id=msg.request_id,
                          worker_id=msg.worker_id, ok=msg.ok, duration_ms=msg.elapsed_ms,
                          session_id=pending.request.session_id, path="actor")
        dispatches = self._core.checkin(msg.worker_id, msg.request_id, now, msg.worker_lost)
        entry = self._workers.get(msg.worker_id)
        if entry is not None:
            state = ("starting" if msg.worker_lost
                     else "stopping" if msg.worker_id in self._recycling
                     else "busy" if self._core.in_flight(msg.worker_id) else "ready")
            entry.info = replace(entry.info, state=state, requests=entry.info.requests + 1)
            self._check_recycle(msg.worker_id)
        self._send_dispatches(dispatches)

    def _reply_failed(self, pending: _Pending, error: SnakepitError) -> None:
        if isinstance(pending.request, RequestLease):
            self._refuse_lease(pending, error)  # the client counts its callers' errors
            return
        self._counters.errors += 1
        self.send(pending.reply_to, ExecuteFailed(pending.request.request_id, error))

    # --- queue deadlines ----------------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        at = self._core.next_expiry()
        if at is not None and (self._wakeup_at is None or at < self._wakeup_at):
            self._wakeup_at = at
            self.wakeupAfter(max(0.0, at - time.time()), payload="expiry")

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if isinstance(msg.payload, str) and msg.payload.startswith("revoke:"):
            self._revoke_parked(msg.payload.removeprefix("revoke:"))
            return
        if msg.payload == "holders":
            self._check_holders()
            return
        if msg.payload == "startup_timeout":
            self._startup_timed_out()
            return
        if msg.payload == "sessions":
            self._flush_touched()
            return
        self._wakeup_at = None
        now = time.time()
        for expired in self._core.expire(now):
            self._expire(expired)
        self._send_dispatches(self._core.release_held(now))
        self._schedule_expiry()

    def _expire(self, expired: Expired[_Pending]) -> None:
        self._counters.queue_timeouts += 1
        waited = time.time() - expired.item.submitted
        log.info("request.queue_timeout", request_id=expired.request_id, waited_s=waited)
        self._reply_failed(expired.item, QueueTimeoutError(
            f"request {expired.request_id} waited {waited:.3f}s in the queue and never reached a "
            f"worker ({expired.reason.replace('_', ' ')})", reason=expired.reason))

    def _startup_timed_out(self) -> None:
        assert self._config is not None
        if not self._started:
            self._announce(PoolStartFailed(PoolNotReadyError(
                f"pool {self._config.name!r}: {self._core.workers} of {self._config.pool_size} "
                f"workers ready after startup_timeout={self._config.startup_timeout}s",
                reason="startup_timeout")))

    # --- observation and closing --------------------------------------------------------------

    def receiveMsg_GetStats(self, msg: GetStats, sender: Any) -> None:
        c = self._counters
        self.send(sender, PoolStats(
            workers=self._core.workers, available=self._core.available, busy=self._core.busy,
            queued=self._core.queued, requests=c.requests, errors=c.errors,
            queue_timeouts=c.queue_timeouts, saturated=c.saturated, restarts=c.restarts,
            latency_p50_ms=self._latency.percentile(0.5),
            latency_p99_ms=self._latency.percentile(0.99), request_id=msg.request_id,
            state=self._state(), recycled=self._recycled,
            latency_buckets_ms=self._latency.buckets(), latency_sum_ms=self._latency.sum_ms))

    def _state(self) -> str:
        if self._core.closed:
            return "closed"
        if self._degraded is not None:
            return "degraded"
        return "ready" if self._started else "starting"

    def receiveMsg_ListWorkers(self, msg: ListWorkers, sender: Any) -> None:
        infos = tuple(self._workers[w].info for w in sorted(self._workers))
        self.send(sender, WorkerList(infos, msg.request_id))

    def receiveMsg_ClosePool(self, msg: ClosePool, sender: Any) -> None:
        assert self._config is not None
        queued = self._core.close()
        for rid, pending in queued:
            self._reply_failed(pending, PoolClosedError(
                f"pool {self._config.name!r} was closed before request {rid} reached a worker",
                reason="closed_queued"))
        log.info("pool.closing", pool=self._config.name, failed_queued=len(queued))
        self.send(sender, PoolClosed(len(queued)))
