"""The Worker's lifecycle core: explicit inputs and ``now``, effects out (no actors, no sleeps)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from snakepit_actors.core.worker_effects import (
    AbandonInFlight,
    AnnounceReady,
    CheckIn,
    Connect,
    Effect,
    Effects,
    Exit,
    HeartbeatDue,
    Probe,
    ProbeDue,
    RefuseRequest,
    ReplacementTimeout,
    ReportProcessLost,
    ReportStartFailed,
    ScheduleTimer,
    SendHeartbeat,
    SpawnProcess,
    SpawnReplacement,
    StartCall,
    StartupTimeout,
    StopProcess,
    StopReplacement,
    SwapIn,
    TimerPayload,
)
from snakepit_actors.core.worker_lifecycle import (
    LifecycleError,
    LifecycleTimings,
    WorkerLifecycle,
    WorkerState,
)
from snakepit_actors.errors import PoolNotReadyError

TIMINGS = LifecycleTimings(startup_timeout_s=30.0, heartbeat_interval_s=2.0, heartbeat_misses=3,
                           cancel_grace_s=0.5)
BOOM = PoolNotReadyError("boom")


def ready_worker(timings: LifecycleTimings = TIMINGS) -> WorkerLifecycle:
    core = WorkerLifecycle(timings)
    assert core.start() == (SpawnProcess(),)
    assert core.spawned() == (ScheduleTimer(30.0, StartupTimeout()),)
    assert core.ready_line("127.0.0.1:5000") == (Connect("127.0.0.1:5000"),)
    assert core.connected() == (AnnounceReady("started"), ScheduleTimer(2.0, HeartbeatDue()))
    return core


def running(core: WorkerLifecycle, *request_ids: str) -> WorkerLifecycle:
    for rid in request_ids:
        assert core.request_received(rid) == StartCall(rid)
    return core


def test_the_core_imports_no_actor_rpc_or_process_library() -> None:
    code = ("import sys, snakepit_actors.core.worker_lifecycle; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'thespian', 'grpc', 'psutil'"
            "}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_worker_is_ready_once_its_process_announced_itself_and_answered_a_ping() -> None:
    core = ready_worker()
    assert core.state is WorkerState.READY and core.serving


def test_a_request_is_refused_while_the_worker_starts_and_after_it_stopped() -> None:
    core = WorkerLifecycle(TIMINGS)
    assert core.request_received("r1") == RefuseRequest("r1", "starting")
    core = ready_worker()
    core.process_died("process_exited")
    assert core.request_received("r2") == RefuseRequest("r2", "stopping")


def test_a_finished_request_is_checked_in_and_keeps_the_worker() -> None:
    core = running(ready_worker(), "r1")
    assert core.request_finished("r1", ok=True, elapsed_ms=3.0, timed_out=False, now=1.0) == (
        CheckIn("r1", True, 3.0, False),)
    assert core.state is WorkerState.READY


# --- the timeout probe ----------------------------------------------------------------------

def test_a_timed_out_tool_that_stops_within_the_grace_keeps_its_warm_process() -> None:
    core = running(ready_worker(), "r1")
    assert core.request_finished("r1", ok=False, elapsed_ms=9.0, timed_out=True, now=10.0) == (
        CheckIn("r1", False, 9.0, worker_lost=True), Probe(1.0))
    assert core.state is WorkerState.PROBING
    assert core.probe_answered(1) == (ScheduleTimer(0.05, ProbeDue()),)
    assert core.probe_due(now=10.2) == (Probe(1.0),)
    assert core.probe_answered(0) == (AnnounceReady("recovered"),)
    assert core.state is WorkerState.READY and not core.timed_out
    running(core, "r2")
    assert core.request_finished("r2", ok=True, elapsed_ms=1.0, timed_out=False, now=11.0) == (
        CheckIn("r2", True, 1.0, worker_lost=False),)


def test_a_timed_out_tool_still_running_after_the_grace_has_its_process_recycled() -> None:
    core = running(ready_worker(), "r1")
    core.request_finished("r1", ok=False, elapsed_ms=9.0, timed_out=True, now=10.0)
    assert core.probe_answered(1) == (ScheduleTimer(0.05, ProbeDue()),)
    assert core.probe_due(now=10.3) == (Probe(1.0),)
    assert core.probe_answered(None) == (ScheduleTimer(0.05, ProbeDue()),)
    assert core.probe_due(now=10.5) == (StopProcess(), Exit("recycle"))
    assert core.state is WorkerState.STOPPING


def test_without_a_grace_a_timed_out_worker_is_recycled_as_soon_as_it_is_drained() -> None:
    core = running(ready_worker(LifecycleTimings(cancel_grace_s=0.0)), "r1")
    assert core.request_finished("r1", ok=False, elapsed_ms=9.0, timed_out=True, now=5.0) == (
        CheckIn("r1", False, 9.0, True), StopProcess(), Exit("recycle"))


def test_a_timed_out_worker_waits_for_its_other_requests_before_probing() -> None:
    core = running(ready_worker(), "r1", "r2")
    assert core.request_finished("r1", ok=False, elapsed_ms=9.0, timed_out=True, now=10.0) == (
        CheckIn("r1", False, 9.0, True),)
    assert core.state is WorkerState.DRAINING
    assert core.request_finished("r2", ok=True, elapsed_ms=2.0, timed_out=False, now=12.0) == (
        CheckIn("r2", True, 2.0, worker_lost=True), Probe(1.0))


def test_the_grace_counts_from_the_first_probe_not_from_each_new_one() -> None:
    core = running(ready_worker(), "r1")
    core.request_finished("r1", ok=False, elapsed_ms=9.0, timed_out=True, now=10.0)
    running(core, "r2")  # the Pool had sent it before it heard of the timeout
    assert core.state is WorkerState.DRAINING
    assert core.probe_answered(0) == ()  # that answer predates r2: stale
    assert core.request_finished("r2", ok=True, elapsed_ms=1.0, timed_out=False, now=10.6) == (
        CheckIn("r2", True, 1.0, True), StopProcess(), Exit("recycle"))


def test_a_direct_path_timeout_from_the_pool_probes_the_idle_worker_at_once() -> None:
    core = ready_worker()
    assert core.recycle_requested("request_timeout", drained=True, now=3.0) == (Probe(1.0),)
    assert core.probe_answered(0) == (AnnounceReady("recovered"),)


def test_a_client_that_cannot_reach_the_process_fails_what_it_runs_and_exits() -> None:
    core = running(ready_worker(), "r1")
    assert core.recycle_requested("unreachable", drained=True, detail="refused", now=1.0) == (
        ReportProcessLost("unreachable from a client: refused", ("r1",)), StopProcess(),
        Exit("process_lost"))


# --- the graceful swap ----------------------------------------------------------------------

def test_a_graceful_recycle_swaps_in_the_replacement_once_ready_and_drained() -> None:
    core = ready_worker()
    assert core.recycle_requested("max_requests", drained=False, now=1.0) == (
        SpawnReplacement(1, "max_requests"),)
    assert core.replacement_spawned(1) == (ScheduleTimer(30.0, ReplacementTimeout(1)),)
    assert core.replacement_ready(1, "127.0.0.1:6000") == ()  # the Pool still waits for leases
    assert core.recycle_requested("max_requests", drained=True, now=2.0) == (
        SwapIn(), Connect("127.0.0.1:6000", swapped_in=True))
    assert core.connected() == (AnnounceReady("swapped"),)
    assert core.state is WorkerState.READY and core.process_live and not core.replacement_live
    assert core.replacement_timed_out(1) == ()  # its timer, late


def test_a_swap_waits_for_the_requests_still_running_on_the_old_process() -> None:
    core = running(ready_worker(), "r1")
    core.recycle_requested("ttl", drained=True, now=1.0)
    core.replacement_spawned(1)
    assert core.replacement_ready(1, "127.0.0.1:6000") == ()
    assert core.request_finished("r1", ok=True, elapsed_ms=1.0, timed_out=False, now=2.0) == (
        CheckIn("r1", True, 1.0, False), SwapIn(), Connect("127.0.0.1:6000", swapped_in=True))


def test_a_replacement_that_fails_to_spawn_makes_the_worker_exit_once_drained() -> None:
    core = running(ready_worker(), "r1")
    core.recycle_requested("memory", drained=True, now=1.0)
    assert core.replacement_failed(1, "no python") == ()
    assert core.request_finished("r1", ok=True, elapsed_ms=1.0, timed_out=False, now=2.0) == (
        CheckIn("r1", True, 1.0, False), StopProcess(), Exit("swap_failed"))


def test_a_replacement_not_ready_in_time_is_stopped_and_the_worker_exits() -> None:
    core = ready_worker()
    core.recycle_requested("manual", drained=True, now=1.0)
    core.replacement_spawned(1)
    assert core.replacement_timed_out(1) == (
        StopReplacement("not ready within startup_timeout=30.0s"), StopProcess(),
        Exit("swap_failed"))


def test_a_swapped_in_process_that_does_not_answer_its_ping_ends_the_worker() -> None:
    core = ready_worker()
    core.recycle_requested("manual", drained=True, now=1.0)
    core.replacement_spawned(1)
    core.replacement_ready(1, "127.0.0.1:6000")
    assert core.connect_failed(BOOM) == (StopProcess(), Exit("swap_failed"))


def test_a_swap_supersedes_a_pending_probe_and_clears_the_timeout() -> None:
    core = running(ready_worker(), "r1")
    core.request_finished("r1", ok=False, elapsed_ms=9.0, timed_out=True, now=10.0)
    assert core.recycle_requested("ttl", drained=True, now=10.1) == (SpawnReplacement(1, "ttl"),)
    core.replacement_spawned(1)
    assert core.probe_answered(0) == ()
    core.replacement_ready(1, "127.0.0.1:6000")
    assert core.connected() == (AnnounceReady("swapped"),)
    assert not core.timed_out


def test_the_old_process_dying_mid_swap_stops_the_replacement_too() -> None:
    core = running(ready_worker(), "r1")
    core.recycle_requested("max_requests", drained=False, now=1.0)
    core.replacement_spawned(1)
    assert core.process_died("process_exited") == (
        ReportProcessLost("process_exited", ("r1",)), StopReplacement(), StopProcess(),
        Exit("process_lost"))


# --- moves, heartbeats, start-up, stop -------------------------------------------------------

def test_a_moving_worker_exits_once_drained_and_idle_and_drops_a_swap() -> None:
    core = running(ready_worker(), "r1")
    core.recycle_requested("manual", drained=True, now=1.0)
    core.replacement_spawned(1)
    assert core.recycle_requested("node_draining", drained=False, now=1.0) == (
        StopReplacement(),)
    assert core.recycle_requested("max_requests", drained=True, now=1.0) == ()
    assert core.recycle_requested("node_draining", drained=True, now=1.0) == ()
    assert core.request_finished("r1", ok=True, elapsed_ms=1.0, timed_out=False, now=2.0) == (
        CheckIn("r1", True, 1.0, False), StopProcess(), Exit("moving"))


def test_missed_heartbeats_give_the_process_up_interval_times_misses_after_the_last_answer(
        ) -> None:
    core = running(ready_worker(), "r1")
    assert core.heartbeat_due() == (SendHeartbeat(6.0), ScheduleTimer(2.0, HeartbeatDue()))
    assert core.heartbeat_answered(True) == ()  # the last answer: its beat left at tick 1
    assert core.heartbeat_due() == (SendHeartbeat(6.0), ScheduleTimer(2.0, HeartbeatDue()))
    assert core.heartbeat_due() == (ScheduleTimer(2.0, HeartbeatDue()),)
    assert core.heartbeat_due() == (ReportProcessLost("heartbeat_missed", ("r1",)),
                                    StopProcess(), Exit("process_lost"))
    assert core.heartbeat_due() == ()


def test_a_failed_heartbeat_call_does_not_reset_the_count_and_a_new_beat_is_sent() -> None:
    core = ready_worker()
    core.heartbeat_due()
    core.heartbeat_due()
    assert core.heartbeat_answered(False) == () and core.missed_beats == 2
    assert core.heartbeat_due() == (ReportProcessLost("heartbeat_missed", ()), StopProcess(),
                                    Exit("process_lost"))


def test_an_answered_heartbeat_resets_the_misses_to_its_age() -> None:
    core = ready_worker()
    core.heartbeat_due()
    core.heartbeat_due()
    assert core.missed_beats == 2
    assert core.heartbeat_answered(True) == ()
    assert core.missed_beats == 1  # it left one tick ago
    assert core.heartbeat_due() == (SendHeartbeat(6.0), ScheduleTimer(2.0, HeartbeatDue()))


def test_a_process_not_ready_within_the_startup_timeout_fails_the_start() -> None:
    core = WorkerLifecycle(TIMINGS)
    core.start()
    core.spawned()
    assert core.startup_timed_out() == (ReportStartFailed(None), StopProcess(),
                                        Exit("start_failed"))
    assert ready_worker().startup_timed_out() == ()


def test_a_process_that_cannot_be_spawned_fails_the_start_without_stopping_anything() -> None:
    core = WorkerLifecycle(TIMINGS)
    core.start()
    assert core.start_failed(BOOM) == (ReportStartFailed(BOOM), Exit("start_failed"))


def test_stopping_with_the_tree_answers_the_callers_and_tells_no_peer() -> None:
    core = running(ready_worker(), "r2", "r1")
    core.recycle_requested("manual", drained=False, now=1.0)
    core.replacement_spawned(1)
    assert core.exit_requested() == (AbandonInFlight(("r1", "r2")),
                                     StopReplacement(notify=False), StopProcess(notify=False))
    assert core.exit_requested() == ()


def test_outcomes_nobody_asked_for_are_errors() -> None:
    core = WorkerLifecycle(TIMINGS)
    with pytest.raises(LifecycleError, match="connected"):
        core.connected()
    core = ready_worker()
    with pytest.raises(LifecycleError, match="not in flight"):
        core.request_finished("nope", ok=True, elapsed_ms=0.0, timed_out=False, now=0.0)
    running(core, "r1")
    with pytest.raises(LifecycleError, match="already in flight"):
        core.request_received("r1")
    with pytest.raises(LifecycleError, match="replacement_spawned"):
        core.replacement_spawned(1)


def test_late_timers_and_stale_answers_do_nothing() -> None:
    core = ready_worker()
    assert core.probe_due(now=1.0) == ()
    assert core.probe_answered(0) == ()
    assert core.replacement_ready(7, "x") == ()
    assert core.replacement_failed(7, "x") == ()
    assert core.replacement_timed_out(7) == ()
    assert core.heartbeat_answered(False) == () and core.missed_beats == 0


# --- every input, in any order ----------------------------------------------------------------

RECYCLE_REASONS = ["request_timeout", "unreachable", "max_requests", "ttl", "memory", "manual",
                   "node_draining", "rebalance", "something_else"]
MOSTLY = st.sampled_from([True, True, True, True, False])  # outcomes: mostly successful
RARELY = st.sampled_from([False] * 7 + [True])  # deaths: rare enough to reach deep states
QUIET_WHEN_STOPPED = (SpawnProcess, SpawnReplacement, Probe, SendHeartbeat, AnnounceReady,
                      Connect, SwapIn, ScheduleTimer)


class WorkerAgainstItsProcess(RuleBasedStateMachine):
    """Drives the core with every input and plays its actor: executes the effects on a model
    of the processes, timers and pending calls, and checks what must always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.incarnate()

    def incarnate(self) -> None:
        """A fresh Worker (its Starter restarts it after an exit)."""
        self.core = WorkerLifecycle(TIMINGS)
        self.now = 0.0
        self.main_live = self.replacement_live = False
        self.generation = 0
        self.ready_line_given = self.replacement_line_given = False
        self.timers: list[TimerPayload] = []
        self.heartbeat_pending = self.probe_pending = False
        self.started: set[str] = set()
        self.finishes: Counter[str] = Counter()
        self.exits = 0
        self.next_id = 0
        self.outcome_ok = True
        self.announced: list[str] = []

    # --- playing the actor ----------------------------------------------------------------

    def give(self, step: Callable[[], Effects | StartCall | RefuseRequest],
             ok: bool = True) -> None:
        """One input (``step`` calls the core); ``ok``: how the outcomes it asks for end."""
        was_stopping = self.core.state is WorkerState.STOPPING
        effects = step()
        batch = (effects,) if isinstance(effects, StartCall | RefuseRequest) else effects
        if was_stopping:  # it only refuses requests (they may still arrive)
            assert all(isinstance(e, RefuseRequest) for e in batch), f"stopped, yet: {batch}"
        for effect in batch:
            self.execute(effect, ok)

    def execute(self, effect: Effect | StartCall | RefuseRequest, ok: bool) -> None:
        if self.exits:
            assert not isinstance(effect, QUIET_WHEN_STOPPED), effect
        match effect:
            case SpawnProcess():
                assert not self.main_live
                if ok:
                    self.main_live = True
                    self.give(lambda: self.core.spawned())
                else:
                    self.give(lambda: self.core.start_failed(BOOM))
            case Connect():
                assert self.main_live
                self.give(lambda: self.core.connected() if ok else self.core.connect_failed(BOOM))
            case SpawnReplacement(generation=generation):
                assert not self.replacement_live and generation == self.generation + 1
                self.generation, self.replacement_line_given = generation, False
                if ok:
                    self.replacement_live = True
                    self.give(lambda: self.core.replacement_spawned(generation))
                else:
                    self.give(lambda: self.core.replacement_failed(generation, "no python"))
            case SwapIn():
                assert self.main_live and self.replacement_live and not self.running()
                self.replacement_live, self.heartbeat_pending = False, False
            case StopReplacement():
                assert self.replacement_live
                self.replacement_live = False
            case StopProcess():
                assert self.main_live
                self.main_live = self.heartbeat_pending = self.probe_pending = False
            case Exit():
                self.exits += 1
            case ScheduleTimer(payload=payload):
                self.timers.append(payload)
            case SendHeartbeat():
                self.heartbeat_pending = True
            case Probe():
                self.probe_pending = True
            case StartCall(request_id=rid):
                self.started.add(rid)
            case CheckIn(request_id=rid):
                self.finishes[rid] += 1
            case ReportProcessLost(request_ids=rids) | AbandonInFlight(request_ids=rids):
                self.finishes.update(rids)
            case AnnounceReady(cause=cause):
                self.announced.append(cause)
            case RefuseRequest() | ReportStartFailed():
                pass

    def running(self) -> list[str]:
        return sorted(rid for rid in self.started if not self.finishes[rid])

    # --- inputs -----------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.core.state is not WorkerState.STOPPING

    @initialize(ok=MOSTLY)
    def start(self, ok: bool) -> None:
        self.give(lambda: self.core.start(), ok)

    @precondition(lambda self: not self.alive())
    @rule(ok=MOSTLY, late_timers=st.booleans())
    def the_starter_starts_the_next_incarnation(self, ok: bool, late_timers: bool) -> None:
        if late_timers:  # late timers, answers and messages reach the stopped worker
            for payload in self.timers:
                self.fire(payload)
            self.give(lambda: self.core.heartbeat_answered(True))
            self.give(lambda: self.core.probe_answered(0))
            self.give(lambda: self.core.recycle_requested("manual", drained=True, now=self.now))
            self.give(lambda: self.core.exit_requested())
        self.incarnate()
        self.start(ok)

    @precondition(lambda self: self.core.state is WorkerState.STARTING and self.main_live
                  and not self.ready_line_given)
    @rule(ok=MOSTLY)
    def process_announces_itself(self, ok: bool) -> None:
        self.ready_line_given = True
        self.give(lambda: self.core.ready_line("127.0.0.1:5000"), ok)

    @precondition(lambda self: self.core.state is WorkerState.STARTING and self.main_live)
    @rule(happens=RARELY)
    def process_writes_a_bad_ready_line(self, happens: bool) -> None:
        if happens:
            self.give(lambda: self.core.start_failed(BOOM))

    @precondition(lambda self: self.main_live)
    @rule(happens=RARELY, reason=st.sampled_from(["process_exited", "UNAVAILABLE: gone"]))
    def process_dies(self, happens: bool, reason: str) -> None:
        if happens:
            self.give(lambda: self.core.process_died(reason))

    @precondition(alive)
    @rule()
    def request_arrives(self) -> None:
        self.next_id += 1
        self.give(lambda: self.core.request_received(f"r{self.next_id}"))

    @precondition(lambda self: bool(self.running()))
    @rule(index=st.integers(0, 5), ok=MOSTLY, timed_out=st.booleans())
    def request_finishes(self, index: int, ok: bool, timed_out: bool) -> None:
        rids = self.running()
        rid = rids[index % len(rids)]
        self.give(lambda: self.core.request_finished(
            rid, ok=ok and not timed_out, elapsed_ms=1.0, timed_out=timed_out, now=self.now))

    def due(self) -> list[int]:
        """Timers that may fire now (a start-up timeout only by ``start_up_takes_too_long``)."""
        return [i for i, t in enumerate(self.timers) if not isinstance(t, StartupTimeout)]

    @precondition(lambda self: self.alive() and bool(self.due()))
    @rule(index=st.integers(0, 7))
    def a_timer_fires(self, index: int) -> None:
        due = self.due()
        self.fire(self.timers.pop(due[index % len(due)]))

    @precondition(lambda self: self.alive() and StartupTimeout() in self.timers)
    @rule(happens=RARELY)
    def start_up_takes_too_long(self, happens: bool) -> None:
        if happens:
            self.timers.remove(StartupTimeout())
            self.fire(StartupTimeout())

    def fire(self, payload: TimerPayload) -> None:
        match payload:
            case StartupTimeout():
                self.give(lambda: self.core.startup_timed_out())
            case HeartbeatDue():
                self.give(lambda: self.core.heartbeat_due())
            case ProbeDue():
                self.give(lambda: self.core.probe_due(self.now))
            case ReplacementTimeout(generation=generation):
                self.give(lambda: self.core.replacement_timed_out(generation))

    @precondition(lambda self: self.heartbeat_pending)
    @rule(ok=MOSTLY)
    def heartbeat_answers(self, ok: bool) -> None:
        self.heartbeat_pending = False
        self.give(lambda: self.core.heartbeat_answered(ok))

    @precondition(lambda self: self.probe_pending)
    @rule(calls=st.sampled_from([1, None, 0]))
    def probe_answers(self, calls: int | None) -> None:
        self.probe_pending = False
        self.give(lambda: self.core.probe_answered(calls))

    @precondition(alive)
    @rule(dt=st.sampled_from([0.3, 0.01, 0.1, 1.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @precondition(alive)
    @rule(reason=st.sampled_from(RECYCLE_REASONS), drained=st.booleans(), ok=MOSTLY)
    def pool_asks_for_a_recycle(self, reason: str, drained: bool, ok: bool) -> None:
        self.give(lambda: self.core.recycle_requested(reason, drained=drained, detail="x",
                                                      now=self.now), ok)

    @precondition(lambda self: self.replacement_live and not self.replacement_line_given)
    @rule(ok=MOSTLY)
    def replacement_announces_itself(self, ok: bool) -> None:
        self.replacement_line_given = True
        self.give(lambda: self.core.replacement_ready(self.generation, "127.0.0.1:6000"), ok)

    @precondition(lambda self: self.replacement_live)
    @rule(happens=RARELY)
    def replacement_dies(self, happens: bool) -> None:
        if happens:
            self.give(lambda: self.core.replacement_failed(self.generation, "exited early"))

    @precondition(alive)
    @rule(happens=RARELY)
    def the_tree_stops(self, happens: bool) -> None:
        if happens:
            self.give(lambda: self.core.exit_requested())

    # --- what always holds --------------------------------------------------------------------

    @invariant()
    def never_two_live_processes_outside_a_swap(self) -> None:
        if self.core.state is not WorkerState.SWAPPING:
            assert not (self.main_live and self.replacement_live)
        if self.core.state is WorkerState.STOPPING:
            assert not self.main_live and not self.replacement_live
        if self.core.serving:
            assert self.main_live

    @invariant()
    def every_started_request_gets_exactly_one_finish(self) -> None:
        assert all(count == 1 for count in self.finishes.values())
        assert set(self.finishes) <= self.started
        assert self.core.in_flight == set(self.running())
        if self.core.state is WorkerState.STOPPING:
            assert not self.running()

    @invariant()
    def the_worker_exits_at_most_once(self) -> None:
        assert self.exits <= 1

    @invariant()
    def a_timed_out_worker_is_draining_probing_or_recycled(self) -> None:
        state = self.core.state
        if state is WorkerState.DRAINING:
            assert self.core.in_flight, "drained but neither probing nor recycled"
        if state is WorkerState.PROBING:
            assert not self.core.in_flight
            assert self.probe_pending or ProbeDue() in self.timers
        if state is WorkerState.READY:
            assert not self.core.timed_out

    @invariant()
    def a_serving_worker_keeps_its_heartbeat_going(self) -> None:
        if self.core.serving:
            assert HeartbeatDue() in self.timers


WorkerAgainstItsProcess.TestCase.settings = settings(
    max_examples=500, stateful_step_count=60, deadline=None)
test_the_worker_lifecycle_holds_its_invariants_under_any_inputs = WorkerAgainstItsProcess.TestCase
