"""Sessions and affinity on real pools (Thespian multiprocTCPBase, worker processes, gRPC):
the SessionStore, each affinity mode including dead workers, TTL, quota, global programs."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from snakepit_actors import (
    Pool,
    PoolConfig,
    SessionAffinityError,
    SessionNotFoundError,
    SessionQuotaError,
)
from snakepit_actors.config import DataPath
from snakepit_actors.telemetry import subscribe

from .conftest import _LIVE_POOLS, wait_for


@pytest.fixture(scope="module")
def strict_pool(data_path: DataPath) -> Iterator[Pool]:
    cfg = PoolConfig(name="strictq", pool_size=2, affinity="strict_queue", queue_timeout=20.0,
                     data_path=data_path)
    pool = Pool.start(cfg)
    _LIVE_POOLS.append(pool)  # its restarted workers are not leaks of one test
    try:
        yield pool
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()


def test_a_session_counter_sticks_to_one_worker_for_200_requests_under_other_load(
        strict_pool: Pool) -> None:
    stop = threading.Event()

    def other_load() -> int:
        n = 0
        while not stop.is_set():
            strict_pool.execute("sleep", {"seconds": 0.002}, timeout=20)
            n += 1
        return n

    with ThreadPoolExecutor(3) as ex:
        loads = [ex.submit(other_load) for _ in range(3)]
        try:
            counts = [strict_pool.execute("session_counter", session_id="sticky", timeout=20)
                      for _ in range(200)]
        finally:
            stop.set()
        assert sum(f.result(30) for f in loads) > 0
    assert counts == list(range(1, 201))
    assert strict_pool.get_session("sticky").worker_id is not None


@pytest.mark.slow
def test_a_hint_session_stays_on_its_worker_under_competing_load_or_every_move_is_reported(
        data_path: DataPath, tmp_path: Path) -> None:
    """The scenario of issue 18: 3 workers, four threads calling ``sleep 0.01`` in a loop, one
    session calling 200 times in the default hint mode. Its worker frees within
    ``affinity_wait_s``, so the session should stay; a hold may still expire on a loaded
    machine, and then the move must be told: ctx, the ``session.moved`` event, the counter."""
    events = tmp_path / "moved.jsonl"

    def record(event: str, fields: dict[str, Any]) -> None:  # also runs in the actor processes
        with open(events, "a") as out:
            out.write(json.dumps({"session_id": fields.get("session_id")}) + "\n")

    unsubscribe = subscribe(record, {"session.moved"})
    cfg = PoolConfig(name="hintload", pool_size=3, queue_timeout=20.0, data_path=data_path)
    try:
        with Pool.start(cfg) as pool, ThreadPoolExecutor(4) as ex:
            stop = threading.Event()

            def other_load() -> int:
                n = 0
                while not stop.is_set():
                    pool.execute("sleep", {"seconds": 0.01}, timeout=20)
                    n += 1
                return n

            loads = [ex.submit(other_load) for _ in range(4)]
            try:
                visits = [pool.execute("session_visit", session_id="sticky", timeout=20)
                          for _ in range(200)]
            finally:
                stop.set()
            assert sum(f.result(30) for f in loads) > 0
            moves = pool.stats().session_moves
    finally:
        unsubscribe()
    counts = [v["counter"] for v in visits]
    moved = [v["moved"] for v in visits]
    reported = [e for e in map(json.loads, events.read_text().splitlines())
                ] if events.exists() else []
    if counts != list(range(1, 201)):  # every jump of the counter is a reported move
        assert counts[0] == 1 and not moved[0]
        assert moved[1:] == [c != p + 1 for p, c in itertools.pairwise(counts)]
    assert sum(moved) == moves == len(reported)
    assert all(e["session_id"] == "sticky" for e in reported)
    assert moves < 50  # loose on purpose; before issue 18 the direct path moved ~170 times


def test_strict_queue_waits_for_the_sessions_busy_worker_while_others_run(
        strict_pool: Pool) -> None:
    me = strict_pool.execute("info", session_id="q1", timeout=20)["worker_id"]
    with ThreadPoolExecutor(1) as ex:
        busy = ex.submit(strict_pool.execute, "sleep", {"seconds": 0.8}, session_id="q1",
                         timeout=20)
        time.sleep(0.2)
        other = strict_pool.execute("info", timeout=20)["worker_id"]
        started = time.monotonic()
        again = strict_pool.execute("info", session_id="q1", timeout=20)["worker_id"]
        waited = time.monotonic() - started
        assert busy.result(20) == 0.8
    assert again == me != other and waited > 0.3


def test_a_session_and_its_state_live_until_deleted_and_deleting_frees_it_on_the_worker(
        strict_pool: Pool) -> None:
    with strict_pool.session("ctx", metadata={"user": "u"}, data={"k": 1}) as session:
        assert [session.execute("session_counter") for _ in range(3)] == [1, 2, 3]
        info = session.info()
        assert (info.metadata, info.data) == ({"user": "u"}, {"k": 1})
        assert session.update({"k": 2}).data == {"k": 2}
        assert "ctx" in {s.session_id for s in strict_pool.list_sessions()}
    assert "ctx" not in {s.session_id for s in strict_pool.list_sessions()}
    with pytest.raises(SessionNotFoundError):
        strict_pool.get_session("ctx")
    assert strict_pool.delete_session("ctx") is False


def test_global_programs_are_shared_by_every_session(strict_pool: Pool) -> None:
    strict_pool.set_program("prompt", {"template": "Q: {q}"})
    assert strict_pool.get_program("prompt") == {"template": "Q: {q}"}
    assert strict_pool.get_program("missing", "dflt") == "dflt"
    assert strict_pool.delete_program("prompt") is True
    assert strict_pool.get_program("prompt") is None


def _kill_worker_of(pool: Pool, session_id: str) -> str:
    info = pool.execute("info", session_id=session_id, timeout=20)
    restarts = pool.stats().restarts
    os.kill(info["pid"], signal.SIGKILL)
    wait_for(lambda: pool.stats().restarts > restarts
             and all(w.state == "ready" for w in pool.workers()), 15.0)
    return str(info["worker_id"])


def test_strict_affinity_fails_naming_the_dead_worker_then_starts_afresh(
        strict_pool: Pool) -> None:
    assert strict_pool.execute("session_counter", session_id="dead", timeout=20) == 1
    worker_id = _kill_worker_of(strict_pool, "dead")
    with pytest.raises(SessionAffinityError) as caught:
        strict_pool.execute("session_counter", session_id="dead", timeout=20)
    assert caught.value.details["worker_id"] == worker_id and worker_id in str(caught.value)
    assert strict_pool.execute("session_counter", session_id="dead", timeout=20) == 1


def test_strict_fail_fast_refuses_at_once_while_the_sessions_worker_is_busy() -> None:
    cfg = PoolConfig(name="strictff", pool_size=2, affinity="strict_fail_fast")
    with Pool.start(cfg) as pool, ThreadPoolExecutor(1) as ex:
        pool.execute("ping", session_id="ff", timeout=20)
        busy = ex.submit(pool.execute, "sleep", {"seconds": 1.0}, session_id="ff", timeout=20)
        wait_for(lambda: pool.stats().busy == 1, 15.0)
        started = time.monotonic()
        with pytest.raises(SessionAffinityError) as caught:
            pool.execute("ping", session_id="ff", timeout=20)
        assert time.monotonic() - started < 0.5
        assert caught.value.reason == "worker_busy"
        assert pool.execute("ping", timeout=20) == "pong"  # the other worker is free
        assert busy.result(20) == 1.0
        assert pool.execute("ping", session_id="ff", timeout=20) == "pong"


def test_hint_affinity_re_pins_a_session_whose_worker_died(data_path: DataPath) -> None:
    cfg = PoolConfig(name="hintdead", pool_size=2, data_path=data_path)
    with Pool.start(cfg) as pool:
        assert [pool.execute("session_counter", session_id="h", timeout=20)
                for _ in range(3)] == [1, 2, 3]
        _kill_worker_of(pool, "h")
        assert [pool.execute("session_counter", session_id="h", timeout=20)
                for _ in range(3)] == [1, 2, 3]


def test_sessions_expire_after_their_ttl_from_last_access_and_the_quota_holds() -> None:
    # the TTL leaves room for a loaded machine: "a" must still exist when "c" is refused
    cfg = PoolConfig(name="ttl", pool_size=1, session_ttl=1.5, session_sweep_interval=0.1,
                     max_sessions=2)
    with Pool.start(cfg) as pool:
        pool.create_session("a")
        assert [pool.execute("session_counter", session_id="a") for _ in range(2)] == [1, 2]
        pool.create_session("b", ttl=60.0)
        with pytest.raises(SessionQuotaError, match="max_sessions=2"):
            pool.create_session("c")
        wait_for(lambda: [s.session_id for s in pool.list_sessions()] == ["b"], 20.0)
        with pytest.raises(SessionNotFoundError):
            pool.get_session("a")
        # expiry frees the state on the worker (CleanupSession is sent right after, without
        # waiting): the counter starts again
        wait_for(lambda: pool.execute("session_counter", session_id="a") == 1, 5.0)
