"""Every process a worker's tools started dies with the worker: setsid and double-forked ones too.

    Worker actor process   PR_SET_CHILD_SUBREAPER (become_subreaper, before its first spawn)
     └─ bridge             its own session; env SNAKEPIT_LINEAGE=<random, one per spawn>
         ├─ tool child              same group: stop_bridge's group kill ends it
         ├─ setsid child            another session: found below the bridge (descendants_of)
         └─ fork ─► fork ─► daemon  its parent exits: it reparents to the Worker actor process
                                    (the nearest subreaper), where adopted_by_me finds it by
                                    its inherited lineage

``stop_bridge`` snapshots ``descendants_of(bridge)`` while the bridge lives, stops the bridge's
group as before, and then SIGKILLs whatever is left of the snapshot, plus every child this
process adopted that carries the bridge's lineage (when the bridge died, by crash or stop, all
its remaining children reparented here), plus their descendants; adopted ones are then reaped
here (they are our children now). A Worker whose bridge crashed stops it the same way.

Limits: an orphan that cleared its environment *and* whose parent exited before the snapshot is
adopted without a lineage and is not killed; without a subreaper (not Linux, or a process that
never called ``become_subreaper``) only the snapshot is killed. This module imports neither grpc
nor thespian.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterable

import psutil

from snakepit_actors.system import process_running

__all__ = ["LINEAGE_VAR", "adopted_by_me", "become_subreaper", "children_of", "descendants_of",
           "kill_leftovers", "new_lineage"]

#: The environment variable every worker process (and what it starts) inherits.
LINEAGE_VAR = "SNAKEPIT_LINEAGE"
_PR_SET_CHILD_SUBREAPER = 36
_KILL_WAIT_S = 1.0
_MAX_DESCENDANTS = 10_000  # a fork bomb must not keep a stop walking forever


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants (Linux ``PR_SET_CHILD_SUBREAPER``):
    an orphan below it reparents to it instead of to init. Never blocks; idempotent.

    Returns:
        Whether the kernel accepted (False elsewhere than Linux).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def new_lineage() -> str:
    """A fresh lineage for one worker process."""
    return uuid.uuid4().hex


def children_of(pid: int) -> list[psutil.Process]:
    """The children of ``pid`` (identity-pinned handles); [] if it is gone. Reads
    ``/proc/PID/task/*/children`` (a few files, whatever the number of processes on the host);
    psutil's scan of every process where that is missing."""
    pids = _child_pids(pid)
    if pids is None:
        return _scan_children(pid)  # a kernel without the file
    found: list[psutil.Process] = []
    for child in sorted(pids):
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(child))
    return found


def _child_pids(pid: int) -> set[int] | None:
    """The pids of ``pid``'s children from ``/proc/PID/task/*/children`` (empty if it is
    gone); None on a kernel without those files."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    pids: set[int] = set()
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None
        except (OSError, ValueError):
            continue
    return pids


def descendants_of(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (identity-pinned handles); [] if it is gone."""
    found: list[psutil.Process] = []
    frontier = [pid]
    while frontier and len(found) < _MAX_DESCENDANTS:
        kids = [c for p in frontier for c in children_of(p)]
        found += kids
        frontier = [k.pid for k in kids]
    return found


def _scan_children(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return list(psutil.Process(pid).children())
    return []


def adopted_by_me(lineage: str, exclude: int, adopter: int = 0) -> list[psutil.Process]:
    """This process's children (other than ``exclude``, the bridge itself) whose environment
    carries ``lineage``: orphans of that bridge's tree that reparented to us (or to
    ``adopter``: the fork server, the subreaper of a forked bridge's tree).

    A fork server's children are every other worker of the pool: each is first checked by a
    plain read of its ``/proc/PID/environ`` (about 10 µs), and only one that names
    ``lineage`` gets a psutil handle (which costs about 70 µs: at 256 workers every stop
    took 17 ms of CPU, 4.5 s for a pool's close)."""
    if not lineage:
        return []
    parent = adopter or os.getpid()
    pids = _child_pids(parent)
    if pids is None:
        return [child for child in _scan_children(parent)
                if child.pid != exclude and _carries(child, lineage)]
    marker = f"{LINEAGE_VAR}={lineage}".encode()
    found: list[psutil.Process] = []
    for pid in sorted(pids - {exclude}):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker not in f.read():
                    continue
        except OSError:
            continue
        with contextlib.suppress(psutil.Error):
            child = psutil.Process(pid)
            if _carries(child, lineage):  # pinned now: the pid cannot have been reused since
                found.append(child)
    return found


def _carries(child: psutil.Process, lineage: str) -> bool:
    try:
        return bool(child.environ().get(LINEAGE_VAR) == lineage)
    except psutil.Error:
        return False


def kill_leftovers(snapshot: Iterable[psutil.Process], lineage: str, bridge_pid: int,
                   adopter: int = 0) -> int:
    """SIGKILL what is left of a stopped bridge's tree: ``snapshot`` (its descendants seen while
    it lived), the children this process (or ``adopter``, see ``adopted_by_me``) adopted with
    its ``lineage``, and their descendants. Waits up to a second for them to go, and reaps the
    adopted ones that are our children.

    Returns:
        How many processes were signalled.
    """
    adopted = adopted_by_me(lineage, bridge_pid, adopter)
    targets = {p.pid: p for p in [*snapshot, *adopted,
                                  *(d for a in adopted for d in descendants_of(a.pid))]}
    signalled = 0
    for proc in targets.values():
        with contextlib.suppress(psutil.Error):
            if proc.is_running():  # the handle checks the create time: never a reused pid
                proc.send_signal(signal.SIGKILL)
                signalled += 1
    mine = {p.pid for p in children_of(os.getpid())} if targets else set()
    deadline = time.monotonic() + _KILL_WAIT_S
    pending = dict(targets)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            if pid in mine:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            if not process_running(pending[pid]):
                del pending[pid]
        if pending:
            time.sleep(0.01)
    return signalled
