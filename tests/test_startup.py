"""Start-up: concurrent by default, in batches with ``startup_batch_size``, with progress
reported as workers become ready. Real actors and worker processes; order is checked from the
workers' own ready times (causality), never from how long anything took."""

from __future__ import annotations

import pytest

from snakepit_actors import Pool, PoolConfig

pytestmark = pytest.mark.timeout(120)


def test_progress_is_reported_once_per_worker_in_order_before_start_returns() -> None:
    seen: list[tuple[int, int]] = []
    with Pool.start(PoolConfig(name="progress", pool_size=3),
                    on_progress=lambda ready, total: seen.append((ready, total))):
        assert seen == [(1, 3), (2, 3), (3, 3)]


def test_with_startup_batch_size_the_next_batch_starts_once_the_previous_one_is_ready() -> None:
    cfg = PoolConfig(name="batches", pool_size=4, startup_batch_size=2)
    with Pool.start(cfg) as pool:
        workers = pool.workers()
        assert [w.state for w in workers] == ["ready"] * 4
        first = [w.started_at for w in workers if w.worker_id.endswith(("_1", "_2"))]
        second = [w.started_at for w in workers if w.worker_id.endswith(("_3", "_4"))]
        assert min(second) > max(first)
        assert pool.execute("echo", {"x": 1}) == {"x": 1}


def test_a_progress_callback_that_raises_does_not_stop_the_start() -> None:
    def broken(ready: int, total: int) -> None:
        raise RuntimeError("display gone")

    with Pool.start(PoolConfig(name="badprogress", pool_size=1), on_progress=broken) as pool:
        assert pool.execute("ping") == "pong"
