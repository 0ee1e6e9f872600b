"""StarterRegistry actor: worker_id -> the address of the Starter that owns it.

    PoolRoot
     └─ StarterRegistry (this; permanent)  <- StarterStarted (WorkerSupervisor)

Lets tools (and later the recycle logic) reach the Starter of a worker by id. If it crashes,
PoolRoot starts a new one and the WorkerSupervisor re-sends ``StarterStarted`` for each running
Starter (it hears of the new registry by ``ActorReplaced``).
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorTypeDispatcher

from snakepit_actors.messages import InitRegistry, StarterStarted


class StarterRegistry(ActorTypeDispatcher):
    """Remembers each worker's Starter."""

    def __init__(self) -> None:
        super().__init__()
        self._starters: dict[str, Any] = {}

    def receiveMsg_InitRegistry(self, msg: InitRegistry, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()

    def receiveMsg_StarterStarted(self, msg: StarterStarted, sender: Any) -> None:
        self._starters[msg.worker_id] = msg.starter
