"""``snakepit-actors cleanup``: reap the orphans recorded in a data directory's process table
(``tree/reaper.py`` decides and acts), remove the run directories of dead runs
(``tree/run_dirs.py``) and print what happened, as a table or as JSON."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from typing import TextIO

from snakepit_actors.tree.process_table import ProcessTable, process_db_path
from snakepit_actors.tree.reaper import DEFAULT_GRACE_S, ReapReport, reap_orphans
from snakepit_actors.tree.run_dirs import reap_run_dirs


def cleanup_command(data_dir: str, dry_run: bool, as_json: bool, *,
                    grace_s: float = DEFAULT_GRACE_S, out: TextIO | None = None) -> int:
    """``snakepit-actors cleanup``: reap orphans recorded under ``data_dir``, remove the run
    directories of dead runs, and print what happened (a table, or JSON). A missing table
    means no orphaned process to look for; it is not created.

    Args:
        data_dir: the data directory (``process_table.default_data_dir(os.environ)``).
        dry_run: only report what would be killed or removed.
        as_json: print JSON instead of a table.
        grace_s: seconds between SIGTERM and SIGKILL.
        out: where to print (default: stdout); errors go to stderr.

    Returns:
        The exit code: 0 done; 1 some verified orphan survived SIGKILL; 2 the table could not
        be read (run directories are then left alone too).
    """
    out = out or sys.stdout
    path = process_db_path(data_dir)
    if not os.path.exists(path):
        report = ReapReport((), dry_run, time.time(), 0.0)
    else:
        try:
            with ProcessTable(path) as table:
                report = reap_orphans(table, grace_s=grace_s, dry_run=dry_run)
        except (sqlite3.Error, OSError) as exc:
            print(f"error: cannot use the process table {path}: {exc}", file=sys.stderr)
            return 2
    dirs = reap_run_dirs(dry_run=dry_run)
    if as_json:
        print(json.dumps({"db": path, **report.to_dict(), "run_dirs": [
            {"path": o.path, "action": o.action, "reason": o.reason, "owner_pid": o.owner_pid}
            for o in dirs.outcomes if o.reason != "not_ours"]}, indent=2), file=out)
    else:
        print(_render(path, report), file=out)
        verb = "would remove" if dry_run else "removed"
        print(f"run directories of dead runs: {len(dirs.removed)} {verb}", file=out)
    return 1 if report.survived else 0


def _render(path: str, report: ReapReport) -> str:
    lines = [f"process table: {path} ({len(report.outcomes)} rows)"]
    if report.outcomes:
        lines.append(f"{'ACTION':<13}{'REASON':<15}{'POOL':<14}{'RUN':<14}{'WORKER':<18}"
                     f"{'PID':>8}{'AGE':>9}")
    for o in report.outcomes:
        age = _age(report.at - o.row.created_at)
        lines.append(f"{o.action:<13}{o.reason:<15}{o.row.pool_name[:13]:<14}"
                     f"{o.row.run_id[:13]:<14}{o.row.worker_id[:17]:<18}{o.pid:>8}{age:>9}")
    if report.dry_run:
        summary = (f"would kill {len(report.killed)}, would remove {len(report.removed)}, "
                   f"{len(report.kept)} kept (dry run: nothing was signalled or deleted)")
    else:
        summary = (f"{len(report.killed)} killed, {len(report.removed)} removed, "
                   f"{len(report.kept)} kept, {len(report.survived)} survived "
                   f"in {report.elapsed_s:.2f} s")
    return "\n".join([*lines, summary])


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
