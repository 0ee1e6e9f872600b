"""WorkerSupervisor actor: one Starter per worker, all started at once (``supervision``).

    PoolRoot
     └─ WorkerSupervisor (this; one_for_one over Starters, restart intensity, backoff)
         └─ Starter_i -> Worker_i -> external process_i

Startup is concurrent: every Starter is created in one pass (inside an actor ``createActor``
returns at once), so N workers are ready in about one worker's start time. With
``startup_batch_size`` = B > 0, only B start at once: the next B start when every worker of
the batch is Ready or failed to start (the WorkerRegistry's facts say so). A Starter that dies
(killed, or gave up on its worker) is restarted after a backoff that grows to ``max_seconds``;
its Worker died with it (PR_SET_PDEATHSIG), so the WorkerSupervisor tells the WorkerRegistry.
Too many Starter restarts and the WorkerSupervisor itself gives up: it tells PoolRoot
(``SupervisorEscalated``, from ``on_escalate``), which then marks the pool degraded. Killed
instead, it is restarted by PoolRoot (every worker starts afresh). When a sibling is
restarted (``ActorReplaced`` from PoolRoot: a registry or the Pool), it uses the new address
for every later Starter, passes it down to the running Starters and, to a new StarterRegistry,
re-sends each running Starter.

With ``start_method="forkserver"`` it also owns the pool run's fork server
(``fork_server.py``): started before the first Starter (it waits, at most ``startup_timeout``,
for the template to import the adapter), checked every ``FORK_SERVER_CHECK_S`` and replaced when
it died (workers that fail to fork meanwhile fail their start and are restarted), stopped
with this actor (it also dies with this process: PR_SET_PDEATHSIG). Its ProcessRegistry row
(``<pool>_fork_server``) lets the reaper find it after a SIGKILL of the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import (
    ActorReplaced,
    InitStarter,
    InitWorkerSupervisor,
    ProcessEnded,
    ProcessSpawned,
    ProcessSpawning,
    StarterStarted,
    SubscribeWorkers,
    WorkerAbandoned,
    WorkerContext,
    WorkerExited,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.proctitle import name_process
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree import fork_server
from snakepit_actors.tree.fork_server import ForkServer
from snakepit_supervision import ChildSpec, InitSupervisor, Supervisor
from snakepit_supervision.messages import ChildStarted, StartChild, SupervisorEscalated

log = get_logger("worker_supervisor")

STARTER_ACTOR = "snakepit_actors.tree.starter:Starter"
#: Seconds between checks that the fork server still runs.
FORK_SERVER_CHECK_S = 0.5


@dataclass(frozen=True, slots=True)
class ForkServerDue:
    """Timer: check the fork server (replace it if it died)."""


def worker_ids(pool_name: str, pool_size: int) -> list[str]:
    """The ids of a pool's worker slots, in start order."""
    return [f"{pool_name}_worker_{index}" for index in range(1, pool_size + 1)]


