"""The persisted process table: worker_id -> the OS identity of its external process.

    ProcessRegistry actor (one per pool) ── record_spawning / record_spawned / record_ended ──┐
                                                                                              ▼
            $XDG_DATA_HOME/snakepit_actors/processes.sqlite3   (ProcessTable, sqlite WAL mode)
                                                                                              ▲
        reaper.reap_orphans (at Pool.start, after Pool.close, `snakepit-actors cleanup`) ─ rows ┘

``ProcessTable`` is a plain class: several processes (pools, actors, the CLI) may use one file
at once. Every write is a single autocommit statement; nothing holds a lock across calls. Its
rows are ``core.process_rows.ProcessRow`` values.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import psutil

from snakepit_actors.core.process_rows import ProcessIdentity, ProcessRow

__all__ = [
    "DB_FILENAME", "ProcessTable", "default_data_dir", "identify_process", "process_db_path",
]

#: File name of the process table inside the data directory.
DB_FILENAME = "processes.sqlite3"
SCHEMA_VERSION = 1
#: Seconds a writer waits for another process's lock before the write fails.
DEFAULT_BUSY_TIMEOUT_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processes (
    run_id            TEXT    NOT NULL,
    worker_id         TEXT    NOT NULL,
    pool_name         TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('spawning', 'running')),
    pid               INTEGER NOT NULL DEFAULT 0,
    pgid              INTEGER NOT NULL DEFAULT 0,
    create_time       REAL    NOT NULL DEFAULT 0,
    owner_pid         INTEGER NOT NULL,
    owner_create_time REAL    NOT NULL,
    host              TEXT    NOT NULL,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL,
    PRIMARY KEY (run_id, worker_id)
) WITHOUT ROWID
"""
_COLUMNS = ("run_id, worker_id, pool_name, state, pid, pgid, create_time, owner_pid, "
            "owner_create_time, host, created_at, updated_at")


