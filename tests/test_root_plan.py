"""The PoolRoot's restart decisions (core/root_plan.py), as specifications with an explicit
clock: which child's death restarts what, who learns the new address, and when the pool is
given up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.root_plan import (
    ROOT_MAX_RESTARTS,
    ROOT_MAX_SECONDS,
    RULES,
    Degrade,
    Fail,
    Restart,
    RootPlan,
)
from snakepit_actors.messages import REPLACEABLE_ROLES, WorkerContext


def test_a_registry_that_dies_is_restarted_and_its_feeders_learn_the_new_address() -> None:
    plan = RootPlan()
    decision = plan.child_died("worker_registry", now=0.0)
    assert decision == Restart("worker_registry",
                               ("pool", "worker_supervisor", "recycler", "node_watch"), 1)
    assert plan.child_died("session_store", 0.0) == Restart(
        "session_store", ("pool", "requester"), 1)


def test_the_node_watch_and_unknown_children_fail_the_pool_at_once() -> None:
    plan = RootPlan()
    assert isinstance(plan.child_died("node_watch", 0.0), Fail)
    assert isinstance(plan.child_died("something_else", 0.0), Fail)


def test_a_worker_supervisor_that_escalated_only_degrades_the_pool() -> None:
    plan = RootPlan()
    assert isinstance(plan.child_died("worker_supervisor", 0.0), Restart)
    plan.supervisor_escalated()
    assert plan.child_died("worker_supervisor", 1.0) == Degrade(
        "worker_supervisor", "the worker supervisor gave up restarting")


def test_a_worker_supervisor_that_dies_too_often_degrades_and_a_registry_fails() -> None:
    plan = RootPlan()
    for i in range(ROOT_MAX_RESTARTS):
        assert isinstance(plan.child_died("worker_supervisor", float(i)), Restart)
        assert isinstance(plan.child_died("process_registry", float(i)), Restart)
    assert isinstance(plan.child_died("worker_supervisor", 3.0), Degrade)
    assert isinstance(plan.child_died("process_registry", 3.0), Fail)


def test_every_role_told_of_a_new_address_is_a_role_that_can_hear_it() -> None:
    for role, rule in RULES.items():
        assert role not in rule.tell
        assert set(rule.tell) <= set(RULES) | {"requester"}
        if rule.tell and "requester" not in rule.tell:
            assert role in REPLACEABLE_ROLES


def test_a_worker_context_follows_a_replaced_role_and_ignores_others() -> None:
    ctx = WorkerContext(config=None, run_id="r", run_dir="d", pool="p",  # type: ignore[arg-type]
                        worker_registry="w", process_registry="pr", starter_registry="s")
    assert ctx.with_actor("worker_registry", "w2").worker_registry == "w2"
    assert ctx.with_actor("pool", "p2").pool == "p2"
    assert ctx.with_actor("session_store", "x") == ctx


@given(st.lists(st.tuples(st.sampled_from(sorted(RULES)), st.floats(0.0, 5.0)), max_size=60))
def test_no_role_is_restarted_more_than_the_intensity_allows_in_any_window(
        deaths: list[tuple[str, float]]) -> None:
    plan = RootPlan()
    now = 0.0
    restarted: dict[str, list[float]] = {}
    given_up: set[str] = set()
    for role, gap in deaths:
        now += gap
        if role in given_up:
            continue  # a role past its intensity is not a child any more
        decision = plan.child_died(role, now)
        if isinstance(decision, Restart):
            times = restarted.setdefault(role, [])
            times.append(now)
            assert decision.restarts == len(times) == plan.restarts(role)
            window = [t for t in times if t > now - ROOT_MAX_SECONDS]
            assert len(window) <= ROOT_MAX_RESTARTS
        else:
            assert RULES[role].restart == "never" or len(
                [t for t in restarted.get(role, []) if t > now - ROOT_MAX_SECONDS]
            ) == ROOT_MAX_RESTARTS
            assert isinstance(decision, Degrade) == (role == "worker_supervisor")
            given_up.add(role)
