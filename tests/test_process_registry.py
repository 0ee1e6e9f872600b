"""``snakepit_actors.tree.process_registry``: the persisted process table and the actor writing it.

The table is exercised on real sqlite files (several instances, several processes); the actor
on a real multiprocTCPBase system, checked through the file it writes.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.core.process_rows import ProcessIdentity
from snakepit_actors.messages import (
    InitRegistry,
    ProcessEnded,
    ProcessSpawned,
    ProcessSpawning,
)
from snakepit_actors.tree.process_registry import ProcessRegistry
from snakepit_actors.tree.process_table import (
    DB_FILENAME,
    ProcessTable,
    default_data_dir,
    identify_process,
    process_db_path,
)

pytestmark = pytest.mark.timeout(60)

OWNER = ProcessIdentity(4242, 1_700_000_000.0)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "data" / DB_FILENAME)


# --- where the file lives ---------------------------------------------------------------------

def test_the_data_dir_is_under_an_absolute_xdg_data_home() -> None:
    env = {"XDG_DATA_HOME": "/x/data", "HOME": "/home/u"}
    assert default_data_dir(env) == "/x/data/snakepit_actors"
    assert process_db_path(default_data_dir(env)) == "/x/data/snakepit_actors/processes.sqlite3"


def test_the_data_dir_falls_back_to_home_when_xdg_data_home_is_unset_or_relative() -> None:
    assert default_data_dir({"HOME": "/home/u"}) == "/home/u/.local/share/snakepit_actors"
    assert default_data_dir({"HOME": "/home/u", "XDG_DATA_HOME": "rel/dir"}) == (
        "/home/u/.local/share/snakepit_actors")
    assert os.path.isabs(default_data_dir({}))


def test_the_directory_and_the_file_are_private_to_the_user(db: str) -> None:
    ProcessTable(db).close()
    assert stat.S_IMODE(os.stat(os.path.dirname(db)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


# --- the table --------------------------------------------------------------------------------

def test_rows_written_by_one_instance_are_read_by_another(db: str) -> None:
    with ProcessTable(db) as writer:
        writer.record_spawning("run1", "w1", "pool", OWNER, now=100.0)
        writer.record_spawning("run1", "w2", "pool", OWNER, now=100.0)
        assert writer.record_spawned("run1", "w1", 555, 555, 99.5, now=101.0)
    with ProcessTable(db) as reader:
        first, second = reader.rows()
    assert (first.worker_id, first.state, first.pid, first.pgid, first.create_time) == (
        "w1", "running", 555, 555, 99.5)
    assert (first.owner_pid, first.owner_create_time) == (OWNER.pid, OWNER.create_time)
    assert (first.created_at, first.updated_at, first.pool_name) == (100.0, 101.0, "pool")
    assert first.host == reader.host
    assert (second.worker_id, second.state, second.pid) == ("w2", "spawning", 0)


def test_ended_deletes_the_row_and_a_late_end_of_an_earlier_incarnation_keeps_the_next(
        db: str) -> None:
    with ProcessTable(db) as table:
        table.record_spawning("run1", "w1", "pool", OWNER)
        table.record_spawned("run1", "w1", 10, 10, 1.0)
        table.record_spawning("run1", "w1", "pool", OWNER)  # the restarted worker
        assert not table.record_ended("run1", "w1", pid=10)  # the old one's end, late
        assert [r.state for r in table.rows()] == ["spawning"]
        table.record_spawned("run1", "w1", 11, 11, 2.0)
        assert table.record_ended("run1", "w1", pid=11)
        assert table.rows() == []


def test_spawned_without_spawning_reports_that_nothing_was_confirmed(db: str) -> None:
    with ProcessTable(db) as table:
        assert not table.record_spawned("run1", "ghost", 10, 10, 1.0)
        assert table.rows() == []


def test_remove_keeps_a_row_rewritten_since_it_was_read(db: str) -> None:
    with ProcessTable(db) as table:
        table.record_spawning("run1", "w1", "pool", OWNER, now=1.0)
        (stale,) = table.rows()
        table.record_spawned("run1", "w1", 10, 10, 1.0, now=2.0)
        assert not table.remove(stale)
        (fresh,) = table.rows()
        assert table.remove(fresh)
        assert table.rows() == []


def test_rows_can_be_read_for_one_run(db: str) -> None:
    with ProcessTable(db) as table:
        for run in ("a", "b"):
            table.record_spawning(run, "w1", "pool", OWNER)
        assert [r.run_id for r in table.rows("b")] == ["b"]


def test_a_table_of_a_newer_schema_is_refused_with_the_fix_in_the_message(db: str) -> None:
    ProcessTable(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(sqlite3.DatabaseError, match=r"version 99.*remove the file"):
        ProcessTable(db)


def test_the_file_is_in_wal_mode(db: str) -> None:
    ProcessTable(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["spawning", "spawned", "ended"]),
                          st.sampled_from(["w1", "w2", "w3"]), st.integers(1, 4)), max_size=30))
def test_the_table_follows_any_sequence_of_events_like_a_dict(
        events: list[tuple[str, str, int]]) -> None:
    model: dict[str, tuple[str, int]] = {}
    with ProcessTable(":memory:") as table:
        for kind, wid, pid in events:
            if kind == "spawning":
                table.record_spawning("run", wid, "pool", OWNER)
                model[wid] = ("spawning", 0)
            elif kind == "spawned":
                assert table.record_spawned("run", wid, pid, pid, 1.0) == (wid in model)
                if wid in model:
                    model[wid] = ("running", pid)
            else:
                deleted = table.record_ended("run", wid, pid)
                assert deleted == (model.get(wid, ("", -1))[1] == pid)
                if deleted:
                    del model[wid]
        assert {r.worker_id: (r.state, r.pid) for r in table.rows()} == model


# --- several processes, and speed -------------------------------------------------------------

WRITER = textwrap.dedent("""\
    import sys, time
    from snakepit_actors.core.process_rows import ProcessIdentity
    from snakepit_actors.tree.process_table import ProcessTable
    path, run, n, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start_at:
        time.sleep(0.001)
    owner = ProcessIdentity(1, 1.0)
    with ProcessTable(path) as table:  # both open (and create) the file at the same moment
        for i in range(n):
            table.record_spawning(run, f"w{i}", "pool", owner)
            table.record_spawned(run, f"w{i}", 1000 + i, 1000 + i, 1.0)
            if i % 3 == 0:
                table.record_ended(run, f"w{i}", 1000 + i)
        table.rows()
