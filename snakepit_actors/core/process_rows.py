"""The identity of an OS process and one row of the process table: plain values that the
host-side table (``tree/process_table.py``) stores and the reaper's pure judgement
(``core/orphans.py``) reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as the OS knows it: a pid is only meaningful with its create time.

    Attributes:
        pid: the OS pid (0 = unknown).
        create_time: psutil's create time (epoch seconds; 0.0 = unknown).
    """

    pid: int
    create_time: float


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One row of the process table: one worker process of one run.

    Attributes:
        run_id: the pool run (``--run-id`` / ``SNAKEPIT_RUN_ID`` of its process).
        worker_id: the worker (``--worker-id`` / ``SNAKEPIT_WORKER_ID``).
        pool_name: the pool's name (for people reading the table).
        state: "spawning" (written before spawn; pid unknown) or "running".
        pid: the process's pid (0 while spawning).
        pgid: its process group (== pid: it runs in its own session).
        create_time: its psutil create time.
        owner_pid: the process that launched the run; the run is over when it is gone.
        owner_create_time: the owner's create time (so a recycled pid is not the owner).
        host: the host name where the process runs (a table on a shared home directory may
            hold rows of other hosts; they are never judged here).
        created_at: when the row was written (epoch seconds).
        updated_at: when it last changed.
    """

    run_id: str
    worker_id: str
    pool_name: str
    state: str
    pid: int
    pgid: int
    create_time: float
    owner_pid: int
    owner_create_time: float
    host: str
    created_at: float
    updated_at: float
