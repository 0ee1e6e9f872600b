"""Worker lifecycle: the recycle policy (pure), and recycling real workers under load with no
failed request, the replacement started before the old process stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.core.lifecycle import RecyclePolicy
from snakepit_actors.errors import InvalidArgumentsError

pytestmark = pytest.mark.timeout(120)
MIB = 1024 * 1024


# --- the policy --------------------------------------------------------------------------------

def test_a_policy_without_limits_never_recycles() -> None:
    policy = RecyclePolicy()
    assert not policy.enabled and not policy.needs_sampling
    assert policy.due(now=1e9, requests=10**9, ready_at=0.0, rss_bytes=10**12) is None


def test_max_requests_is_due_at_the_limit_not_before() -> None:
    policy = RecyclePolicy(max_requests=100)
    assert policy.due(now=0.0, requests=99) is None
    assert policy.due(now=0.0, requests=100) == "max_requests"
    assert not policy.needs_sampling


def test_ttl_counts_from_when_the_process_became_ready() -> None:
    policy = RecyclePolicy(ttl_s=60.0)
    assert policy.due(now=1059.9, ready_at=1000.0) is None
    assert policy.due(now=1060.0, ready_at=1000.0) == "ttl"
    assert policy.due(now=5000.0, ready_at=None) is None


def test_memory_is_due_only_above_the_limit() -> None:
    policy = RecyclePolicy(memory_mb=100)
    assert policy.due(now=0.0, rss_bytes=100 * MIB) is None
    assert policy.due(now=0.0, rss_bytes=100 * MIB + 1) == "memory"
    assert policy.due(now=0.0, rss_bytes=None) is None


def test_when_several_limits_pass_requests_then_memory_then_ttl_is_named() -> None:
    policy = RecyclePolicy(max_requests=1, ttl_s=1.0, memory_mb=1)
    assert policy.due(now=10.0, requests=5, ready_at=0.0, rss_bytes=10 * MIB) == "max_requests"
    assert policy.due(now=10.0, requests=0, ready_at=0.0, rss_bytes=10 * MIB) == "memory"
    assert policy.due(now=10.0, requests=0, ready_at=0.0, rss_bytes=0) == "ttl"


def test_the_sample_interval_follows_the_heartbeat_but_a_short_ttl_wins() -> None:
    assert RecyclePolicy(memory_mb=10).sample_interval_s(2.0) == 2.0
    assert RecyclePolicy(ttl_s=2.0).sample_interval_s(2.0) == 0.5
    assert RecyclePolicy(ttl_s=0.01).sample_interval_s(2.0) == 0.05


# --- real workers ------------------------------------------------------------------------------

def _hammer(pool: Pool, seconds: float, callers: int,
            call: Callable[[Pool, int], object]) -> tuple[int, list[BaseException]]:
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(i: int) -> None:
        while time.monotonic() < stop_at:
            try:
                call(pool, i)
            except Exception as exc:
                errors.append(exc)
            with lock:
                done[0] += 1

    with ThreadPoolExecutor(callers) as ex:
        list(ex.map(run, range(callers)))
    return done[0], errors


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["direct", "actor"])
def test_recycling_by_max_requests_under_load_fails_no_request(path: str) -> None:
    cfg = PoolConfig(name=f"rmax-{path}", pool_size=2, worker_max_requests=40,
                     queue_timeout=30.0, data_path=path)  # type: ignore[arg-type]
    with Pool.start(cfg) as pool:
        first = {w.worker_id: w.pid for w in pool.workers()}
        t0 = time.perf_counter()
        done, errors = _hammer(pool, 4.0, 6, lambda p, i: p.execute("sleep", {"seconds": 0.005}))
        elapsed = time.perf_counter() - t0
        assert errors == [], errors[:3]
        assert _wait_for(lambda: pool.stats().recycled >= 2)
        stats = pool.stats()
        later = {w.worker_id: w.pid for w in pool.workers()}
        print(f"\n{path}: {done} requests in {elapsed:.1f}s, 0 failed, "
              f"{stats.recycled} recycles, errors={stats.errors}")
        assert stats.errors == 0 and stats.restarts == 0
        assert set(later) == set(first) and all(later[w] != first[w] for w in first)
        assert pool.execute("echo", {"after": 1}) == {"after": 1}


@pytest.mark.slow
def test_a_manual_recycle_starts_the_replacement_before_the_old_process_stops() -> None:
    with Pool.start(PoolConfig(name="rmanual", pool_size=1, queue_timeout=30.0)) as pool:
        (before,) = pool.workers()
        slow = ThreadPoolExecutor(1).submit(pool.execute, "sleep", {"seconds": 1.0})
        time.sleep(0.2)
        pool.recycle(before.worker_id)
        assert slow.result(10) == 1.0  # the in-flight request finished on the old process
        assert _wait_for(lambda: pool.workers()[0].pid != before.pid)
        assert pool.stats().recycled == 1 and pool.stats().restarts == 0
        assert pool.execute("info")["pid"] == pool.workers()[0].pid
        with pytest.raises(InvalidArgumentsError, match="no worker"):
            pool.recycle("nope")


@pytest.mark.slow
def test_a_worker_over_its_memory_limit_is_recycled() -> None:
    cfg = PoolConfig(name="rmem", pool_size=1, worker_memory_mb=120, heartbeat_interval=0.2)
    with Pool.start(cfg) as pool:
        (before,) = pool.workers()
        assert pool.execute("allocate", {"mb": 150}) >= 150
        assert _wait_for(lambda: pool.stats().recycled >= 1, 20.0)
        (after,) = pool.workers()
        assert after.pid != before.pid
        assert pool.execute("echo", {"ok": True}) == {"ok": True}


@pytest.mark.slow
def test_a_worker_past_its_ttl_is_recycled() -> None:
    with Pool.start(PoolConfig(name="rttl", pool_size=1, worker_ttl=1.0)) as pool:
        (before,) = pool.workers()
        assert _wait_for(lambda: pool.stats().recycled >= 1, 20.0)
        assert pool.workers()[0].pid != before.pid
