"""Specifications of the Supervisor's pure core: exits and wakeups in, effects out, no actors."""

from __future__ import annotations

import grimp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_supervision import ChildSpec, Escalate, RestartPlanner, affected_ids
from snakepit_supervision.children import ChildRecord
from snakepit_supervision.supervisor_core import (
    STOP_GRACE_S,
    AnnounceRestart,
    ChildForgotten,
    Effects,
    IncarnationGone,
    RestartDue,
    StartChildren,
    StopIncarnation,
    StopTimedOut,
    SupervisorCore,
    WakeAfter,
)

pytestmark = pytest.mark.timeout(120)

ACTOR = "snakepit_supervision.registry:Registry"  # any importable class: nothing is created
RESTARTS = ("permanent", "transient", "temporary")
STRATEGY_NAMES = ("one_for_one", "one_for_all", "rest_for_one")


class Shell:
    """Carries out a core's effects as the actor does, with a fake clock and string addresses."""

    def __init__(self, core: SupervisorCore) -> None:
        self.core = core
        self.now = 0.0
        self.stopped: list[str] = []  # addresses told to exit whose exit is not yet delivered
        self.timers: list[tuple[float, RestartDue]] = []
        self.starts: list[tuple[str, ...]] = []
        self.forgotten: list[ChildForgotten] = []
        self.timed_out: list[str] = []
        self.escalations: list[str] = []
        self._incarnations = 0

    def run(self, effects: Effects) -> Effects:
        for effect in effects:
            match effect:
                case StopIncarnation(_, address):
                    self.stopped.append(address)
                case WakeAfter(after_s, payload):
                    self.timers.append((self.now + after_s, payload))
                case StartChildren(child_ids):
                    self.starts.append(child_ids)
                    for child_id in child_ids:
                        self._incarnations += 1
                        self.core.started(child_id, f"{child_id}#{self._incarnations}")
                case ChildForgotten():
                    self.forgotten.append(effect)
                case StopTimedOut(child_id):
                    self.timed_out.append(child_id)
                case Escalate(reason):
                    self.escalations.append(reason)
        return effects

    def exit(self, address: str) -> Effects:
        """Deliver ``ChildActorExited`` for ``address``."""
        gone = self.core.child_exited(address)
        return () if gone is None else self.run(self.core.after_exit(gone, self.now))

    def crash(self, child_id: str) -> Effects:
        return self.exit(self.address(child_id))

    def deliver_stop(self, index: int = 0) -> Effects:
        return self.exit(self.stopped.pop(index))

    def fire_next_timer(self) -> Effects:
        timer = min(self.timers, key=lambda t: t[0])
        self.timers.remove(timer)
        self.now = max(self.now, timer[0])
        return self.run(self.core.wakeup(timer[1]))

    def record(self, child_id: str) -> ChildRecord:
        record = self.core.table.get(child_id)
        assert record is not None
        return record

    def address(self, child_id: str) -> str:
        address = self.record(child_id).address
        assert address is not None
        return str(address)


def supervisor(strategy: str = "one_for_one", kinds: str = "ppp", max_restarts: int = 10,
               max_seconds: float = 60.0, backoff_s: float = 0.0) -> Shell:
    """A configured core with children c0.. of the given kinds (p/t/x: permanent, transient,
    temporary), all started."""
    core = SupervisorCore()
    core.configure(RestartPlanner(strategy, max_restarts, max_seconds,  # type: ignore[arg-type]
                                  backoff_initial_s=backoff_s, backoff_max_s=max(backoff_s, 5.0)))
    restart = {"p": "permanent", "t": "transient", "x": "temporary"}
    shell = Shell(core)
    shell.run((core.add(ChildSpec(f"c{i}", ACTOR, restart=restart[k])  # type: ignore[arg-type]
                        for i, k in enumerate(kinds)),))
    shell.starts.clear()
    return shell


