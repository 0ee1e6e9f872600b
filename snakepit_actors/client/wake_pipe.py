"""``WakePipe``: how any thread wakes the gateway thread out of Thespian's select.

    caller threads --wake()--> [flag set? no: set it, write a byte] --> pipe --> select wakes
    gateway thread: select returns --drain()--> [read the bytes, clear the flag] --> flush

One byte per gateway loop at most: under load the callers woke the gateway about once per
request, each a system call that gives up the GIL and waits to get it back behind dozens of
threads. No wake is lost: ``drain`` clears the flag after reading, and the gateway flushes
after ``drain``; a caller that found the flag set had changed its state before that flush, and
one that finds it clear writes a byte for the next select.
"""

from __future__ import annotations

import contextlib
import os


class WakePipe:
    """A self-pipe with a "byte on its way" flag. ``fileno`` is what the gateway watches."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._pending = False

    def fileno(self) -> int:
        return self._r

    def wake(self) -> None:
        """Make the watcher's select return (any thread; never blocks, never raises)."""
        if self._pending:
            return
        self._pending = True
        self.kick()

    def kick(self) -> None:
        """Write a byte whatever the flag says (messages queued for the gateway, closing)."""
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")

    def drain(self) -> None:
        """The watcher's side, once select reported the pipe readable, before it acts."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        self._pending = False

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
