"""The handle's decisions when its actor system dies (core/system_plan.py), with an explicit
clock: close by default, restart when configured, give up past the intensity."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snakepit_actors.core.system_plan import (
    SYSTEM_MAX_RESTARTS,
    SYSTEM_MAX_SECONDS,
    GiveUp,
    RestartSystem,
    SystemPlan,
)


def test_by_default_a_lost_system_closes_the_handle() -> None:
    assert SystemPlan("close").on_loss(0.0, closing=False) == GiveUp("configured")


def test_a_lost_system_is_restarted_when_configured() -> None:
    plan = SystemPlan("restart")
    assert plan.on_loss(0.0, closing=False) == RestartSystem(1)
    assert plan.on_loss(1.0, closing=False) == RestartSystem(2)
    assert plan.restarts == 2


def test_a_handle_being_closed_never_restarts() -> None:
    assert SystemPlan("restart").on_loss(0.0, closing=True) == GiveUp("closing")


def test_one_loss_more_than_the_intensity_allows_gives_up() -> None:
    plan = SystemPlan("restart")
    for i in range(SYSTEM_MAX_RESTARTS):
        assert isinstance(plan.on_loss(float(i), closing=False), RestartSystem)
    assert plan.on_loss(float(SYSTEM_MAX_RESTARTS), closing=False) == GiveUp("intensity")


@given(st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=1, max_size=30))
def test_restarts_never_exceed_the_intensity_within_any_window(gaps: list[float]) -> None:
    plan = SystemPlan("restart")
    now, restarted_at = 0.0, []
    for gap in gaps:
        now += gap
        decision = plan.on_loss(now, closing=False)
        if isinstance(decision, RestartSystem):
            restarted_at.append(now)
            assert 1 <= decision.attempt <= SYSTEM_MAX_RESTARTS
        else:
            assert decision == GiveUp("intensity")
        window = [t for t in restarted_at if t > now - SYSTEM_MAX_SECONDS]
        assert len(window) <= SYSTEM_MAX_RESTARTS
    assert plan.restarts == len(restarted_at)


@given(st.floats(min_value=SYSTEM_MAX_SECONDS + 0.001, max_value=10_000.0))
def test_losses_further_apart_than_the_window_always_restart(gap: float) -> None:
    plan = SystemPlan("restart")
    for i in range(3 * SYSTEM_MAX_RESTARTS):
        assert plan.on_loss(i * gap, closing=False) == RestartSystem(1)
