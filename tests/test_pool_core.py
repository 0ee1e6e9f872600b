"""PoolCore: the Pool's decisions driven directly, as the Pool actor drives them, and the actor's
handlers on their own. No actor system, no processes, no sleeps: time is a number, addresses are
strings, and every send is a record."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass, field, is_dataclass
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from thespian.actors import WakeupMessage

from snakepit_actors.config import PoolConfig
from snakepit_actors.core import timers
from snakepit_actors.core.lease_book import EXIT_STATUS_GRACE_S
from snakepit_actors.core.pool_core import PoolCore
from snakepit_actors.core.pool_decisions import (
    Announce,
    Decision,
    EndSession,
    Forward,
    GrantLease,
    Recall,
    Recycle,
    Reply,
    Revoke,
    Run,
    TouchSessions,
    WakeAt,
)
from snakepit_actors.core.pool_records import state_of
from snakepit_actors.core.request_desk import request_deadline
from snakepit_actors.errors import (
    PoolClosedError,
    PoolNotReadyError,
    PoolSaturatedError,
    QueueTimeoutError,
    SessionAffinityError,
    WorkerCrashedError,
)
from snakepit_actors.messages import (
    CancelRequest,
    Checkin,
    Execute,
    ExecuteFailed,
    GetSession,
    LeaseBatch,
    LeaseRefused,
    PoolStarted,
    PoolStartFailed,
    RequestLease,
    RequestRecycle,
    ReturnLease,
    SessionsEnded,
    StartProgress,
    WorkerAbandoned,
    WorkerExited,
    WorkerProcessLost,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.telemetry import subscribe
from snakepit_actors.tree.pool import Pool as PoolActor

pytestmark = pytest.mark.timeout(120)


def config(**overrides: Any) -> PoolConfig:
    # prefetch off: these specify the Pool's own queue (test_prefetch.py covers sending ahead)
    values: dict[str, Any] = {"name": "t", "pool_size": 2, "queue_timeout": 5.0, "prefetch": 0}
    return PoolConfig(**{**values, **overrides})


def ready(worker_id: str, pid: int = 100, restarts: int = 0) -> WorkerReady:
    return WorkerReady(worker_id, f"@{worker_id}", pid, f"unix:/{worker_id}", restarts, 1.0)


def started(cfg: PoolConfig | None = None, workers: tuple[str, ...] = ("w1", "w2"),
            store: str | None = None) -> PoolCore:
    core = PoolCore(cfg or config(pool_size=len(workers)), pool="@pool",
                    start_reply_to="@starter", session_store=store)
    core.start(0.0)
    for n, worker_id in enumerate(workers):
        core.worker_ready(ready(worker_id, pid=100 + n), 0.0)
    assert core.readiness.started
    return core


def of(kind: type, decisions: list[Decision]) -> list[Any]:
    return [d for d in decisions if isinstance(d, kind)]


def only(kind: type, decisions: list[Decision]) -> Any:
    found = of(kind, decisions)
    assert len(found) == 1, decisions
    return found[0]


def states(core: PoolCore) -> dict[str, str]:
    return {w.worker_id: w.state for w in core.worker_list().workers}


# --- a restarted WorkerRegistry or SessionStore -----------------------------------------------

def test_a_reannounced_worker_keeps_what_it_runs_and_a_new_process_replaces_it() -> None:
    from dataclasses import replace

    core = started()
    core.execute(Execute("r1", "echo"), "@caller", 1.0)
    again = replace(ready("w1", pid=100), reannounced=True)
    assert core.worker_ready(again, 2.0) == []  # the same process: r1 still runs there
    assert states(core)["w1"] == "busy"
    out = core.worker_ready(replace(ready("w1", pid=555), reannounced=True), 3.0)
    assert isinstance(only(Reply, out).message.error, WorkerCrashedError)  # a missed restart
    assert core.workers["w1"].pid == 555


def test_a_new_session_store_hears_every_pinned_session_at_once() -> None:
    core = started(store="@store")
    core.execute(Execute("r1", "echo", session_id="s1"), "@caller", 1.0)
    core.execute(Execute("r2", "echo", session_id="s2"), "@caller", 1.0)
    core.flush_sessions(2.0)
    touch = only(TouchSessions, core.sessions.store_replaced("@store2", 3.0))
    assert touch.to == "@store2"
    assert dict(touch.message.touches) == {"s1": "w1", "s2": "w2"}
    forward = only(Forward, core.session_command(GetSession("q", "s1"), "@caller", 4.0))
    assert forward.to == "@store2"


# --- requests and their one deadline ----------------------------------------------------------

def test_a_request_runs_on_a_free_worker_carrying_its_one_deadline() -> None:
    core = started()
    run = only(Run, core.execute(Execute("r1", "echo", timeout_s=2.0), "@caller", 10.0))
    assert (run.to, run.worker_id) == ("@w1", "w1")
    assert (run.message.reply_to, run.message.deadline_unix_s) == ("@caller", 12.0)
    assert states(core) == {"w1": "busy", "w2": "ready"}


def test_the_deadline_is_deadline_unix_s_else_timeout_s_else_the_pools_request_timeout() -> None:
    assert request_deadline(Execute("r", "t", deadline_unix_s=50.0, timeout_s=1.0), 10.0, 9) == 50
    assert request_deadline(Execute("r", "t", timeout_s=1.0), 10.0, 9.0) == 11.0
    assert request_deadline(Execute("r", "t"), 10.0, 9.0) == 19.0
    assert request_deadline(Execute("r", "t"), 10.0, None) is None


def test_a_retried_request_keeps_its_first_deadline() -> None:
    core = started(config(retry_idempotent=True))
    first = only(Run, core.execute(Execute("r1", "t", timeout_s=5.0), "@c", 0.0))
    crash = WorkerCrashedError("died", details={"worker_id": "w1"})
    again = only(Run, core.checkin(Checkin("w1", "r1", False, 0.0, True, crash), 3.0))
    assert again.worker_id == "w2" and again.message.deadline_unix_s == 5.0
    assert first.message.deadline_unix_s == 5.0


def test_a_request_before_the_pool_started_is_refused_as_starting() -> None:
    core = PoolCore(config(), pool="@pool", start_reply_to="@starter")
    reply = only(Reply, core.execute(Execute("r1", "t"), "@c", 0.0))
    assert isinstance(reply.message, ExecuteFailed)
    assert reply.message.error.reason == "starting" and core.counters.errors == 1


def test_a_queued_request_fails_at_its_queue_deadline_from_one_wake_up() -> None:
    core = started(config(pool_size=1, queue_timeout=1.0), workers=("w1",))
    core.execute(Execute("r1", "t"), "@c", 0.0)
    wake = only(WakeAt, core.execute(Execute("r2", "t"), "@c", 0.5))
    assert wake == WakeAt(1.5, timers.ExpireQueue())
    assert core.expire_queue(1.0) == [wake]  # woken early: nothing is due, it asks again
    reply = only(Reply, core.expire_queue(1.5))
    assert isinstance(reply.message.error, QueueTimeoutError)
    assert core.stats().queue_timeouts == 1 and core.stats().queued == 0


def test_a_full_queue_refuses_and_counts_the_pool_saturated() -> None:
    core = started(config(pool_size=1, max_queue=1), workers=("w1",))
    core.execute(Execute("r1", "t"), "@c", 0.0)
    core.execute(Execute("r2", "t"), "@c", 0.0)
    reply = only(Reply, core.execute(Execute("r3", "t"), "@c", 0.0))
    assert isinstance(reply.message.error, PoolSaturatedError) and core.stats().saturated == 1


def test_a_cancelled_request_fails_if_queued_and_is_passed_to_its_worker_if_running() -> None:
    core = started(config(pool_size=1), workers=("w1",))
    core.execute(Execute("r1", "t"), "@c", 0.0)
    core.execute(Execute("r2", "t"), "@c", 0.0)
    assert only(Reply, core.cancel(CancelRequest("r2"), 0.1)).message.error.reason \
        == "cancelled_queued"
    assert core.cancel(CancelRequest("r1"), 0.1) == [Forward("@w1", CancelRequest("r1"))]


def test_a_closed_pool_fails_what_is_queued_and_refuses_what_comes() -> None:
    core = started(config(pool_size=1), workers=("w1",))
    core.execute(Execute("r1", "t"), "@c", 0.0)
    core.execute(Execute("r2", "t"), "@c", 0.0)
    out = core.close("@closer", 1.0)
    assert [type(d.message).__name__ for d in out] == ["ExecuteFailed", "PoolClosed"]
    assert isinstance(out[0].message.error, PoolClosedError)
    refused = only(Reply, core.execute(Execute("r3", "t"), "@c", 2.0))
    assert isinstance(refused.message.error, PoolClosedError) and core.stats().state == "closed"


# --- start, degrade ---------------------------------------------------------------------------

def test_the_pool_announces_progress_then_started_once_pool_size_workers_are_ready() -> None:
    core = PoolCore(config(), pool="@pool", start_reply_to="@starter", report_progress=True)
    assert core.start(0.0) == [WakeAt(30.0, timers.StartupDeadline())]
    assert core.worker_ready(ready("w1"), 1.0) == [Announce("@starter", StartProgress(1, 2))]
    assert core.worker_ready(ready("w2", 101), 1.0) == [
        Announce("@starter", StartProgress(2, 2)), Announce("@starter", PoolStarted("@pool",
                                                                                    "t", 2))]
    assert core.startup_deadline(30.0) == [] and core.stats().state == "ready"


def test_a_pool_not_started_by_its_deadline_fails_to_start_once() -> None:
    core = PoolCore(config(), pool="@pool", start_reply_to="@starter")
    core.start(0.0)
    core.worker_ready(ready("w1"), 1.0)
    failed = only(Announce, core.startup_deadline(30.0)).message
    assert isinstance(failed, PoolStartFailed) and "1 of 2 workers" in str(failed.error)
    assert core.worker_start_failed(WorkerStartFailed("w2", PoolNotReadyError("x")), 31.0) == []


def test_a_pool_whose_starters_all_gave_up_is_degraded_until_a_worker_is_back() -> None:
    core = started()
    core.execute(Execute("r1", "t"), "@c", 0.0)
    core.execute(Execute("r2", "t"), "@c", 0.0)
    core.execute(Execute("r3", "t"), "@c", 0.0)  # queued
    core.worker_exited(WorkerExited("w2", "crashed"), 1.0)  # r2 fails after the grace
    assert core.worker_abandoned(WorkerAbandoned("w2", "intensity"), 1.0) == []
    out = core.worker_abandoned(WorkerAbandoned("w1", "intensity"), 1.0)
    out += core.revoke_parked("w1", 1.25)  # r1: no word from its Worker within the grace
    failed = [d.message for d in of(Reply, out)]
    assert {f.request_id for f in failed} == {"r1", "r3"}
    assert core.stats().state == "degraded"
    refused = only(Reply, core.execute(Execute("r4", "t"), "@c", 2.0)).message.error
    assert refused.reason == "degraded" and refused.details["abandoned"] == ["w1", "w2"]
    core.worker_ready(ready("w1", 200, restarts=1), 3.0)
    assert core.stats().state == "ready" and core.stats().restarts == 1


# --- leases -----------------------------------------------------------------------------------

def test_a_lease_holds_its_slot_until_it_comes_back() -> None:
    core = started(config(pool_size=1), workers=("w1",))
    grant = only(GrantLease, core.request_lease(RequestLease("L1"), "@h", 0.0))
    assert (grant.to, grant.message.endpoint, grant.message.pid) == ("@h", "unix:/w1", 100)
    assert of(Run, core.execute(Execute("r1", "t"), "@c", 0.1)) == []  # queued behind it
    run = only(Run, core.lease_batch(LeaseBatch(returns=(ReturnLease("L1", "w1"),)), "@h", 0.2))
    assert run.message.request.request_id == "r1"


def test_every_lease_carries_the_pools_worker_token() -> None:
    core = PoolCore(config(pool_size=1), pool="@pool", worker_token="s3cret")
    core.start(0.0)
    core.worker_ready(ready("w1", pid=100), 0.0)
    grant = only(GrantLease, core.request_lease(RequestLease("L1"), "@h", 0.0))
    assert grant.message.token == "s3cret"
    assert "s3cret" not in repr(grant.message)


def test_a_gone_workers_leases_wait_for_its_exit_status_or_the_grace() -> None:
    core = started()
    core.request_lease(RequestLease("L1"), "@h", 0.0)
    wake = only(WakeAt, core.worker_exited(WorkerExited("w1", "crashed", -9), 1.0))
    assert wake == WakeAt(1.25, timers.RevokeParked("w1"))
    error = WorkerCrashedError("killed by signal 9", details={"exit_code": -9})
    revoke = only(Revoke, core.worker_process_lost(WorkerProcessLost("w1", error), 1.1))
    assert (revoke.to, revoke.message.error) == ("@h", error)
    assert core.revoke_parked("w1", 1.25) == []  # revoked once


def test_a_lease_parked_past_the_grace_is_revoked_with_the_starters_words() -> None:
    core = started()
    core.request_lease(RequestLease("L1"), "@h", 0.0)
    core.worker_exited(WorkerExited("w1", "crashed", -9), 1.0)
    revoke = only(Revoke, core.revoke_parked("w1", 1.25))
    assert revoke.message.error.details == {"worker_id": "w1", "exit_code": -9, "signal": 9}


def test_a_dead_holders_leases_come_back_for_a_recycle_and_its_queued_requests_drop() -> None:
    core = started(config(pool_size=1), workers=("w1",))
    wake = only(WakeAt, core.request_lease(RequestLease("L1"), "@h", 0.0, watched=True))
    assert wake == WakeAt(0.25, timers.CheckHolders())
    core.request_lease(RequestLease("L2"), "@h", 0.1, watched=True)  # queued
    out = core.holders_checked([("@h", 4242)], 0.25)
    recycle = only(Recycle, out)
    assert (recycle.message.reason, recycle.message.drained) == ("request_timeout", True)
    assert of(GrantLease, out) == [] and len(core.ledger) == 0
    assert core.request_lease(RequestLease("L3"), "@h", 0.3) == []  # a late message: dropped
    assert states(core) == {"w1": "stopping"}


def test_a_lease_reported_unreachable_takes_its_worker_out_until_it_is_revoked() -> None:
    core = started()
    core.request_lease(RequestLease("L1"), "@h", 0.0)
    out = core.return_lease(ReturnLease("L1", "w1", worker_lost=True, reason="refused"), 0.1)
    assert only(Recycle, out).message.reason == "unreachable"
    assert states(core) == {"w1": "unhealthy", "w2": "ready"} and "L1" in core.ledger
    assert only(Run, core.execute(Execute("r1", "t"), "@c", 0.2)).worker_id == "w2"
    error = WorkerCrashedError("gone")
    assert only(Revoke, core.worker_process_lost(WorkerProcessLost("w1", error), 0.3)).message \
        .error == error


# --- recycling and the worker state shown ------------------------------------------------------

def test_a_recycle_recalls_leases_and_says_drained_when_the_last_is_back() -> None:
    core = started()
    core.request_lease(RequestLease("L1"), "@h", 0.0)
    out = core.request_recycle(RequestRecycle("w1", "manual", "q1"), "@admin", 1.0)
    assert only(Recall, out).message.request_id == "L1"
    assert only(Recycle, out).message.drained is False
    assert only(Reply, out).message.accepted is True
    assert states(core)["w1"] == "stopping"
    back = core.return_lease(ReturnLease("L1", "w1"), 2.0)
    assert only(Recycle, back).message == only(Recycle, back).message.__class__(
        "w1", "manual", "", True)
    core.worker_ready(ready("w1", 300), 3.0)
    assert core.stats().recycled == 1 and states(core)["w1"] == "ready"


def test_a_worker_due_after_max_requests_gets_no_more_work_and_is_recycled() -> None:
    core = started(config(pool_size=1, worker_max_requests=1), workers=("w1",))
    core.execute(Execute("r1", "t"), "@c", 0.0)
    core.execute(Execute("r2", "t"), "@c", 0.0)  # waits for the one worker
    out = core.checkin(Checkin("w1", "r1", True, 1.0), 1.0)
    assert only(Recycle, out).message.reason == "max_requests" and of(Run, out) == []
    run = only(Run, core.worker_ready(ready("w1", 300), 2.0))  # the replacement takes r2
    assert run.message.request.request_id == "r2" and core.stats().recycled == 1


def test_a_recycle_of_an_unknown_or_busy_recycling_worker_is_refused_with_the_reason() -> None:
    core = started()
    assert "no worker 'nope'" in only(Reply, core.request_recycle(
        RequestRecycle("nope", "manual", "q"), "@a", 0.0)).message.detail
    assert "reason must be one of" in only(Reply, core.request_recycle(
        RequestRecycle("w1", "whim", "q"), "@a", 0.0)).message.detail
    core.request_recycle(RequestRecycle("w1", "manual"), "@a", 0.0)
    assert "already being recycled" in only(Reply, core.request_recycle(
        RequestRecycle("w1", "manual", "q"), "@a", 0.0)).message.detail


def test_the_state_shown_for_a_worker_follows_its_record_by_one_rule() -> None:
    core = started()
    core.execute(Execute("r1", "t"), "@c", 0.0)
    assert states(core) == {"w1": "busy", "w2": "ready"}
    core.checkin(Checkin("w1", "r1", False, 1.0, worker_lost=True), 1.0)  # timed out
    assert states(core)["w1"] == "stopping"
    core.worker_exited(WorkerExited("w1", "crashed"), 2.0)
    assert states(core)["w1"] == "starting"
    core.worker_ready(ready("w1", 300, restarts=1), 3.0)
    assert states(core)["w1"] == "ready"
    for w in core.workers.values():
        assert states(core)[w.worker_id] == state_of(w.phase, core.scheduler.in_flight(
            w.worker_id))


def test_a_worker_whose_process_or_host_is_gone_shows_no_pid_and_says_why() -> None:
    core = started()
    core.worker_exited(WorkerExited("w1", "crashed", -9), 1.0)
    core.worker_exited(WorkerExited("w2", "node_lost", node_lost="m1"), 1.0)
    shown = {w.worker_id: w for w in core.worker_list().workers}
    assert (shown["w1"].state, shown["w1"].pid, shown["w1"].reason) == ("starting", None,
                                                                        "crashed")
    assert (shown["w2"].state, shown["w2"].pid) == ("lost", None)
    core.worker_abandoned(WorkerAbandoned("w2", "no_matching_node"), 2.0)
    assert {w.worker_id: w.state for w in core.worker_list().workers}["w2"] == "parked"
    assert core.stats().lost_workers == 1
    core.pool_degraded("supervisor gave up", 3.0)
    shown = {w.worker_id: w for w in core.worker_list().workers}
    assert {w.state for w in shown.values()} == {"abandoned"}
    assert {w.pid for w in shown.values()} == {None} and core.stats().lost_workers == 2
    assert core.stats().state == "degraded"


# --- sessions ---------------------------------------------------------------------------------

def test_sessions_that_ran_reach_the_store_at_the_next_flush_or_before_a_command() -> None:
    core = started(store="@store")
    out = core.execute(Execute("r1", "t", session_id="s1"), "@c", 0.0)
    assert only(WakeAt, out) == WakeAt(1.0, timers.FlushSessions())
    assert of(WakeAt, core.execute(Execute("r2", "t", session_id="s2"), "@c", 0.1)) == []
    touched = only(TouchSessions, core.flush_sessions(1.0)).message.touches
    assert dict(touched) == {"s1": "w1", "s2": "w2"} and core.flush_sessions(2.0) == []
    ended = core.sessions_ended(SessionsEnded(("s1",), "expired"), 3.0)
    assert [(d.to, d.message.session_id) for d in of(EndSession, ended)] == [("@w1", "s1")]


def test_a_strict_sessions_request_fails_when_its_worker_died_naming_it() -> None:
    core = started(config(affinity="strict_queue"))
    only(Run, core.execute(Execute("r1", "t", session_id="s1"), "@c", 0.0))
    core.checkin(Checkin("w1", "r1", True, 1.0), 0.1)
    core.worker_exited(WorkerExited("w1", "crashed"), 0.2)
    core.worker_ready(ready("w1", 999, restarts=1), 0.3)
    error = only(Reply, core.execute(Execute("r2", "t", session_id="s1"), "@c", 0.4)) \
        .message.error
    assert isinstance(error, SessionAffinityError) and error.details["pid"] == 100


def test_a_strict_request_waiting_for_a_worker_that_leaves_fails_instead_of_moving() -> None:
    core = started(config(affinity="strict_queue"))
    core.execute(Execute("r1", "t", session_id="s1"), "@c", 0.0)
    core.execute(Execute("r2", "t", session_id="s1"), "@c", 0.1)  # held for w1
    out = core.worker_exited(WorkerExited("w1", "crashed"), 0.2)
    out += core.revoke_parked("w1", 0.45)  # r1: no word from its Worker within the grace
    failed = {d.message.request_id: d.message.error.reason for d in of(Reply, out)}
    assert failed == {"r1": "worker_exited", "r2": "worker_dead"}


# --- rebuilding and purity --------------------------------------------------------------------

def test_a_core_rebuilt_from_the_registrys_facts_routes_like_the_old_one() -> None:
    old = started(config(pool_size=3), workers=("w1", "w2", "w3"))
    old.worker_exited(WorkerExited("w2", "crashed"), 1.0)
    old.worker_ready(ready("w3", 333, restarts=2), 1.0)
    facts: list[Any] = [ready("w1", 100), WorkerExited("w2", "crashed"), ready("w3", 333, 2)]
    new = PoolCore(config(pool_size=3), pool="@pool", started=True)
    for fact in facts:
        (new.worker_ready if isinstance(fact, WorkerReady) else new.worker_exited)(fact, 2.0)
    assert new.worker_list().workers == tuple(  # w2 is listed again once it is ready
        w for w in old.worker_list().workers if w.worker_id != "w2")
    assert new.stats().state == "ready" and new.stats().restarts == old.stats().restarts
    for core in (old, new):
        runs = [only(Run, core.execute(Execute(f"r{i}", "t"), "@c", 3.0)) for i in range(2)]
        assert sorted((r.worker_id, r.to) for r in runs) == [("w1", "@w1"), ("w3", "@w3")]
    assert new.checkin(Checkin("w1", "before-the-rebuild", True, 1.0), 4.0) == []


def test_the_core_imports_no_thespian_grpc_or_psutil() -> None:
    code = ("import sys, snakepit_actors.core.pool_core; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('thespian', 'grpc', 'psutil')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_every_pool_timer_is_a_frozen_picklable_dataclass() -> None:
    for timer in (timers.ExpireQueue(), timers.CheckHolders(), timers.StartupDeadline(),
                  timers.FlushSessions(), timers.RevokeParked("w1")):
        assert is_dataclass(timer) and pickle.loads(pickle.dumps(timer)) == timer
    with pytest.raises(FrozenInstanceError):
        timers.RevokeParked("w1").worker_id = "w2"  # type: ignore[misc]


# --- the actor shell ----------------------------------------------------------------------------

def test_the_pool_actor_runs_each_timer_by_its_type_and_logs_an_unknown_one() -> None:
    actor = PoolActor()  # its handlers only: no actor system, sends and wake-ups recorded
    actor._core = started(config(pool_size=1, queue_timeout=1.0), workers=("w1",))
    sent: list[tuple[Any, Any]] = []
    woken: list[tuple[float, Any]] = []
    actor.send = lambda to, message: sent.append((to, message))  # type: ignore[method-assign]
    actor.wakeupAfter = lambda after, payload=None: woken.append((after, payload))  # type: ignore
    actor.receiveMsg_Execute(Execute("r1", "t"), "@c")  # runs on w1
    actor.receiveMsg_Execute(Execute("r2", "t"), "@c")  # waits, with one wake-up
    assert [to for to, _ in sent] == ["@w1"] and [type(p) for _, p in woken] == [
        timers.ExpireQueue]
    assert 0.0 < woken[0][0] <= 1.0
    events: list[str] = []
    unsubscribe = subscribe(lambda event, _fields: events.append(event), {"timer.unknown"})
    try:
        actor.receiveMsg_WakeupMessage(WakeupMessage(1, payload="expiry"), None)
    finally:
        unsubscribe()
    assert events == ["timer.unknown"] and len(sent) == 1 and len(woken) == 1


# --- the state machine ------------------------------------------------------------------------

WORKERS = ("w1", "w2", "w3")
HOLDERS = ("@h1", "@h2")
SESSIONS = (None, "s1", "s2")


@dataclass
class Req:
    """One request as the model sees it."""

    kind: str  # "execute" | "lease"
    status: str = "waiting"  # waiting, running, leased, crashed, done, withdrawn, dropped
    worker: str = ""
    generation: int = 0  # the worker's WorkerReady count when it was dispatched there
    holder: str = "@c"
    deadline: float | None = None
    outcomes: list[str] = field(default_factory=list)
    lost: bool = False  # a lease its holder reported unreachable: it ends with a revocation
    retry: bool = False  # may run once more elsewhere if its worker dies under it


class PoolCoreMachine(RuleBasedStateMachine):
    """Execute and lease requests of two clients, session pins, workers that become ready,
    finish, time out, crash, die or are recycled, clients that die, time passing and the
    timers the core asked for firing. Checks: every request gets exactly one outcome (run,
    reply or grant; a retried run after a crash counts once), no slot is double-booked, a
    worker out of rotation (recycling, leaving...) gets no work, a revoked lease is never
    granted again, the counters add up and the state shown for each worker matches its
    record."""

    @initialize(capacity=st.sampled_from([1, 2]),
                affinity=st.sampled_from(["hint", "strict_queue", "strict_fail_fast"]),
                retry=st.booleans())
    def start(self, capacity: int, affinity: str, retry: bool) -> None:
        self.capacity = capacity
        self.cfg = config(pool_size=2, capacity=capacity, max_queue=4, queue_timeout=1.0,
                          affinity=affinity, affinity_wait_s=0.05, worker_max_requests=3,
                          retry_idempotent=retry)
        self.core = PoolCore(self.cfg, pool="@pool", start_reply_to="@s",
                             session_store="@store")
        self.now = 0.0
        self.broken = False
        self.ids = itertools.count()
        self.pids = itertools.count(1000)
        self.reqs: dict[str, Req] = {}
        self.generation = dict.fromkeys(WORKERS, 0)
        self.timers: list[tuple[float, Any]] = []
        self.killed: set[str] = set()  # holders dead, not yet reported
        self.dead: set[str] = set()  # holders the core was told are dead
        self.revoked: set[str] = set()
        self.recycling: set[str] = set()
        self.counts = dict.fromkeys(("requests", "errors", "queue_timeouts", "saturated",
                                     "recycled"), 0)
        self.apply(self.core.start(self.now))
        for worker_id in ("w1", "w2"):
            self.worker_ready(worker_id)

    # --- applying the core's decisions to the model ------------------------------------------

    def apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, WakeAt):
                self.timers.append((d.when, d.timer))
            elif isinstance(d, Run):
                self._dispatched(d.message.request.request_id, "running", d.worker_id)
                req = self.reqs[d.message.request.request_id]
                assert d.message.deadline_unix_s == req.deadline, "a deadline was reset"
                assert d.to == f"@{d.worker_id}#{self.generation[d.worker_id]}"
            elif isinstance(d, GrantLease):
                assert d.to not in self.dead, "a lease went to a client known to be dead"
                assert d.message.request_id not in self.revoked, "a revoked lease came back"
                self._dispatched(d.message.request_id, "leased", d.message.worker_id)
            elif isinstance(d, Reply) and isinstance(d.message, ExecuteFailed | LeaseRefused):
                self._replied(d.message)
            elif isinstance(d, Revoke):
                req = self.reqs[d.message.request_id]
                assert req.status == "leased", f"revoked a lease that is {req.status}"
                req.status = "done"
                self.revoked.add(d.message.request_id)
            elif isinstance(d, Recall):  # (a dead holder's other leases may be reclaimed next)
                req = self.reqs[d.message.request_id]
                assert req.status == "leased" or req.holder in self.dead, req
            elif isinstance(d, Recycle) and d.message.reason in ("manual", "max_requests"):
                self.recycling.add(d.message.worker_id)

    def _dispatched(self, request_id: str, status: str, worker_id: str) -> None:
        req = self.reqs[request_id]
        assert req.status in ("waiting", "crashed"), f"{request_id} dispatched while {req}"
        record = self.core.workers[worker_id]
        assert record.phase == "ready", f"work went to {worker_id} while {record.phase}"
        assert self.core.scheduler.has_worker(worker_id)
        req.status, req.worker, req.generation = status, worker_id, self.generation[worker_id]
        req.outcomes.append("run" if status == "running" else "grant")

    def _replied(self, message: ExecuteFailed | LeaseRefused) -> None:
        req = self.reqs[message.request_id]
        assert req.status in ("waiting", "crashed", "dropped"), f"replied while {req}"
        req.status = "done"
        req.outcomes.append("reply")
        if isinstance(message, ExecuteFailed):
            self.counts["errors"] += 1
            self.counts["queue_timeouts"] += isinstance(message.error, QueueTimeoutError)
        self.counts["saturated"] += isinstance(message.error, PoolSaturatedError)

    def step(self, decisions: list[Decision]) -> None:
        self.broken = True  # until the step is checked: teardown adds nothing to a failure
        self.apply(decisions)
        for req in self.reqs.values():  # a retry with no free slot waits in the queue again
            if req.status == "crashed" and req.retry and req.outcomes.count("run") == 1:
                req.status = "waiting"
        crashed = [rid for rid, r in self.reqs.items() if r.status == "crashed"]
        assert not crashed, f"crashed requests got no outcome: {crashed}"
        self.broken = False

    def _on(self, worker_id: str, *statuses: str) -> list[str]:
        return [rid for rid, r in self.reqs.items() if r.worker == worker_id
                and r.status in statuses]

    def _crash(self, request_ids: list[str]) -> None:
        for rid in request_ids:
            self.reqs[rid].status = "crashed"

    # --- workers ------------------------------------------------------------------------------

    @rule(worker_id=st.sampled_from(WORKERS))
    def worker_becomes_ready(self, worker_id: str) -> None:
        if self._on(worker_id, "running"):
            return  # a Worker drains before it announces a process again
        self.worker_ready(worker_id)

    def worker_ready(self, worker_id: str) -> None:
        self.generation[worker_id] += 1
        if worker_id in self.recycling:  # its replacement process is ready
            self.recycling.discard(worker_id)
            self.counts["recycled"] += 1
        fact = dataclasses.replace(ready(worker_id, next(self.pids)),  # a new Worker actor
                                   address=f"@{worker_id}#{self.generation[worker_id]}")
        self.step(self.core.worker_ready(fact, self.now))

    @rule(worker_id=st.sampled_from(WORKERS))
    def process_dies(self, worker_id: str) -> None:
        """The Worker checks in what it ran as crashed, reports its process lost, exits."""
        error = WorkerCrashedError("died", details={"worker_id": worker_id})
        for rid in self._on(worker_id, "running"):
            self._crash([rid])
            self.step(self.core.checkin(Checkin(worker_id, rid, False, 0.0, True, error),
                                        self.now))
        self.step(self.core.worker_process_lost(WorkerProcessLost(worker_id, error), self.now))
        self.worker_exits(worker_id)

    @precondition(lambda self: any(self.core.scheduler.has_worker(w) for w in WORKERS))
    @rule(data=st.data())
    def worker_actor_killed(self, data: st.DataObject) -> None:
        """Only its Starter's fact (with or without its member node lost): the core fails
        what the worker held."""
        worker_id = data.draw(st.sampled_from(
            [w for w in WORKERS if self.core.scheduler.has_worker(w)]))
        running = self._on(worker_id, "running")
        self.recycling.discard(worker_id)
        out = self.core.worker_exited(WorkerExited(
            worker_id, "crashed", -9, node_lost=data.draw(st.sampled_from(["", "m1"]))),
            self.now)
        out += self.core.revoke_parked(worker_id, self.now)  # the grace ends: no word from it
        self._crash(running)
        self.step(out)

    def worker_exits(self, worker_id: str, node_lost: str = "") -> None:
        self.recycling.discard(worker_id)
        self.step(self.core.worker_exited(
            WorkerExited(worker_id, "crashed", -9, node_lost=node_lost), self.now))

    @precondition(lambda self: any(r.phase in ("down", "lost")
                                   for r in self.core.workers.values()))
    @rule(data=st.data(), reason=st.sampled_from(["intensity", "no_matching_node"]))
    def starter_gives_up(self, data: st.DataObject, reason: str) -> None:
        """A worker with no process is not started again (restarts failed, or no member node
        matches its placement)."""
        worker_id = data.draw(st.sampled_from(
            sorted(w for w, r in self.core.workers.items() if r.phase in ("down", "lost"))))
        self.step(self.core.worker_abandoned(WorkerAbandoned(worker_id, reason), self.now))

    @rule(worker_id=st.sampled_from(WORKERS), reason=st.sampled_from(["manual", "whim"]))
    def recycle_requested(self, worker_id: str, reason: str) -> None:
        self.step(self.core.request_recycle(RequestRecycle(worker_id, reason, "q"), "@a",
                                            self.now))

    # --- requests -----------------------------------------------------------------------------

    @rule(session=st.sampled_from(SESSIONS), timeout=st.sampled_from([None, 0.5, 3.0]),
          idempotent=st.booleans())
    def execute(self, session: str | None, timeout: float | None, idempotent: bool) -> None:
        rid = f"r{next(self.ids)}"
        msg = Execute(rid, "t", session_id=session, timeout_s=timeout, idempotent=idempotent)
        self.reqs[rid] = Req("execute", deadline=request_deadline(msg, self.now, None),
                             retry=idempotent or self.cfg.retry_idempotent)
        self.counts["requests"] += 1
        self.step(self.core.execute(msg, "@c", self.now))

    @precondition(lambda self: any(r.status == "running" for r in self.reqs.values()))
    @rule(data=st.data(), ok=st.booleans(), lost=st.booleans())
    def request_finishes(self, data: st.DataObject, ok: bool, lost: bool) -> None:
        """The Worker replied; ``lost``: it timed out and the worker leaves to be checked."""
        rid = data.draw(st.sampled_from(sorted(r for r, q in self.reqs.items()
                                               if q.status == "running")))
        req = self.reqs[rid]
        req.status = "done"
        self.counts["errors"] += not ok
        self.step(self.core.checkin(Checkin(req.worker, rid, ok, 1.0, lost), self.now))

    @precondition(lambda self: any(r.status == "waiting" for r in self.reqs.values()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(r for r, q in self.reqs.items()
                                               if q.status == "waiting"
                                               and q.kind == "execute") or ["none"]))
        self.step(self.core.cancel(CancelRequest(rid), self.now))

    # --- leases -------------------------------------------------------------------------------

    @rule(holder=st.sampled_from(HOLDERS), session=st.sampled_from(SESSIONS))
    def lease_requested(self, holder: str, session: str | None) -> None:
        if holder in self.killed or holder in self.dead:
            return  # a dead client sends nothing
        rid = f"L{next(self.ids)}"
        self.reqs[rid] = Req("lease", holder=holder)
        batch = LeaseBatch(requests=(RequestLease(rid, session, holder_pid=1),), holder_pid=1)
        self.step(self.core.lease_batch(batch, holder, self.now, watched=True))

    @precondition(lambda self: any(r.status == "waiting" and r.kind == "lease"
                                   for r in self.reqs.values()))
    @rule(data=st.data())
    def lease_withdrawn(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(
            r for r, q in self.reqs.items() if q.status == "waiting" and q.kind == "lease")))
        req = self.reqs[rid]
        if req.holder in self.killed or req.holder in self.dead:
            return
        req.status = "withdrawn"
        self.step(self.core.lease_batch(LeaseBatch(withdrawn=(rid,)), req.holder, self.now))

    @precondition(lambda self: any(r.status == "leased" for r in self.reqs.values()))
    @rule(data=st.data(), how=st.sampled_from(["plain", "recycle", "lost"]))
    def lease_returned(self, data: st.DataObject, how: str) -> None:
        rid = data.draw(st.sampled_from(sorted(r for r, q in self.reqs.items()
                                               if q.status == "leased")))
        req = self.reqs[rid]
        if req.holder in self.killed or req.holder in self.dead:
            return
        if how != "lost" and rid in self.core.ledger:  # (a parked lease's return crosses
            req.status = "done"                          # its revocation: that one ends it)
        req.lost = req.lost or how == "lost"
        returned = ReturnLease(rid, req.worker, recycle=how == "recycle",
                               worker_lost=how == "lost")
        self.step(self.core.lease_batch(LeaseBatch(returns=(returned,)), req.holder, self.now))

    @rule(holder=st.sampled_from(HOLDERS))
    def client_dies(self, holder: str) -> None:
        if holder not in self.dead:
            self.killed.add(holder)

    # --- time ---------------------------------------------------------------------------------

    @rule(dt=st.sampled_from([0.01, 0.1, 0.3, 1.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        while True:
            due = sorted((t for t in self.timers if t[0] <= self.now), key=lambda t: t[0])
            if not due:
                return
            self.timers.remove(due[0])
            self.fire(due[0][1])

    def fire(self, timer: Any) -> None:
        core, now = self.core, self.now
        if isinstance(timer, timers.ExpireQueue):
            self.step(core.expire_queue(now))
        elif isinstance(timer, timers.CheckHolders):
            dead = [(h, 1) for h in sorted(self.killed)]
            self.dead |= self.killed
            self.killed = set()
            for rid, req in self.reqs.items():  # what they wait for may vanish silently
                if req.holder in self.dead and req.status == "waiting":
                    req.status = "dropped"
                if req.holder in self.dead and req.status == "leased" and not req.lost \
                        and rid in self.core.ledger:
                    req.status = "done"  # reclaimed: it ends as if returned
            self.step(core.holders_checked(dead, now))
        elif isinstance(timer, timers.RevokeParked):
            self.step(core.revoke_parked(timer.worker_id, now))
        elif isinstance(timer, timers.FlushSessions):
            self.step(core.flush_sessions(now))
        else:
            self.step(core.startup_deadline(now))

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_slot_is_double_booked(self) -> None:
        for worker_id in WORKERS:
            if not self.core.scheduler.has_worker(worker_id):
                continue
            held = [rid for rid, r in self.reqs.items() if r.worker == worker_id
                    and r.status in ("running", "leased")
                    and r.generation == self.generation[worker_id]]
            assert len(held) <= self.capacity, f"{worker_id} holds {held}"
            assert self.core.scheduler.in_flight(worker_id) == len(held), (worker_id, held)

    @invariant()
    def every_request_has_at_most_one_outcome(self) -> None:
        """One grant, or one reply, or runs (a second only after a crash) maybe ending in a
        reply (the retry was refused)."""
        for rid, req in self.reqs.items():
            grants, replies = req.outcomes.count("grant"), req.outcomes.count("reply")
            assert grants <= 1 and replies <= 1, (rid, req)
            assert not (grants and len(req.outcomes) > 1), (rid, req)
            assert "reply" not in req.outcomes[:-1], (rid, req)

    @invariant()
    def the_counters_add_up(self) -> None:
        stats = self.core.stats()
        got = {k: getattr(stats, k) for k in self.counts}
        assert got == self.counts
        ready = [w for w, r in self.core.workers.items() if r.phase == "ready"]
        assert stats.workers == len(ready)
        assert stats.busy == sum(1 for w in ready if self.core.scheduler.in_flight(w))
        assert stats.lost_workers == sum(1 for r in self.core.workers.values()
                                         if r.phase in ("lost", "parked", "abandoned"))

    @invariant()
    def the_state_shown_matches_each_record(self) -> None:
        for info in self.core.worker_list().workers:
            record = self.core.workers[info.worker_id]
            in_rotation = self.core.scheduler.has_worker(info.worker_id)
            assert (record.phase == "ready") == in_rotation, (record, in_rotation)
            assert info.state == state_of(record.phase,
                                          self.core.scheduler.in_flight(info.worker_id))
            assert info.state in ("ready", "busy", "stopping", "starting", "unhealthy", "lost",
                                  "parked", "abandoned")
            no_process = record.phase in ("down", "lost", "parked", "abandoned")
            assert (info.pid is None) == no_process, (info, record)
            assert bool(info.reason) == no_process, (info, record)

    def teardown(self) -> None:
        """Close the pool, let the holders' deaths be seen, the unreachable workers die and
        everything running end: then every request has had its one outcome (a dead client's
        waiting lease requests may just vanish)."""
        if not hasattr(self, "core") or self.broken:
            return
        self.step(self.core.close("@closer", self.now))
        self.fire(timers.CheckHolders())
        for worker_id in sorted({r.worker for r in self.reqs.values()
                                 if r.status == "leased" and r.lost}):
            self.process_dies(worker_id)
        for _when, timer in sorted(self.timers, key=lambda t: t[0]):
            if isinstance(timer, timers.RevokeParked):
                self.step(self.core.revoke_parked(timer.worker_id, self.now))
        for rid, req in list(self.reqs.items()):
            if req.status == "running":
                self.request_finishes_now(rid)
            elif req.status == "leased":
                req.status = "done"
                self.step(self.core.return_lease(ReturnLease(rid, req.worker), self.now))
        left = {rid: r.status for rid, r in self.reqs.items()
                if r.status not in ("done", "withdrawn", "dropped")}
        assert not left, f"requests with no outcome: {left}"
        assert len(self.core.ledger) == 0 and not self.core.desk.running

    def request_finishes_now(self, rid: str) -> None:
        req = self.reqs[rid]
        req.status = "done"
        self.step(self.core.checkin(Checkin(req.worker, rid, True, 1.0), self.now))


PoolCoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                             deadline=None)
test_the_pool_core_state_machine = PoolCoreMachine.TestCase


# --- requests sent to a Worker that is gone ---------------------------------------------------

def _sent_ahead() -> PoolCore:
    """One worker; r1 runs on it, r2 was sent ahead (prefetch) behind r1."""
    core = started(config(pool_size=1, prefetch=1), workers=("w1",))
    assert only(Run, core.execute(Execute("r1", "t"), "@c", 0.0)).to == "@w1"
    assert only(Run, core.execute(Execute("r2", "t"), "@c", 0.0)).to == "@w1"
    return core


def _new_process(core: PoolCore, now: float) -> list[Decision]:
    return core.worker_ready(dataclasses.replace(ready("w1", 200, restarts=1),
                                                 address="@w1-again"), now)


def test_what_a_worker_never_checked_in_before_its_process_was_lost_runs_on_the_next_one() -> None:
    """Its Worker checks in all it had, then reports the loss (in that order): r2 never
    reached it (it was on its way), so r2 is run again, not failed."""
    core = _sent_ahead()
    crash = WorkerCrashedError("died", details={"worker_id": "w1"})
    failed = only(Reply, core.checkin(Checkin("w1", "r1", False, 0.0, True, crash), 0.1, "@w1"))
    assert failed.message.request_id == "r1"
    out = core.worker_process_lost(WorkerProcessLost("w1", crash), 0.1, "@w1")
    out += core.worker_exited(WorkerExited("w1", "worker_actor_exited"), 0.2)
    assert of(Reply, out) == []
    assert only(Run, _new_process(core, 0.3)).message.request.request_id == "r2"


def test_when_only_its_starter_has_spoken_what_the_worker_held_waits_for_its_word() -> None:
    """The Starter's WorkerExited may overtake the Worker's own check-ins: r2, which the
    Worker says never ran, runs again; r1, which it never mentions, fails after the grace."""
    core = _sent_ahead()
    wake = only(WakeAt, core.worker_exited(WorkerExited("w1", "worker_actor_exited"), 0.1))
    assert wake == WakeAt(0.1 + EXIT_STATUS_GRACE_S, timers.RevokeParked("w1"))
    never_ran = WorkerCrashedError("stopping", reason="worker_not_ready")
    assert of(Reply, core.checkin(Checkin("w1", "r2", False, 0.0, True, never_ran,
                                          never_ran=True), 0.2, "@w1")) == []
    failed = only(Reply, core.revoke_parked("w1", wake.when)).message
    assert failed.request_id == "r1" and isinstance(failed.error, WorkerCrashedError)
    assert only(Run, _new_process(core, 0.5)).message.request.request_id == "r2"


def test_a_late_check_in_of_an_earlier_worker_actor_changes_nothing() -> None:
    """r2 runs again on the next Worker actor of w1; the old one's word about it comes late."""
    core = _sent_ahead()
    crash = WorkerCrashedError("died", details={"worker_id": "w1"})
    core.checkin(Checkin("w1", "r1", False, 0.0, True, crash), 0.1, "@w1")
    core.worker_process_lost(WorkerProcessLost("w1", crash), 0.1, "@w1")
    _new_process(core, 0.2)
    late = Checkin("w1", "r2", False, 0.0, True, crash, never_ran=True)
    assert core.checkin(late, 0.3, "@w1") == []
    assert core.scheduler.has_worker("w1") and core.scheduler.in_flight("w1") == 1
    assert of(Reply, core.checkin(Checkin("w1", "r2", True, 1.0), 0.4, "@w1-again")) == []
    assert core.stats().requests == 2
