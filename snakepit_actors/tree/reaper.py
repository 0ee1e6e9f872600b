"""Reaping orphaned worker processes: what a SIGKILL of the host left behind.

    ProcessTable rows
      │ observe   psutil: is the run's owner alive (pid + create_time)? who holds the row's pid?
      ▼
    judge(row, owner, process) -> Verdict          pure: "kill" | "remove" | "keep", and why
      │
      ├─ kill:   SIGTERM each verified process group ── one grace for all ──► SIGKILL survivors
      ├─ remove: delete the row, signal nothing (pid gone, or recycled by an unrelated process)
      └─ keep:   the run is alive (or the row belongs to another host)
      ▼
    ReapReport (killed / removed / kept / survived), the rows of settled processes deleted

A run is over when its owner (the process that launched the pool) is gone: no process with the
owner's pid, or one with another create time (a recycled pid does not keep a dead run alive).
Rows of live runs are never judged. A process is signalled only if *all* of these hold: its pid
is alive and not a zombie, it belongs to this user, its create time matches the row's (within
``CREATE_TIME_TOLERANCE_S``), and its command line holds ``--run-id <run id>`` (or its
environment ``SNAKEPIT_RUN_ID=<run id>``). Its process group is signalled only when it leads it
(pgid == pid, as ``spawn_bridge`` arranges). A row still "spawning" (its host died between the
two writes) is matched to a process by ``--run-id`` and ``--worker-id`` in command lines, and
that process must have started after the row was written.

Used at ``Pool.start`` (``sweep_orphans``), after ``Pool.close`` (its own run, as ended), by a
member node, and by ``snakepit-actors cleanup`` (``ops/cleanup.py``). It never imports grpc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from snakepit_actors.core.orphans import (
    CREATE_TIME_TOLERANCE_S,
    ProcessFacts,
    Verdict,
    has_run_marker,
    judge,
    run_is_over,
)
from snakepit_actors.core.process_rows import ProcessRow
from snakepit_actors.system import process_running, wait_gone
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.process_table import ProcessTable, identify_process
from snakepit_actors.tree.run_dirs import reap_run_dirs

__all__ = [
    "CREATE_TIME_TOLERANCE_S", "DEFAULT_GRACE_S", "ProcessFacts", "ReapOutcome", "ReapReport",
    "Verdict", "has_run_marker", "judge", "reap_orphans", "run_is_over", "sweep_orphans",
]

log = get_logger("reaper")

#: Seconds between SIGTERM and SIGKILL (the bridge exits at once on SIGTERM when idle).
DEFAULT_GRACE_S = 1.0
_KILL_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class ReapOutcome:
    """What happened to one row.

    Attributes:
        row: the row as it was read.
        action: "killed", "survived" (still alive after SIGKILL; its row is kept), "removed",
            "kept", or in a dry run "would_kill" / "would_remove".
        reason: the verdict's reason (see ``Verdict``).
        pid: the process judged (a "spawning" row's is found by its markers); 0 if none.
    """

    row: ProcessRow
    action: str
    reason: str
    pid: int


@dataclass(frozen=True, slots=True)
class ReapReport:
    """The result of one ``reap_orphans``.

    Attributes:
        outcomes: one per row, in table order.
        dry_run: nothing was signalled or deleted.
        at: when it ran (epoch seconds; the ``now`` given).
        elapsed_s: how long it took (including the grace, if something was killed).
    """

    outcomes: tuple[ReapOutcome, ...]
    dry_run: bool
    at: float
    elapsed_s: float

    def with_action(self, *actions: str) -> tuple[ReapOutcome, ...]:
        """The outcomes whose action is one of ``actions``."""
        return tuple(o for o in self.outcomes if o.action in actions)

    @property
    def killed(self) -> tuple[ReapOutcome, ...]:
        """Orphans killed (or, in a dry run, that would be)."""
        return self.with_action("killed", "would_kill")

    @property
    def removed(self) -> tuple[ReapOutcome, ...]:
        """Stale rows deleted without signalling anything (or that would be)."""
        return self.with_action("removed", "would_remove")

    @property
    def kept(self) -> tuple[ReapOutcome, ...]:
        """Rows of live runs (or other hosts), untouched."""
        return self.with_action("kept")

    @property
    def survived(self) -> tuple[ReapOutcome, ...]:
        """Verified orphans still alive after SIGKILL (e.g. uninterruptible sleep)."""
        return self.with_action("survived")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: counts plus every outcome with its row."""
        return {"dry_run": self.dry_run, "at": self.at, "elapsed_s": round(self.elapsed_s, 4),
                **{k: len(getattr(self, k)) for k in ("killed", "removed", "kept", "survived")},
                "outcomes": [{"action": o.action, "reason": o.reason, "pid": o.pid,
                              **asdict(o.row)} for o in self.outcomes]}


@dataclass(slots=True)
class _Target:
    index: int
    handle: psutil.Process
    pgid: int  # 0: signal the process alone
    members: list[psutil.Process] = field(default_factory=list)


def reap_orphans(table: ProcessTable, *, now: float | None = None,
                 grace_s: float = DEFAULT_GRACE_S, dry_run: bool = False,
                 ended_runs: Collection[str] = (), host: str | None = None) -> ReapReport:
    """Kill the verified orphans of ended runs and delete the rows that are settled.

    Blocks about a millisecond per row of an ended run; if something is killed, up to
    ``grace_s`` more plus up to a second for SIGKILL (one wait covers every process).

    Args:
        table: the process table.
        now: the time to report (epoch seconds; default: the clock).
        grace_s: seconds between SIGTERM and SIGKILL.
        dry_run: decide and report, but signal and delete nothing.
        ended_runs: runs the caller knows are over (its own, after ``Pool.close``); they are
            judged as if their owner were gone.
        host: this host's name (default: the table's).

    Returns:
        A ``ReapReport`` with one outcome per row.

    Raises:
        sqlite3.Error: reading or deleting rows failed (processes may have been signalled).
    """
    started = time.monotonic()
    at = time.time() if now is None else now
    rows, uid, host = table.rows(), os.getuid(), host or table.host
    owners = {pid: identify_process(pid) for pid in {r.owner_pid for r in rows}}
    ended = {r.run_id for r in rows if r.host == host and (
        r.run_id in ended_runs or run_is_over(r, owners[r.owner_pid]))}
    handles: dict[int, psutil.Process] = {}
    found = _find_unconfirmed({(r.run_id, r.worker_id) for r in rows
                               if r.run_id in ended and r.pid <= 0}, uid, handles)
    verdicts: list[tuple[Verdict, ProcessFacts | None]] = []
    for row in rows:
        process = None
        if row.run_id in ended and row.host == host:
            process = (_observe(row.pid, handles) if row.pid > 0
                       else found.get((row.run_id, row.worker_id)))
        verdicts.append((judge(row, owner=owners[row.owner_pid], process=process, host=host,
                               uid=uid, run_ended=row.run_id in ended_runs), process))
    targets = [_Target(i, handles[p.pid], p.pid if v.signal_group else 0)
               for i, (v, p) in enumerate(verdicts) if v.action == "kill" and p is not None]
    survivors = set() if dry_run else _kill(targets, grace_s)
    outcomes = [_settle(table, row, verdict, process, dry_run, i in survivors)
                for i, (row, (verdict, process)) in enumerate(zip(rows, verdicts, strict=True))]
    return ReapReport(tuple(outcomes), dry_run, at, time.monotonic() - started)


def sweep_orphans(db_path: str, *, ended_runs: Collection[str] = (),
                  grace_s: float = DEFAULT_GRACE_S) -> ReapReport | None:
    """``reap_orphans`` on the table at ``db_path`` (created if missing), never raising: a
    broken table must not keep a pool from starting or closing. A sweep for no particular run
    (``ended_runs`` empty: at a start) then removes the run directories of dead runs
    (``run_dirs.reap_run_dirs``).

    Returns:
        The report, or None if the table could not be used (logged as
        ``orphan.sweep_failed``).
    """
    try:
        with ProcessTable(db_path) as table:
            report = reap_orphans(table, grace_s=grace_s, ended_runs=ended_runs)
    except (sqlite3.Error, OSError, psutil.Error) as exc:
        log.warning("orphan.sweep_failed", path=db_path, error=str(exc))
        return None
    if not ended_runs:
        try:
            reap_run_dirs()
        except (OSError, psutil.Error) as exc:
            log.warning("orphan.sweep_failed", path=db_path, error=str(exc))
    return report


# --- observing --------------------------------------------------------------------------------

def _facts(proc: psutil.Process) -> ProcessFacts | None:
    try:
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return ProcessFacts(proc.pid, proc.create_time(), -1, -1, (), zombie=True)
            facts = ProcessFacts(proc.pid, proc.create_time(), proc.uids().real,
                                 os.getpgid(proc.pid), tuple(proc.cmdline()))
        env: dict[str, str] = {}
        with contextlib.suppress(psutil.AccessDenied):
            env = proc.environ()
        return ProcessFacts(facts.pid, facts.create_time, facts.uid, facts.pgid, facts.cmdline,
                            env.get("SNAKEPIT_RUN_ID"), env.get("SNAKEPIT_WORKER_ID"))
    except (psutil.Error, OSError):
        return None


def _observe(pid: int, handles: dict[int, psutil.Process]) -> ProcessFacts | None:
    """Facts about ``pid``; its psutil handle (identity pinned) goes into ``handles``."""
    try:
        handle = psutil.Process(pid)
    except (psutil.Error, ValueError):
        return None
    facts = _facts(handle)
    if facts is not None:
        handles[pid] = handle
    return facts


def _find_unconfirmed(keys: set[tuple[str, str]], uid: int,
                      handles: dict[int, psutil.Process]) -> dict[tuple[str, str], ProcessFacts]:
    """For rows still "spawning": the earliest group leader of this user whose argv carries
    ``--run-id RUN --worker-id WID`` of one of ``keys``. One scan of the process list."""
    if not keys:
        return {}
    runs = {run for run, _ in keys}
    found: dict[tuple[str, str], ProcessFacts] = {}
    for proc in psutil.process_iter(["cmdline", "uids"]):
        uids, argv = proc.info.get("uids"), proc.info.get("cmdline") or []
        if uids is None or uids.real != uid or not runs.intersection(argv):
            continue  # cheap filter first: environments are read only for candidates
        facts = _facts(proc)
        if facts is None or facts.zombie or facts.pgid != facts.pid:
            continue
        for key in [k for k in keys if has_run_marker(facts, *k)]:
            if key not in found or facts.create_time < found[key].create_time:
                found[key] = facts
                handles[facts.pid] = proc
    return found


# --- killing ----------------------------------------------------------------------------------

def _group_members(pgids: set[int]) -> dict[int, list[psutil.Process]]:
    """The processes of each group, seen while its verified leader holds the group id."""
    members: dict[int, list[psutil.Process]] = {pgid: [] for pgid in pgids}
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError):
            pgid = os.getpgid(proc.pid)
            if pgid in members and proc.pid != pgid:
                members[pgid].append(proc)
    return members


