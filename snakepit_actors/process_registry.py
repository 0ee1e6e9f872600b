"""ProcessRegistry actor: worker_id -> the OS identity of its external process.

    PoolRoot
     └─ ProcessRegistry (this; permanent)  <- ProcessSpawning / ProcessSpawned / ProcessEnded

Entries are written before spawn and confirmed after, so a crash between the two still leaves a
trace. This skeleton keeps them in memory; persisting them for orphan reaping after a SIGKILL of
the host is the job of the supervision issue (#3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from thespian.actors import ActorTypeDispatcher

from .messages import InitRegistry, ProcessEnded, ProcessSpawned, ProcessSpawning


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    worker_id: str
    run_id: str
    pool_name: str
    pid: int = 0
    pgid: int = 0
    create_time: float = 0.0


class ProcessRegistry(ActorTypeDispatcher):
    """Tracks which OS process each worker owns."""

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, ProcessEntry] = {}

    def receiveMsg_InitRegistry(self, msg: InitRegistry, sender: Any) -> None:
        from supervision.lifetime import die_with_parent

        die_with_parent()

    def receiveMsg_ProcessSpawning(self, msg: ProcessSpawning, sender: Any) -> None:
        self._entries[msg.worker_id] = ProcessEntry(msg.worker_id, msg.run_id, msg.pool_name)

    def receiveMsg_ProcessSpawned(self, msg: ProcessSpawned, sender: Any) -> None:
        entry = self._entries.get(msg.worker_id)
        if entry is not None:
            self._entries[msg.worker_id] = replace(entry, pid=msg.pid, pgid=msg.pgid,
                                                   create_time=msg.create_time)

    def receiveMsg_ProcessEnded(self, msg: ProcessEnded, sender: Any) -> None:
        self._entries.pop(msg.worker_id, None)
