"""The pure decision of the reaper: may this process-table row's process be signalled?

``judge(row, owner, process) -> Verdict`` takes what was observed (no I/O here) and says
"kill", "remove" (forget the row, signal nothing) or "keep". See ``tree/reaper.py`` for the rules
in context and for the code that observes and acts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from snakepit_actors.core.process_rows import ProcessIdentity, ProcessRow

#: Linux computes a create time as boot ticks + ``btime`` re-read from /proc/stat, an integer
#: that may step by 1 s under clock slewing; more than that, a pid reuse would also need the
#: run-id marker to be signalled, and a reused *owner* pid only errs towards keeping a run.
CREATE_TIME_TOLERANCE_S = 1.5

Action = Literal["kill", "remove", "keep"]


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What was observed of one live process (the input of ``judge``).

    Attributes:
        pid: its pid.
        create_time: its psutil create time.
        uid: its real user id.
        pgid: its process group.
        cmdline: its argv.
        run_id_env: ``SNAKEPIT_RUN_ID`` in its environment (None: absent or unreadable).
        worker_id_env: ``SNAKEPIT_WORKER_ID`` in its environment.
        zombie: it has exited and waits for its parent to reap it.
    """

    pid: int
    create_time: float
    uid: int
    pgid: int
    cmdline: tuple[str, ...]
    run_id_env: str | None = None
    worker_id_env: str | None = None
    zombie: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """``judge``'s decision on one row.

    Attributes:
        action: "kill" (a verified orphan), "remove" (delete the row, signal nothing) or
            "keep" (leave the row alone).
        reason: "orphan"; "pid_gone", "never_spawned", "pid_reused", "no_marker",
            "other_user" (for remove); "owner_alive", "other_host" (for keep).
        signal_group: kill the whole process group (the process leads it), not just the pid.
    """

    action: Action
    reason: str
    signal_group: bool = False


def same_start(create_time: float, recorded: float) -> bool:
    """Whether a live process's ``create_time`` is the one ``recorded`` for its pid (else the
    pid was reused), within ``CREATE_TIME_TOLERANCE_S``. An unrecorded time never matches."""
    return recorded > 0 and abs(create_time - recorded) <= CREATE_TIME_TOLERANCE_S


def run_is_over(row: ProcessRow, owner: ProcessIdentity | None) -> bool:
    """Whether the run of ``row`` is over: its owner is gone or its pid now names another
    process (create times differ by more than ``CREATE_TIME_TOLERANCE_S``).

    Args:
        row: a row of the process table.
        owner: what holds ``row.owner_pid`` now (``identify_process``); None if nothing alive.
    """
    return (owner is None or row.owner_pid <= 0
            or not same_start(owner.create_time, row.owner_create_time))


def has_run_marker(process: ProcessFacts, run_id: str, worker_id: str | None = None) -> bool:
    """Whether ``process`` carries the run id (and, if given, the worker id) of a worker
    process: ``--run-id RUN`` (or ``--run-id=RUN``) in its argv or ``SNAKEPIT_RUN_ID=RUN`` in its
    environment. An empty id never matches."""
    def marked(flag: str, value: str, env: str | None) -> bool:
        argv = process.cmdline
        return bool(value) and (env == value or f"{flag}={value}" in argv or any(
            a == flag and b == value for a, b in itertools.pairwise(argv)))

    return marked("--run-id", run_id, process.run_id_env) and (
        worker_id is None or marked("--worker-id", worker_id, process.worker_id_env))


def judge(row: ProcessRow, *, owner: ProcessIdentity | None, process: ProcessFacts | None,
          host: str, uid: int, run_ended: bool = False) -> Verdict:
    """Decide what to do with one row. Pure: every fact comes in as an argument.

    Args:
        row: the row.
        owner: what holds ``row.owner_pid`` now (None: nothing alive).
        process: for a "running" row, what holds ``row.pid`` now; for a "spawning" row, the
            process found by its run and worker markers; None if nothing alive.
        host: this host's name; rows of other hosts are kept.
        uid: this user's id; processes of other users are never signalled.
        run_ended: the caller knows the run is over (its own run after close).

    Returns:
        "kill" only for a verified orphan of an ended run; see the module docstring.
    """
    if row.host != host:
        return Verdict("keep", "other_host")
    if not run_ended and not run_is_over(row, owner):
        return Verdict("keep", "owner_alive")
    spawning = row.pid <= 0
    if process is None or process.zombie or (not spawning and process.pid != row.pid):
        return Verdict("remove", "never_spawned" if spawning else "pid_gone")
    if process.uid != uid:
        return Verdict("remove", "other_user")
    started_ok = (process.create_time >= row.created_at - CREATE_TIME_TOLERANCE_S if spawning
                  else same_start(process.create_time, row.create_time))
    if not started_ok:
        return Verdict("remove", "pid_reused")
    if not has_run_marker(process, row.run_id, row.worker_id if spawning else None):
        return Verdict("remove", "no_marker")
    leads_group = process.pgid == process.pid and (spawning or row.pgid == process.pid)
    return Verdict("kill", "orphan", signal_group=leads_group)
