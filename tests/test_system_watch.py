"""The handle watches its own actor system: kill -9 of Thespian's admin or logger under 16
callers (no queue timeout, no request timeout) fails every caller at once with
``PoolClosedError(reason="actor_system_gone")``, ``close()`` is quick and no process of the
pool is left. Both data paths."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psutil
import pytest

from snakepit_actors import Pool, PoolClosedError, PoolConfig
from snakepit_actors.config import DataPath
from snakepit_actors.system import system_pids

from .conftest import _LIVE_POOLS, wait_gone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

CALLERS = 16


def _pool_processes(pool: Pool) -> set[int]:
    """The admin, everything below it (actors, logger, LauncherWatch, workers)."""
    admin = psutil.Process(pool.admin_pid)
    return {admin.pid} | {child.pid for child in admin.children(recursive=True)}


def _outcomes(futures: list[Future[object]], timeout_s: float) -> tuple[int, list[BaseException]]:
    ok, errors = 0, []
    for future in futures:
        try:
            future.result(timeout_s)
            ok += 1
        except BaseException as exc:
            errors.append(exc)
    return ok, errors


@pytest.mark.parametrize("victim", ["admin", "logger"])
@pytest.mark.parametrize("path", ["direct", "actor"])
def test_killing_the_actor_system_fails_every_caller_at_once_and_leaves_no_process(
        victim: str, path: DataPath) -> None:
    pool = Pool.start(PoolConfig(name=f"gone-{victim}", pool_size=4, queue_timeout=None,
                                 request_timeout=None, data_path=path))
    _LIVE_POOLS.append(pool)
    try:
        pids = system_pids(pool.admin_pid)
        assert pids.logger and pids.logger != pool.admin_pid
        processes = _pool_processes(pool)
        with ThreadPoolExecutor(CALLERS) as callers:
            futures = [callers.submit(pool.execute, "sleep", {"seconds": 0.5})
                       for _ in range(4 * CALLERS)]
            time.sleep(0.7)  # some done, some running, most queued
            killed_at = time.monotonic()
            os.kill(pids.admin if victim == "admin" else pids.logger, signal.SIGKILL)
            ok, errors = _outcomes(futures, timeout_s=10.0)
            failed_within_s = time.monotonic() - killed_at
        assert ok + len(errors) == len(futures)
        assert errors, "the kill came too late to catch any request"
        assert all(isinstance(e, PoolClosedError) for e in errors), {repr(e) for e in errors}
        assert {e.reason for e in errors} <= {"actor_system_gone"}, {repr(e) for e in errors}
        assert failed_within_s < 5.0
        with pytest.raises(PoolClosedError) as later:
            pool.execute("ping")
        assert later.value.reason == "actor_system_gone"
        left = wait_gone(processes, timeout_s=5.0)
        gone_within_s = time.monotonic() - killed_at
        assert not left, left
        started = time.monotonic()
        pool.close()
        close_s = time.monotonic() - started
        assert close_s < 2.0
        print(f"\n{victim}/{path}: ok={ok} failed={len(errors)} all outcomes in "
              f"{failed_within_s:.3f}s, processes gone in {gone_within_s:.3f}s, "
              f"close {close_s:.3f}s")
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()
