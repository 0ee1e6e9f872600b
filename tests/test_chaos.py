"""Chaos: processes and actors killed under load. Only the requests a dead worker held fail,
with WorkerCrashedError; nothing queued is lost; the pool heals; nothing is left behind. Every
test runs on both data paths ("direct" and "actor")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import psutil
import pytest

from snakepit_actors import Pool, PoolConfig, PoolNotReadyError, WorkerCrashedError, WorkerInfo
from snakepit_actors.config import DataPath

from .conftest import _LIVE_POOLS, wait_gone, worker_actor_pid

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def chaos_pool(data_path: DataPath) -> Iterator[Pool]:
    pool = Pool.start(PoolConfig(name="chaos", pool_size=4, queue_timeout=30.0, data_path=data_path,
                                 heartbeat_interval=0.3, heartbeat_misses=3))
    _LIVE_POOLS.append(pool)
    try:
        yield pool
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def full_and_healed(pool: Pool, restarts: int) -> Callable[[], bool]:
    def check() -> bool:
        stats = pool.stats()
        return stats.restarts >= restarts and stats.workers == 4 and all(
            w.state in ("ready", "busy") for w in pool.workers())
    return check


def busy_workers(pool: Pool) -> list[WorkerInfo]:
    return [w for w in pool.workers() if w.state == "busy"]


def outcomes(futures: list[Future[object]]) -> tuple[int, list[BaseException]]:
    ok, failed = 0, []
    for future in futures:
        try:
            future.result(60)
            ok += 1
        except BaseException as exc:
            failed.append(exc)
    return ok, failed


def test_kill_9_of_a_busy_worker_fails_exactly_its_request_and_the_pool_heals(
        chaos_pool: Pool) -> None:
    restarts = chaos_pool.stats().restarts
    with ThreadPoolExecutor(20) as ex:
        futures = [ex.submit(chaos_pool.execute, "sleep", {"seconds": 0.4}) for _ in range(20)]
        wait_for(lambda: chaos_pool.stats().busy == 4 and chaos_pool.stats().queued > 0)
        victim = next(w for w in chaos_pool.workers() if w.state == "busy")
        os.kill(victim.pid, signal.SIGKILL)
        ok, failed = outcomes(futures)
    assert (ok, len(failed)) == (19, 1), failed
    assert isinstance(failed[0], WorkerCrashedError)
    assert failed[0].details["worker_id"] == victim.worker_id
    assert failed[0].details["signal"] == signal.SIGKILL
    wait_for(full_and_healed(chaos_pool, restarts + 1))
    assert victim.pid not in {w.pid for w in chaos_pool.workers()}


def test_kill_9_of_an_idle_worker_is_noticed_and_replaced(chaos_pool: Pool) -> None:
    restarts = chaos_pool.stats().restarts
    victim = chaos_pool.workers()[0]
    os.kill(victim.pid, signal.SIGKILL)
    healed_after = wait_for(full_and_healed(chaos_pool, restarts + 1))
    assert healed_after < 10
    assert chaos_pool.execute("echo", {"after": 1}) == {"after": 1}


def test_killing_a_worker_actor_fails_its_request_and_takes_its_process_along(
        chaos_pool: Pool) -> None:
    restarts = chaos_pool.stats().restarts
    with ThreadPoolExecutor(4) as ex:
        futures = [ex.submit(chaos_pool.execute, "sleep", {"seconds": 1.0}) for _ in range(4)]
        wait_for(lambda: chaos_pool.stats().busy == 4)
        victim = chaos_pool.workers()[1]
        worker_actor = worker_actor_pid(victim.pid)
        os.kill(worker_actor, signal.SIGKILL)
        ok, failed = outcomes(futures)
    assert (ok, len(failed)) == (3, 1), failed
    assert isinstance(failed[0], WorkerCrashedError)
    assert wait_gone({victim.pid}, 5.0) == set(), "the worker process outlived its actor"
    wait_for(full_and_healed(chaos_pool, restarts + 1))


def test_killing_a_starter_replaces_it_and_its_worker(chaos_pool: Pool) -> None:
    before = {w.worker_id: w.pid for w in chaos_pool.workers()}
    victim = chaos_pool.workers()[2]
    starter = psutil.Process(worker_actor_pid(victim.pid)).ppid()
    os.kill(starter, signal.SIGKILL)
    assert wait_gone({victim.pid}, 5.0) == set(), "the worker process outlived its Starter"
    wait_for(lambda: len(chaos_pool.workers()) == 4 and all(
        w.state == "ready" for w in chaos_pool.workers())
        and chaos_pool.workers()[2].pid != before[victim.worker_id])
    assert chaos_pool.execute("echo", {"ok": 1}) == {"ok": 1}


def test_a_hung_worker_misses_heartbeats_and_is_restarted(chaos_pool: Pool) -> None:
    restarts = chaos_pool.stats().restarts
    victim = chaos_pool.workers()[3]
    os.kill(victim.pid, signal.SIGSTOP)  # hung: alive, answers nothing
    try:
        wait_for(full_and_healed(chaos_pool, restarts + 1))
    finally:
        if psutil.pid_exists(victim.pid):
            os.kill(victim.pid, signal.SIGKILL)
    assert victim.pid not in {w.pid for w in chaos_pool.workers()}


def test_an_idempotent_request_survives_its_workers_death_by_running_again_elsewhere(
        chaos_pool: Pool) -> None:
    restarts = chaos_pool.stats().restarts
    with ThreadPoolExecutor(1) as ex:
        future = ex.submit(chaos_pool.execute, "sleep", {"seconds": 0.5}, idempotent=True)
        wait_for(lambda: chaos_pool.stats().busy == 1)
        victim = next(w for w in chaos_pool.workers() if w.state == "busy")
        os.kill(victim.pid, signal.SIGKILL)
        assert future.result(30) == 0.5
    wait_for(full_and_healed(chaos_pool, restarts + 1))


def test_a_non_idempotent_request_is_not_retried(chaos_pool: Pool) -> None:
    with ThreadPoolExecutor(1) as ex:
        future = ex.submit(chaos_pool.execute, "sleep", {"seconds": 0.5})
        wait_for(lambda: chaos_pool.stats().busy == 1)
        victim = next(w for w in chaos_pool.workers() if w.state == "busy")
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashedError):
            future.result(30)


def test_a_worker_stopped_under_its_calls_fails_them_as_crashed_not_as_cancelled(
        chaos_pool: Pool) -> None:
    """SIGTERM stops the worker's gRPC server after a 2 s grace, which ends the calls still
    running with CANCELLED; nobody cancelled them, so their callers hear the worker was lost
    (a session-less call and a session call: the DataPlane's and the Worker actor's ways)."""
    with ThreadPoolExecutor(2) as ex:
        futures = [ex.submit(chaos_pool.execute, "sleep", {"seconds": 6.0}, session_id=session)
                   for session in (None, "stopped-under-it")]
        wait_for(lambda: len(busy_workers(chaos_pool)) == 2)
        for victim in busy_workers(chaos_pool):
            os.kill(victim.pid, signal.SIGTERM)
        ok, failed = outcomes(futures)
    assert ok == 0
    assert all(isinstance(e, WorkerCrashedError) for e in failed), failed
    wait_for(lambda: len(chaos_pool.workers()) == 4 and all(
        w.state == "ready" for w in chaos_pool.workers()))


def test_a_worker_that_keeps_failing_to_start_degrades_the_pool_with_a_clear_error(
        tmp_path: pytest.TempPathFactory, data_path: DataPath) -> None:
    broken = os.path.join(str(tmp_path), "broken")
    cfg = PoolConfig(name="flaky", pool_size=1, max_restarts=2, max_seconds=30.0,
                     restart_backoff_s=0.01, queue_timeout=None,
                     adapter_config={"fail_init_if_exists": broken}, data_path=data_path)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(1) as ex:
        open(broken, "w").close()  # from now on every restart fails
        with pytest.raises(WorkerCrashedError):
            pool.execute("crash", {})
        waiting = ex.submit(pool.execute, "echo", {"x": 1})  # queued, no timeout
        started = time.monotonic()
        with pytest.raises(PoolNotReadyError) as caught:
            waiting.result(30)
        assert time.monotonic() - started < 20
        assert caught.value.reason == "degraded"
        assert "simulated broken environment" in str(caught.value)
        with pytest.raises(PoolNotReadyError):
            pool.execute("echo", {})
        assert pool.stats().state == "degraded"
        os.remove(broken)  # the environment is fixed: the WorkerSupervisor's retry heals it
        wait_for(lambda: pool.stats().state == "ready", timeout_s=30)
        assert pool.execute("echo", {"back": 1}) == {"back": 1}
