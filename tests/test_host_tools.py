"""Host tools: adapters call Python functions of the pool's process over the callback gRPC
service, with results, errors and timeouts passed back."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snakepit_actors import Pool, PoolConfig, RequestTimeoutError, ToolError
from snakepit_actors.client.host_tools import HostToolServer
from snakepit_actors.errors import InvalidArgumentsError

from .conftest import _LIVE_POOLS


@pytest.fixture(scope="module")
def host_pool() -> Iterator[Pool]:
    with Pool.start(PoolConfig(name="host", pool_size=1)) as pool:
        _LIVE_POOLS.append(pool)  # a recycled worker is not a leak of one test
        seen: list[str] = []

        def lookup(key: str) -> dict[str, object]:
            seen.append(key)
            return {"key": key, "pid": os.getpid()}

        def explode(why: str) -> None:
            raise RuntimeError(f"host side: {why}")

        pool.register_host_tool("lookup", lookup)
        pool.register_host_tool("explode", explode)
        pool.register_host_tool("slow", lambda seconds: time.sleep(seconds))
        try:
            yield pool
        finally:
            _LIVE_POOLS.remove(pool)


def test_a_host_tool_round_trip_runs_in_the_pool_process(host_pool: Pool) -> None:
    result = host_pool.execute("host", {"name": "lookup", "key": "k1"}, timeout=10)
    assert result == {"key": "k1", "pid": os.getpid()}


def test_the_host_tool_socket_is_private_to_its_user(host_pool: Pool) -> None:
    mode = os.stat(os.path.join(host_pool._run_dir, "host-tools.sock")).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_a_raising_host_tool_reaches_the_caller_with_its_type_and_message(
        host_pool: Pool) -> None:
    with pytest.raises(ToolError) as caught:
        host_pool.execute("host", {"name": "explode", "why": "no"}, timeout=10)
    assert "RuntimeError" in str(caught.value) and "host side: no" in str(caught.value)


def test_an_unknown_host_tool_is_named_with_the_registered_ones(host_pool: Pool) -> None:
    with pytest.raises(ToolError) as caught:
        host_pool.execute("host", {"name": "nope"}, timeout=10)
    text = str(caught.value)
    assert "unknown host tool 'nope'" in text and "lookup" in text


def test_a_host_tool_call_times_out_with_a_clear_error(host_pool: Pool) -> None:
    with pytest.raises(ToolError) as caught:
        host_pool.execute("host", {"name": "slow", "seconds": 2, "timeout": 0.3}, timeout=10)
    assert "TimeoutError" in str(caught.value)


def test_a_host_tool_call_without_timeout_gets_the_rest_of_the_request_deadline(
        host_pool: Pool) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        host_pool.execute("host", {"name": "slow", "seconds": 3}, timeout=0.8)
    # the host call ends with the request's own deadline: the caller sees the request time out
    assert time.monotonic() - started < 2.5


def test_registering_a_host_tool_with_a_bad_name_or_function_is_a_typed_error(
        tmp_path: Path) -> None:
    server = HostToolServer(str(tmp_path), 1024)
    try:
        with pytest.raises(InvalidArgumentsError, match="non-empty str") as bad_name:
            server.register("", print)
        assert bad_name.value.reason == "invalid_name"
        with pytest.raises(InvalidArgumentsError, match="must be a function") as bad_fn:
            server.register("lookup", "not callable")  # type: ignore[arg-type]
        assert bad_fn.value.reason == "invalid_fn"
    finally:
        server.stop()


def test_an_async_host_tool_runs_on_the_loop_it_was_registered_from(host_pool: Pool) -> None:
    async def main() -> list[object]:
        loop = asyncio.get_running_loop()

        async def where(tag: str) -> dict[str, object]:
            await asyncio.sleep(0.01)
            return {"tag": tag, "same_loop": asyncio.get_running_loop() is loop}

        async def stuck() -> None:
            await asyncio.sleep(30)

        host_pool.register_host_tool("where", where)
        host_pool.register_host_tool("stuck", stuck)
        first = await host_pool.execute_async("host", {"name": "where", "tag": "a"}, timeout=10)
        with pytest.raises(ToolError) as caught:  # cancelled at the host call's own timeout
            await host_pool.execute_async("host", {"name": "stuck", "timeout": 0.3}, timeout=10)
        return [first, str(caught.value)]

    first, stuck = asyncio.run(main())
    assert first == {"tag": "a", "same_loop": True}
    assert "TimeoutError" in stuck or "DEADLINE" in stuck, stuck


def test_an_async_host_tool_registered_outside_a_loop_runs_in_its_own(host_pool: Pool) -> None:
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return 2 * n

    host_pool.register_host_tool("double", double)
    assert host_pool.execute("host", {"name": "double", "n": 21}, timeout=10) == 42


def test_an_async_host_tool_whose_loop_has_closed_fails_with_a_clear_error(
        host_pool: Pool) -> None:
    async def main() -> None:
        async def gone() -> str:
            return "never"

        host_pool.register_host_tool("gone", gone)

    asyncio.run(main())  # the loop it was registered on is closed now
    with pytest.raises(ToolError, match="event loop this async host tool was registered on is "
                                        "closed"):
        host_pool.execute("host", {"name": "gone"}, timeout=10)
