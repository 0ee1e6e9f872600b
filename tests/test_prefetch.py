"""Sending requests ahead (``PoolConfig.prefetch``) in the scheduler and the Pool's core: only
what would otherwise queue goes ahead, never more than ``prefetch`` per worker, it counts as
queued, and a request sent ahead that never started is re-queued when its worker dies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakepit_actors.config import PoolConfig
from snakepit_actors.core.pool_core import PoolCore
from snakepit_actors.core.pool_decisions import Reply, Run
from snakepit_actors.core.scheduling import Scheduler
from snakepit_actors.core.scheduling_decisions import Dispatch, Queued, Rejected
from snakepit_actors.errors import WorkerCrashedError
from snakepit_actors.messages import Checkin, Execute, WorkerReady

pytestmark = pytest.mark.timeout(60)


def scheduler(workers: int = 1, capacity: int = 1, prefetch: int = 2,
              max_queue: int = 100) -> Scheduler[str]:
    s: Scheduler[str] = Scheduler(capacity=capacity, prefetch=prefetch, max_queue=max_queue)
    for i in range(workers):
        s.add_worker(f"w{i}", 0.0)
    return s


def test_an_idle_worker_takes_a_request_in_a_regular_slot_whether_or_not_it_may_go_ahead(
        ) -> None:
    s = scheduler()
    assert s.submit("r1", "r1", 0.0, ahead=True) == Dispatch("w0", "r1", "r1")
    assert s.queued == 0


def test_a_request_that_would_queue_goes_ahead_to_the_busy_worker_up_to_prefetch() -> None:
    s = scheduler(prefetch=2)
    s.submit("r1", "r1", 0.0, ahead=True)
    assert s.submit("r2", "r2", 0.0, ahead=True) == Dispatch("w0", "r2", "r2")
    assert s.submit("r3", "r3", 0.0, ahead=True) == Dispatch("w0", "r3", "r3")
    assert isinstance(s.submit("r4", "r4", 0.0, ahead=True), Queued)
    assert s.queued == 3  # two sent ahead, one in the Pool's queue
    assert s.in_flight("w0") == 3


def test_a_request_that_may_not_go_ahead_queues_and_keeps_its_place_in_line() -> None:
    s = scheduler(prefetch=2)
    s.submit("r1", "r1", 0.0, ahead=True)
    assert isinstance(s.submit("lease", "lease", 0.0, expires=False), Queued)
    assert isinstance(s.submit("r2", "r2", 0.0, ahead=True), Queued)  # not past the lease
    assert s.checkin("w0", "r1", 0.1) == [Dispatch("w0", "lease", "lease")]


def test_nothing_goes_ahead_to_a_worker_holding_a_lease_or_a_stream() -> None:
    s = scheduler(workers=1, prefetch=2)
    s.submit("lease", "lease", 0.0, expires=False)  # its calls bypass the Worker's threads
    assert isinstance(s.submit("r1", "r1", 0.0, ahead=True), Queued)
    assert s.checkin("w0", "lease", 0.1) == [Dispatch("w0", "r1", "r1")]
    assert s.submit("r2", "r2", 0.1, ahead=True) == Dispatch("w0", "r2", "r2")


def test_sent_ahead_counts_toward_max_queue() -> None:
    s = scheduler(prefetch=2, max_queue=1)
    s.submit("r1", "r1", 0.0, ahead=True)
    s.submit("r2", "r2", 0.0, ahead=True)
    assert s.submit("r3", "r3", 0.0, ahead=True) == Rejected("queue_full")


def test_a_check_in_of_a_worker_still_over_capacity_frees_a_slot_ahead_only() -> None:
    s = scheduler(prefetch=1)
    s.submit("r1", "r1", 0.0, ahead=True)
    s.submit("r2", "r2", 0.0, ahead=True)
    s.submit("r3", "r3", 0.0, ahead=True)  # queued
    assert s.checkin("w0", "r1", 0.1) == [Dispatch("w0", "r3", "r3")]
    assert s.free_slots == 0 and s.in_flight("w0") == 2
    assert s.submit("x", "x", 0.1) == Queued(2)  # not ahead: waits for a regular slot


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3), st.integers(1, 2), st.integers(0, 3),
       st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 99)), max_size=60))
def test_no_worker_ever_holds_more_than_capacity_plus_prefetch_and_nothing_is_lost(
        workers: int, capacity: int, prefetch: int,
        steps: list[tuple[bool, bool, int]]) -> None:
    s = scheduler(workers, capacity, prefetch, max_queue=1000)
    running: dict[str, str] = {}  # request -> worker
    submitted = finished = 0
    for submit, ahead, pick in steps:
        if submit or not running:
            rid = f"r{submitted}"
            submitted += 1
            d = s.submit(rid, rid, 0.0, ahead=ahead, expires=False)
            if isinstance(d, Dispatch):
                running[d.request_id] = d.worker_id
                assert ahead or s.in_flight(d.worker_id) <= capacity
        else:
            rid = sorted(running)[pick % len(running)]
            finished += 1
            for d in s.checkin(running.pop(rid), rid, 0.0):
                running[d.request_id] = d.worker_id
        for i in range(workers):
            assert s.in_flight(f"w{i}") <= capacity + prefetch
        over = sum(max(0, s.in_flight(f"w{i}") - capacity) for i in range(workers))
        # waiting in line or sent ahead: every request is running, waiting or finished
        assert s.queued == submitted - finished - len(running) + over


def _core(prefetch: int = 2) -> PoolCore:
    core = PoolCore(PoolConfig(name="t", pool_size=1, prefetch=prefetch), pool="@pool")
    core.start(0.0)
    core.worker_ready(WorkerReady("w1", "@w1", 100, "unix:/w1", 0, 1.0), 0.0)
    return core


def _runs(decisions: list[Any]) -> list[Run]:
    return [d for d in decisions if isinstance(d, Run)]


def test_the_core_sends_ahead_unary_requests_only_and_gives_them_a_queue_deadline() -> None:
    core = _core()
    assert _runs(core.execute(Execute("r1", "echo"), "@c", 0.0))[0].message \
        .queue_deadline_unix_s is None  # starts at once
    ahead = _runs(core.execute(Execute("r2", "echo"), "@c", 0.0))
    assert ahead and ahead[0].message.queue_deadline_unix_s == pytest.approx(5.0)
    assert not _runs(core.execute(Execute("s", "echo", stream=True), "@c", 0.0))
    assert not _runs(core.execute(Execute("t", "echo", session_id="s1"), "@c", 0.0))
    assert core.stats("").queued == 3


def test_a_request_sent_ahead_that_never_ran_is_run_again_when_its_worker_dies() -> None:
    core = _core()
    core.execute(Execute("r1", "echo"), "@c", 0.0)
    core.execute(Execute("r2", "echo"), "@c", 0.0)
    crash = WorkerCrashedError("w1 died", details={"worker_id": "w1"})
    running = core.checkin(Checkin("w1", "r1", False, 0.0, worker_lost=True, crash=crash), 0.1)
    assert next(r.message for r in running if isinstance(r, Reply)).error is crash
    waiting = core.checkin(Checkin("w1", "r2", False, 0.0, worker_lost=True, crash=crash,
                                   never_ran=True), 0.1)
    assert not [d for d in waiting if isinstance(d, Reply)]  # queued for the next worker
    again = core.worker_ready(WorkerReady("w1", "@w1b", 101, "unix:/w1", 1, 2.0), 0.2)
    assert [r.message.request.request_id for r in _runs(again)] == ["r2"]


def test_the_time_a_worker_held_a_check_in_back_is_not_counted_as_latency() -> None:
    core = _core()
    core.execute(Execute("r1", "echo"), "@c", 0.0)
    core.checkin(Checkin("w1", "r1", True, 5.0, held_ms=900.0), 1.0)
    assert core.stats("").latency_p50_ms == pytest.approx(100.0)
