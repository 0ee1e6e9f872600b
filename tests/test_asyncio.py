"""The Pool handle under asyncio: bursts, cancellation, lifecycle and the async forms of the
control calls (client/async_api.py, client/direct_async.py). Real actors, real worker
processes, real gRPC; timings are loose bounds (the machine is shared)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from snakepit_actors import (
    Pool,
    PoolConfig,
    PoolSaturatedError,
    QueueTimeoutError,
    SessionNotFoundError,
    ToolError,
)

from .conftest import pool_pids, project_processes, shared_pool, wait_gone

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def apool(data_path: str) -> Iterator[Pool]:
    """Two workers, room for a 10,000-caller burst, and a queue_timeout shorter than that
    burst takes (once per data path)."""
    with shared_pool(PoolConfig(name="aio", pool_size=2, max_queue=20_000, queue_timeout=2.0,
                                data_path=data_path)) as pool:  # type: ignore[arg-type]
        yield pool


# --- bursts ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_burst_of_10000_gathered_calls_gets_10000_results_and_no_error(apool: Pool) -> None:
    if apool.config.data_path == "actor":
        pytest.skip("bursts of this size are the direct path's (the actor path queues them "
                    "at the Pool, counting queue_timeout from arrival)")

    async def burst() -> list[object]:
        return await asyncio.gather(*(apool.execute_async("echo", {"i": i})
                                      for i in range(10_000)), return_exceptions=True)

    before = apool.stats().queue_timeouts
    started = time.monotonic()
    results = asyncio.run(burst())
    assert time.monotonic() - started < 60
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} errors, e.g. {errors[:3]}"
    assert [r["i"] for r in results] == list(range(10_000))  # type: ignore[index]
    assert apool.stats().queue_timeouts == before  # the line moved: queue_timeout never hit


def test_a_small_pool_refuses_callers_beyond_max_queue_at_once_and_times_out_a_stalled_line(
        ) -> None:
    """40 callers on 1 worker with max_queue=5: 6 (7 if a lease came during the burst) get
    in, the rest are refused before any call ends; the line moves every 0.2 s, so nobody
    times out (queue_timeout=1.0) until the worker is stuck in a 3 s call. ``async with``
    then leaves no process."""
    before = set(project_processes())

    async def main() -> tuple[list[float], list[float], float, set[int]]:
        async with Pool.start_async(name="sat", pool_size=1, max_queue=5,
                                    queue_timeout=1.0) as pool:
            pids = pool_pids(pool)
            t0 = time.monotonic()

            async def timed() -> tuple[str, float]:
                try:
                    await pool.execute_async("sleep", {"seconds": 0.2})
                    return "ok", time.monotonic() - t0
                except PoolSaturatedError:
                    return "refused", time.monotonic() - t0

            outcomes = await asyncio.gather(*(timed() for _ in range(40)))
            assert (await pool.stats_async()).saturated >= 40 - 7
            stuck = asyncio.ensure_future(pool.execute_async("sleep", {"seconds": 3}))
            await asyncio.sleep(0.2)
            t1 = time.monotonic()
            with pytest.raises(QueueTimeoutError):
                await pool.execute_async("echo", {})
            waited = time.monotonic() - t1
            stuck.cancel()
        ok = [t for kind, t in outcomes if kind == "ok"]
        refused = [t for kind, t in outcomes if kind == "refused"]
        return ok, refused, waited, pids

    ok, refused, waited, pids = asyncio.run(main())
    assert 6 <= len(ok) <= 7 and len(ok) + len(refused) == 40
    assert max(refused) < min(ok), "a refusal waited for a worker"
    assert 0.9 < waited < 2.5
    assert not wait_gone(pids) and not set(project_processes()) - before


def test_await_start_async_then_aclose_twice_stops_every_process() -> None:
    async def main() -> set[int]:
        pool = await Pool.start_async(PoolConfig(name="aclose", pool_size=1))
        pids = pool_pids(pool)
        assert await pool.execute_async("echo", {"x": 1}) == {"x": 1}
        assert [w.pid > 0 for w in await pool.workers_async()] == [True]
        await pool.aclose()
        await pool.aclose()  # idempotent
        assert pool.closed
        return pids

    assert not wait_gone(asyncio.run(main()))


def test_a_start_async_cancelled_half_way_leaves_no_process() -> None:
    before = set(project_processes())

    async def main() -> None:
        starting = asyncio.ensure_future(Pool.start_async(name="cancelled", pool_size=1))
        await asyncio.sleep(0.2)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting

    asyncio.run(main())
    for thread in threading.enumerate():
        if thread.name == "snakepit-async-lifecycle":
            thread.join(60)  # the start completes, then the pool is closed
    assert not wait_gone(set(project_processes()) - before, timeout_s=10)


# --- cancellation ---------------------------------------------------------------------------

def test_cancelling_a_call_cancels_its_tool_and_frees_its_worker(apool: Pool) -> None:
    async def main() -> float:
        sleeps = [asyncio.ensure_future(apool.execute_async("sleep", {"seconds": 3}))
                  for _ in range(2)]  # both workers
        await asyncio.sleep(0.3)
        for task in sleeps:
            task.cancel()
        for task in sleeps:
            with pytest.raises(asyncio.CancelledError):
                await task
        started = time.monotonic()
        assert await asyncio.gather(*(apool.execute_async("sleep", {"seconds": 0.2})
                                      for _ in range(2))) == [0.2, 0.2]
        return time.monotonic() - started

    assert asyncio.run(main()) < 2.0  # the 3 s tools stopped: each worker serves at once


def test_a_caller_cancelled_in_line_leaves_it_and_the_next_one_is_served(apool: Pool) -> None:
    async def main() -> None:
        busy = [asyncio.ensure_future(apool.execute_async("sleep", {"seconds": 0.5}))
                for _ in range(2)]
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(apool.execute_async("echo", {"w": 1}))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await asyncio.gather(*busy) == [0.5, 0.5]
        assert await apool.execute_async("echo", {"x": 2}, timeout=10) == {"x": 2}

    asyncio.run(main())
    deadline = time.monotonic() + 10
    while (s := apool.stats()).busy or s.queued:
        assert time.monotonic() < deadline, f"a slot stayed taken: {s}"
        time.sleep(0.02)


# --- streams --------------------------------------------------------------------------------

def _pumps() -> int:
    return sum(t.name == "snakepit-stream-pump" for t in threading.enumerate())


def test_an_async_stream_takes_the_pools_data_path_and_raises_the_tools_error(
        apool: Pool) -> None:
    """On the direct path a stream is read by the handle itself (a pump thread per stream),
    not through the Pool actor; values in order, then the tool's failure as a ToolError."""
    async def main() -> tuple[list[Any], int]:
        seen, pumps = [], 0
        # a step every 50 ms keeps the pump reading while we look (without a delay it could
        # have read all five and ended before the first value reached us)
        async for value in apool.execute_stream_async("stream_progress",
                                                      {"steps": 5, "delay": 0.05}):
            seen.append(value["step"])
            pumps = max(pumps, _pumps())
        with pytest.raises(ToolError, match="failed at step 3"):
            async for value in apool.execute_stream_async("stream_progress",
                                                          {"steps": 5, "fail_at": 3}):
                seen.append(value["step"])
        return seen, pumps

    seen, pumps = asyncio.run(main())
    assert seen == [1, 2, 3, 4, 5, 1, 2]
    assert pumps == (1 if apool.config.data_path == "direct" else 0)


