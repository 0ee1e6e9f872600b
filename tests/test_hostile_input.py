"""Hostile input against a real pool: every request ends in a result or a typed
``SnakepitError`` (never a bare ``RecursionError``/``TypeError``, never a silent conversion), and
the pool serves afterwards. Also: worker output bounded on disk, and a hung (SIGSTOPped) worker
given up within ``heartbeat_interval x heartbeat_misses`` (+1 s).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakepit_actors import (
    ConfigError,
    InvalidArgumentsError,
    PayloadTooLargeError,
    Pool,
    PoolConfig,
    SerializationError,
    SnakepitError,
)
from snakepit_actors.messages import Execute

from .conftest import _LIVE_POOLS

pytestmark = pytest.mark.timeout(120)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def pool(data_path: str) -> Iterator[Pool]:
    started = Pool.start(PoolConfig(name="hostile", pool_size=2, queue_timeout=10.0,
                                    max_payload_bytes=1024 * 1024,
                                    data_path=data_path))  # type: ignore[arg-type]
    _LIVE_POOLS.append(started)
    try:
        yield started
    finally:
        _LIVE_POOLS.remove(started)
        started.close()


# --- arguments ---------------------------------------------------------------------------------

def test_arguments_nested_10000_deep_are_a_serialization_error_not_a_recursion_error(
        pool: Pool) -> None:
    with pytest.raises(SerializationError) as caught:
        pool.execute("echo", {"x": nested(10_000)})
    assert caught.value.reason == "args" and "nest too deeply" in caught.value.message


def test_nan_in_arguments_is_refused_naming_its_path(pool: Pool) -> None:
    with pytest.raises(SerializationError) as caught:
        pool.execute("echo", {"x": [0, 1, 2, math.nan]})
    assert caught.value.reason == "args" and "args.x[3] is nan" in caught.value.message


def test_a_non_string_key_in_arguments_is_refused_not_converted(pool: Pool) -> None:
    with pytest.raises(SerializationError) as caught:
        pool.execute("echo", {"x": {1: 2}})
    assert caught.value.reason == "args" and "args.x has the key 1 (int)" in caught.value.message


@pytest.mark.parametrize(("name", "value"), [
    ("timeout", "5"), ("timeout", math.nan), ("timeout", math.inf), ("timeout", -1),
    ("timeout", 0), ("timeout", True), ("session_id", 5), ("session_id", ""),
    ("idempotent", "yes"), ("idempotent", None)])
def test_a_parameter_of_the_wrong_type_or_value_is_an_invalid_arguments_error_naming_it(
        pool: Pool, name: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentsError) as caught:
        pool.execute("echo", {}, **{name: value})
    assert caught.value.reason == f"invalid_{name}"
    assert caught.value.message.startswith(f"{name} must be")
    assert repr(value) in caught.value.message


def test_the_async_and_streaming_calls_check_their_parameters_too(pool: Pool) -> None:
    with pytest.raises(InvalidArgumentsError):
        asyncio.run(pool.execute_async("echo", {}, timeout="5"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentsError):
        list(pool.execute_stream("echo", {}, session_id=5))  # type: ignore[arg-type]

    async def consume() -> None:
        async for _ in pool.execute_stream_async("echo", {}, timeout=math.nan):
            pass

    with pytest.raises(InvalidArgumentsError):
        asyncio.run(consume())


def test_the_session_api_checks_its_parameters(pool: Pool) -> None:
    with pytest.raises(InvalidArgumentsError, match="ttl must be"):
        pool.create_session("s1", ttl=-5)
    with pytest.raises(InvalidArgumentsError, match="session_id must be"):
        pool.get_session(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentsError, match="metadata must be"):
        pool.create_session("s1", metadata={"n": 1})  # type: ignore[dict-item]


def test_an_execute_message_with_bad_fields_is_refused_by_the_pool_with_a_typed_error(
        pool: Pool) -> None:
    """As an actor sends it (the handle's gateway is an actor-side sender)."""
    for bad in (Execute("m1", "echo", {}, timeout_s="5"),  # type: ignore[arg-type]
                Execute("m2", "echo", [1, 2]),  # type: ignore[arg-type]
                Execute("m3", "echo", {}, session_id=7),  # type: ignore[arg-type]
                Execute("m4", "echo", {}, deadline_unix_s=math.nan)):
        future = pool._gateway.submit(pool._pool, bad)
        with pytest.raises(InvalidArgumentsError, match=f"Execute '{bad.request_id}'"):
            future.result(10)
    assert pool.execute("echo", {"x": 1}) == {"x": 1}


def test_pool_start_refuses_a_config_that_is_not_a_pool_config() -> None:
    with pytest.raises(ConfigError, match="config must be a PoolConfig or None, got 'x'"):
        Pool.start("x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_progress must be a function"):
        Pool.start(PoolConfig(pool_size=1), on_progress=5)  # type: ignore[arg-type]


def test_close_and_recycle_check_their_parameters(pool: Pool) -> None:
    with pytest.raises(InvalidArgumentsError, match="timeout must be"):
        pool.close(timeout="x")  # type: ignore[arg-type]
    assert not pool.closed
    with pytest.raises(InvalidArgumentsError, match="worker_id must be"):
        pool.recycle(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentsError, match="timeout must be"):
        pool.recycle(pool.workers()[0].worker_id, timeout=math.nan)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("request_timeout", math.inf, "request_timeout must be None or a number of seconds > 0"),
    ("startup_timeout", math.inf, "startup_timeout must be a number of seconds > 0"),
    ("adapter_config", {"x": [math.nan]}, "adapter_config.x[0] is nan"),
    ("adapter_config", {1: 2}, "adapter_config has the key 1 (int)")])
