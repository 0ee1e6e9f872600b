"""The gateway's wake pipe: one byte per gateway loop, and no wake lost
(``snakepit_actors/client/wake_pipe.py``)."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterator

import pytest

from snakepit_actors.client.wake_pipe import WakePipe

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pipe() -> Iterator[WakePipe]:
    p = WakePipe()
    yield p
    p.close()


def readable(pipe: WakePipe) -> bool:
    return bool(select.select([pipe.fileno()], [], [], 0)[0])


def test_many_wakes_before_the_gateway_looks_write_one_byte(pipe: WakePipe) -> None:
    for _ in range(100):
        pipe.wake()
    assert os.read(pipe.fileno(), 4096) == b"x"


def test_a_wake_after_the_drain_makes_the_next_select_return(pipe: WakePipe) -> None:
    pipe.wake()
    pipe.drain()
    assert not readable(pipe)
    pipe.wake()
    assert readable(pipe)


def test_a_wake_landing_as_the_gateway_drains_does_not_silence_the_next_one(
        pipe: WakePipe, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race that starved callers when the flag was cleared before the read: a wake landed
    between clear and read, the read ate its byte, and every later wake saw the flag set and
    wrote nothing while the gateway slept."""
    read = os.read

    def read_after_a_racing_wake(fd: int, n: int) -> bytes:
        pipe.wake()  # another thread, just before the gateway's read
        return read(fd, n)

    pipe.wake()
    monkeypatch.setattr(os, "read", read_after_a_racing_wake)
    pipe.drain()
    monkeypatch.setattr(os, "read", read)
    pipe.wake()
    assert readable(pipe)


def test_kick_writes_whatever_the_flag_says(pipe: WakePipe) -> None:
    pipe.wake()
    pipe.kick()
    assert os.read(pipe.fileno(), 4096) == b"xx"


def test_wakes_from_many_threads_against_a_draining_watcher_are_never_lost(
        pipe: WakePipe) -> None:
    """Each waker bumps a counter, then wakes; the watcher drains, then reads the counter (the
    gateway's order: drain, then flush). Every bump must be seen by a read that follows a
    select, or the watcher would sleep with work to do."""
    bumps = [0]
    lock = threading.Lock()
    seen = 0
    rounds = 2000

    def waker() -> None:
        for _ in range(rounds):
            with lock:
                bumps[0] += 1
            pipe.wake()

    threads = [threading.Thread(target=waker) for _ in range(4)]
    for t in threads:
        t.start()
    while seen < 4 * rounds:
        ready, _, _ = select.select([pipe.fileno()], [], [], 5.0)
        assert ready, f"a wake was lost: saw {seen} of {bumps[0]} bumps"
        pipe.drain()
        with lock:
            seen = bumps[0]
    for t in threads:
        t.join(10)
