"""``tree.held_wake.HeldWake``: at once when nothing waits, else held up to a count or a time."""

from __future__ import annotations

import threading
import time

import pytest

from snakepit_actors.tree.held_wake import HeldWake

pytestmark = pytest.mark.timeout(30)


class Wakes:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


def test_a_call_finishing_with_nothing_waiting_wakes_at_once() -> None:
    wakes = Wakes()
    held = HeldWake(wakes, hold_s=60.0, max_held=8, name="t")
    held.finished(more_waiting=False)
    assert wakes.count == 1
    held.stop()


def test_while_calls_wait_the_wake_is_held_until_max_held_calls_finished() -> None:
    wakes = Wakes()
    held = HeldWake(wakes, hold_s=60.0, max_held=3, name="t")
    held.finished(more_waiting=True)
    held.finished(more_waiting=True)
    assert wakes.count == 0  # held: the timer is 60 s away
    held.finished(more_waiting=True)  # the third: wake now
    assert wakes.count == 1
    held.stop()


def test_a_held_wake_comes_after_hold_s_and_none_when_nothing_was_held() -> None:
    wakes = Wakes()
    held = HeldWake(wakes, hold_s=0.05, max_held=8, name="t")
    held.finished(more_waiting=True)
    assert wakes.event.wait(10.0) and wakes.count == 1
    time.sleep(0.2)
    assert wakes.count == 1  # the timer fires once for what was held
    held.stop()


def test_hold_s_zero_never_holds() -> None:
    wakes = Wakes()
    held = HeldWake(wakes, hold_s=0.0, max_held=8, name="t")
    for _ in range(3):
        held.finished(more_waiting=True)
    assert wakes.count == 3
    held.stop()