""")


def test_two_processes_writing_one_new_file_at_once_lose_nothing(db: str) -> None:
    n, start_at = 300, time.time() + 0.5
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, db, run, str(n), str(start_at)],
                                stderr=subprocess.PIPE) for run in ("a", "b")]
    try:
        errors = [w.communicate(timeout=40)[1].decode() for w in writers]
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert [w.returncode for w in writers] == [0, 0], errors
    with ProcessTable(db) as table:
        for run in ("a", "b"):
            rows = table.rows(run)
            assert {r.worker_id for r in rows} == {f"w{i}" for i in range(n) if i % 3}
            assert {r.state for r in rows} == {"running"}


def test_one_event_is_one_write_of_well_under_a_millisecond(db: str) -> None:
    """Measures the actor's cost per event on a real file (printed with ``-s``)."""
    samples: list[float] = []
    with ProcessTable(db) as table:
        for i in range(300):
            wid, pid = f"w{i}", i + 1
            for write, args in ((table.record_spawning, ("run", wid, "pool", OWNER)),
                                (table.record_spawned, ("run", wid, pid, pid, 1.0)),
                                (table.record_ended, ("run", wid, pid))):
                t0 = time.perf_counter()
                write(*args)
                samples.append(time.perf_counter() - t0)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] * 1e3, samples[int(len(samples) * 0.99)] * 1e3
    print(f"\nprocess table write: p50 {p50:.3f} ms, p99 {p99:.3f} ms per event")
    assert p50 < 2.0  # typically ~0.05 ms; generous for a noisy 2-core machine


# --- the actor --------------------------------------------------------------------------------



def _wait_rows(db: str, predicate: Any, timeout_s: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = ProcessTable(db).rows() if os.path.exists(db) else []
        if predicate(rows):
            return rows
        if time.monotonic() > deadline:
            pytest.fail(f"rows never matched within {timeout_s} s: {rows}")
        time.sleep(0.02)


def test_the_actor_persists_spawning_spawned_and_ended(actor_system: Any, db: str) -> None:
    me = identify_process(os.getpid())
    assert me is not None
    registry = actor_system.createActor(ProcessRegistry)
    actor_system.tell(registry, ProcessSpawning("w1", "run1", "pool"))  # before its Init: kept
    actor_system.tell(registry, InitRegistry("pool", db_path=db, owner_pid=os.getpid()))
    actor_system.tell(registry, ProcessSpawning("w2", "run1", "pool"))
    w1, w2 = _wait_rows(db, lambda rows: len(rows) == 2)
    assert (w1.state, w1.owner_pid, w1.owner_create_time) == ("spawning", me.pid, me.create_time)
    assert (w2.worker_id, w2.state) == ("w2", "spawning")
    actor_system.tell(registry, ProcessSpawned("w1", 321, 321, 12.5))
    _wait_rows(db, lambda rows: rows[0].state == "running" and rows[0].pid == 321)
    actor_system.tell(registry, ProcessEnded("w1"))
    (left,) = _wait_rows(db, lambda rows: len(rows) == 1)
    assert (left.worker_id, left.state) == ("w2", "spawning")


def test_the_actor_makes_its_parent_the_owner_when_none_is_given(actor_system: Any,
                                                                   db: str) -> None:
    registry = actor_system.createActor(ProcessRegistry)
    actor_system.tell(registry, InitRegistry("pool", db_path=db))
    actor_system.tell(registry, ProcessSpawning("w1", "run1", "pool"))
    (row,) = _wait_rows(db, lambda rows: len(rows) == 1)
    parent = psutil.Process(row.owner_pid)  # the system's admin: a daemon in its own session
    assert row.owner_pid != os.getpid() and os.getsid(row.owner_pid) != os.getsid(0)
    assert abs(row.owner_create_time - parent.create_time()) < 1.5


def test_a_pool_records_its_workers_while_it_runs_and_leaves_no_row_after_close(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    db = process_db_path(default_data_dir(os.environ))
    with Pool.start(PoolConfig(name="persisted", pool_size=2)) as pool:
        recorded = 3 if pool.config.start_method == "forkserver" else 2  # + the fork server
        rows = _wait_rows(db, lambda rows: [r.state for r in rows] == ["running"] * recorded)
        workers = [r for r in rows if r.worker_id != "persisted_fork_server"]
        assert {r.pid for r in workers} == {w.pid for w in pool.workers()}
        assert {(r.owner_pid, r.pool_name) for r in rows} == {(os.getpid(), "persisted")}
        assert all(os.getpgid(r.pid) == r.pgid == r.pid for r in rows)
    assert ProcessTable(db).rows() == []
