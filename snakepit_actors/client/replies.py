"""What a caller of the ``Pool`` handle waits on: the bound of each wait, and a stream's
receiving end.

    gateway thread --set_result / set_exception / add_values--> Future or StreamSink
    caller thread / coroutine --result(reply_wait_s(deadline)) / take_at(deadline)--> value

A caller never waits without a bound derived from its request's deadline (``reply_wait_s``);
with no deadline it waits until the gateway answers (which it always does: a reply, the pool's
error, or the gateway's own ``PoolClosedError`` / ``PoolNotReadyError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from concurrent.futures import Future
from typing import Any

from snakepit_actors.errors import RequestTimeoutError

__all__ = ["CONTROL_TIMEOUT_S", "REPLY_GRACE_S", "StreamSink", "reply_wait_s", "values_or_end"]

#: How long a control call (start, stats, workers, recycle) waits for the Pool's answer.
CONTROL_TIMEOUT_S = 10.0
#: How long past a request's deadline a caller still waits for the pool's own answer (its
#: ``RequestTimeoutError`` is sent at the deadline and must travel back through the actors).
REPLY_GRACE_S = 5.0


def reply_wait_s(deadline_unix_s: float | None) -> float | None:
    """How long to wait now for an answer to a request with ``deadline_unix_s``: the time
    left to the deadline plus ``REPLY_GRACE_S`` (never negative); None: no deadline, no limit.
    Recomputed before every wait, so a stream's waits never reset the deadline."""
    if deadline_unix_s is None:
        return None
    return max(0.0, deadline_unix_s - time.time()) + REPLY_GRACE_S


class StreamSink(Future[Any]):
    """The receiving end of one stream: chunks and the final reply, in order. Fed by the
    gateway thread; read by one consumer (a thread, or a coroutine on ``loop``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._async_items: asyncio.Queue[tuple[str, Any]] | None = (
            asyncio.Queue() if loop is not None else None)

    def _deliver(self, item: tuple[str, Any]) -> None:
        if self._loop is not None and self._async_items is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is reading
                self._loop.call_soon_threadsafe(self._async_items.put_nowait, item)
        else:
            self._items.put(item)

    def add_values(self, values: tuple[Any, ...]) -> None:
        self._deliver(("values", values))

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._deliver(("end", result))

    def set_exception(self, exception: BaseException | None) -> None:
        super().set_exception(exception)
        self._deliver(("error", exception))

    def take_at(self, deadline_unix_s: float | None) -> tuple[str, Any]:
        """The next item: ("values", tuple), ("end", result) or ("error", exception). Blocks
        until one arrives or ``deadline_unix_s`` (+ ``REPLY_GRACE_S``) passes, then returns a
        ``RequestTimeoutError``; None: no limit."""
        wait_s = reply_wait_s(deadline_unix_s)
        try:
            return self._items.get(timeout=wait_s)
        except queue.Empty:
            return "error", _stream_timeout(wait_s)

    async def take_at_async(self, deadline_unix_s: float | None) -> tuple[str, Any]:
        """``take_at`` for the sink's event loop."""
        assert self._async_items is not None
        wait_s = reply_wait_s(deadline_unix_s)
        try:
            return await asyncio.wait_for(self._async_items.get(), wait_s)
        except TimeoutError:
            return "error", _stream_timeout(wait_s)


def _stream_timeout(wait_s: float | None) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the stream passed its deadline: no data, nor the pool's answer, within the last "
        f"{wait_s:.3f}s (deadline + {REPLY_GRACE_S}s grace)", reason="no_reply")


def values_or_end(kind: str, value: Any) -> tuple[Any, ...]:
    """What one take from a ``StreamSink`` gives the caller: its values; nothing when the stream
    ended ("end"); its error raised ("error")."""
    if kind == "error":
        raise value
    return tuple(value) if kind == "values" else ()
