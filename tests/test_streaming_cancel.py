"""Streams, cancellation and deadlines on real pools, on both data paths: chunks in order and
as produced, errors mid-stream, leaving a stream or timing out frees the worker."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from snakepit_actors import (
    Pool,
    PoolConfig,
    RequestTimeoutError,
    ToolError,
    WorkerCrashedError,
)
from snakepit_actors.config import DataPath


def test_a_stream_of_1000_chunks_arrives_complete_and_in_order(module_pool: Pool) -> None:
    values = list(module_pool.execute_stream("stream_progress", {"steps": 1000}, timeout=60))
    assert [v["step"] for v in values] == list(range(1, 1001))


def test_the_first_chunk_arrives_before_the_tool_finishes(module_pool: Pool) -> None:
    started = time.monotonic()
    stream = module_pool.execute_stream("stream_progress", {"steps": 4, "delay": 0.4},
                                        timeout=30)
    next(stream)
    first_s = time.monotonic() - started
    assert len(list(stream)) == 3
    assert first_s < time.monotonic() - started - 1.0  # three more delays came after it


def test_an_error_mid_stream_raises_after_the_chunks_already_delivered(
        module_pool: Pool) -> None:
    got: list[int] = []
    with pytest.raises(ToolError, match="failed at step 3"):
        for value in module_pool.execute_stream("stream_progress",
                                                {"steps": 10, "fail_at": 3}, timeout=30):
            got.append(value["step"])
    assert got == [1, 2]


def test_breaking_out_of_a_stream_frees_the_worker_within_a_second(
        data_path: DataPath) -> None:
    cfg = PoolConfig(name="brk", pool_size=1, queue_timeout=10.0, data_path=data_path)
    with Pool.start(cfg) as pool:
        pid = pool.workers()[0].pid
        for value in pool.execute_stream("stream_progress", {"steps": 10_000, "delay": 0.05}):
            if value["step"] == 3:
                break
        left = time.monotonic()
        assert pool.execute("echo", {"free": True}, timeout=10) == {"free": True}
        assert time.monotonic() - left < 1.0
        # the stream ended CANCELLED because its caller left: the process is fine and kept
        assert pool.workers()[0].pid == pid and pool.stats().restarts == 0


def test_a_stream_queues_behind_busy_workers_instead_of_failing(data_path: DataPath) -> None:
    cfg = PoolConfig(name="sq", pool_size=1, queue_timeout=10.0, data_path=data_path)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(1) as ex:
        busy = ex.submit(pool.execute, "sleep", {"seconds": 0.5}, timeout=10)
        time.sleep(0.1)
        assert len(list(pool.execute_stream("stream_progress", {"steps": 3}, timeout=10))) == 3
        assert busy.result(10) == 0.5


def test_a_timed_out_sleep_30_leaves_the_worker_free_within_about_a_second(
        data_path: DataPath) -> None:
    cfg = PoolConfig(name="tmo", pool_size=1, queue_timeout=10.0, data_path=data_path)
    with Pool.start(cfg) as pool:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            pool.execute("sleep", {"seconds": 30}, timeout=1.0)
        timed_out = time.monotonic()
        assert timed_out - started < 3.0
        assert pool.execute("echo", {"after": "timeout"}, timeout=10) == {"after": "timeout"}
        assert time.monotonic() - timed_out < 2.5  # loose: ~1 s on an idle machine


def test_a_worker_killed_mid_stream_fails_the_stream_after_its_chunks(
        data_path: DataPath) -> None:
    cfg = PoolConfig(name="kms", pool_size=1, queue_timeout=10.0, data_path=data_path)
    with Pool.start(cfg) as pool:
        pid = pool.workers()[0].pid
        got: list[int] = []
        with pytest.raises(WorkerCrashedError):
            for value in pool.execute_stream("stream_progress", {"steps": 1000, "delay": 0.05},
                                             timeout=30):
                got.append(value["step"])
                if value["step"] == 2:
                    os.kill(pid, signal.SIGKILL)
        assert got[:2] == [1, 2]
        assert pool.execute("echo", {"back": True}, timeout=20) == {"back": True}
