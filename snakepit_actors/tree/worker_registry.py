"""WorkerRegistry actor: worker_id -> the latest fact about that worker; tells subscribers.

    PoolRoot
     ├─ WorkerRegistry (this; permanent)   <- WorkerReady / WorkerStartFailed (Workers)
     │                                      <- WorkerExited / WorkerAbandoned (Starters)
     └─ Pool  (subscriber: keeps its own O(1) cache from these facts)

Stateless beyond its dict: if it crashes, PoolRoot starts a new, empty one and tells its
subscribers and feeders (``ActorReplaced``): the Pool, the Recycler and the WorkerSupervisor
subscribe again, every serving Worker re-announces its ``WorkerReady`` (``reannounced=True``:
the Pool keeps what runs there) and each Starter whose Worker is between lives reports it
exited, so facts lost while no registry ran are made good.
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorTypeDispatcher

from snakepit_actors.messages import (
    InitRegistry,
    SubscribeWorkers,
    WorkerAbandoned,
    WorkerExited,
    WorkerReady,
    WorkerStartFailed,
)

WorkerFact = WorkerReady | WorkerStartFailed | WorkerExited | WorkerAbandoned


class WorkerRegistry(ActorTypeDispatcher):
    """Holds each worker's latest fact and forwards every fact to subscribers."""

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, WorkerFact] = {}
        self._subscribers: list[Any] = []

    def receiveMsg_InitRegistry(self, msg: InitRegistry, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()

    def receiveMsg_SubscribeWorkers(self, msg: SubscribeWorkers, sender: Any) -> None:
        self._subscribers.append(msg.subscriber)
        for fact in self._entries.values():
            self.send(msg.subscriber, fact)

    def receiveMsg_WorkerReady(self, msg: WorkerReady, sender: Any) -> None:
        self._record(msg.worker_id, msg)

    def receiveMsg_WorkerStartFailed(self, msg: WorkerStartFailed, sender: Any) -> None:
        self._record(msg.worker_id, msg)

    def receiveMsg_WorkerExited(self, msg: WorkerExited, sender: Any) -> None:
        self._record(msg.worker_id, msg)

    def receiveMsg_WorkerAbandoned(self, msg: WorkerAbandoned, sender: Any) -> None:
        self._record(msg.worker_id, msg)

    def _record(self, worker_id: str, fact: WorkerFact) -> None:
        self._entries[worker_id] = fact
        for subscriber in self._subscribers:
            self.send(subscriber, fact)
