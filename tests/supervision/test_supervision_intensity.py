"""Specifications of the pure supervision decisions: intensity, backoff, strategies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakepit_supervision import (
    Backoff,
    ChildSpec,
    Escalate,
    Ignore,
    Restart,
    RestartIntensity,
    RestartPlanner,
    affected_ids,
    restarts_after_exit,
)

pytestmark = pytest.mark.timeout(60)

RESTARTS = ("permanent", "transient", "temporary")
times = st.lists(st.floats(0, 100, allow_nan=False), max_size=40).map(sorted)


def spec(child_id: str, restart: str = "permanent") -> ChildSpec:
    return ChildSpec(child_id, "m:C", None, restart)  # type: ignore[arg-type]


children_st = st.lists(st.sampled_from(RESTARTS), min_size=1, max_size=8).map(
    lambda kinds: [spec(f"c{i}", k) for i, k in enumerate(kinds)]
)


@given(times, st.integers(0, 5), st.floats(0.1, 20))
def test_intensity_allows_exactly_max_restarts_per_window(
    stamps: list[float], max_restarts: int, max_seconds: float
) -> None:
    intensity = RestartIntensity(max_restarts, max_seconds)
    for i, now in enumerate(stamps):
        in_window = sum(1 for t in stamps[: i + 1] if t > now - max_seconds)
        assert intensity.record(now) == (in_window <= max_restarts)


def test_intensity_of_zero_escalates_on_the_first_restart() -> None:
    assert RestartIntensity(0, 5.0).record(0.0) is False


def test_intensity_forgets_restarts_older_than_the_window() -> None:
    intensity = RestartIntensity(2, 1.0)
    assert intensity.record(0.0) and intensity.record(0.5)
    assert not intensity.record(0.9)
    assert intensity.recent(2.0) == 0
    assert intensity.record(2.0)


@pytest.mark.parametrize(("max_restarts", "max_seconds"), [(-1, 1.0), (1, 0.0), (1, -2.0)])
def test_intensity_rejects_impossible_limits(max_restarts: int, max_seconds: float) -> None:
    with pytest.raises(ValueError, match="max_"):
        RestartIntensity(max_restarts, max_seconds)


@given(st.floats(0.01, 2), st.floats(2, 30), st.integers(1, 12))
def test_backoff_doubles_from_initial_up_to_max_while_failures_are_close(
    initial_s: float, max_s: float, failures: int
) -> None:
    backoff = Backoff(initial_s, max_s, reset_after_s=1000.0)
    now, delays = 0.0, []
    for _ in range(failures):
        delays.append(backoff.next_delay(now))
        now += delays[-1]  # fails again right after each restart
    assert delays == [min(max_s, initial_s * 2**i) for i in range(failures)]


def test_backoff_starts_over_after_a_quiet_period() -> None:
    backoff = Backoff(0.1, 5.0, reset_after_s=10.0)
    assert [backoff.next_delay(t) for t in (0.0, 0.2, 0.6)] == [0.1, 0.2, 0.4]
    assert backoff.next_delay(0.6 + 0.4 + 9.9) == 0.8  # ran 9.9 s: not quiet enough
    assert backoff.next_delay(10.9 + 0.8 + 10.0) == 0.1  # ran 10 s: starts over


def test_backoff_of_zero_never_delays() -> None:
    backoff = Backoff(0.0, 5.0, reset_after_s=1.0)
    assert [backoff.next_delay(0.0) for _ in range(5)] == [0.0] * 5


@pytest.mark.parametrize(("initial", "maximum", "reset"), [(-1, 1, 1), (2, 1, 1), (0, 1, 0)])
def test_backoff_rejects_impossible_settings(initial: float, maximum: float, reset: float) -> None:
    with pytest.raises(ValueError, match="backoff_"):
        Backoff(initial, maximum, reset)


@pytest.mark.parametrize(
    ("restart", "normal", "expected"),
    [
        ("permanent", False, True),
        ("permanent", True, True),
        ("transient", False, True),
        ("transient", True, False),
        ("temporary", False, False),
        ("temporary", True, False),
    ],
)
def test_restart_types_decide_whether_an_exit_restarts(
    restart: str, normal: bool, expected: bool
) -> None:
    assert restarts_after_exit(restart, normal) is expected  # type: ignore[arg-type]


@given(st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=8, unique=True), st.data())
def test_strategies_pick_the_documented_group(ids: list[str], data: st.DataObject) -> None:
    exited = data.draw(st.sampled_from(ids))
    assert affected_ids("one_for_one", ids, exited) == (exited,)
    assert affected_ids("one_for_all", ids, exited) == tuple(ids)
    assert affected_ids("rest_for_one", ids, exited) == tuple(ids[ids.index(exited) :])


def test_strategies_reject_unknown_inputs() -> None:
    with pytest.raises(ValueError, match="strategy"):
        affected_ids("one_for_some", ["a"], "a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not among"):
        affected_ids("one_for_one", ["a"], "b")


@given(
    children_st,
    st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    st.booleans(),
    st.data(),
)
def test_planner_restarts_the_group_minus_temporaries_stopping_siblings_last_first(
    children: list[ChildSpec], strategy: str, normal: bool, data: st.DataObject
) -> None:
    exited = data.draw(st.sampled_from(children))
    planner = RestartPlanner(strategy, max_restarts=100, max_seconds=1.0)  # type: ignore[arg-type]
    decision = planner.plan(children, exited.child_id, normal, now=0.0)
    if not restarts_after_exit(exited.restart, normal):
        assert isinstance(decision, Ignore)
        return
    assert isinstance(decision, Restart)
    ids = [c.child_id for c in children]
    group = affected_ids(strategy, ids, exited.child_id)  # type: ignore[arg-type]
    kinds = {c.child_id: c.restart for c in children}
    assert decision.stop_ids == tuple(c for c in reversed(group) if c != exited.child_id)
    assert decision.restart_ids == tuple(c for c in group if kinds[c] != "temporary")
    assert decision.after_s == 0.0


@given(st.integers(0, 6), st.floats(0.5, 10))
def test_planner_escalates_on_the_first_restart_beyond_the_intensity(
    max_restarts: int, max_seconds: float
) -> None:
    planner = RestartPlanner("one_for_one", max_restarts, max_seconds)
    children = [spec("a")]
    decisions = [planner.plan(children, "a", False, now=i * 0.001) for i in range(max_restarts + 1)]
    assert all(isinstance(d, Restart) for d in decisions[:max_restarts])
    assert isinstance(decisions[-1], Escalate)
    assert "restart intensity exceeded" in decisions[-1].reason


def test_planner_ignored_exits_do_not_count_against_the_intensity() -> None:
    planner = RestartPlanner("one_for_one", max_restarts=1, max_seconds=10.0)
    children = [spec("t", "transient"), spec("p")]
    for i in range(5):
        assert isinstance(planner.plan(children, "t", True, now=float(i)), Ignore)
    assert isinstance(planner.plan(children, "p", False, now=5.0), Restart)
    assert isinstance(planner.plan(children, "p", False, now=6.0), Escalate)


def test_planner_backs_off_per_child() -> None:
    planner = RestartPlanner("one_for_one", 100, 100.0, backoff_initial_s=0.5, backoff_max_s=1.5)
    children = [spec("a"), spec("b")]
    delays_a = [planner.plan(children, "a", False, now=float(i)).after_s for i in range(3)]  # type: ignore[union-attr]
    delay_b = planner.plan(children, "b", False, now=3.0)
    assert delays_a == [0.5, 1.0, 1.5]
    assert isinstance(delay_b, Restart) and delay_b.after_s == 0.5


def test_planner_rejects_bad_configuration_and_unknown_children() -> None:
    with pytest.raises(ValueError, match="strategy"):
        RestartPlanner("simple_one_for_one", 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff_max_s"):
        RestartPlanner("one_for_one", 1, 1.0, backoff_initial_s=2.0, backoff_max_s=1.0)
    with pytest.raises(ValueError, match="not among"):
        RestartPlanner("one_for_one", 1, 1.0).plan([spec("a")], "zz", False, 0.0)