class WorkerSupervisor(Supervisor):
    """Creates and restarts Starters."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx: WorkerContext | None = None
        self._parent: Any = None  # PoolRoot: told when we give up (not when we are killed)
        self._batch: set[str] = set()  # workers of the start-up batch not yet settled
        self._later: list[str] = []  # workers still to start, in order
        self._fork_server: ForkServer | None = None

    def receiveMsg_InitWorkerSupervisor(self, msg: InitWorkerSupervisor, sender: Any) -> None:
        self._ctx = ctx = msg.context
        self._parent = sender
        cfg = ctx.config
        name_process("WorkerSupervisor", pool=cfg.name)
        if fork_server.wanted(cfg):
            self._start_fork_server()
            self.wakeupAfter(timedelta(seconds=FORK_SERVER_CHECK_S), ForkServerDue())
        ids = worker_ids(cfg.name, cfg.pool_size)
        size = cfg.startup_batch_size or len(ids)
        first, self._later = ids[:size], ids[size:]
        if self._later:
            self._batch = set(first)
            self.send(ctx.worker_registry, SubscribeWorkers(self.myAddress))
        self.receiveMsg_InitSupervisor(InitSupervisor(
            strategy="one_for_one",
            max_restarts=cfg.max_restarts * cfg.pool_size, max_seconds=cfg.max_seconds,
            children=tuple(self._spec(wid) for wid in first),
            backoff_initial_s=1.0, backoff_max_s=max(1.0, cfg.max_seconds),
            name=f"worker_supervisor:{cfg.name}"), sender)

    def _spec(self, worker_id: str) -> ChildSpec:
        assert self._ctx is not None
        return ChildSpec(worker_id, STARTER_ACTOR, init=InitStarter(self._ctx, worker_id))

    def child_init_message(self, spec: ChildSpec, restarts: int) -> Any:
        """A Starter (re)started now gets the current addresses of the tree."""
        return spec.init if self._ctx is None else InitStarter(self._ctx, spec.child_id)

    def receiveMsg_ActorReplaced(self, msg: ActorReplaced, sender: Any) -> None:
        """A sibling was restarted by PoolRoot: use it, pass it to the running Starters (a new
        StarterRegistry hears of each of them instead)."""
        if self._ctx is None or self._stopping:
            return
        self._ctx = self._ctx.with_actor(msg.role, msg.address)
        for child in self._table:
            if child.address is None:
                continue
            if msg.role == "starter_registry":
                self.send(msg.address, StarterStarted(child.child_id, child.address))
            else:
                self.send(child.address, msg)
        if msg.role == "worker_registry" and (self._batch or self._later):
            self.send(msg.address, SubscribeWorkers(self.myAddress))

    # --- start-up in batches (startup_batch_size) ---------------------------------------------

    def receiveMsg_WorkerReady(self, msg: WorkerReady, sender: Any) -> None:
        self._settled(msg.worker_id)

    def receiveMsg_WorkerStartFailed(self, msg: WorkerStartFailed, sender: Any) -> None:
        self._settled(msg.worker_id)

    def receiveMsg_WorkerExited(self, msg: WorkerExited, sender: Any) -> None:
        """Facts after start-up: the Pool acts on them, not us."""

    def receiveMsg_WorkerAbandoned(self, msg: WorkerAbandoned, sender: Any) -> None:
        """As WorkerExited."""

    def receiveMsg_ChildStarted(self, msg: ChildStarted, sender: Any) -> None:
        """Our own StartChild's acknowledgement: nothing to do."""

    def _settled(self, worker_id: str) -> None:
        """A worker of the current batch is Ready or failed: start the next batch after the
        last one."""
        self._batch.discard(worker_id)
        if self._batch or not self._later or self._ctx is None or self._stopping:
            return
        size = self._ctx.config.startup_batch_size
        batch, self._later = self._later[:size], self._later[size:]
        self._batch = set(batch) if self._later else set()
        for wid in batch:
            self.receiveMsg_StartChild(StartChild(self._spec(wid)), self.myAddress)

    # --- the fork server (start_method="forkserver") ------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: Any, sender: Any) -> None:
        """Our ``ForkServerDue``; the Supervisor's own timers otherwise."""
        if not isinstance(msg.payload, ForkServerDue):
            super().receiveMsg_WakeupMessage(msg, sender)
            return
        if self._stopping or self._ctx is None:
            return
        if self._fork_server is None or not self._fork_server.alive():
            if self._fork_server is not None:  # else its start failed, and was logged
                log.warning("fork_server.lost", pool=self._ctx.config.name,
                            pid=self._fork_server.popen.pid)
            self._start_fork_server()
        self.wakeupAfter(timedelta(seconds=FORK_SERVER_CHECK_S), ForkServerDue())

    def receiveMsg_ActorExitRequest(self, msg: Any, sender: Any) -> None:
        """Stopping: stop the fork server too (its forked workers stop with their Workers)."""
        super().receiveMsg_ActorExitRequest(msg, sender)
        server, self._fork_server = self._fork_server, None
        if server is not None:
            server.stop(grace_s=0.5)

    def _start_fork_server(self) -> None:
        """Start a fork server, wait for its template, record it for the reaper. A failure is
        logged: the workers then fail their start with a typed error and are retried."""
        ctx = self._ctx
        assert ctx is not None
        cfg, row = ctx.config, f"{ctx.config.name}_fork_server"
        if self._fork_server is not None:
            self._fork_server.stop(grace_s=0.0)
            self.send(ctx.process_registry, ProcessEnded(row, self._fork_server.popen.pid))
            self._fork_server = None
        self.send(ctx.process_registry, ProcessSpawning(row, ctx.run_id, cfg.name))
        try:
            server = ForkServer.start(cfg, ctx.run_id, ctx.run_dir)
        except SnakepitError as exc:
            self.send(ctx.process_registry, ProcessEnded(row))
            log.error("fork_server.unready", pool=cfg.name, error=str(exc))
            return
        self._fork_server = server
        pid = server.popen.pid
        self.send(ctx.process_registry, ProcessSpawned(row, pid, pid, server.create_time))
        if server.wait_ready(cfg.startup_timeout):
            log.info("fork_server.started", pool=cfg.name, pid=pid)
        else:
            log.error("fork_server.unready", pool=cfg.name, pid=pid,
                      timeout_s=cfg.startup_timeout)

    def on_escalate(self, reason: str) -> None:
        if self._parent is not None:
            self.send(self._parent, SupervisorEscalated(self.name, reason))

    def on_child_started(self, child_id: str, address: Any, restarts: int) -> None:
        assert self._ctx is not None
        self.send(self._ctx.starter_registry, StarterStarted(child_id, address))

    def on_child_exited(self, child_id: str, address: Any, normal: bool) -> None:
        if self._ctx is None or self._stopping:
            return  # stopped with the pool: no facts to peers that may be exiting too
        # The Starter's Worker died with it (PDEATHSIG) and nobody else will say so.
        self.send(self._ctx.worker_registry, WorkerExited(child_id, reason="starter_exited"))
        log.warning("worker.restarting", worker_id=child_id, reason="starter_exited")
