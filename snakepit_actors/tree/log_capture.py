"""Worker processes' stdout/stderr: bounded on disk, copied into the host's log with their
worker id.

    worker process --stdout+stderr (append)--> <run_dir>/<worker_id>.log
    Worker actor, every heartbeat interval: cap_log (over worker_log_max_bytes: the last
        worker_log_max_bytes go to <worker_id>.log.1, the file is truncated: at most twice
        the cap on disk once the check has run; between two checks the file grows by what the
        worker writes in one interval)
    WorkerLogTailer thread (node process) --reads new bytes--> ``worker.output`` events
        (a line that is one JSON object, as the bridge's own log lines are, becomes the
        event's fields: ``worker_event="bridge.ready"``, ``address=...``; any other line is
        ``line="..."``)

Each worker process writes to its own file (``processes.spawn_bridge``), so a slow or absent
reader never blocks it. The tailer polls the run directories every ``interval_s``, reads at most
``max_bytes_per_tick`` per file, cuts lines at ``max_line_chars``, and when a worker writes
faster than that for long (more than ``max_backlog_bytes`` unread) it skips ahead and logs
``worker.output_dropped`` with the byte count: bounded memory, bounded CPU, never blocking.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from typing import Any

from snakepit_actors.telemetry import get_logger

log = get_logger("worker_output")


def cap_log(proc: Any, max_bytes: int | None) -> int:
    """Rotate ``proc.log_path`` (a ``processes.BridgeProcess``; None: nothing) when it is over
    ``max_bytes`` (None: unbounded). The process keeps writing to the same file (it appends),
    so this copies and truncates (logrotate's ``copytruncate``): bytes written between the copy
    and the truncation are lost. Returns the bytes removed from the log (0: under the cap);
    an OSError (the file gone) counts as 0. Never raises."""
    path = getattr(proc, "log_path", None)
    if path is None or max_bytes is None:
        return 0
    try:
        size = os.path.getsize(path)
        if size <= max_bytes:
            return 0
        with open(path, "rb") as src, open(path + ".1", "wb") as dst:
            src.seek(size - max_bytes)
            dst.write(src.read(max_bytes))
        os.truncate(path, 0)
    except OSError:
        return 0
    log.info("worker.output_rotated", worker_id=getattr(proc, "worker_id", None), bytes=size,
             kept_bytes=max_bytes, rotated_to=path + ".1")
    return size


class WorkerLogTailer:
    """Copies new lines of every ``<worker_id>.log`` under the given run directories.

    Args:
        run_dirs: (pool name, run directory) pairs.
        interval_s: how often the files are polled.
        max_bytes_per_tick: bytes read per file per poll.
        max_line_chars: longer lines are cut (and marked ``truncated=True``).
        max_backlog_bytes: unread bytes beyond which the tailer skips ahead.
    """

    def __init__(self, run_dirs: Iterable[tuple[str, str]], *, interval_s: float = 0.25,
                 max_bytes_per_tick: int = 64 * 1024, max_line_chars: int = 2000,
                 max_backlog_bytes: int = 1024 * 1024) -> None:
        self._dirs = list(run_dirs)
        self._interval_s = interval_s
        self._max_bytes = max_bytes_per_tick
        self._max_line = max_line_chars
        self._max_backlog = max_backlog_bytes
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snakepit-worker-logs",
                                        daemon=True)

    def start(self) -> WorkerLogTailer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling after one last pass (what the workers wrote until now is copied)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.poll()

    def poll(self) -> int:
        """One pass over every worker log; returns the number of lines emitted."""
        lines = 0
        for pool, run_dir in self._dirs:
            with contextlib.suppress(OSError):
                for name in sorted(os.listdir(run_dir)):
                    if name.endswith(".log") and name != "thespian.log":
                        lines += self._read(pool, name[:-4], os.path.join(run_dir, name))
        return lines

    def _read(self, pool: str, worker_id: str, path: str) -> int:
        offset = self._offsets.get(path, 0)
        try:
            size = os.path.getsize(path)
            if size < offset:  # truncated or replaced: start over
                offset = 0
            if size - offset > self._max_backlog:
                log.warning("worker.output_dropped", pool=pool, worker_id=worker_id,
                            bytes=size - offset - self._max_bytes)
                offset = size - self._max_bytes
                self._partial.pop(path, None)
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(self._max_bytes)
        except OSError:
            return 0
        self._offsets[path] = offset + len(chunk)
        data = self._partial.pop(path, b"") + chunk
        *complete, rest = data.split(b"\n")
        if len(rest) > self._max_line:
            complete.append(rest)
            rest = b""
        if rest:
            self._partial[path] = rest
        for raw in complete:
            text = raw.decode("utf-8", "replace").rstrip("\r")
            truncated = len(text) > self._max_line
            structured = None if truncated else parse_json_line(
                text, {"pool": pool, "worker_id": worker_id})
            if structured is not None:
                log.info("worker.output", pool=pool, worker_id=worker_id, **structured)
            else:
                log.info("worker.output", pool=pool, worker_id=worker_id,
                         line=text[:self._max_line], **({"truncated": True} if truncated else {}))
        return len(complete)


#: Names a worker's own JSON fields may not take in a ``worker.output`` event: they get a
#: ``worker_`` prefix (a tool's ``{"event": "loading"}`` becomes ``worker_event="loading"``).
_OURS = frozenset({"event", "pool", "worker_id", "component", "level", "timestamp", "line",
                   "truncated", "node"})


def parse_json_line(text: str, known: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The fields of a worker's line if it is one JSON object (the bridge's own log lines, a
    tool's JSON logging), with names the event already uses prefixed ``worker_`` (dropped
    when equal to the event's own value in ``known``, e.g. the same ``worker_id``); None for
    any other line (it stays ``line=...``)."""
    if not text.startswith("{"):
        return None
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    known = known or {}
    return {(f"worker_{k}" if k in _OURS else str(k)): v for k, v in fields.items()
            if not (k in known and known[k] == v)}