def _signal(target: _Target, sig: int) -> None:
    """Signal the target's group while its leader is alive (the group id cannot have been
    reused then); otherwise each process seen in the group, by identity-checked handle."""
    with contextlib.suppress(psutil.Error, OSError):
        if process_running(target.handle):
            if target.pgid:
                os.killpg(target.pgid, sig)
                return
            target.handle.send_signal(sig)
    for member in target.members:
        with contextlib.suppress(psutil.Error):
            if process_running(member):
                member.send_signal(sig)


def _kill(targets: list[_Target], grace_s: float) -> set[int]:
    """SIGTERM every target, one shared grace, SIGKILL survivors. Returns the indexes of
    targets with a process still alive."""
    if not targets:
        return set()
    members = _group_members({t.pgid for t in targets if t.pgid})
    for target in targets:
        target.members = members.get(target.pgid, [])
        _signal(target, signal.SIGTERM)
    everyone = [p for t in targets for p in (t.handle, *t.members)]
    wait_gone(everyone, grace_s)
    for target in targets:
        if any(process_running(p) for p in (target.handle, *target.members)):
            _signal(target, signal.SIGKILL)
    wait_gone(everyone, _KILL_WAIT_S)
    return {t.index for t in targets if any(process_running(p) for p in (t.handle, *t.members))}


def _settle(table: ProcessTable, row: ProcessRow, verdict: Verdict,
            process: ProcessFacts | None, dry_run: bool, survived: bool) -> ReapOutcome:
    pid = process.pid if process is not None else row.pid
    if verdict.action == "keep":
        return ReapOutcome(row, "kept", verdict.reason, pid)
    if dry_run:
        return ReapOutcome(row, f"would_{verdict.action}", verdict.reason, pid)
    if survived:
        log.warning("orphan.survived", run_id=row.run_id, worker_id=row.worker_id, pid=pid)
        return ReapOutcome(row, "survived", verdict.reason, pid)
    table.remove(row)
    if verdict.action == "kill":
        log.info("orphan.killed", run_id=row.run_id, worker_id=row.worker_id, pid=pid,
                 pool=row.pool_name)
        return ReapOutcome(row, "killed", verdict.reason, pid)
    return ReapOutcome(row, "removed", verdict.reason, pid)
