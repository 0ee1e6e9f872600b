"""``CallThreads``: the Worker actor's persistent threads for blocking unary gRPC calls.

    Worker (actor thread) ── submit(job) ──> FIFO ──> call thread 1..capacity ──> process
           ^                                                  │
           └──────── wake pipe <── wake (now, or held) ───────┘

A grpc ``future()`` starts a fresh channel-spin thread whenever no other call is open on the
channel, i.e. for every call of a capacity-1 worker: about a third of the Worker actor's own
time went there. ``capacity`` long-lived daemon threads doing blocking calls cost a queue
hand-off instead. The FIFO is also the Worker's local queue for requests the Pool sent ahead
(``PoolConfig.prefetch``): a thread takes the next one the moment its call returns, with no
actor message in between. A job still in the FIFO can be cancelled (its Future ends
CANCELLED); a running blocking unary call cannot (only a stream, or the process's recycle,
stops a running tool).

Waking the actor: when a call ends and nothing waits in the FIFO, at once; while calls wait,
the wake is held up to ``hold_s`` or ``max_held`` finished calls, whichever comes first, so that
the Worker answers several calls per pass (one message per caller and one check-in message for
all of them) instead of three messages per call. A sequential caller never waits on this: with
nothing queued the wake is immediate.

The threads never call Thespian; they only complete Futures and call ``wake`` (which writes to
the Worker's wake pipe). They are daemons: a call blocked in a process that no longer answers
never holds up the actor process's exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from snakepit_actors.tree.held_wake import HeldWake

Job = Callable[[], Any]


class CallThreads:
    """``size`` daemon threads running submitted jobs in FIFO order (started lazily), calling
    ``wake`` when jobs end (see the module docstring for when)."""

    def __init__(self, size: int, wake: Callable[[], None], *, hold_s: float = 0.002,
                 max_held: int = 8, name: str = "snakepit-call") -> None:
        self._size = max(1, size)
        self._name = name
        self._wake = HeldWake(wake, hold_s=hold_s, max_held=max_held, name=name)
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Job] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def submit(self, job: Job) -> Future[Any]:
        """Run ``job`` on the next free thread; its Future gets what it returns or raises.

        Raises:
            RuntimeError: after ``stop``.
        """
        if self._stopped:
            raise RuntimeError("the call threads are stopped")
        future: Future[Any] = Future()
        self._jobs.put((future, job))
        if len(self._threads) < self._size:
            thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def waiting(self) -> int:
        """Jobs not yet taken by a thread (approximate while threads take them)."""
        return self._jobs.qsize()

    def stop(self) -> None:
        """Let the threads end after their current job; jobs not started are cancelled."""
        self._stopped = True
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        self._wake.stop()

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = job()
            except BaseException as exc:  # the Future carries it to the actor thread
                future.set_exception(exc)
            else:
                future.set_result(result)
            self._wake.finished(more_waiting=not self._jobs.empty())
