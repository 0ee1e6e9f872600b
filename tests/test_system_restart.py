"""A handle configured with ``on_system_loss="restart"`` supervises its whole actor system:
kill -9 of Thespian's admin or of the PoolRoot under a few callers fails what was in flight
with a typed error, and a new system and pool serve again within seconds; nothing of the old
system is left; past the intensity (3 restarts in 60 s), or when the new system cannot start,
the handle closes for good; ``close()`` during a restart returns promptly and leaves nothing.
Both data paths; real processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from snakepit_actors import Pool, PoolClosedError, PoolConfig, PoolNotReadyError, SnakepitError
from snakepit_actors.config import DataPath
from snakepit_actors.core.system_plan import SYSTEM_MAX_RESTARTS

from .conftest import _LIVE_POOLS, pool_pids, wait_gone
from .tree_chaos import Load, kill, report, tree_pids

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

#: Loose: a new actor system and 2 workers start in about 1 s on a quiet machine.
SERVING_LIMIT_S = 15.0


def start(name: str, path: DataPath, pool_size: int = 2) -> Pool:
    pool = Pool.start(PoolConfig(name=name, pool_size=pool_size, data_path=path,
                                 queue_timeout=None, request_timeout=None,
                                 on_system_loss="restart"))
    _LIVE_POOLS.append(pool)
    return pool


def close(pool: Pool) -> float:
    pids = pool_pids(pool)
    _LIVE_POOLS.remove(pool)
    began = time.monotonic()
    pool.close()
    took = time.monotonic() - began
    assert not wait_gone(pids, timeout_s=2.0)
    return took


def serving_again(pool: Pool, old_admin: int, timeout_s: float) -> float:
    """Seconds until a call succeeds on a new system (its admin is not ``old_admin``)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        try:
            pool.execute("ping", timeout=2.0)
            if pool.admin_pid != old_admin:
                return time.monotonic() - began
        except PoolNotReadyError as exc:
            assert exc.reason == "system_restarting", exc
        time.sleep(0.02)
    raise AssertionError(f"not serving within {timeout_s}s")


@pytest.mark.parametrize("victim", ["admin", "pool_root"])
@pytest.mark.parametrize("path", ["direct", "actor"])
def test_a_killed_system_is_restarted_and_serves_again_with_nothing_of_it_left(
        victim: str, path: DataPath) -> None:
    pool = start(f"restart-{victim}", path)
    try:
        old_admin, old_pids = pool.admin_pid, pool_pids(pool)
        target = tree_pids(pool)[victim]

        def call() -> object:
            try:
                return pool.execute("sleep", {"seconds": 0.05})
            except PoolNotReadyError:
                time.sleep(0.02)  # restarting: a caller retrying in a loop pauses
                raise

        load = Load(call, callers=4, max_calls=400).start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        kill(target)
        serving_s = serving_again(pool, old_admin, SERVING_LIMIT_S)
        time.sleep(0.3)
        hung = load.stop(timeout_s=5.0)
        seen = report(victim, path, load, killed_at, hung)
        assert hung == 0 and all(c.ended for c in load.calls)  # every call: one outcome
        errors = [c.error for c in load.calls if c.error is not None]
        assert errors and all(isinstance(e, SnakepitError) for e in errors), errors
        assert any(getattr(e, "reason", "") == "system_restarting" for e in errors), errors
        assert seen.serving_s is not None and seen.serving_s < SERVING_LIMIT_S
        assert not wait_gone(old_pids, timeout_s=2.0)  # the old system: every process gone
        assert pool.stats().workers == 2
        print(f"\n{victim}/{path}: serving again {serving_s:.3f}s after the kill "
              f"(load: {seen.serving_s:.3f}s), errors {seen.errors}")
    finally:
        close_s = close(pool)
    assert close_s < 5.0


def test_a_system_that_keeps_dying_is_given_up_past_the_intensity() -> None:
    pool = start("restart-intensity", "actor", pool_size=1)
    try:
        for _ in range(SYSTEM_MAX_RESTARTS):
            old_admin = pool.admin_pid
            kill(old_admin)
            serving_again(pool, old_admin, SERVING_LIMIT_S)
        old_pids = pool_pids(pool)
        kill(pool.admin_pid)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                pool.execute("ping", timeout=2.0)
            except PoolClosedError as exc:
                assert exc.reason == "actor_system_gone"
                assert exc.details["gave_up"] == "intensity"
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the handle kept serving past the intensity")
        assert not wait_gone(old_pids, timeout_s=2.0)
        with pytest.raises(PoolClosedError):
            pool.execute("ping")
    finally:
        close_s = close(pool)
    assert close_s < 1.0


@pytest.mark.parametrize("path", ["direct", "actor"])
def test_close_during_a_restart_returns_promptly_and_leaves_nothing(path: DataPath) -> None:
    pool = start("restart-close", path)
    old_pids = pool_pids(pool)
    kill(pool.admin_pid)
    time.sleep(0.3)  # the new system is starting
    _LIVE_POOLS.remove(pool)
    began = time.monotonic()
    pool.close()
    took = time.monotonic() - began
    assert took < 2.0, took
    assert not wait_gone(old_pids, timeout_s=2.0)
    with pytest.raises(PoolClosedError):
        pool.execute("ping")
    # The new system's processes: the autouse leak fixture fails the test if any is left.


def test_a_restart_that_cannot_start_the_workers_closes_the_handle_for_good(
        tmp_path: Path) -> None:
    marker = tmp_path / "broken"  # once it exists, the worker interpreter fails at once
    python = tmp_path / "python.sh"
    python.write_text(f"#!/bin/sh\n[ -e {marker} ] && exit 3\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    pool = Pool.start(PoolConfig(name="restart-fails", pool_size=1, data_path="actor",
                                 python=str(python), startup_timeout=3.0,
                                 on_system_loss="restart"))
    _LIVE_POOLS.append(pool)
    try:
        marker.write_text("")
        kill(pool.admin_pid)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            try:
                pool.execute("ping", timeout=2.0)
            except PoolClosedError as exc:
                assert exc.reason == "system_restart_failed", exc
                break
            except PoolNotReadyError as exc:
                assert exc.reason == "system_restarting", exc
            time.sleep(0.05)
        else:
            raise AssertionError("the failed restart did not close the handle")
    finally:
        close_s = close(pool)
    assert close_s < 1.0
