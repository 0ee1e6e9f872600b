"""Pool actor: the single authority over which request runs on which worker.

    PoolRoot
     ├─ WorkerRegistry ──facts: WorkerReady / StartFailed / Exited / Abandoned──> Pool
     ├─ SessionStore <──SessionsTouched, session commands── Pool
     └─ Pool (this; permanent)
          ──RunRequest | RunBatch / RecycleWorker / EndWorkerSession──> Worker_i
          ──Execute | ExecuteBatch (forwarded: core/forwarding.py), CancelRequest──> DataPlane
          <──DataPlaneServed (answered ids, how many wait there)── DataPlane
          <──Checkin | CheckinBatch── Worker_i
          ──LeaseGranted / Refused / Revoked / Recalled──> clients ──LeaseBatch──> Pool

A thin shell around ``core.pool_core.PoolCore``, which holds every decision: each handler turns
its message into one core call (``now`` is ``time.time()``) and executes the decisions it
returns, sends and wake-ups (their payloads are the typed timers of ``core/timers.py``). The
Pool never waits; its only I/O is asking psutil whether lease holders still live
(``HolderWatch``). Replies go from the Worker straight to the caller; the Worker then tells
the Pool ``Checkin``. Lease requests of the direct data path queue with ``Execute`` and get
``LeaseGranted`` where a request would get ``RunRequest``. A unary request without a session
whose sender accepts grouped replies goes on to the DataPlane at once (counted, its deadline
fixed, kept in a ledger until the DataPlane reports it answered); if the DataPlane dies, the
ledger's requests fail with ``WorkerCrashedError(reason="data_plane_lost")``.

If a worker dies, the requests it held fail with ``WorkerCrashedError`` (by the Worker when it
can, else here when the registry reports the exit) or run once more elsewhere if idempotent;
its leases are revoked; queued requests wait for the replacement. If the Pool itself crashes,
its parent (PoolRoot) starts a new one (``InitPool(restarts=n)``), which tells everyone who
sends to it (``PoolReplaced``) once initialised. The new Pool rebuilds its ``PoolCore`` from
the WorkerRegistry's latest fact per worker (it subscribes; the registry sends them at once;
see the core's docstring for what cannot be rebuilt). Workers learn the new address from the next
``RunRequest``'s sender; requests running on the actor path finish normally (the Worker
replies to the caller); the handle fails the requests it sent that have no reply yet
(``PoolNotReadyError(reason="pool_restarted")``) and re-sends its lease requests. If a registry
is restarted instead, PoolRoot says so (``ActorReplaced``): the Pool subscribes to a new
WorkerRegistry (the Workers re-announce; a ``WorkerReady`` of a process it already runs changes
nothing) and reports its session pins to a new SessionStore.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from thespian.actors import ActorTypeDispatcher, WakeupMessage

from snakepit_actors.core.forwarding import DataPlaneRoute
from snakepit_actors.core.pool_core import PoolCore
from snakepit_actors.core.pool_decisions import Decision, Run, WakeAt
from snakepit_actors.core.timers import (
    CheckHolders,
    ExpireQueue,
    FlushSessions,
    RevokeParked,
    StartupDeadline,
)
from snakepit_actors.messages import (
    ActorReplaced,
    CancelRequest,
    Checkin,
    CheckinBatch,
    ClosePool,
    DataPlaneServed,
    Execute,
    ExecuteBatch,
    GetStats,
    InitPool,
    LeaseBatch,
    ListWorkers,
    PoolDegraded,
    PoolReplaced,
    RequestLease,
    RequestRecycle,
    ReturnLease,
    RunBatch,
    RunRequest,
    SessionCommand,
    SessionsEnded,
    SessionStoreReplaced,
    SubscribeWorkers,
    UsageReport,
    WorkerAbandoned,
    WorkerExited,
    WorkerProcessLost,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.proctitle import bind_actor_process
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.holder_watch import HolderWatch

log = get_logger("pool")


class Pool(ActorTypeDispatcher):
    """The Pool actor of one pool; see the module docstring. Every message but ``InitPool``
    needs the core that ``InitPool`` builds."""

    def __init__(self) -> None:
        super().__init__()
        self._core: PoolCore | None = None
        self._holders = HolderWatch()
        self._early: list[tuple[Any, Any]] = []  # messages that came before InitPool
        self._route: DataPlaneRoute | None = None

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        """A restarted Pool's senders may reach it before its ``InitPool``: their messages
        wait for it."""
        if self._core is None and not isinstance(message, InitPool) \
                and type(message).__module__.startswith("snakepit_actors.messages"):
            self._early.append((message, sender))
            return None
        return super().receiveMessage(message, sender)

    @property
    def core(self) -> PoolCore:
        if self._core is None:
            raise RuntimeError("the Pool got a message before InitPool; the PoolRoot sends "
                               "InitPool first")
        return self._core

    @property
    def route(self) -> DataPlaneRoute:
        """Which requests go to the DataPlane (``core/forwarding.py``; made by ``InitPool``,
        else none go there)."""
        if self._route is None:
            core = self.core
            self._route = DataPlaneRoute(core.config, core.counters, core.readiness,
                                         core.scheduler)
        return self._route

    def _execute(self, decisions: list[Decision], now: float) -> None:
        """Carry out the core's decisions, in order; the requests for one Worker go out as
        one ``RunBatch`` (before anything else is sent, so no send overtakes them)."""
        runs: dict[str, tuple[Any, list[RunRequest]]] = {}
        for d in decisions:
            if isinstance(d, Run):
                runs.setdefault(d.worker_id, (d.to, []))[1].append(d.message)
            elif isinstance(d, WakeAt):
                self.wakeupAfter(max(0.0, d.when - now), payload=d.timer)
            else:
                self._send_runs(runs)
                self.send(d.to, d.message)
        self._send_runs(runs)

    def _send_runs(self, runs: dict[str, tuple[Any, list[RunRequest]]]) -> None:
        for to, batch in runs.values():
            self.send(to, batch[0] if len(batch) == 1 else RunBatch(tuple(batch)))
        runs.clear()

    # --- set-up and worker facts --------------------------------------------------------------

    def receiveMsg_InitPool(self, msg: InitPool, sender: Any) -> None:
        bind_actor_process("Pool", pool=msg.config.name)
        now = time.time()
        self._core = PoolCore(msg.config, pool=self.myAddress,
                              start_reply_to=msg.start_reply_to,
                              report_progress=msg.report_progress,
                              session_store=msg.session_store, started=msg.restarts > 0,
                              worker_token=msg.worker_token)
        self._route = None
        self.route.address = self._core.desk.data_plane = msg.data_plane
        self.send(msg.worker_registry, SubscribeWorkers(self.myAddress))  # facts come back
        if not msg.restarts:
            self._execute(self._core.start(now), now)
        for address in msg.announce_to:  # only now: a request must not arrive before InitPool
            self.send(address, PoolReplaced(self.myAddress, msg.restarts, msg.config.name))
        early, self._early = self._early, []
        for message, early_sender in early:
            self.receiveMessage(message, early_sender)

    def receiveMsg_ActorReplaced(self, msg: ActorReplaced, sender: Any) -> None:
        """PoolRoot restarted a registry or the DataPlane: subscribe to a new WorkerRegistry
        (the Workers re-announce to it); tell a new SessionStore every pinned session, then the
        handle (``msg.notify``: it fails the session calls it sent that have no answer); fail
        what a dead DataPlane was not heard to answer and forward to the new one."""
        now = time.time()
        if msg.role == "worker_registry":
            self.send(msg.address, SubscribeWorkers(self.myAddress))
        elif msg.role == "data_plane":
            self._execute(self.route.replaced(msg.address), now)
            self.core.desk.data_plane = msg.address
        elif msg.role == "session_store":
            self._execute(self.core.sessions.store_replaced(msg.address, now), now)
            for address in msg.notify:  # after the switch: later commands reach the new store
                self.send(address, SessionStoreReplaced())

    def receiveMsg_WorkerReady(self, msg: WorkerReady, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.worker_ready(msg, now), now)

    def receiveMsg_WorkerStartFailed(self, msg: WorkerStartFailed, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.worker_start_failed(msg, now), now)

    def receiveMsg_WorkerExited(self, msg: WorkerExited, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.worker_exited(msg, now), now)

    def receiveMsg_WorkerAbandoned(self, msg: WorkerAbandoned, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.worker_abandoned(msg, now), now)

    def receiveMsg_PoolDegraded(self, msg: PoolDegraded, sender: Any) -> None:
        now = time.time()
        if not msg.restarting:
            self._execute(self.core.pool_degraded(msg.reason, now), now)
            return
        for worker_id in list(self.core.workers):  # each died with the old supervisor
            fact = WorkerExited(worker_id, reason="supervisor_restarting")
            self._execute(self.core.worker_exited(fact, now), now)

    def receiveMsg_WorkerProcessLost(self, msg: WorkerProcessLost, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.worker_process_lost(msg, now, sender), now)

    # --- requests -----------------------------------------------------------------------------

    def receiveMsg_Execute(self, msg: Execute, sender: Any) -> None:
        now = time.time()
        forwarded = self.route.forward(msg, sender, now)
        if forwarded is not None:
            self.send(self.route.address, forwarded)
        else:
            self._execute(self.core.execute(msg, sender, now), now)

    def receiveMsg_ExecuteBatch(self, msg: ExecuteBatch, sender: Any) -> None:
        """The DataPlane's share goes on as one batch; the rest is the Pool's."""
        now, core = time.time(), self.core
        forwarded, decisions = [], []
        for request in msg.requests:
            one = self.route.forward(request, sender, now)
            if one is not None:
                forwarded.append(one)
            else:
                decisions += core.execute(request, sender, now)
        if forwarded:
            self.send(self.route.address, forwarded[0] if len(forwarded) == 1
                      else ExecuteBatch(tuple(forwarded)))
        self._execute(decisions, now)

    def receiveMsg_DataPlaneServed(self, msg: DataPlaneServed, sender: Any) -> None:
        self.route.ledger.served(msg.request_ids)
        self.route.waiting = msg.waiting

    def receiveMsg_CancelRequest(self, msg: CancelRequest, sender: Any) -> None:
        now = time.time()
        self._execute(self.route.cancel(msg) or self.core.cancel(msg, now), now)

    def receiveMsg_Checkin(self, msg: Checkin, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.checkin(msg, now, sender), now)

    def receiveMsg_CheckinBatch(self, msg: CheckinBatch, sender: Any) -> None:
        now, core = time.time(), self.core
        self._execute([d for c in msg.checkins for d in core.checkin(c, now, sender)], now)

    # --- leases (the direct data path) --------------------------------------------------------

    def receiveMsg_RequestLease(self, msg: RequestLease, sender: Any) -> None:
        now = time.time()
        watched = self._watch_holder(sender, msg.holder_pid)
        self._execute(self.core.request_lease(msg, sender, now, watched), now)

    def receiveMsg_LeaseBatch(self, msg: LeaseBatch, sender: Any) -> None:
        now = time.time()
        watched = self._watch_holder(sender, msg.holder_pid)
        self._execute(self.core.lease_batch(msg, sender, now, watched), now)

    def receiveMsg_ReturnLease(self, msg: ReturnLease, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.return_lease(msg, now), now)

    def receiveMsg_UsageReport(self, msg: UsageReport, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.usage_report(msg, now), now)

    def _watch_holder(self, holder: Any, pid: int) -> bool:
        """Whether the client process behind ``holder`` (its ``pid``: 0 if not given, or on
        another host) is watched, so its leases come back if it dies."""
        return bool(pid) and self._holders.watch(str(holder), pid)

    # --- recycling and sessions ---------------------------------------------------------------

    def receiveMsg_RequestRecycle(self, msg: RequestRecycle, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.request_recycle(msg, sender, now), now)

    def receiveMsg_SessionCommand(self, msg: SessionCommand, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.session_command(msg, sender, now), now)

    def receiveMsg_SessionsEnded(self, msg: SessionsEnded, sender: Any) -> None:
        now = time.time()
        self._execute(self.core.sessions_ended(msg, now), now)

    # --- timers -------------------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        """A timer the core asked for (``WakeAt``); an unknown payload is a bug: logged, and
        nothing else happens."""
        now, core = time.time(), self.core
        match msg.payload:
            case ExpireQueue():
                decisions = core.expire_queue(now)
            case CheckHolders():
                decisions = core.holders_checked(self._holders.dead(), now)
            case StartupDeadline():
                decisions = core.startup_deadline(now)
            case FlushSessions():
                decisions = core.flush_sessions(now)
            case RevokeParked(worker_id=worker_id):
                decisions = core.revoke_parked(worker_id, now)
            case _:
                log.error("timer.unknown", actor="Pool", payload=repr(msg.payload))
                return
        self._execute(decisions, now)

    # --- observation and closing --------------------------------------------------------------

    def receiveMsg_GetStats(self, msg: GetStats, sender: Any) -> None:
        stats = self.core.stats(msg.request_id)  # with what waits in the DataPlane
        self.send(sender, replace(stats, queued=stats.queued + self.route.waiting))

    def receiveMsg_ListWorkers(self, msg: ListWorkers, sender: Any) -> None:
        self.send(sender, self.core.worker_list(msg.request_id))

    def receiveMsg_ClosePool(self, msg: ClosePool, sender: Any) -> None:
        now = time.time()
        self._execute(self.route.close() + self.core.close(sender, now), now)
