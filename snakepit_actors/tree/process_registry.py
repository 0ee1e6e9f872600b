"""ProcessRegistry actor: worker_id -> the OS identity of its external process, persisted.

    PoolRoot
     └─ ProcessRegistry (this; permanent)  <- ProcessSpawning / ProcessSpawned / ProcessEnded
                             │ one short sqlite write per message
                             ▼
            $XDG_DATA_HOME/snakepit_actors/processes.sqlite3   (ProcessTable, WAL mode)
                             ▲
        reaper.reap_orphans (at Pool.start, after Pool.close, `snakepit-actors cleanup`)

A Worker tells this actor about its process *before* spawning it (row state "spawning") and
again once it exists (pid, pgid, create_time; state "running"); ``ProcessEnded`` deletes the row.
Each row also names the run's *owner*, the process that launched the pool (pid + create_time):
when the owner is gone, the run is over, and whatever of it still runs is an orphan that the
reaper may kill after verifying pid + create_time + run id (see ``snakepit_actors.tree.reaper``).

Crashes: a failed sqlite write is logged and the actor carries on (the table is a safety net,
never on the request path). If this actor dies, PoolRoot starts a new one, which re-reads its
run's rows from the file (``InitRegistry.run_id``): it forgets rows whose process is gone (their
``ProcessEnded`` may have been lost) and keeps the others; every live Worker then re-sends its
process's identity (it hears of the new registry by ``ActorReplaced``), which also rebuilds a
table kept in memory. Without a database path the table lives in memory and nothing is
persisted.

The table itself, a plain class several processes may share, is ``process_table.ProcessTable``.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher

from snakepit_actors.core.process_rows import ProcessIdentity
from snakepit_actors.messages import InitRegistry, ProcessEnded, ProcessSpawned, ProcessSpawning
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.process_table import ProcessTable, identify_process

__all__ = ["ProcessRegistry"]

log = get_logger("process_registry")


# --- the actor --------------------------------------------------------------------------------

class ProcessRegistry(ActorTypeDispatcher):
    """Persists which OS process each worker of its pool owns. See the module docstring.

    Set-up: ``InitRegistry(pool_name, db_path, owner_pid)``; ``db_path=""`` keeps the table in
    memory, ``owner_pid=0`` makes the parent actor (PoolRoot) the run's owner. Process events
    that arrive before it are kept and written once the table is open.
    """

    def __init__(self) -> None:
        super().__init__()
        self._table: ProcessTable | None = None
        self._owner = ProcessIdentity(0, 0.0)
        self._run_ids: dict[str, str] = {}  # worker_id -> run_id of its current row
        self._early: list[Any] = []

    def receiveMsg_InitRegistry(self, msg: InitRegistry, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        db_path = msg.db_path or ":memory:"
        owner_pid = msg.owner_pid or _parent_pid()
        self._owner = identify_process(owner_pid) or ProcessIdentity(owner_pid, 0.0)
        if self._table is not None:
            self._table.close()
        try:
            self._table = ProcessTable(db_path)
        except (sqlite3.Error, OSError) as exc:
            log.warning("process_table.unavailable", path=db_path, error=str(exc))
            self._table = ProcessTable(":memory:")
        if msg.run_id:
            self._reread(msg.run_id)
        early, self._early = self._early, []
        for event in early:
            self.receiveMessage(event, sender)

    def _reread(self, run_id: str) -> None:
        """A restarted registry: the rows of ``run_id`` already in the table are ours; a row
        whose process no longer runs is dropped (its end was not heard)."""
        assert self._table is not None
        try:
            for row in self._table.rows(run_id):
                live = identify_process(row.pid)
                if row.state == "running" and (
                        live is None or abs(live.create_time - row.create_time) > 0.01):
                    self._table.remove(row)
                else:
                    self._run_ids[row.worker_id] = run_id
        except sqlite3.Error as exc:
            log.warning("process_table.write_failed", event_type="InitRegistry", error=str(exc))

    def receiveMsg_ProcessSpawning(self, msg: ProcessSpawning, sender: Any) -> None:
        if self._table is None:
            self._early.append(msg)
            return
        self._run_ids[msg.worker_id] = msg.run_id
        self._write(msg, self._table.record_spawning, msg.run_id, msg.worker_id,
                    msg.pool_name, self._owner)

    def receiveMsg_ProcessSpawned(self, msg: ProcessSpawned, sender: Any) -> None:
        if self._table is None:
            self._early.append(msg)
            return
        run_id = self._run_ids.get(msg.worker_id)
        if run_id is not None:
            self._write(msg, self._table.record_spawned, run_id, msg.worker_id, msg.pid,
                        msg.pgid, msg.create_time)

    def receiveMsg_ProcessEnded(self, msg: ProcessEnded, sender: Any) -> None:
        if self._table is None:
            self._early.append(msg)
            return
        run_id = self._run_ids.get(msg.worker_id)
        if run_id is not None:
            self._write(msg, self._table.record_ended, run_id, msg.worker_id,
                        msg.pid)

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None

    def _write(self, event: Any, write: Any, *args: Any) -> None:
        """One table write; a failure is logged, never raised (Thespian would retry it)."""
        try:
            write(*args)
        except sqlite3.Error as exc:
            log.warning("process_table.write_failed", event_type=type(event).__name__,
                        worker_id=getattr(event, "worker_id", ""), error=str(exc))


def _parent_pid() -> int:
    """The actor that created this one (PoolRoot), or this process under simpleSystemBase."""
    parent = multiprocessing.parent_process()
    return os.getpid() if parent is None or parent.pid is None else parent.pid