def test_leaving_or_cancelling_an_async_stream_stops_the_tool_and_frees_its_slot(
        apool: Pool) -> None:
    async def leave() -> None:
        async for value in apool.execute_stream_async("stream_progress",
                                                      {"steps": 10_000, "delay": 0.05}):
            if value["step"] == 2:
                break

    async def main() -> list[Any]:
        await asyncio.gather(leave(), leave())  # both workers
        tasks = [asyncio.ensure_future(leave()) for _ in range(2)]
        await asyncio.sleep(0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return await asyncio.gather(*(apool.execute_async("echo", {"i": i}, timeout=10)
                                      for i in range(2)))

    assert asyncio.run(main()) == [{"i": 0}, {"i": 1}]
    deadline = time.monotonic() + 10
    while (s := apool.stats()).busy or s.queued or _pumps():
        assert time.monotonic() < deadline, f"a slot or a pump stayed: {s}, {_pumps()}"
        time.sleep(0.02)


def test_a_shielded_call_runs_on_when_its_caller_is_cancelled(apool: Pool) -> None:
    async def main() -> object:
        call = asyncio.ensure_future(apool.execute_async("sleep", {"seconds": 0.3}))
        caller = asyncio.ensure_future(asyncio.shield(call))
        await asyncio.sleep(0.05)
        caller.cancel()
        return await call

    assert asyncio.run(main()) == 0.3


# --- sessions and control calls -------------------------------------------------------------

def test_session_and_program_calls_have_async_forms(apool: Pool) -> None:
    async def main() -> None:
        info = await apool.create_session_async("as-1", data={"a": 1})
        assert info.session_id == "as-1"
        assert (await apool.update_session_async("as-1", {"b": 2})).data == {"a": 1, "b": 2}
        assert (await apool.get_session_async("as-1")).data["b"] == 2
        assert "as-1" in [s.session_id for s in await apool.list_sessions_async()]
        assert await apool.delete_session_async("as-1")
        with pytest.raises(SessionNotFoundError):
            await apool.get_session_async("as-1")
        await apool.set_program_async("p", {"v": 1})
        assert await apool.get_program_async("p") == {"v": 1}
        assert await apool.delete_program_async("p")
        assert await apool.get_program_async("p", "none") == "none"
        async with apool.session_async() as session:
            counts = [await session.execute_async("session_counter") for _ in range(3)]
            assert counts == [1, 2, 3]
            assert (await session.update_async({"k": "v"})).data == {"k": "v"}
            assert (await session.info_async()).session_id == session.id
            sid = session.id
        assert sid not in [s.session_id for s in await apool.list_sessions_async()]
        stats = await apool.stats_async()
        assert stats.workers == 2 and stats.state == "ready"

    asyncio.run(main())