def test_an_exit_without_notice_is_a_crash_and_drops_the_incarnation() -> None:
    shell = supervisor()
    old = shell.address("c1")
    assert shell.core.child_exited(old) == IncarnationGone("c1", old, False, "crashed")
    assert shell.record("c1").address is None and shell.core.child_exited(old) is None


def test_a_crash_under_one_for_one_restarts_only_that_child_at_once() -> None:
    shell = supervisor("one_for_one")
    others, old = [shell.address("c0"), shell.address("c2")], shell.address("c1")
    assert shell.crash("c1") == (AnnounceRestart("c1", 0.0, 1), StartChildren(("c1",)))
    assert shell.address("c1") != old and shell.record("c1").restarts == 1
    assert [shell.address("c0"), shell.address("c2")] == others


def test_a_group_restart_stops_siblings_last_first_and_starts_all_once_they_are_gone() -> None:
    shell = supervisor("one_for_all")
    c0, c2 = shell.address("c0"), shell.address("c2")
    effects = shell.crash("c1")
    assert effects == (
        StopIncarnation("c2", c2), StopIncarnation("c0", c0),
        AnnounceRestart("c0", 0.0, 1), AnnounceRestart("c1", 0.0, 1), AnnounceRestart("c2", 0.0, 1),
        WakeAfter(STOP_GRACE_S, RestartDue(1, stop_grace=True)),
    )
    assert shell.core.child_exited(c2) == IncarnationGone("c2", c2, True, "shutdown")
    assert shell.core.after_exit(IncarnationGone("c2", c2, True, "shutdown"), 0.0) == ()
    assert shell.exit(c0) == (StartChildren(("c0", "c1", "c2")),)
    assert [r.state for r in shell.core.table] == ["running"] * 3


def test_rest_for_one_leaves_the_children_started_before_the_crashed_one_alone() -> None:
    shell = supervisor("rest_for_one", kinds="pppp")
    before, c3 = [shell.address("c0"), shell.address("c1")], shell.address("c3")
    effects = shell.crash("c2")
    assert effects[0] == StopIncarnation("c3", c3)
    assert [e.child_id for e in effects if isinstance(e, AnnounceRestart)] == ["c2", "c3"]
    shell.deliver_stop()
    assert shell.starts == [("c2", "c3")]
    assert [shell.address("c0"), shell.address("c1")] == before


def test_a_backoff_holds_the_restart_until_its_wakeup() -> None:
    shell = supervisor(backoff_s=0.5)
    assert shell.crash("c0") == (AnnounceRestart("c0", 0.5, 1), WakeAfter(0.5, RestartDue(1)))
    assert shell.record("c0").state == "restarting" and shell.record("c0").address is None
    assert shell.fire_next_timer() == (StartChildren(("c0",)),)


def test_siblings_that_outlive_the_stop_grace_are_abandoned_and_the_group_starts_anyway() -> None:
    shell = supervisor("one_for_all")
    shell.crash("c0")
    stuck = list(shell.stopped)
    assert shell.fire_next_timer() == (
        StopTimedOut("c1"), StopTimedOut("c2"), StartChildren(("c0", "c1", "c2")))
    assert shell.now == STOP_GRACE_S
    assert all(shell.exit(address) == () for address in stuck)  # late notices are ignored
    assert [r.state for r in shell.core.table] == ["running"] * 3


def test_a_crash_widening_a_pending_restart_takes_its_children_and_voids_the_old_wakeup() -> None:
    shell = supervisor("rest_for_one", backoff_s=1.0)
    shell.crash("c2")  # batch 1: c2 after 1 s
    shell.crash("c0")  # batch 2: c0, c1, c2 (c1 stopped first)
    assert shell.fire_next_timer() == ()  # batch 1's: void
    shell.deliver_stop()
    assert shell.fire_next_timer() == (StartChildren(("c0", "c1", "c2")),)


