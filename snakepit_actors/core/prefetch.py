"""``AheadSlots``: the slots *ahead* of ``PoolConfig.prefetch``, beside the Scheduler's regular
slots.

A worker whose ``capacity`` slots are taken may still be sent ``prefetch`` more unary actor-path
requests (``ahead`` ones: no session, no stream), which wait in its Worker actor's call-thread
FIFO and start the moment a call ends, with no Pool round trip between calls. Only while every
request the worker holds runs on those call threads: a lease (the direct path calls the process
itself) or a stream (a pump of its own) leaves the call threads idle, so a request sent ahead
would run beside it, over ``capacity``; such a worker is skipped.

Tokens are ``(worker_id, generation)`` in a deque, checked lazily on pop, like the regular
slots; ``take`` looks at a bounded number of tokens (O(1)), so it may say "none" while a
usable token lies deeper: the request then queues, which is always correct.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

_LOOK_AT = 4  # tokens ``take`` examines at most


class AheadSlots:
    """The ahead slots of one pool (``prefetch`` per worker)."""

    def __init__(self, prefetch: int) -> None:
        self.prefetch = prefetch
        self.free = 0
        self._tokens: deque[tuple[str, int]] = deque()
        self._plain: dict[str, set[str]] = {}  # worker -> requests not on its call threads

    def used(self, workers: int) -> int:
        """Requests sent ahead and not yet started."""
        return self.prefetch * workers - self.free

    def add_worker(self, worker_id: str, generation: int) -> None:
        for _ in range(self.prefetch):
            self.give(worker_id, generation)

    def remove_worker(self, worker_id: str, running: int, capacity: int) -> None:
        """``worker_id`` left holding ``running`` requests: its unused tokens go stale."""
        self.free -= capacity + self.prefetch - max(running, capacity)
        self._plain.pop(worker_id, None)

    def give(self, worker_id: str, generation: int) -> None:
        self._tokens.append((worker_id, generation))
        self.free += 1

    def take(self, generation_of: Callable[[str], int | None]) -> str | None:
        """A worker with a free slot ahead whose requests all run on its call threads, or
        None. ``generation_of``: a worker's current generation (None: gone)."""
        for _ in range(min(len(self._tokens), _LOOK_AT)):
            if self.free <= 0:
                break
            worker_id, generation = self._tokens.popleft()
            if generation_of(worker_id) != generation:
                continue  # stale: its worker left (already uncounted)
            if self._plain.get(worker_id):
                self._tokens.append((worker_id, generation))
                continue
            self.free -= 1
            return worker_id
        return None

    def dispatched(self, worker_id: str, request_id: str, ahead: bool) -> None:
        """``request_id`` went to ``worker_id``; ``ahead``: it runs on the call threads."""
        if not ahead:
            self._plain.setdefault(worker_id, set()).add(request_id)

    def done(self, worker_id: str, request_id: str) -> None:
        plain = self._plain.get(worker_id)
        if plain:
            plain.discard(request_id)
