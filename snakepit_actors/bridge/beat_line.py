"""The worker's side of its beat line: heartbeats answered on the ready socket, with no gRPC.

    Worker actor ──"h"──> ready socket (kept open after the ready line) ──> bridge main thread
                 <──"<tool calls running>\\n"──┘

The host hands the bridge one end of a socketpair as ``--ready-fd``. After the ready line the
bridge keeps it and its main thread, which otherwise only waits for SIGTERM, answers each byte
``h`` with one line: the number of tool calls running. The host then needs no gRPC channel of
its own to know the process lives and its interpreter runs (a channel costs a forked Worker
actor about 7 MB and six threads); it opens one only for the calls it proxies. A pipe (an older
host) gets the ready line and is closed, as before. After SIGTERM, beats are still answered
while the gRPC server lets its calls finish (``answer_until``): the process lives until
it exits, and its host sees the exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import threading
import time
from collections.abc import Callable

#: What the host writes for one beat (one answer line each).
BEAT = b"h"


def is_socket(fd: int) -> bool:
    """Whether ``fd`` is a socket (a beat line) rather than a pipe (a ready line only)."""
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def answer(fd: int, running: Callable[[], int]) -> bool:
    """Answer the beats waiting on ``fd`` (readable): one line with ``running()`` each.

    Returns:
        False once the line is gone (the host closed it, or it broke): stop watching it.
    """
    try:
        asked = os.read(fd, 4096)
    except BlockingIOError:
        return True
    except OSError:
        asked = b""
    if not asked:
        with contextlib.suppress(OSError):
            os.close(fd)
        return False
    beats = asked.count(BEAT)
    if beats:
        try:
            os.write(fd, f"{running()}\n".encode() * beats)
        except OSError:
            return True  # the host is gone or slow: its next read or close says which
    return True


def answer_until(fd: int, running: Callable[[], int], done: threading.Event,
                 limit_s: float) -> None:
    """Answer beats on ``fd`` until ``done`` is set, the line is gone or ``limit_s`` passed:
    a process finishing its calls after SIGTERM still lives, and its host hears of its end
    from its exit, not from beats it stopped answering. Returns as soon as ``done`` is set
    (a helper thread writes to a pipe then): a stop with no call running delays no exit."""
    woken_r, woken_w = os.pipe()

    def wake() -> None:
        done.wait(limit_s)
        with contextlib.suppress(OSError):
            os.write(woken_w, b"x")

    threading.Thread(target=wake, name="bridge-stopped", daemon=True).start()
    deadline = time.monotonic() + limit_s
    try:
        while not done.is_set() and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd, woken_r], [], [], left)
            if fd in readable and not answer(fd, running):
                return
    finally:
        for end in (woken_r, woken_w):
            with contextlib.suppress(OSError):
                os.close(end)
