"""The Python handle end to end: real actors, real worker processes, real gRPC. Every test that
takes ``module_pool`` or ``data_path`` runs on both data paths ("direct" and "actor")."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from snakepit_actors import (
    ConfigError,
    InvalidArgumentsError,
    PayloadTooLargeError,
    Pool,
    PoolClosedError,
    PoolConfig,
    PoolNotReadyError,
    PoolSaturatedError,
    QueueTimeoutError,
    RequestTimeoutError,
    SerializationError,
    ToolError,
    UnknownToolError,
    WorkerCrashedError,
)
from snakepit_actors.config import DataPath

from .conftest import pool_pids, wait_for, wait_gone

pytestmark = pytest.mark.timeout(120)


# --- the showcase tools ---------------------------------------------------------------------

def test_echo_returns_its_arguments(module_pool: Pool) -> None:
    assert module_pool.execute("echo", {"x": 1, "s": "héllo", "l": [1, 2]}) == {
        "x": 1, "s": "héllo", "l": [1, 2]}


def test_ping_add_sleep_cpu_and_info_answer(module_pool: Pool) -> None:
    assert module_pool.execute("ping") == "pong"
    assert module_pool.execute("add", {"a": 2, "b": 40}) == 42
    assert module_pool.execute("sleep", {"seconds": 0.05}) == 0.05
    module_pool.execute("cpu", {"ms": 5})
    info = module_pool.execute("info")
    assert info["pid"] in {w.pid for w in module_pool.workers()}
    assert info["worker_id"].startswith("test_worker_")


def test_a_tool_that_raises_gives_tool_error_with_type_message_and_traceback(
        module_pool: Pool) -> None:
    with pytest.raises(ToolError) as caught:
        module_pool.execute("fail", {"message": "kaboom"})
    err = caught.value
    assert (err.python_type, err.python_message) == ("ValueError", "kaboom")
    assert "Traceback" in err.python_traceback and "kaboom" in err.python_traceback
    assert err.category == "tool"


def test_a_session_sticks_to_its_worker_and_keeps_its_state_there(module_pool: Pool) -> None:
    counts = [module_pool.execute("session_counter", session_id="s-a") for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5]
    assert module_pool.execute("session_counter", session_id="s-b") == 1


def test_big_results_and_async_tools_work(module_pool: Pool) -> None:
    assert len(module_pool.execute("big", {"size": 1_000_000})) == 1_000_000
    assert module_pool.execute("async_echo", {"k": "v"}) == {"k": "v"}


def test_crash_fails_only_that_request_and_the_worker_comes_back(module_pool: Pool) -> None:
    pids_before = {w.pid for w in module_pool.workers()}
    restarts_before = module_pool.stats().restarts
    with pytest.raises(WorkerCrashedError) as caught:
        module_pool.execute("crash", {"code": 7}, timeout=20)
    assert caught.value.details["worker_id"].startswith("test_worker_")
    assert caught.value.details["exit_code"] == 7
    wait_for(lambda: module_pool.stats().restarts == restarts_before + 1, timeout_s=20)
    workers = module_pool.workers()
    assert len(workers) == 4 and len({w.pid for w in workers} - pids_before) == 1
    assert module_pool.stats().workers == 4
    assert module_pool.execute("echo", {"after": "crash"}) == {"after": "crash"}


# --- concurrency: every caller gets its own reply -------------------------------------------

def test_200_requests_from_16_threads_each_get_their_own_result(module_pool: Pool) -> None:
    def call(i: int) -> tuple[int, dict[str, int]]:
        return i, module_pool.execute("echo", {"i": i, "t": threading.get_ident() % 1000})

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(call, range(200)))
    assert all(result["i"] == i for i, result in results)


def test_200_requests_from_64_asyncio_tasks_each_get_their_own_result(module_pool: Pool) -> None:
    async def main() -> list[tuple[int, dict[str, int]]]:
        sem = asyncio.Semaphore(64)

        async def call(i: int) -> tuple[int, dict[str, int]]:
            async with sem:
                return i, await module_pool.execute_async("echo", {"i": i})

        return await asyncio.gather(*(call(i) for i in range(200)))

    assert all(result["i"] == i for i, result in asyncio.run(main()))


# --- saturation and timeouts ----------------------------------------------------------------

def test_a_full_queue_refuses_with_pool_saturated_error(data_path: DataPath) -> None:
    cfg = PoolConfig(name="sat", pool_size=1, max_queue=1, data_path=data_path)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(2) as ex:
        running = ex.submit(pool.execute, "sleep", {"seconds": 1.0})
        wait_for(lambda: pool.stats().busy == 1)
        queued = ex.submit(pool.execute, "sleep", {"seconds": 0.0})
        wait_for(lambda: pool.stats().queued == 1)
        with pytest.raises(PoolSaturatedError) as caught:
            pool.execute("echo", {})
        assert "max_queue=1" in str(caught.value)
        assert running.result(10) == 1.0 and queued.result(10) == 0.0
        assert pool.stats().saturated == 1


def test_a_request_that_waits_past_queue_timeout_gets_queue_timeout_error(
        data_path: DataPath) -> None:
    cfg = PoolConfig(name="qt", pool_size=1, queue_timeout=0.3, data_path=data_path)
    with Pool.start(cfg) as pool, ThreadPoolExecutor(1) as ex:
        running = ex.submit(pool.execute, "sleep", {"seconds": 2.5})
        wait_for(lambda: pool.stats().busy == 1)
        started = time.monotonic()
        with pytest.raises(QueueTimeoutError) as caught:
            pool.execute("echo", {})
        assert 0.2 < time.monotonic() - started < 1.4
        assert isinstance(caught.value, TimeoutError) and caught.value.category == "pool"
        with pytest.raises(QueueTimeoutError):  # not mistaken for the handle's own wait ending
            asyncio.run(pool.execute_async("echo", {}))
        assert running.result(10) == 2.5
        assert pool.stats().queue_timeouts == 2


def test_a_request_past_its_deadline_gets_request_timeout_error_and_the_pool_recovers(
        data_path: DataPath) -> None:
    with Pool.start(PoolConfig(name="rt", pool_size=1, data_path=data_path)) as pool:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            pool.execute("sleep", {"seconds": 30}, timeout=0.5)
        assert time.monotonic() - started < 5
        assert pool.execute("echo", {"ok": True}, timeout=30) == {"ok": True}


def test_a_tool_that_stops_at_its_deadline_keeps_its_warm_process(data_path: DataPath) -> None:
    """``sleep`` watches ``ctx.cancelled``: after the timeout the process is idle again, so
    the worker keeps it (no restart, same pid) instead of paying a cold start."""
    with Pool.start(PoolConfig(name="keep", pool_size=1, data_path=data_path)) as pool:
        [before] = pool.workers()
        with pytest.raises(RequestTimeoutError):
            pool.execute("sleep", {"seconds": 30}, timeout=0.5)
        assert pool.execute("echo", {"ok": 1}, timeout=30) == {"ok": 1}
        [after] = pool.workers()
        assert (after.pid, after.restarts, pool.stats().restarts) == (before.pid, 0, 0)


def test_a_tool_that_ignores_its_deadline_has_its_process_recycled(data_path: DataPath) -> None:
    """``cpu`` never looks at ``ctx.cancelled``: still running after ``cancel_grace_s``, its
    process is replaced (the only way to stop it); the pool serves on."""
    cfg = PoolConfig(name="stuck", pool_size=1, data_path=data_path, cancel_grace_s=0.3)
    with Pool.start(cfg) as pool:
        [before] = pool.workers()
        t0 = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            pool.execute("cpu", {"ms": 20000}, timeout=0.5)
        assert time.monotonic() - t0 < 5
        assert pool.execute("echo", {"ok": 2}, timeout=30) == {"ok": 2}
        [after] = pool.workers()
        assert after.pid != before.pid
        assert wait_gone({before.pid}) == set()


# --- bad input ------------------------------------------------------------------------------

def test_an_unknown_tool_is_named_with_the_available_ones(module_pool: Pool) -> None:
    with pytest.raises(UnknownToolError) as caught:
        module_pool.execute("nope", {})
    assert "nope" in str(caught.value) and "echo" in str(caught.value)


def test_arguments_that_do_not_fit_the_tool_are_invalid(module_pool: Pool) -> None:
    with pytest.raises(InvalidArgumentsError):
        module_pool.execute("add", {"a": 1})
    with pytest.raises(InvalidArgumentsError):
        module_pool.execute("add", [1, 2])  # type: ignore[arg-type]


def test_non_json_arguments_and_results_are_serialization_errors(module_pool: Pool) -> None:
    with pytest.raises(SerializationError) as args_err:
        module_pool.execute("echo", {"s": {1, 2}})
    assert args_err.value.reason == "args"
    with pytest.raises(SerializationError) as result_err:
        module_pool.execute("bad_result", {})
    assert result_err.value.reason == "result"


def test_a_payload_over_the_limit_is_refused_before_sending(data_path: DataPath) -> None:
    cfg = PoolConfig(name="big", pool_size=1, max_payload_bytes=4096, data_path=data_path)
    with Pool.start(cfg) as pool:
        with pytest.raises(PayloadTooLargeError) as caught:
            pool.execute("echo", {"blob": "x" * 10_000})
        assert caught.value.details["limit_bytes"] == 4096
        with pytest.raises(PayloadTooLargeError):
            pool.execute("big", {"size": 10_000})
        assert pool.execute("echo", {"small": 1}) == {"small": 1}


def test_a_bad_config_names_every_invalid_field() -> None:
    with pytest.raises(ConfigError) as caught:
        PoolConfig(pool_size=0, adapter="showcase", queue_timeout=-1, transport="udp")  # type: ignore[arg-type]
    text = str(caught.value)
    for field in ("pool_size", "adapter", "queue_timeout", "transport"):
        assert field in text


def test_an_adapter_that_fails_to_import_fails_the_start_fast_with_its_error() -> None:
    started = time.monotonic()
    with pytest.raises(PoolNotReadyError) as caught:
        Pool.start(PoolConfig(name="badimport", pool_size=2, adapter="no_such_module.x:Adapter"))
    assert time.monotonic() - started < 15
    assert "no_such_module" in str(caught.value)


# --- lifecycle ------------------------------------------------------------------------------

def test_close_leaves_no_actor_or_worker_process(data_path: DataPath) -> None:
    pool = Pool.start(PoolConfig(name="close", pool_size=2, data_path=data_path))
    worker_pids = {w.pid for w in pool.workers()}
    pids = pool_pids(pool)
    assert worker_pids <= pids and len(pids) >= 2 + 7
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5.0
    assert wait_gone(pids) == set()
    with pytest.raises(PoolClosedError):
        pool.execute("echo", {})
    pool.close()  # idempotent


def test_two_pools_in_one_process_work_side_by_side(module_pool: Pool,
                                                   data_path: DataPath) -> None:
    with Pool.start(PoolConfig(name="second", pool_size=1, data_path=data_path)) as other:
        assert other.execute("echo", {"p": 2}) == {"p": 2}
        assert module_pool.execute("echo", {"p": 1}) == {"p": 1}
        assert other.admin_pid != module_pool.admin_pid


def test_stats_and_workers_describe_the_pool(module_pool: Pool) -> None:
    module_pool.execute("echo", {})
    stats = module_pool.stats()
    assert stats.workers == 4 and stats.requests >= 1 and stats.latency_p50_ms > 0
    workers = module_pool.workers()
    assert [w.worker_id for w in workers] == sorted(w.worker_id for w in workers)
    assert all(w.pid > 0 and w.state in ("ready", "busy") for w in workers)



# --- streaming ------------------------------------------------------------------------------

def test_a_stream_yields_values_as_the_tool_produces_them(module_pool: Pool) -> None:
    started = time.monotonic()
    stream = module_pool.execute_stream("stream_progress", {"steps": 3, "delay": 0.3})
    first = next(stream)
    first_after = time.monotonic() - started
    rest = list(stream)
    assert [first, *rest] == [{"step": i, "of": 3} for i in (1, 2, 3)]
    assert first_after < time.monotonic() - started - 0.3  # the first came before the end


def test_a_stream_whose_tool_raises_raises_tool_error(module_pool: Pool) -> None:
    with pytest.raises(ToolError):
        list(module_pool.execute_stream("fail", {"message": "in a stream"}))


def test_leaving_a_stream_early_cancels_it_and_frees_the_worker(data_path: DataPath) -> None:
    cfg = PoolConfig(name="cancel", pool_size=1, queue_timeout=3.0, data_path=data_path)
    with Pool.start(cfg) as pool:
        for value in pool.execute_stream("stream_progress", {"steps": 1000, "delay": 0.05}):
            if value["step"] == 2:
                break
        assert pool.execute("echo", {"free": True}, timeout=5) == {"free": True}


def test_an_async_stream_yields_every_value(module_pool: Pool) -> None:
    async def main() -> list[object]:
        return [v async for v in module_pool.execute_stream_async("async_count", {"n": 4})]

    assert asyncio.run(main()) == [0, 1, 2, 3]
