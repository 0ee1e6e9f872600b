"""The message API on real pools, through the DataPlane (the default) and through the Pool and
Worker actors under batching (``data_plane=False``: requests sent ahead, replies and check-ins
grouped): an embedding actor and the handle's actor path get exactly one reply per
``Execute``, each its own result or error, and a worker killed with requests waiting ahead
fails only the request it was running. (The DataPlane's own semantics: test_data_plane.py.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from snakepit_actors import Pool, PoolConfig, RequestTimeoutError, ToolError, WorkerCrashedError
from snakepit_actors.ops.bench_message import RunLoad, load_from_actor

from .conftest import shared_pool, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=[True, False], ids=["data_plane", "workers"])
def actor_pool(request: pytest.FixtureRequest) -> Iterator[Pool]:
    with shared_pool(PoolConfig(name=f"msgapi{int(request.param)}", pool_size=2,
                                data_path="actor", prefetch=4, queue_timeout=30.0,
                                data_plane=request.param)) as pool:
        yield pool


@pytest.mark.parametrize("batched", [False, True], ids=["execute", "execute_batch"])
def test_an_embedding_actor_gets_exactly_one_reply_per_execute_with_64_in_flight(
        actor_pool: Pool, batched: bool) -> None:
    done = load_from_actor(actor_pool, RunLoad(None, "echo", {"x": 1}, in_flight=64,
                                               count=400, seconds=30.0, batched=batched))
    assert (done.sent, done.replies, done.failed, done.duplicates) == (400, 400, 0, 0), done


def test_each_request_gets_its_own_result_or_its_own_error_under_batching(
        actor_pool: Pool) -> None:
    def call(i: int) -> object:
        if i % 3 == 0:
            try:
                actor_pool.execute("fail", {"message": f"boom-{i}"}, timeout=30)
            except ToolError as exc:
                return str(exc)
            return "no error"
        return actor_pool.execute("echo", {"i": i}, timeout=30)

    with ThreadPoolExecutor(64) as ex:
        got = list(ex.map(call, range(300)))
    for i, value in enumerate(got):
        if i % 3 == 0:
            assert f"boom-{i}" in str(value)
        else:
            assert value == {"i": i}
    # every request was answered; a lease request the DataPlane sent for the last of them may
    # wait at the Pool until its housekeeping tick withdraws it (queued counts it)
    wait_for(lambda: actor_pool.stats().queued == 0, 5.0)


def test_a_worker_killed_with_requests_waiting_ahead_fails_only_the_request_it_ran() -> None:
    cfg = PoolConfig(name="msgcrash", pool_size=1, data_path="actor", data_plane=False,
                     prefetch=4,
                     queue_timeout=30.0)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(5) as ex:
        victim = ex.submit(pool.execute, "sleep", {"seconds": 5.0}, timeout=30)
        wait_for(lambda: pool.stats().busy == 1)
        waiting = [ex.submit(pool.execute, "echo", {"i": i}, timeout=30) for i in range(4)]
        wait_for(lambda: pool.stats().queued == 4)  # sent ahead, still counted as queued
        (worker,) = pool.workers()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashedError):
            victim.result(30)
        assert [f.result(30) for f in waiting] == [{"i": i} for i in range(4)]  # ran after
        assert pool.stats().restarts == 1



def test_a_check_in_held_back_behind_a_long_call_reaches_the_pool_soon_after_its_reply(
        ) -> None:
    cfg = PoolConfig(name="msghold", pool_size=1, data_path="actor", data_plane=False,
                     prefetch=3,
                     queue_timeout=30.0)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(4) as ex:
        first = ex.submit(pool.execute, "sleep", {"seconds": 0.5}, timeout=30)
        wait_for(lambda: pool.stats().busy == 1)
        quick = ex.submit(pool.execute, "echo", {}, timeout=30)
        long = ex.submit(pool.execute, "sleep", {"seconds": 3.0}, timeout=30)
        last = ex.submit(pool.execute, "echo", {}, timeout=30)
        wait_for(lambda: pool.stats().queued == 3)  # all three sent ahead
        assert first.result(30) == 0.5 and quick.result(30) == {}
        answered = time.monotonic()
        wait_for(lambda: pool.workers()[0].requests >= 2)  # checked in while `long` runs
        assert time.monotonic() - answered < 2.0 and not long.done()
        assert long.result(30) == 3.0 and last.result(30) == {}


def test_what_was_sent_ahead_to_a_worker_whose_call_timed_out_runs_on_a_fresh_process() -> None:
    """A call past its deadline makes the Worker drain and probe its process (here: recycle, as
    ``cpu`` ignores cancellation); a request sent ahead behind it goes back to the Pool's queue
    instead of starting on that process."""
    cfg = PoolConfig(name="handback", pool_size=1, data_path="actor", cancel_grace_s=0.3,
                     prefetch=2, data_plane=False)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(2) as callers:
        [before] = pool.workers()
        stuck = callers.submit(pool.execute, "cpu", {"ms": 20000}, timeout=0.5)
        time.sleep(0.1)  # the cpu call runs; the next one is sent ahead behind it
        behind = callers.submit(pool.execute, "info", {}, timeout=30)
        with pytest.raises(RequestTimeoutError):
            stuck.result(timeout=30)
        assert behind.result(timeout=30)["pid"] != before.pid