def test_a_pool_config_refuses_infinite_seconds_and_an_adapter_config_that_is_not_json(
        field: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PoolConfig(**{field: value})
    assert says in caught.value.message


@pytest.mark.parametrize(("msg", "error", "says"), [
    (Execute("j1", "echo", {"x": math.nan}), SerializationError, "args.x is nan"),
    (Execute("j2", "echo", {"x": {1: 2}}), SerializationError, "args.x has the key 1"),
    (Execute("j3", "echo", {"x": nested(5000)}), SerializationError, "cannot be sent"),
    (Execute("j4", "echo", {}, args_json=b'{"x": NaN}'), SerializationError, "NaN"),
    (Execute("j5", "echo", {}, args_json=b"[1]"), InvalidArgumentsError, "JSON object")])
def test_an_execute_message_whose_args_break_the_json_rule_gets_a_typed_error(
        pool: Pool, msg: Execute, error: type[SnakepitError], says: str) -> None:
    with pytest.raises(error, match=re.escape(says)) as caught:
        pool._gateway.submit(pool._pool, msg).result(10)
    assert caught.value.reason in ("args", "invalid_arguments")
    assert pool.execute("echo", {"x": 1}) == {"x": 1}


# --- results -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "says"), [
    ("nan", "result is nan"), ("inf", "result[1] is inf"),
    ("int_keys", "result has the key 1 (int)"), ("deep", "nest too deeply")])
def test_a_result_against_the_json_rule_is_a_serialization_error_with_reason_result(
        pool: Pool, kind: str, says: str) -> None:
    with pytest.raises(SerializationError) as caught:
        pool.execute("odd_result", {"kind": kind})
    assert caught.value.reason == "result" and says in caught.value.message


def test_a_result_over_the_payload_limit_says_reason_result(pool: Pool) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        pool.execute("big", {"size": 2 * 1024 * 1024})
    assert caught.value.reason == "result"


# --- fuzz --------------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                     st.floats(allow_nan=True, allow_infinity=True))
_keys = st.one_of(st.text(max_size=4), st.integers(), st.none(), st.booleans())
_values = st.recursive(
    st.one_of(_scalars, st.binary(max_size=4), st.sets(st.integers(), max_size=2)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=12)
_timeouts = st.one_of(st.none(), st.floats(min_value=5, max_value=30),
                      st.sampled_from([0, -1, math.nan, math.inf, "5", True, [1]]))
_sessions = st.one_of(st.none(), st.text(min_size=1, max_size=6), st.sampled_from(["", 3]))
_flags = st.one_of(st.booleans(), st.sampled_from([None, 1, "no"]))
_tools = st.one_of(st.sampled_from(["echo", "echo", "echo", "odd_result", "nope", ""]),
                   st.none(), st.integers())


def _json_form(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_form(v) for v in value]
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_values, tool=_tools, timeout=_timeouts, session_id=_sessions,
       idempotent=_flags, how=st.sampled_from(["execute", "execute_async", "execute_stream"]))
def test_any_input_ends_in_a_result_or_a_typed_error_and_the_pool_serves_on(
        pool: Pool, value: Any, tool: Any, timeout: Any, session_id: Any, idempotent: Any,
        how: str) -> None:
    args = {"kind": value} if tool == "odd_result" else {"v": value}
    kwargs: dict[str, Any] = {"timeout": timeout, "session_id": session_id}
    try:
        if how == "execute":
            result = pool.execute(tool, args, idempotent=idempotent, **kwargs)
        elif how == "execute_async":
            result = asyncio.run(pool.execute_async(tool, args, idempotent=idempotent, **kwargs))
        else:
            [result] = list(pool.execute_stream(tool, args, **kwargs))
    except SnakepitError:
        pass
    else:
        assert tool == "echo" and result == _json_form(args)
    assert pool.execute("echo", {"ok": 1}) == {"ok": 1}


# --- worker output and heartbeats ---------------------------------------------------------------

def _log_path(pool: Pool) -> str:
    worker = pool.workers()[0]
    return os.path.join(os.path.dirname(worker.endpoint.split(":", 1)[1]),
                        worker.worker_id + ".log")


def test_a_tool_writing_50_mb_leaves_at_most_twice_the_cap_on_disk() -> None:
    cap = 1024 * 1024
    with Pool.start(PoolConfig(name="loud", pool_size=1, heartbeat_interval=0.3,
                               worker_log_max_bytes=cap)) as loud:
        log = _log_path(loud)
        assert loud.execute("shout", {"mb": 50}, timeout=60) >= 50 * 1024 * 1024
        deadline = time.monotonic() + 10
        while os.path.getsize(log) > cap and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.path.getsize(log) <= cap
        assert os.path.getsize(log + ".1") == cap
        assert loud.execute("echo", {"x": 1}) == {"x": 1}


def test_a_sigstopped_worker_is_given_up_within_interval_times_misses_plus_a_second() -> None:
    interval, misses = 1.0, 2
    with Pool.start(PoolConfig(name="hung", pool_size=1, heartbeat_interval=interval,
                               heartbeat_misses=misses)) as hung:
        victim = hung.workers()[0].pid
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            while time.monotonic() - stopped < 15:
                if hung.workers()[0].state != "ready":
                    break
                time.sleep(0.05)
            given_up_s = time.monotonic() - stopped
        finally:
            if psutil.pid_exists(victim):
                os.kill(victim, signal.SIGCONT)
        # interval x misses + 1 s, and 0.5 s for the noisy machine and this polling (before the
        # fix it took about (misses + 2) x interval + 1 s)
        assert given_up_s < interval * misses + 1.5, given_up_s