def test_exceeding_the_intensity_escalates_once_and_then_nothing_is_decided() -> None:
    shell = supervisor("one_for_one", max_restarts=1, backoff_s=1.0)
    shell.crash("c0")  # batch 1 waits for its backoff
    effects = shell.crash("c1")
    assert len(effects) == 1 and isinstance(effects[0], Escalate)
    assert "more than 1 restarts" in effects[0].reason
    assert shell.core.stopping and not shell.core.table.batches
    assert shell.core.wakeup(RestartDue(1)) == () and shell.core.resume_held() == ()
    assert shell.crash("c2") == () and shell.escalations == [effects[0].reason]


def test_a_normal_exit_announced_first_forgets_a_transient_child() -> None:
    shell = supervisor(kinds="tp")
    address = shell.address("c0")
    shell.core.exiting_normally(address, "done")
    gone = shell.core.child_exited(address)
    assert gone == IncarnationGone("c0", address, True, "done")
    assert shell.core.after_exit(gone, 0.0) == (ChildForgotten("c0", ()),)
    assert [r.child_id for r in shell.core.table] == ["c1"]


def test_a_crashed_temporary_child_is_forgotten_and_its_group_left_alone() -> None:
    shell = supervisor("one_for_all", kinds="xpp")
    assert shell.crash("c0") == (ChildForgotten("c0", ()),)
    assert not shell.stopped and [r.child_id for r in shell.core.table] == ["c1", "c2"]


def test_terminating_a_running_child_stops_it_and_answers_once_it_is_gone() -> None:
    shell = supervisor()
    address = shell.address("c1")
    assert shell.run(shell.core.terminate("c1", "asker") or ()) == (
        StopIncarnation("c1", address),)
    assert shell.core.terminate("c1", "second") == ()  # stopping: its exit completes both
    assert shell.deliver_stop() == (ChildForgotten("c1", ("asker", "second")),)
    assert shell.core.terminate("c1", "asker") is None


def test_terminating_a_child_waiting_for_its_backoff_forgets_it_at_once() -> None:
    shell = supervisor(backoff_s=2.0)
    shell.crash("c0")
    assert shell.core.terminate("c0", "asker") == (ChildForgotten("c0", ("asker",)),)
    assert shell.fire_next_timer() == ()


def test_held_children_wait_for_resume_and_a_stopping_core_starts_nothing() -> None:
    shell = supervisor()
    shell.core.held("c1")
    assert shell.record("c1").state == "held" and shell.record("c1").address is None
    assert shell.core.resume_held() == (StartChildren(("c1",)),)
    shell.core.stop()
    assert shell.core.resume_held() == ()
    gone = shell.core.child_exited(shell.address("c0"))
    assert gone is not None and (gone.normal, gone.reason) == (True, "shutdown")
    assert shell.core.after_exit(gone, 0.0) == ()


def test_new_children_are_refused_with_the_reason() -> None:
    core = SupervisorCore()
    assert "not initialised" in (core.new_child_problem(ChildSpec("a", ACTOR)) or "")
    shell = supervisor()
    assert "already in use" in (shell.core.new_child_problem(ChildSpec("c0", ACTOR)) or "")
    assert "must look like" in (shell.core.new_child_problem(ChildSpec("n", "x")) or "")
    assert shell.core.new_child_problem(ChildSpec("n", ACTOR)) is None
    shell.core.stop()
    assert shell.core.new_child_problem(ChildSpec("n", ACTOR)) == "supervisor is stopping"


def test_an_abandoned_sibling_the_group_does_not_restart_is_forgotten() -> None:
    shell = supervisor("one_for_all", kinds="pxp")
    shell.crash("c0")
    assert shell.run(shell.core.terminate("c2", "asker") or ()) == ()  # already stopping
    assert shell.fire_next_timer() == (
        StopTimedOut("c1"), ChildForgotten("c1", ()),
        StopTimedOut("c2"), ChildForgotten("c2", ("asker",)),
        StartChildren(("c0",)),
    )
    assert [r.child_id for r in shell.core.table] == ["c0"]


