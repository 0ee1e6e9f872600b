"""Chaos in the pool's own actor tree: kill -9 of each kind of actor under 16 callers, with no
queue timeout and no request timeout, on both data paths. Every request gets exactly one
outcome, a typed error or its result, within seconds of the kill; the pool either fails fast as
a whole (``PoolClosedError``, every process gone) or reports itself degraded; nothing is left
afterwards."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psutil
import pytest

from snakepit_actors import Pool, PoolClosedError, PoolConfig, PoolNotReadyError, SnakepitError
from snakepit_actors.config import DataPath
from snakepit_actors.system import system_pids

from .conftest import _LIVE_POOLS, wait_gone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

CALLERS = 16
#: PoolRoot's children, in the order it creates them (their pids ascend in that order).
ROLES = ("worker_registry", "process_registry", "starter_registry", "session_store", "pool",
         "worker_supervisor")


def actor_pid(pool: Pool, role: str) -> int:
    """The pid of the actor playing ``role`` in ``pool``'s tree (or "pool_root")."""
    pids = system_pids(pool.admin_pid)
    admin = psutil.Process(pool.admin_pid)
    tops = [c for c in admin.children() if c.pid != pids.logger and c.children()]
    root = max(tops, key=lambda proc: proc.create_time())  # LauncherWatch has no children
    if role == "pool_root":
        return root.pid
    children = sorted(child.pid for child in root.children())
    return children[ROLES.index(role)]


def pool_actor_pid(pool: Pool) -> int:
    """The pid of the Pool actor the handle sends to now (by its Thespian port)."""
    from snakepit_actors.ops.status import listening_pids

    port = int(str(pool._pool).rstrip(")").rsplit(":", 1)[1])
    return listening_pids()[port]


def pool_processes(pool: Pool) -> set[int]:
    admin = psutil.Process(pool.admin_pid)
    return {admin.pid} | {child.pid for child in admin.children(recursive=True)}


def outcomes(futures: list[Future[object]], timeout_s: float) -> tuple[int, list[BaseException]]:
    ok, errors = 0, []
    deadline = time.monotonic() + timeout_s
    for future in futures:
        try:
            future.result(max(0.0, deadline - time.monotonic()))
            ok += 1
        except BaseException as exc:
            errors.append(exc)
    return ok, errors


@pytest.mark.parametrize("role", ["pool_root", "worker_registry", "process_registry",
                                  "starter_registry", "session_store"])
@pytest.mark.parametrize("path", ["direct", "actor"])
def test_killing_an_actor_the_tree_cannot_rebuild_fails_the_pool_fast_and_leaves_nothing(
        role: str, path: DataPath) -> None:
    pool = Pool.start(PoolConfig(name=f"tree-{role}"[:16], pool_size=4, queue_timeout=None,
                                 request_timeout=None, data_path=path))
    _LIVE_POOLS.append(pool)
    try:
        victim = actor_pid(pool, role)
        processes = pool_processes(pool)
        with ThreadPoolExecutor(CALLERS) as callers:
            futures = [callers.submit(pool.execute, "sleep", {"seconds": 0.3})
                       for _ in range(4 * CALLERS)]
            time.sleep(0.5)
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            ok, errors = outcomes(futures, timeout_s=15.0)
            all_outcomes_s = time.monotonic() - killed_at
        assert ok + len(errors) == len(futures)
        assert all(isinstance(e, SnakepitError) for e in errors), {repr(e) for e in errors}
        assert all_outcomes_s < 10.0
        with pytest.raises(PoolClosedError) as later:
            pool.execute("ping")
        assert later.value.reason in ("pool_tree_gone", "actor_system_gone")
        left = wait_gone(processes, timeout_s=5.0)
        gone_s = time.monotonic() - killed_at
        assert not left, left
        started = time.monotonic()
        pool.close()
        close_s = time.monotonic() - started
        assert close_s < 2.0
        print(f"\n{role}/{path}: ok={ok} failed={len(errors)} "
              f"reasons={sorted({getattr(e, 'reason', '?') for e in errors})} all outcomes in "
              f"{all_outcomes_s:.3f}s, processes gone in {gone_s:.3f}s, close {close_s:.3f}s")
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()


