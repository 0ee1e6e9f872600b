"""Removing the run directories of dead runs: what a SIGKILL of a pool's launcher left in the
temp dir.

    temp dir entries named sp-<pool>-XXXXXXXX
      │ observe   lstat (never following a link), the marker file, psutil: is its owner alive?
      ▼
    judge_run_dir(entry, owner, uid) -> RunDirVerdict     pure (core/run_dirs.py)
      │
      ├─ remove: shutil.rmtree (fd-based: it never follows a symlink inside or at the top)
      └─ keep:   not provably ours, or its owner lives
      ▼
    RunDirReport (removed / kept / failed)

Run by ``reaper.sweep_orphans`` at ``Pool.start`` and node start (after the orphaned processes
of dead runs were killed, so nothing still serves a socket in a removed directory) and by
``snakepit-actors cleanup``. It never imports grpc.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass

from snakepit_actors.core.run_dirs import (
    RUN_DIR_MARKER,
    RUN_DIR_NAME,
    RunDirEntry,
    RunDirMarker,
    judge_run_dir,
)
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree.process_table import identify_process

__all__ = ["RunDirOutcome", "RunDirReport", "observe_run_dir", "reap_run_dirs"]

log = get_logger("reaper")

_MARKER_MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class RunDirOutcome:
    """What happened to one run directory.

    Attributes:
        path: the directory.
        action: "removed", "would_remove" (dry run), "kept" or "failed" (rmtree raised).
        reason: the verdict's reason (see ``RunDirVerdict``).
        owner_pid: the pid its marker names (0: no marker).
    """

    path: str
    action: str
    reason: str
    owner_pid: int


@dataclass(frozen=True, slots=True)
class RunDirReport:
    """The result of one ``reap_run_dirs``: one outcome per directory named like a run's."""

    outcomes: tuple[RunDirOutcome, ...]
    dry_run: bool
    elapsed_s: float

    @property
    def removed(self) -> tuple[RunDirOutcome, ...]:
        """Directories of dead runs removed (or, in a dry run, that would be)."""
        return tuple(o for o in self.outcomes if o.action in ("removed", "would_remove"))


def observe_run_dir(parent: str, name: str) -> RunDirEntry | None:
    """What ``parent/name`` is, without following a symlink; None if it vanished."""
    path = os.path.join(parent, name)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    is_dir = stat.S_ISDIR(st.st_mode)
    return RunDirEntry(name, is_dir, st.st_uid, _read_marker(path) if is_dir else None)


def _read_marker(path: str) -> RunDirMarker | None:
    try:
        fd = os.open(os.path.join(path, RUN_DIR_MARKER), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return RunDirMarker.from_text(f.read(_MARKER_MAX_BYTES).decode("utf-8", "replace"))


def reap_run_dirs(temp_dir: str | None = None, *, dry_run: bool = False) -> RunDirReport:
    """Remove the run directories of dead runs under ``temp_dir``.

    Blocks for one listing of ``temp_dir`` plus a few stat calls per directory named like a run
    directory, and the removal of dead ones. Never raises for one directory: a failed removal
    is reported ("failed") and logged as ``run_dir.remove_failed``.

    Args:
        temp_dir: where run directories are made (default: ``tempfile.gettempdir()``).
        dry_run: decide and report, but remove nothing.

    Returns:
        A ``RunDirReport``.

    Raises:
        OSError: ``temp_dir`` could not be listed.
    """
    started, parent, uid = time.monotonic(), temp_dir or tempfile.gettempdir(), os.getuid()
    outcomes: list[RunDirOutcome] = []
    for name in sorted(n for n in os.listdir(parent) if RUN_DIR_NAME.match(n)):
        entry = observe_run_dir(parent, name)
        if entry is None:
            continue
        marker = entry.marker
        owner = identify_process(marker.owner.pid) if marker is not None else None
        verdict = judge_run_dir(entry, owner=owner, uid=uid)
        path, owner_pid = os.path.join(parent, name), marker.owner.pid if marker else 0
        action = "kept" if verdict.action == "keep" else "would_remove" if dry_run else "removed"
        if action == "removed":
            try:
                with contextlib.suppress(FileNotFoundError):  # a concurrent sweep was first
                    shutil.rmtree(path)  # fd-based on Linux: refuses a symlink, follows none inside
                log.info("run_dir.removed", path=path, owner_pid=owner_pid)
            except OSError as exc:
                action = "failed"
                log.warning("run_dir.remove_failed", path=path, error=str(exc))
        outcomes.append(RunDirOutcome(path, action, verdict.reason, owner_pid))
    return RunDirReport(tuple(outcomes), dry_run, time.monotonic() - started)
