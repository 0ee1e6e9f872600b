"""``tree/descendants.py``: what a worker's tools start (setsid and double-forked processes
included) dies when the worker process stops: at close, at a recycle and after a crash."""

from __future__ import annotations

import os
import subprocess
import time

import psutil
import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.errors import WorkerCrashedError
from snakepit_actors.tree import descendants

from .conftest import wait_gone

pytestmark = pytest.mark.timeout(90)


def _strays(pool: Pool) -> dict[str, int]:
    pids: dict[str, int] = pool.execute("spawn_strays", {"seconds": 60})
    assert set(pids) == {"group", "session", "orphan", "orphan_session"}
    assert all(psutil.pid_exists(p) for p in pids.values())
    worker_pid = pool.workers()[0].pid
    sessions = {name: psutil.Process(pid).as_dict(["ppid"])["ppid"] for name, pid in pids.items()}
    assert sessions["group"] == sessions["session"] == worker_pid
    return pids


def _wait_for(predicate: object, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_every_process_a_tool_started_dies_when_the_pool_closes() -> None:
    with Pool.start(PoolConfig(name="strays", pool_size=1)) as pool:
        pids = _strays(pool)
    assert wait_gone(set(pids.values()), timeout_s=5.0) == set(), pids


def test_every_process_a_tool_started_dies_when_its_worker_is_recycled() -> None:
    with Pool.start(PoolConfig(name="straysr", pool_size=1)) as pool:
        (before,) = pool.workers()
        pids = _strays(pool)
        pool.recycle(before.worker_id)
        assert _wait_for(lambda: pool.workers()[0].pid != before.pid)
        assert wait_gone(set(pids.values()), timeout_s=5.0) == set(), pids
        assert pool.execute("ping") == "pong"


def test_every_process_a_tool_started_dies_when_its_worker_crashes() -> None:
    with Pool.start(PoolConfig(name="straysc", pool_size=1)) as pool:
        (before,) = pool.workers()
        pids = _strays(pool)
        with pytest.raises(WorkerCrashedError):
            pool.execute("crash")
        assert wait_gone(set(pids.values()), timeout_s=10.0) == set(), pids
        assert _wait_for(lambda: pool.workers()[0].pid != before.pid)


def test_children_of_reads_the_same_children_as_a_scan_of_every_process() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        mine = {p.pid for p in descendants.children_of(os.getpid())}
        assert sleeper.pid in mine
        assert mine == {p.pid for p in psutil.Process().children()}
        assert descendants.children_of(2**22 + 1) == []
    finally:
        sleeper.kill()
        sleeper.wait(5)


def test_kill_leftovers_kills_the_snapshot_and_reaps_what_it_adopted() -> None:
    lineage = descendants.new_lineage()
    adopted = subprocess.Popen(["sleep", "30"], env={**os.environ,
                                                     descendants.LINEAGE_VAR: lineage})
    other = subprocess.Popen(["sleep", "30"])  # no lineage: never touched
    try:
        assert descendants.kill_leftovers([], lineage, bridge_pid=0) == 1
        assert adopted.poll() is not None or wait_gone({adopted.pid}) == set()
        assert other.poll() is None
    finally:
        for proc in (adopted, other):
            proc.kill()
            proc.wait(5)
