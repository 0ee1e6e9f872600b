"""The stream sink (replies.py): waits for a stream's next value derive from the request's one
deadline (time left + ``REPLY_GRACE_S``), so values that each come in time do not extend it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from snakepit_actors.client import replies
from snakepit_actors.client.replies import StreamSink
from snakepit_actors.errors import RequestTimeoutError


def _feed(sink: StreamSink, gaps_s: list[float], stop: threading.Event) -> threading.Thread:
    """Add the values 1, 2, ... to ``sink``, each after its gap, on a thread."""
    def run() -> None:
        for i, gap in enumerate(gaps_s, 1):
            if stop.wait(gap):
                return
            sink.add_values((i,))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_sink_past_its_deadline_waits_only_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replies, "REPLY_GRACE_S", 0.2)
    started = time.monotonic()
    kind, error = StreamSink().take_at(time.time() - 5.0)
    assert kind == "error" and isinstance(error, RequestTimeoutError)
    assert 0.15 <= time.monotonic() - started < 1.5


def test_a_sink_without_a_deadline_waits_for_the_end() -> None:
    sink = StreamSink()
    threading.Timer(0.3, sink.set_result, ("done",)).start()
    assert sink.take_at(None) == ("end", "done")


def test_values_each_in_time_do_not_reset_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Values 0.5 s apart, a grace of 0.4 s: a wait reset per value would never time out.
    monkeypatch.setattr(replies, "REPLY_GRACE_S", 0.4)
    sink, stop = StreamSink(), threading.Event()
    feeder = _feed(sink, [0.5] * 10, stop)
    started, deadline = time.monotonic(), time.time() + 0.8
    got: list[int] = []
    try:
        while (item := sink.take_at(deadline))[0] == "values":
            got.extend(item[1])
    finally:
        stop.set()
        feeder.join()
    assert isinstance(item[1], RequestTimeoutError)
    assert got == [1, 2]
    assert 1.1 <= time.monotonic() - started < 3.0  # deadline + grace: 1.2 s


def test_an_async_sink_keeps_the_same_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replies, "REPLY_GRACE_S", 0.4)
    stop = threading.Event()

    async def consume() -> tuple[list[int], object]:
        sink = StreamSink(asyncio.get_running_loop())
        feeder = _feed(sink, [0.5] * 10, stop)
        deadline = time.time() + 0.8
        got: list[int] = []
        try:
            while (item := await sink.take_at_async(deadline))[0] == "values":
                got.extend(item[1])
        finally:
            stop.set()
            await asyncio.to_thread(feeder.join)
        return got, item[1]

    got, error = asyncio.run(consume())
    assert got == [1, 2] and isinstance(error, RequestTimeoutError)
