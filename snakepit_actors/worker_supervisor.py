"""WorkerSupervisor actor: one Starter per worker, all started at once (``supervision``).

    PoolRoot
     └─ WorkerSupervisor (this; one_for_one over Starters, restart intensity, backoff)
         └─ Starter_i -> Worker_i -> external process_i

Startup is concurrent: every Starter is created in one pass (inside an actor ``createActor``
returns at once), so N workers are ready in about one worker's start time. A Starter that dies
(killed, or gave up on its worker) is restarted after a backoff that grows to ``max_seconds``;
its Worker died with it (PR_SET_PDEATHSIG), so the WorkerSupervisor tells the WorkerRegistry.
Too many Starter restarts and the WorkerSupervisor itself gives up: PoolRoot then marks the pool
degraded.
"""

from __future__ import annotations

from typing import Any

from supervision import ChildSpec, InitSupervisor, Supervisor

from .messages import InitStarter, InitWorkerSupervisor, StarterStarted, WorkerContext, WorkerExited
from .telemetry import get_logger

log = get_logger("worker_supervisor")

STARTER_ACTOR = "snakepit_actors.starter:Starter"


def worker_ids(pool_name: str, pool_size: int) -> list[str]:
    """The ids of a pool's worker slots, in start order."""
    return [f"{pool_name}_worker_{index}" for index in range(1, pool_size + 1)]


class WorkerSupervisor(Supervisor):
    """Creates and restarts Starters."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx: WorkerContext | None = None

    def receiveMsg_InitWorkerSupervisor(self, msg: InitWorkerSupervisor, sender: Any) -> None:
        self._ctx = ctx = msg.context
        cfg = ctx.config
        self.receiveMsg_InitSupervisor(InitSupervisor(
            strategy="one_for_one",
            max_restarts=cfg.max_restarts * cfg.pool_size, max_seconds=cfg.max_seconds,
            children=tuple(ChildSpec(wid, STARTER_ACTOR, init=InitStarter(ctx, wid))
                           for wid in worker_ids(cfg.name, cfg.pool_size)),
            backoff_initial_s=1.0, backoff_max_s=max(1.0, cfg.max_seconds),
            name=f"worker_supervisor:{cfg.name}"), sender)

    def receiveMsg_SupervisorStarted(self, msg: Any, sender: Any) -> None:
        """Acknowledgements of our Starters' own starts: nothing to do."""

    def on_child_started(self, child_id: str, address: Any, restarts: int) -> None:
        assert self._ctx is not None
        self.send(self._ctx.starter_registry, StarterStarted(child_id, address))

    def on_child_exited(self, child_id: str, address: Any, normal: bool) -> None:
        if self._ctx is None or self._stopping:
            return  # stopped with the pool: no facts to peers that may be exiting too
        # The Starter's Worker died with it (PDEATHSIG) and nobody else will say so.
        self.send(self._ctx.worker_registry, WorkerExited(child_id, reason="starter_exited"))
        log.warning("worker.restarting", worker_id=child_id, reason="starter_exited")
