"""The Worker actor's end of its process's beat line: heartbeats without a gRPC channel.

    Worker ──"h"──> ready socket ──> bridge main thread (``bridge/beat_line.py``)
           <── "<tool calls running>\\n" ──┘        (watched with ThespianWatch: no thread)

A gRPC channel costs a forked Worker actor about 7 MB of memory of its own and six threads
(measured: 1.4 MB before, 8.2 MB after one channel). A Worker whose process speaks our protocol
keeps the socket its ready line came on and beats over it; it opens its channel only for the
calls it proxies (the direct path and the DataPlane call workers themselves), and for a probe
after a timeout. A beat proves the process lives and its interpreter runs; a gRPC server that
stopped answering is seen by the calls that fail on it.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

#: What one beat writes (the bridge answers each with one line).
BEAT = b"h"


@dataclass(frozen=True, slots=True)
class BeatAnswer:
    """A beat's answer, shaped as a gRPC ``HeartbeatResponse`` is read (``in_flight``)."""

    in_flight: int


class Beat:
    """One beat sent: done once answered, or once the line is gone (then ``result`` raises)."""

    __slots__ = ("_answer", "_done")

    def __init__(self) -> None:
        self._answer: BeatAnswer | None = None
        self._done = False

    def settle(self, answer: BeatAnswer | None) -> None:
        self._answer, self._done = answer, True

    def done(self) -> bool:
        return self._done

    def result(self) -> BeatAnswer:
        if self._answer is None:
            raise ConnectionError("the worker's beat line closed before it answered")
        return self._answer


class BeatLine:
    """Beats over ``fd`` (the host's end of the ready socket, non-blocking; owned by the
    ``BridgeProcess``, which closes it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.gone = False  # closed or broken: no more beats (the pidfd says the rest)
        self._buffer = b""
        self._pending: deque[Beat] = deque()

    def send(self) -> Beat:
        """Send a beat; its answer comes when the fd is readable (``read``)."""
        beat = Beat()
        try:
            os.write(self.fd, BEAT)
        except OSError:
            self._lost()
        if self.gone:
            beat.settle(None)
        else:
            self._pending.append(beat)
        return beat

    def read(self) -> None:
        """Settle the beats answered so far (the fd was readable)."""
        while not self.gone:
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._lost()
                return
            *lines, self._buffer = (self._buffer + chunk).split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    answer = BeatAnswer(int(line))
                    if self._pending:
                        self._pending.popleft().settle(answer)

    def ping(self, timeout_s: float) -> bool:
        """Send a beat and wait (blocking, at most ``timeout_s``) for its answer."""
        beat, deadline = self.send(), time.monotonic() + timeout_s
        while not beat.done() and (left := deadline - time.monotonic()) > 0:
            select.select([self.fd], [], [], left)
            self.read()
        return beat.done() and not self.gone

    def _lost(self) -> None:
        self.gone = True
        while self._pending:
            self._pending.popleft().settle(None)


def beat_ok(future: Any) -> bool:
    """Whether a finished beat or Heartbeat call answered (any failure counts as a missed beat)."""
    try:
        future.result()
    except Exception:
        return False
    return True


def calls_running(future: Any) -> int | None:
    """The tool calls a finished probe counted in the process (None: no answer, or a protocol
    whose liveness call cannot count them: Snakepit's Ping)."""
    try:
        running = getattr(future.result(), "in_flight", None)
    except Exception:
        return None
    return None if running is None else int(running)