def default_data_dir(environ: Mapping[str, str]) -> str:
    """The per-user data directory: ``$XDG_DATA_HOME/snakepit_actors``.

    Falls back to ``$HOME/.local/share/snakepit_actors`` (and to the password database's home
    when ``HOME`` is unset; to ``$TMPDIR/snakepit_actors-UID`` without one). A relative
    ``XDG_DATA_HOME`` is ignored, as the XDG spec says. ``ProcessTable`` refuses a directory
    that another user owns.

    Args:
        environ: the environment to read (the caller passes ``os.environ``; nothing below
            ``config.py`` reads it itself).

    Returns:
        An absolute path; it may not exist yet.
    """
    xdg = environ.get("XDG_DATA_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "snakepit_actors")
    home = environ.get("HOME", "")
    if not home:
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:  # a uid without a passwd entry (containers): a private temp dir
            return os.path.join(tempfile.gettempdir(), f"snakepit_actors-{os.getuid()}")
    return os.path.join(home, ".local", "share", "snakepit_actors")


def process_db_path(data_dir: str) -> str:
    """The process table's file inside ``data_dir``."""
    return os.path.join(data_dir, DB_FILENAME)


def identify_process(pid: int) -> ProcessIdentity | None:
    """The identity of the live process ``pid``; None if there is none (or it is a zombie)."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return ProcessIdentity(pid, proc.create_time())
    except (psutil.Error, ValueError):
        return None


class ProcessTable:
    """The persisted process table: stdlib sqlite3 in WAL mode.

    Safe for several processes at once (each write is one short autocommit statement; a
    writer waits up to ``busy_timeout_s`` for another's lock). One instance belongs to one
    thread. Writes take well under a millisecond (WAL, ``synchronous=NORMAL``: a committed
    row survives the crash of any process, though not necessarily a power cut).

    Args:
        path: the sqlite file (its directory is created with mode 0700, the file with 0600),
            or ``":memory:"`` for a private table that is not persisted.
        busy_timeout_s: how long a statement waits for another process's lock.

    Raises:
        sqlite3.Error: the file cannot be opened or is not a process table (for instance a
            newer schema version).
        OSError: its directory cannot be created, or belongs to another user
            (PermissionError).
    """

    def __init__(self, path: str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.host = socket.gethostname()
        self._conn = _connect(path, busy_timeout_s)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self._conn.close()

    def __enter__(self) -> ProcessTable:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record_spawning(self, run_id: str, worker_id: str, pool_name: str,
                        owner: ProcessIdentity, *, now: float | None = None) -> None:
        """Write (or reset) the row of ``worker_id`` before its process is spawned.

        Raises:
            sqlite3.Error: the write failed (e.g. locked for longer than the busy timeout).
        """
        at = time.time() if now is None else now
        self._conn.execute(
            f"INSERT OR REPLACE INTO processes ({_COLUMNS}) "
            "VALUES (?, ?, ?, 'spawning', 0, 0, 0, ?, ?, ?, ?, ?)",
            (run_id, worker_id, pool_name, owner.pid, owner.create_time, self.host, at, at))

    def record_spawned(self, run_id: str, worker_id: str, pid: int, pgid: int,
                       create_time: float, *, now: float | None = None) -> bool:
        """Confirm the row of ``worker_id``: its process exists (state "running").

        Returns:
            False if there was no row to confirm (its ``record_spawning`` never happened).

        Raises:
            sqlite3.Error: the write failed.
        """
        cursor = self._conn.execute(
            "UPDATE processes SET state = 'running', pid = ?, pgid = ?, create_time = ?, "
            "updated_at = ? WHERE run_id = ? AND worker_id = ?",
            (pid, pgid, create_time, time.time() if now is None else now, run_id, worker_id))
        return cursor.rowcount > 0

    def record_ended(self, run_id: str, worker_id: str, pid: int = 0) -> bool:
        """Delete the row of ``worker_id``: its process was stopped and reaped.

        Args:
            pid: the pid that ended; only a row naming this pid is deleted, so a late
                ``ProcessEnded`` of an earlier incarnation keeps the next one's row (even
                while it is still "spawning"). 0 deletes whatever the row holds.

        Returns:
            True if a row was deleted.

        Raises:
            sqlite3.Error: the write failed.
        """
        sql = "DELETE FROM processes WHERE run_id = ? AND worker_id = ?"
        params: tuple[Any, ...] = (run_id, worker_id)
        if pid > 0:
            sql += " AND pid = ?"
            params += (pid,)
        return self._conn.execute(sql, params).rowcount > 0

    def rows(self, run_id: str | None = None) -> list[ProcessRow]:
        """Every row (of one run, if ``run_id`` is given), ordered by run and worker id.

        Raises:
            sqlite3.Error: the read failed.
        """
        sql = f"SELECT {_COLUMNS} FROM processes"
        params: tuple[str, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (run_id,)
        return [ProcessRow(*values) for values in
                self._conn.execute(sql + " ORDER BY run_id, worker_id", params).fetchall()]

    def remove(self, row: ProcessRow) -> bool:
        """Delete ``row`` if it is still exactly this version (same pid, same last update):
        a row rewritten meanwhile by a live actor is kept.

        Returns:
            True if it was deleted.

        Raises:
            sqlite3.Error: the write failed.
        """
        return self._conn.execute(
            "DELETE FROM processes WHERE run_id = ? AND worker_id = ? AND pid = ? "
            "AND updated_at = ?", (row.run_id, row.worker_id, row.pid, row.updated_at),
        ).rowcount > 0


def _connect(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    if path != ":memory:":
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.stat(directory).st_uid != os.getuid():
            raise PermissionError(f"{directory} belongs to another user: the process table "
                                  "must live in a directory of this user (see XDG_DATA_HOME)")
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # sqlite would use 0644
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        deadline = time.monotonic() + busy_timeout_s
        # Switching to WAL may report "locked" without waiting while another process creates
        # the same file: retry until the busy timeout.
        _when_unlocked(lambda: conn.execute("PRAGMA journal_mode = WAL"), deadline)
        conn.execute("PRAGMA synchronous = NORMAL")
        _when_unlocked(lambda: _create_schema(conn, path), deadline)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_schema(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise sqlite3.DatabaseError(
                f"{path} holds process table version {version}; this snakepit_actors reads "
                f"version {SCHEMA_VERSION}: upgrade it, or remove the file (its rows only "
                "serve orphan reaping)")
        conn.execute(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _when_unlocked(step: Any, deadline: float) -> None:
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
