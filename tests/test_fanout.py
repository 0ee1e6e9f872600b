"""Fan-out end to end: ``Pool.map`` (chunks as one ExecuteBatch call each), ``pool.submit`` and
``pool.executor()``, and their asyncio forms. Real actors, real worker processes, real gRPC;
one direct-path pool shared by the module (and one small actor-path pool for its own test)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait

import pytest

from snakepit_actors import (
    InvalidArgumentsError,
    Pool,
    PoolClosedError,
    PoolConfig,
    ToolError,
    UnknownToolError,
    WorkerCrashedError,
)
from snakepit_actors.errors import RequestCancelledError, RequestTimeoutError, SerializationError
from tests.conftest import shared_pool, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with shared_pool(PoolConfig(name="fanout", pool_size=4, queue_timeout=20.0)) as started:
        yield started



# --- map ------------------------------------------------------------------------------------------

def test_map_gives_the_results_in_input_order_across_chunks_and_workers(pool: Pool) -> None:
    args = [{"seconds": 0.02 if i % 7 == 0 else 0.0, "i": i} for i in range(60)]
    got = list(pool.map("echo", args, chunksize=4))
    assert got == args
    sleeps = [{"seconds": s} for s in (0.3, 0.0, 0.1, 0.0, 0.2, 0.0)]
    assert list(pool.map("sleep", sleeps, chunksize=1)) == pytest.approx(
        [0.3, 0.0, 0.1, 0.0, 0.2, 0.0], abs=0.05)


def test_an_unordered_map_yields_every_result_once_as_chunks_finish(pool: Pool) -> None:
    sleeps = [{"seconds": 0.4}] + [{"seconds": 0.0}] * 6
    got = list(pool.map("sleep", sleeps, chunksize=1, ordered=False))
    assert sorted(got) == pytest.approx(sorted([0.4] + [0.0] * 6), abs=0.05)
    assert got[-1] == pytest.approx(0.4, abs=0.05)  # the slow one came last, not first


def test_each_item_gets_its_own_error_raised_in_order_or_returned(pool: Pool) -> None:
    args = [{"a": 1, "b": 2}, {"a": 1, "b": "x"}, {"a": "y", "b": "z"}, {"a": 2, "b": 2}]
    outcomes = list(pool.map("add", args, chunksize=4, return_exceptions=True))
    assert outcomes[0] == 3 and outcomes[2] == "yz" and outcomes[3] == 4
    assert isinstance(outcomes[1], ToolError) and outcomes[1].python_type == "TypeError"
    results = pool.map("add", args, chunksize=2)
    assert next(results) == 3
    with pytest.raises(ToolError, match="TypeError"):
        next(results)
    assert list(results) == []  # the map stopped at its error, like Executor.map


def test_a_lazy_input_is_read_only_a_bounded_window_ahead_of_the_consumer(pool: Pool) -> None:
    pulled = itertools.count()
    endless = ({"i": next(pulled)} for _ in itertools.count())
    with pool.map("echo", endless, chunksize=5) as results:
        assert [next(results)["i"] for _ in range(30)] == list(range(30))
        time.sleep(0.2)  # give the runners every chance to read further
        ahead = next(pulled)
    slots = 4  # pool_size x capacity: the default max_in_flight
    assert ahead <= 30 + (2 * slots + 1) * 5 + 5, f"read {ahead} items for 30 results"


def test_closing_a_map_cancels_its_running_chunks_at_once(pool: Pool) -> None:
    wait_for(lambda: pool.stats().busy == 0)
    results = pool.map("sleep", [{"seconds": 30.0}] * 2, chunksize=1)
    wait_for(lambda: pool.stats().busy == 2)
    started = time.monotonic()
    results.close()
    assert time.monotonic() - started < 5.0
    wait_for(lambda: pool.stats().busy == 0)  # the slots are free again
    assert list(results) == []


def test_an_error_of_the_input_iterable_comes_after_the_results_before_it(pool: Pool) -> None:
    def broken() -> Iterator[dict[str, int]]:
        yield {"i": 0}
        yield {"i": 1}
        raise KeyError("input broke")

    results = pool.map("echo", broken(), chunksize=5)  # it breaks inside the first chunk
    assert [next(results), next(results)] == [{"i": 0}, {"i": 1}]
    with pytest.raises(KeyError, match="input broke"):
        next(results)


def test_bad_map_input_gets_a_clear_error_at_once(pool: Pool) -> None:
    cases = [(dict(iterable_of_args=5), "iterable_of_args must be an iterable"),
             (dict(iterable_of_args={"x": 1}), "not a single one"),
             (dict(iterable_of_args=[{}], chunksize=0), "chunksize must be an int >= 1"),
             (dict(iterable_of_args=[{}], ordered="yes"), "ordered must be True or False"),
             (dict(iterable_of_args=[{}], timeout=-1), "timeout must be finite and > 0")]
    for kwargs, message in cases:
        with pytest.raises(InvalidArgumentsError, match=message):
            pool.map("echo", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UnknownToolError, match="unknown tool 'nope'"):
        list(pool.map("nope", [{}] * 3, chunksize=3))
    outcomes = list(pool.map("echo", [{"x": 1}, 7], chunksize=2, return_exceptions=True))
    assert outcomes[0] == {"x": 1}
    assert isinstance(outcomes[1], InvalidArgumentsError)
    assert "item 1 of the map" in str(outcomes[1]) and "must be a mapping" in str(outcomes[1])


def test_a_chunk_runs_on_one_worker_in_one_call_for_every_kind_of_tool(pool: Pool) -> None:
    infos = list(pool.map("info", [{}] * 5, chunksize=5))  # a ctx tool: item by item
    assert len({i["pid"] for i in infos}) == 1  # the chunk went to one worker process
    assert list(pool.map("async_echo", [{"i": i} for i in range(5)], chunksize=5)) == [
        {"i": i} for i in range(5)]
    assert list(pool.map("echo", [{"t": (1, 2)}, {"x": None}], chunksize=2)) == [
        {"t": [1, 2]}, {"x": None}]  # a tuple, like execute: a list on the way back
    odd = list(pool.map("odd_result", [{"kind": "nan"}, {"kind": "int_keys"},
                                       {"kind": "bogus"}], chunksize=3, return_exceptions=True))
    assert [type(o) for o in odd] == [SerializationError, SerializationError, ToolError]
    assert odd[0].reason == "result" and "KeyError" in str(odd[2])


def test_the_deadline_of_a_map_fails_only_the_items_it_caught(pool: Pool) -> None:
    sleeps = [{"seconds": 0.0}, {"seconds": 10.0}, {"seconds": 0.0}]
    outcomes = list(pool.map("sleep", sleeps, chunksize=3, timeout=1.0, return_exceptions=True))
    assert outcomes[0] == 0.0
    assert all(isinstance(o, RequestTimeoutError) for o in outcomes[1:]), outcomes
    wait_for(lambda: all(w.state == "ready" for w in pool.workers()), 30.0)


@pytest.mark.slow
def test_a_worker_killed_mid_chunk_fails_only_the_unfinished_items_of_its_chunk(
        pool: Pool) -> None:
    for idempotent, long_item in ((False, 30.0), (True, 1.0)):
        wait_for(lambda: pool.stats().busy == 0)
        chunk = [{"seconds": 0.0}, {"seconds": 0.0}, {"seconds": long_item}, {"seconds": 0.0}]
        outcomes: list[object] = []
        results = pool.map("sleep", chunk, chunksize=4, idempotent=idempotent,
                           return_exceptions=True)
        runner = threading.Thread(target=outcomes.extend, args=(results,))
        runner.start()
        wait_for(lambda: any(w.state == "busy" for w in pool.workers()))
        time.sleep(0.5)  # the two short items are done and their replies sent
        busy = [w for w in pool.workers() if w.state == "busy" and w.pid]
        assert len(busy) == 1, busy
        os.kill(busy[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
        runner.join(60)
        assert outcomes[:2] == [0.0, 0.0]  # finished before the kill: results kept
        if idempotent:  # the unfinished items ran once more on another worker
            assert outcomes[2:] == pytest.approx([1.0, 0.0], abs=0.1)
        else:
            assert all(isinstance(o, WorkerCrashedError) for o in outcomes[2:]), outcomes
    wait_for(lambda: all(w.state == "ready" for w in pool.workers()), 30.0)


# --- submit and executors -------------------------------------------------------------------------

def test_submitted_futures_work_with_as_completed_and_wait(pool: Pool) -> None:
    futures = [pool.submit("sleep", {"seconds": s}) for s in (0.3, 0.0, 0.1)]
    done, _ = wait(futures, timeout=30, return_when=FIRST_COMPLETED)
    assert done
    finished = [f.result() for f in as_completed(futures, timeout=30)]
    assert sorted(finished) == pytest.approx([0.0, 0.1, 0.3], abs=0.05)
    failing = pool.submit("fail", {"message": "per future"})
    with pytest.raises(ToolError, match="per future"):
        failing.result(30)


def test_a_future_cancelled_while_queued_never_runs(pool: Pool) -> None:
    with pool.executor(max_in_flight=1) as ex:
        blocker = ex.submit("sleep", {"seconds": 1.0})  # long enough to cancel behind it
        counted = [ex.submit("session_counter", session_id="fanout-cancel") for _ in range(4)]
        assert counted[1].cancel() and counted[3].cancel()
    assert blocker.result() == 1.0
    assert [counted[0].result(), counted[2].result()] == [1, 2]
    assert counted[1].cancelled() and counted[3].cancelled()
    # the worker-side counter proves the cancelled two never ran
    assert pool.execute("session_counter", session_id="fanout-cancel") == 3


def test_shutdown_cancels_queued_work_on_request_and_refuses_new_work(pool: Pool) -> None:
    ex = pool.executor(max_in_flight=1, chunksize=8)
    running = ex.submit("sleep", {"seconds": 1.0})  # still running when we shut down
    wait_for(running.running)
    queued = [ex.submit("echo", {"i": i}) for i in range(5)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result() == 1.0
    assert all(f.cancelled() for f in queued)
    with pytest.raises(PoolClosedError, match="executor was shut down") as caught:
        ex.submit("echo", {})
    assert caught.value.reason == "executor_shut_down"
    with pool.executor(chunksize=8) as batched:  # queued submits travel in batches
        futures = [batched.submit("echo", {"i": i}) for i in range(40)]
    assert [f.result()["i"] for f in futures] == list(range(40))
    assert pool.execute("echo", {"still": "open"}) == {"still": "open"}


def test_shutdown_with_cancel_futures_stops_the_executors_maps(pool: Pool) -> None:
    ex = pool.executor(max_in_flight=1)
    results = ex.map("sleep", ({"seconds": 0.05} for _ in range(1000)), chunksize=1)
    assert next(results) == pytest.approx(0.05, abs=0.05)
    ex.shutdown(wait=True, cancel_futures=True)
    outcomes = []
    with pytest.raises(RequestCancelledError):
        for value in results:
            outcomes.append(value)
    assert len(outcomes) < 20


# --- asyncio --------------------------------------------------------------------------------------

def test_the_asyncio_forms_give_the_same_results_without_blocking_the_loop(pool: Pool) -> None:
    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        beat = asyncio.ensure_future(ticker())
        values = await pool.map_async("sleep", [{"seconds": 0.1}] * 4, chunksize=1)
        assert values == pytest.approx([0.1] * 4, abs=0.05)
        streamed = [v async for v in pool.map_async("echo", [{"i": i} for i in range(9)],
                                                    chunksize=2, ordered=False)]
        assert sorted(v["i"] for v in streamed) == list(range(9))
        assert await pool.submit_async("add", {"a": 2, "b": 3}) == 5
        with pytest.raises(ToolError):
            await pool.submit_async("fail", {})
        beat.cancel()
        assert ticks >= 5  # the loop kept running while results were awaited

    asyncio.run(main())


def test_cancelling_an_awaiting_task_cancels_its_queued_request(pool: Pool) -> None:
    async def main() -> tuple[Future[object], list[asyncio.Task[object]]]:
        with pool.executor(max_in_flight=1) as ex:
            blocker = ex.submit("sleep", {"seconds": 1.0})
            tasks = [asyncio.ensure_future(asyncio.wrap_future(
                ex.submit("session_counter", session_id="fanout-async-cancel")))
                for _ in range(2)]
            await asyncio.sleep(0)
            tasks[1].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return blocker, tasks

    blocker, tasks = asyncio.run(main())
    assert blocker.result() == 1.0 and tasks[0].result() == 1 and tasks[1].cancelled()
    assert pool.execute("session_counter", session_id="fanout-async-cancel") == 2


# --- the actor path, and closing ------------------------------------------------------------------

def test_on_the_actor_path_map_and_submit_work_and_close_fails_queued_work() -> None:
    with Pool.start(PoolConfig(name="fanout-actor", pool_size=2, data_path="actor")) as small:
        args = [{"i": i} for i in range(12)]
        assert list(small.map("echo", args, chunksize=5)) == args
        outcomes = list(small.map("fail", [{"message": "m"}] * 2, return_exceptions=True))
        assert all(isinstance(o, ToolError) for o in outcomes)
        ex = small.executor(max_in_flight=1)
        running = ex.submit("sleep", {"seconds": 1.0})  # still running at close
        wait_for(running.running)
        queued = [ex.submit("echo", {"i": i}) for i in range(3)]
    assert running.result() == 1.0  # in flight at close: it finished
    for future in queued:
        with pytest.raises(PoolClosedError):
            future.result(10)
    with pytest.raises(PoolClosedError):
        small.map("echo", [{}])
