"""Starter actor: a supervisor of exactly one Worker (Snakepit's ``worker_starter``).

    WorkerSupervisor (one_for_one over Starters)
     └─ Starter_i (this; permanent)
         └─ Worker_i (permanent) -> external process_i

When its Worker exits (its process crashed, it was recycled, or the actor was killed) the
Starter tells the WorkerRegistry ``WorkerExited`` (so the Pool fails what the worker held and
stops routing to it) and creates a fresh Worker after ``restart_backoff_s``. A Worker that never
became ready is not restarted here: a start failure is reported and the Pool decides.
If the Starter itself dies, the WorkerSupervisor restarts it, and its Worker dies with it
(PR_SET_PDEATHSIG), so no worker is ever orphaned.
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, ChildActorExited, WakeupMessage

from .messages import InitStarter, InitWorker, WorkerContext, WorkerExited
from .telemetry import get_logger

log = get_logger("starter")


class Starter(ActorTypeDispatcher):
    """Owns one Worker and restarts it."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx: WorkerContext | None = None
        self._worker_id = ""
        self._worker: Any = None
        self._restarts = 0
        self._stopping = False

    def receiveMsg_InitStarter(self, msg: InitStarter, sender: Any) -> None:
        from supervision.lifetime import die_with_parent

        die_with_parent()
        self._ctx, self._worker_id = msg.context, msg.worker_id
        self._start_worker()

    def _start_worker(self) -> None:
        assert self._ctx is not None
        self._worker = self.createActor("snakepit_actors.worker.Worker")
        self.send(self._worker, InitWorker(self._ctx, self._worker_id, self._restarts))

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        if self._ctx is None or self._stopping or msg.childAddress != self._worker:
            return
        self._worker = None
        self.send(self._ctx.worker_registry,
                  WorkerExited(self._worker_id, reason="worker_actor_exited"))
        self._restarts += 1
        log.info("worker.restarting", worker_id=self._worker_id, restarts=self._restarts)
        self.wakeupAfter(self._ctx.config.restart_backoff_s, payload="restart")

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload == "restart" and self._worker is None:
            self._start_worker()

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._stopping = True
