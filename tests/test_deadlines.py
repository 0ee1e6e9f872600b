"""One deadline per request, fixed by the handle at the call and never reset: ``timeout`` (or
the pool's ``request_timeout`` when it is None) bounds execute, execute_async and a whole
stream, on both data paths. Timing bounds are loose on purpose (a noisy 2-core machine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from snakepit_actors import Pool, PoolConfig, RequestTimeoutError
from snakepit_actors.client.replies import REPLY_GRACE_S, reply_wait_s
from snakepit_actors.config import DataPath

#: How late past its deadline a request may end and still count as "near the deadline": the
#: Worker answers at the deadline; the hops back and a busy machine add the rest.
_LATE_S = 3.0


@pytest.fixture
def timed_pool(data_path: DataPath) -> Iterator[Pool]:
    """A one-worker pool whose requests default to a 1.5 s deadline."""
    cfg = PoolConfig(name="deadlines", pool_size=1, request_timeout=1.5, queue_timeout=10.0,
                     data_path=data_path)
    with Pool.start(cfg) as pool:
        yield pool


def _drain(stream: Iterator[Any], got: list[Any]) -> None:
    for value in stream:
        got.append(value)


def test_the_reply_wait_is_the_time_left_to_the_deadline_plus_the_grace() -> None:
    assert reply_wait_s(None) is None
    wait = reply_wait_s(time.time() + 10.0)
    assert wait is not None and 10.0 < wait <= 10.0 + REPLY_GRACE_S
    assert reply_wait_s(time.time() - 60.0) == REPLY_GRACE_S


def test_execute_without_a_timeout_ends_at_the_pools_request_timeout(timed_pool: Pool) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        timed_pool.execute("sleep", {"seconds": 30})
    assert 1.4 <= time.monotonic() - started < 1.5 + _LATE_S


def test_execute_async_without_a_timeout_ends_at_the_pools_request_timeout(
        timed_pool: Pool) -> None:
    async def call() -> float:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await timed_pool.execute_async("sleep", {"seconds": 30})
        return time.monotonic() - started

    assert 1.4 <= asyncio.run(call()) < 1.5 + _LATE_S


def test_an_explicit_timeout_wins_over_the_pools_request_timeout(timed_pool: Pool) -> None:
    assert timed_pool.execute("sleep", {"seconds": 2.0}, timeout=30) == 2.0


def test_a_stream_without_a_timeout_ends_at_the_pools_request_timeout(
        timed_pool: Pool) -> None:
    got: list[Any] = []
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        _drain(timed_pool.execute_stream("stream_progress", {"steps": 100, "delay": 0.2}), got)
    assert 1.4 <= time.monotonic() - started < 1.5 + _LATE_S
    assert 1 <= len(got) < 100


def test_a_stream_whose_chunks_each_come_in_time_still_ends_at_its_deadline(
        timed_pool: Pool) -> None:
    got: list[Any] = []
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):  # 20 chunks, 0.25 s apart: 5 s in all
        _drain(timed_pool.execute_stream("stream_progress", {"steps": 20, "delay": 0.25},
                                         timeout=2.0), got)
    assert 1.9 <= time.monotonic() - started < 2.0 + _LATE_S
    assert 2 <= len(got) < 20


def test_an_async_stream_without_a_timeout_ends_at_the_pools_request_timeout(
        timed_pool: Pool) -> None:
    async def consume(got: list[Any]) -> float:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            async for value in timed_pool.execute_stream_async(
                    "stream_progress", {"steps": 100, "delay": 0.2}):
                got.append(value)
        return time.monotonic() - started

    got: list[Any] = []
    assert 1.4 <= asyncio.run(consume(got)) < 1.5 + _LATE_S
    assert 1 <= len(got) < 100
