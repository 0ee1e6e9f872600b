"""The pure decision of the run-directory sweep: may this directory under the temp dir go?

``judge_run_dir(entry, owner, uid) -> RunDirVerdict`` takes what was observed (no I/O here) and
says "remove" or "keep". Each pool run's directory (``system.make_run_dir``) holds a marker
file, ``RUN_DIR_MARKER``, naming the process that made it (pid and create time) and its user;
the directory belongs to a dead run when that process is gone or its pid now names another
process (as ``core/orphans.run_is_over`` decides for process-table rows). See
``tree/run_dirs.py`` for the code that observes and removes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from snakepit_actors.core.orphans import same_start
from snakepit_actors.core.process_rows import ProcessIdentity

#: The marker file's name inside a run directory.
RUN_DIR_MARKER = ".snakepit-run"

#: ``tempfile.mkdtemp(prefix=f"sp-{pool_name[:16]}-")``: "sp-", the pool name, "-", 8 random
#: characters from tempfile's alphabet. Only such names are ever looked at.
RUN_DIR_NAME = re.compile(r"^sp-.{0,16}-[a-z0-9_]{8}$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RunDirMarker:
    """What a run directory's marker file says.

    Attributes:
        owner: the process that made the directory (its run lives as long as it does).
        uid: the user it ran as.
    """

    owner: ProcessIdentity
    uid: int

    def to_text(self) -> str:
        """The marker file's content (one JSON object)."""
        return json.dumps({"owner_pid": self.owner.pid,
                           "owner_create_time": self.owner.create_time, "uid": self.uid})

    @classmethod
    def from_text(cls, text: str) -> RunDirMarker | None:
        """Parse a marker file; None if it is not one (never raises)."""
        try:
            data = json.loads(text)
            marker = cls(ProcessIdentity(int(data["owner_pid"]),
                                         float(data["owner_create_time"])), int(data["uid"]))
        except (ValueError, TypeError, KeyError):
            return None
        return marker if marker.owner.pid > 0 and marker.owner.create_time > 0 else None


@dataclass(frozen=True, slots=True)
class RunDirEntry:
    """What was observed of one entry of the temp dir (``lstat``, never following a link).

    Attributes:
        name: its name in the temp dir.
        is_dir: a real directory (False for a symlink, whatever it points at).
        uid: its owner's uid.
        marker: its parsed marker file (None: missing, not a regular file, or unreadable).
    """

    name: str
    is_dir: bool
    uid: int
    marker: RunDirMarker | None


@dataclass(frozen=True, slots=True)
class RunDirVerdict:
    """``judge_run_dir``'s decision.

    Attributes:
        action: "remove" (a dead run's directory) or "keep".
        reason: "dead_run" (remove); "not_ours" (name, type, owner or marker do not prove it
            is a run directory of this user), "owner_alive" (keep).
    """

    action: Literal["remove", "keep"]
    reason: str


def judge_run_dir(entry: RunDirEntry, *, owner: ProcessIdentity | None, uid: int) -> RunDirVerdict:
    """Decide what to do with one temp-dir entry. Pure: every fact comes in as an argument.

    Args:
        entry: the entry as observed.
        owner: what holds ``entry.marker.owner.pid`` now (None: nothing alive).
        uid: this user's id; another user's directory is never removed.

    Returns:
        "remove" only for a real directory of this user, named like a run directory, whose
        marker names this user and an owner that is gone.
    """
    marker = entry.marker
    if (not RUN_DIR_NAME.match(entry.name) or not entry.is_dir or entry.uid != uid
            or marker is None or marker.uid != uid):
        return RunDirVerdict("keep", "not_ours")
    if owner is not None and same_start(owner.create_time, marker.owner.create_time):
        return RunDirVerdict("keep", "owner_alive")
    return RunDirVerdict("remove", "dead_run")