def test_the_core_imports_no_actor_library() -> None:
    graph = grimp.build_graph("snakepit_supervision", include_external_packages=True)
    assert "thespian" not in graph.find_upstream_modules("snakepit_supervision.supervisor_core")
    assert "thespian" in graph.find_upstream_modules("snakepit_supervision.supervisor")


@given(
    st.text("ptx", min_size=1, max_size=6),
    st.sampled_from(STRATEGY_NAMES),
    st.integers(0, 4),
    st.sampled_from([0.0, 0.5]),
    st.data(),
)
def test_every_crash_restarts_its_group_once_in_spec_order_or_escalates_past_the_intensity(
    kinds: str, strategy: str, max_restarts: int, backoff_s: float, data: st.DataObject
) -> None:
    max_seconds = 10.0
    shell = supervisor(strategy, kinds, max_restarts, max_seconds, backoff_s)
    kind_of = {r.child_id: r.spec.restart for r in shell.core.table}
    restart_times: list[float] = []
    for _ in range(data.draw(st.integers(1, 8))):
        ids = [r.child_id for r in shell.core.table]
        if not ids:
            return
        victim = data.draw(st.sampled_from(ids))
        shell.now += data.draw(st.sampled_from([0.0, 0.25, 3.0, 11.0]))
        shell.starts.clear()
        shell.crash(victim)
        if kind_of[victim] == "temporary":
            assert shell.forgotten[-1].child_id == victim and not shell.stopped
            continue
        restart_times.append(shell.now)
        in_window = sum(1 for t in restart_times if t > shell.now - max_seconds)
        if in_window > max_restarts:
            assert len(shell.escalations) == 1 and shell.core.stopping
            return
        assert not shell.escalations
        while shell.stopped or shell.timers:  # exits and wakeups in any order
            if shell.stopped and (not shell.timers or data.draw(st.booleans())):
                shell.deliver_stop(data.draw(st.integers(0, len(shell.stopped) - 1)))
            else:
                shell.fire_next_timer()
        group = affected_ids(strategy, ids, victim)  # type: ignore[arg-type]
        assert shell.starts == [tuple(c for c in group if kind_of[c] != "temporary")]
        assert [r.child_id for r in shell.core.table] == [
            c for c in ids if c not in group or kind_of[c] != "temporary"]
        assert all(r.state == "running" for r in shell.core.table)
        assert not shell.core.table.batches


@given(st.text("ptx", min_size=1, max_size=5), st.sampled_from(STRATEGY_NAMES), st.data())
def test_overlapping_crashes_never_start_a_child_twice_at_once_and_always_settle(
    kinds: str, strategy: str, data: st.DataObject
) -> None:
    shell = supervisor(strategy, kinds, max_restarts=1000, backoff_s=0.5)
    for _ in range(data.draw(st.integers(1, 30))):
        running = [r.child_id for r in shell.core.table if r.state == "running"]
        moves = ["crash"] * bool(running) + ["exit"] * bool(shell.stopped) + ["timer"] * bool(
            shell.timers)
        if not moves:
            break
        move = data.draw(st.sampled_from(moves))
        if move == "crash":
            shell.crash(data.draw(st.sampled_from(running)))
        elif move == "exit":
            shell.deliver_stop(data.draw(st.integers(0, len(shell.stopped) - 1)))
        else:
            shell.fire_next_timer()
        order = [r.child_id for r in shell.core.table]
        for started in shell.starts:
            assert list(started) == sorted(set(started), key=order.index)
        shell.starts.clear()
    while shell.stopped or shell.timers:
        shell.deliver_stop() if shell.stopped else shell.fire_next_timer()
    assert not shell.core.table.batches
    assert all(r.state == "running" and r.address for r in shell.core.table)
