"""WorkerSupervisor actor: starts one Starter per worker, all at once.

    PoolRoot
     └─ WorkerSupervisor (this; one_for_one over Starters)
         └─ Starter_i -> Worker_i -> external process_i

Startup is concurrent: every Starter is created in one pass (inside an actor ``createActor``
returns at once), so N workers are ready in about one worker's start time. A Starter that dies
is replaced (its Worker died with it, through PR_SET_PDEATHSIG).
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited

from .messages import (
    InitStarter,
    InitWorkerSupervisor,
    StarterStarted,
    WorkerContext,
    WorkerExited,
)
from .telemetry import get_logger

log = get_logger("worker_supervisor")


class WorkerSupervisor(ActorTypeDispatcher):
    """Creates and replaces Starters."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx: WorkerContext | None = None
        self._starters: list[tuple[Any, str]] = []  # (address, worker_id); compare with ==
        self._stopping = False

    def receiveMsg_InitWorkerSupervisor(self, msg: InitWorkerSupervisor, sender: Any) -> None:
        from supervision.lifetime import die_with_parent

        die_with_parent()
        self._ctx = msg.context
        for index in range(1, msg.context.config.pool_size + 1):
            self._start(f"{msg.context.config.name}_worker_{index}")

    def _start(self, worker_id: str) -> None:
        assert self._ctx is not None
        starter = self.createActor("snakepit_actors.starter.Starter")
        self._starters.append((starter, worker_id))
        self.send(starter, InitStarter(self._ctx, worker_id))
        self.send(self._ctx.starter_registry, StarterStarted(worker_id, starter))

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        # str() of a child's address changes once it is realised; == knows both forms.
        gone = [wid for address, wid in self._starters if address == msg.childAddress]
        self._starters = [(a, w) for a, w in self._starters if a != msg.childAddress]
        for worker_id in gone if not self._stopping else []:
            # The Starter's Worker died with it (PDEATHSIG) and nobody else will say so.
            self.send(self._ctx.worker_registry,
                      WorkerExited(worker_id, reason="starter_exited"))
            log.warning("worker.restarting", worker_id=worker_id, reason="starter_exited")
            self._start(worker_id)

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._stopping = True