@pytest.mark.parametrize("path", ["direct", "actor"])
def test_a_killed_pool_actor_is_restarted_and_every_caller_gets_one_outcome(
        path: DataPath) -> None:
    pool = Pool.start(PoolConfig(name="tree-pool", pool_size=4, queue_timeout=None,
                                 request_timeout=None, data_path=path))
    _LIVE_POOLS.append(pool)
    try:
        victim = actor_pid(pool, "pool")
        with ThreadPoolExecutor(CALLERS) as callers:
            futures = [callers.submit(pool.execute, "sleep", {"seconds": 0.3})
                       for _ in range(4 * CALLERS)]
            time.sleep(0.5)
            old_pool = pool._pool
            failed_at: list[float] = []
            for future in futures:
                future.add_done_callback(
                    lambda f: f.exception() is not None and failed_at.append(time.monotonic()))
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            while pool._pool == old_pool and time.monotonic() - killed_at < 10.0:
                time.sleep(0.005)
            restarted_s = time.monotonic() - killed_at
            ok, errors = outcomes(futures, timeout_s=15.0)
            all_outcomes_s = time.monotonic() - killed_at
        typed_error_s = max(failed_at) - killed_at if failed_at else 0.0
        assert ok + len(errors) == len(futures)
        assert typed_error_s < 5.0
        assert all(isinstance(e, PoolNotReadyError) and e.reason == "pool_restarted"
                   for e in errors), {repr(e) for e in errors}
        assert all_outcomes_s < 10.0
        serving_s = None
        while time.monotonic() - killed_at < 10.0:
            try:
                assert pool.execute("ping") == "pong"
                serving_s = time.monotonic() - killed_at
                break
            except PoolNotReadyError:
                time.sleep(0.05)
        assert serving_s is not None, "the pool did not serve again"
        with ThreadPoolExecutor(CALLERS) as callers:
            again = [callers.submit(pool.execute, "sleep", {"seconds": 0.05})
                     for _ in range(2 * CALLERS)]
            ok_after, errors_after = outcomes(again, timeout_s=15.0)
        assert not errors_after and ok_after == len(again), errors_after
        stats = pool.stats()
        assert stats.workers == 4
        processes = pool_processes(pool)
        print(f"\npool/{path}: ok={ok} failed={len(errors)} (typed errors within "
              f"{typed_error_s:.3f}s) new Pool known to the handle in {restarted_s:.3f}s, all "
              f"outcomes in {all_outcomes_s:.3f}s, ping ok at {serving_s:.3f}s, "
              f"state={stats.state}")
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()
    assert not wait_gone(processes, timeout_s=5.0)


@pytest.mark.parametrize("path", ["direct", "actor"])
def test_a_killed_worker_supervisor_is_restarted_and_the_queue_waits_for_the_new_workers(
        path: DataPath) -> None:
    pool = Pool.start(PoolConfig(name="tree-sup", pool_size=4, queue_timeout=None,
                                 request_timeout=None, data_path=path))
    _LIVE_POOLS.append(pool)
    try:
        victim = actor_pid(pool, "worker_supervisor")
        old_workers = {w.pid for w in pool.workers()}
        with ThreadPoolExecutor(CALLERS) as callers:
            futures = [callers.submit(pool.execute, "sleep", {"seconds": 0.3})
                       for _ in range(4 * CALLERS)]
            time.sleep(0.5)
            failed_at: list[float] = []
            for future in futures:
                future.add_done_callback(
                    lambda f: f.exception() is not None and failed_at.append(time.monotonic()))
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            ok, errors = outcomes(futures, timeout_s=20.0)
            all_outcomes_s = time.monotonic() - killed_at
        typed_error_s = max(failed_at) - killed_at if failed_at else 0.0
        assert ok + len(errors) == len(futures)
        assert all(isinstance(e, SnakepitError) for e in errors), {repr(e) for e in errors}
        assert len(errors) <= 8, "only what ran on the old workers may fail"
        assert all_outcomes_s < 15.0
        stats = pool.stats()
        workers = pool.workers()
        assert stats.state == "ready" and len(workers) == 4
        assert not old_workers & {w.pid for w in workers}
        processes = pool_processes(pool)
        print(f"\nworker_supervisor/{path}: ok={ok} failed={len(errors)} (typed errors within "
              f"{typed_error_s:.3f}s) reasons="
              f"{sorted({(type(e).__name__, getattr(e, 'reason', '?')) for e in errors})} "
              f"all outcomes in {all_outcomes_s:.3f}s, state={stats.state}")
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()
    assert not wait_gone(processes, timeout_s=5.0)


def test_a_worker_supervisor_that_gives_up_is_not_restarted_and_the_pool_reports_degraded(
        ) -> None:
    pool = Pool.start(PoolConfig(name="tree-giveup", pool_size=1, max_restarts=1,
                                 max_seconds=30.0, queue_timeout=None, data_path="actor"))
    _LIVE_POOLS.append(pool)
    try:
        supervisor = psutil.Process(actor_pid(pool, "worker_supervisor"))
        for _ in range(2):  # the second Starter death exceeds 1 restart in 30 s: it escalates
            [starter] = supervisor.children()
            starter.kill()
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and supervisor.is_running() and not [
                    c for c in supervisor.children() if c.pid != starter.pid]:
                time.sleep(0.05)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and pool.stats().state != "degraded":
            time.sleep(0.05)
        assert pool.stats().state == "degraded"
        assert not supervisor.is_running()
        with pytest.raises(PoolNotReadyError) as refused:
            pool.execute("ping")
        assert refused.value.reason == "degraded"
        processes = pool_processes(pool)
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()
    assert not wait_gone(processes, timeout_s=5.0)


def test_a_pool_actor_that_dies_too_often_fails_the_pool_fast() -> None:
    pool = Pool.start(PoolConfig(name="tree-often", pool_size=2, queue_timeout=None,
                                 data_path="actor"))
    _LIVE_POOLS.append(pool)
    try:
        processes = pool_processes(pool)
        for _ in range(4):  # 3 restarts in 10 s are allowed; the 4th death fails the pool
            address = pool._pool
            os.kill(pool_actor_pid(pool), signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while pool._pool == address and not pool._gateway.gone_error \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        with pytest.raises(PoolClosedError) as refused:
            pool.execute("ping")
        assert refused.value.reason == "pool_tree_gone"
        assert not wait_gone(processes, timeout_s=5.0)
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()
