"""Leases between several clients, end to end: real actors, real worker processes, a real second
client process (``tests/second_client.py``, which talks to the Pool by messages, as code in
another process does). Overlap is checked from the ``info`` tool's pid and wall-clock times, never
from how long anything took."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from snakepit_actors import Pool, PoolConfig
from tests.test_direct_path import wait_for

pytestmark = pytest.mark.timeout(180)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def second_client(pool: Pool, mode: str, count: int = 0,
                  hold_s: float = 0.0) -> subprocess.Popen[str]:
    """Start ``tests/second_client.py`` against ``pool``."""
    address = pickle.dumps(pool._pool).hex()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.second_client", str(pool._system.admin_port), address,
         mode, str(count), str(hold_s)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def finish(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def assert_never_two_at_once(calls: list[dict[str, Any]]) -> None:
    """No two ``info`` calls ran on one worker process at the same time."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for call in calls:
        by_pid.setdefault(call["pid"], []).append((call["started_at"], call["ended_at"]))
    for pid, spans in by_pid.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two requests at once on process {pid}"


def hammer(pool: Pool, threads: int, count: int, hold_s: float) -> Callable[[], list[Any]]:
    """``threads`` callers run ``count`` info calls each; returns a function joining them."""
    ex = ThreadPoolExecutor(threads)
    futures = [ex.submit(lambda: [pool.execute("info", {"hold_s": hold_s}, timeout=60)
                                  for _ in range(count)]) for _ in range(threads)]

    def join() -> list[Any]:
        ex.shutdown()
        return [call for f in futures for call in f.result(120)]

    return join


def test_no_two_requests_ever_run_at_once_on_a_capacity_1_worker_on_either_path() -> None:
    """Direct-path callers here (leases) and actor-path callers in a second process share
    three workers; every call's span on its process is disjoint from the others'."""
    with Pool.start(PoolConfig(name="overlap", pool_size=3, queue_timeout=60.0)) as pool:
        other = second_client(pool, "actor", count=30, hold_s=0.005)
        join = hammer(pool, threads=8, count=15, hold_s=0.005)
        calls = join() + finish(other)
        assert len(calls) == 8 * 15 + 30
        assert_never_two_at_once(calls)
        assert {c["pid"] for c in calls} <= {w.pid for w in pool.workers()}


def test_two_client_processes_sharing_one_worker_both_make_progress() -> None:
    """A second process taking leases one at a time gets its turns while this process keeps
    the only worker saturated: the Pool's queue is FIFO across clients, and a held lease goes
    back at least every max_hold_s."""
    with Pool.start(PoolConfig(name="fair2", pool_size=1, queue_timeout=60.0)) as pool:
        stop = threading.Event()
        done: list[dict[str, Any]] = []

        def hog() -> None:
            while not stop.is_set():
                done.append(pool.execute("info", {"hold_s": 0.002}, timeout=60))

        with ThreadPoolExecutor(8) as ex:
            hogs = [ex.submit(hog) for _ in range(8)]
            wait_for(lambda: len(done) > 50, timeout_s=60)
            other = second_client(pool, "leases", count=10, hold_s=0.002)
            theirs = finish(other)
            ours_meanwhile = len(done)
            stop.set()
            for f in hogs:
                f.result(60)
        assert len(theirs) == 10
        assert ours_meanwhile > 50
        assert_never_two_at_once(done + theirs)


@pytest.mark.parametrize(("mode", "replaced"), [("hold", False), ("hold-stuck", True)])
def test_the_lease_of_a_killed_client_process_is_reclaimed_and_its_call_cancelled(
        mode: str, replaced: bool) -> None:
    """The second client holds the only worker with a 60 s call running on it and is killed:
    the Pool sees its process gone and reclaims the lease; our waiting request runs next. The
    orphaned call was cancelled with its connection: ``sleep`` stops, so the warm process
    stays; ``cpu`` ignores it, so the process is replaced (the only way to stop it)."""
    with Pool.start(PoolConfig(name="reclaim", pool_size=1, queue_timeout=60.0)) as pool:
        holder = second_client(pool, mode)
        assert holder.stdout is not None
        line = holder.stdout.readline().split()
        assert line[0] == "granted", line
        old_pid = int(line[2])
        wait_for(lambda: pool.stats().busy == 1)
        restarts = pool.stats().restarts
        with ThreadPoolExecutor(1) as ex:
            waiting = ex.submit(pool.execute, "info", {}, timeout=60)
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(30)
            holder.stdout.close()
            info = waiting.result(90)
        assert (info["pid"] != old_pid) is replaced
        assert pool.stats().restarts == restarts + replaced
        wait_for(lambda: pool.stats().busy == 0)


@pytest.mark.parametrize("data_path", ["direct", "actor"])
def test_a_worker_with_capacity_4_runs_four_requests_at_once_and_the_pool_counts_them(
        data_path: str) -> None:
    cfg = PoolConfig(name=f"cap4{data_path}", pool_size=1, capacity=4, queue_timeout=60.0,
                     data_path=data_path)  # type: ignore[arg-type]
    with Pool.start(cfg) as pool, ThreadPoolExecutor(4) as ex:
        futures = [ex.submit(pool.execute, "info", {"hold_s": 2.0}, timeout=60)
                   for _ in range(4)]
        wait_for(lambda: len(pool.workers()) == 1 and pool.stats().available == 0,
                 timeout_s=30)
        calls = [f.result(60) for f in futures]
        assert len({c["pid"] for c in calls}) == 1
        latest_start = max(c["started_at"] for c in calls)
        earliest_end = min(c["ended_at"] for c in calls)
        assert latest_start < earliest_end, "the four calls did not all run at once"
        wait_for(lambda: pool.stats().available == 1 and pool.stats().busy == 0)
        assert pool.stats().requests >= 4
