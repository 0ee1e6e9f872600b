"""The direct data path (leases) end to end: what only it has to get right. Real actors, real
worker processes, real gRPC. (Every behaviour both paths share is in test_pool.py and
test_chaos.py, which run on both.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from snakepit_actors import (
    ConfigError,
    Pool,
    PoolClosedError,
    PoolConfig,
    RequestTimeoutError,
    ToolError,
    WorkerCrashedError,
)

pytestmark = pytest.mark.timeout(120)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def direct(name: str, **fields: object) -> Pool:
    return Pool.start(PoolConfig(name=name, data_path="direct", **fields))  # type: ignore[arg-type]


def test_data_path_must_be_direct_or_actor() -> None:
    with pytest.raises(ConfigError) as caught:
        PoolConfig(data_path="udp")  # type: ignore[arg-type]
    assert "data_path must be 'direct' or 'actor'" in str(caught.value)


def test_importing_the_client_does_not_import_grpc() -> None:
    code = ("import sys, snakepit_actors.client.handle, snakepit_actors.client.direct, "
            "snakepit_actors.tree.pool; "
            "assert 'grpc' not in sys.modules, 'grpc imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_idle_lease_goes_back_to_the_pool_within_milliseconds() -> None:
    with direct("idle", pool_size=2) as pool:
        assert pool.execute("echo", {"x": 1}) == {"x": 1}
        assert wait_for(lambda: pool.stats().busy == 0 and pool.stats().queued == 0) < 2.0
        assert all(w.state == "ready" for w in pool.workers())


def test_direct_requests_count_in_the_pools_stats_and_per_worker() -> None:
    with direct("stats", pool_size=2) as pool:
        for i in range(50):
            pool.execute("echo", {"i": i})
        with pytest.raises(ToolError):
            pool.execute("fail", {"message": "counted"})
        stats = pool.stats()
        assert (stats.requests, stats.errors) == (51, 1)
        assert stats.latency_p50_ms > 0
        assert sum(w.requests for w in pool.workers()) == 51


def test_a_session_keeps_its_worker_after_its_lease_went_back() -> None:
    with direct("affinity", pool_size=4) as pool:
        counts = []
        for _ in range(3):
            counts.append(pool.execute("session_counter", session_id="s-1"))
            wait_for(lambda: pool.stats().busy == 0)  # the lease is back in the Pool
        assert counts == [1, 2, 3]


def test_a_client_keeping_every_worker_busy_still_lets_an_actor_path_request_through() -> None:
    """Fairness between clients: a held lease goes back to the Pool at least every max_hold_s
    (0.5 s) and the busy client's lease requests move behind what others queued meanwhile, so a
    request from another client (here a stream: the actor path) gets the next turn."""
    stop = threading.Event()
    with direct("fair", pool_size=2, queue_timeout=20.0) as pool:
        def hog() -> None:
            while not stop.is_set():
                pool.execute("sleep", {"seconds": 0.01})

        with ThreadPoolExecutor(16) as ex:
            hogs = [ex.submit(hog) for _ in range(16)]
            # the Pool queues one lease request per worker slot; 14 callers wait in the handle
            wait_for(lambda: pool.stats().busy == 2 and pool.stats().queued == 2)
            started = time.monotonic()
            values = list(pool.execute_stream("stream_progress", {"steps": 1, "delay": 0.0}))
            waited = time.monotonic() - started
            stop.set()
            for f in hogs:
                f.result(30)
    assert values == [{"step": 1, "of": 1}]
    assert waited < 5.0  # ~max_hold_s; loose for a loaded machine


def test_a_timed_out_call_lets_a_neighbour_on_its_worker_finish_before_the_recycle() -> None:
    """capacity 2: the worker drains (its other lease comes back) before it is recycled
    (``cpu`` ignores its deadline, so its process must go)."""
    with direct("drain", pool_size=1, capacity=2) as pool, ThreadPoolExecutor(1) as ex:
        neighbour = ex.submit(pool.execute, "sleep", {"seconds": 1.5}, timeout=30)
        wait_for(lambda: pool.stats().busy == 1)
        restarts = pool.stats().restarts
        with pytest.raises(RequestTimeoutError) as caught:
            pool.execute("cpu", {"ms": 30000}, timeout=0.5)
        assert caught.value.details["worker_id"] == "drain_worker_1"
        assert neighbour.result(30) == 1.5
        wait_for(lambda: pool.stats().restarts > restarts, timeout_s=30)
        assert pool.execute("echo", {"after": 1}, timeout=30) == {"after": 1}


def test_cancelling_an_async_caller_cancels_its_call_and_gives_its_lease_back_at_once(
        ) -> None:
    with direct("cancel", pool_size=1, queue_timeout=10.0) as pool:
        async def main() -> None:
            task = asyncio.ensure_future(pool.execute_async("sleep", {"seconds": 5}))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await pool.execute_async("echo", {"x": 2}, timeout=3) == {"x": 2}

        asyncio.run(main())  # (test_asyncio.py: cancelled in line, shielded, actor path)
        wait_for(lambda: pool.stats().busy == 0 and pool.stats().queued == 0)


def test_closing_fails_waiting_callers_and_lets_running_ones_finish() -> None:
    pool = direct("closing", pool_size=1, queue_timeout=30.0)
    with ThreadPoolExecutor(2) as ex:
        running = ex.submit(pool.execute, "sleep", {"seconds": 0.5})
        wait_for(lambda: pool.stats().busy == 1)
        waiting = ex.submit(pool.execute, "echo", {"x": 1})
        wait_for(lambda: pool.stats().queued == 1)
        pool.close()
        assert running.result(10) == 0.5
        with pytest.raises(PoolClosedError):
            waiting.result(10)
    with pytest.raises(PoolClosedError):
        pool.execute("echo", {})


def test_a_call_stuck_on_a_lost_process_is_ended_by_closing_its_channel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A revoked lease with a call running on it (``process_lost``) closes that process's
    channel after a grace: a call that would otherwise wait forever on it (a stopped process,
    no deadline; seen under load after SIGSTOP and a kill) ends with a typed error."""
    import os
    import signal

    from snakepit_actors import protocols

    from .conftest import running_call

    monkeypatch.setattr(protocols, "LOST_CALL_GRACE_S", 0.2)
    cfg = PoolConfig(name="lost-channel", pool_size=1, heartbeat_interval=60.0)
    with Pool.start(cfg) as pool:
        [worker] = pool.workers()
        caller, outcome = running_call(pool)
        os.kill(worker.pid, signal.SIGSTOP)  # nothing ends this call now
        try:
            assert pool._direct is not None
            pool._direct.process_lost(worker.endpoint, worker.pid)
            caller.join(15.0)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        assert len(outcome) == 1 and isinstance(outcome[0], WorkerCrashedError), outcome
