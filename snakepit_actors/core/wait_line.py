"""The callers of one ``LeaseBroker`` waiting for a lease: a FIFO with each caller's session.

Leaving is O(1): a caller who stops waiting (queue deadline, cancellation, a handoff) leaves
the map at once and its FIFO entry is skipped when it comes up (lazily trimmed). A caller held
for its session's worker (``holds.Holds``) is waiting without a FIFO entry until its hold ends
(``line``). No I/O, threads or actors here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class WaitLine(Generic[T]):
    """Waiting callers, oldest first, and their sessions."""

    def __init__(self) -> None:
        self._fifo: deque[T] = deque()  # oldest first; may hold callers who left
        self._sessions: dict[T, str | None] = {}  # waiting callers -> session, arrival order

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, item: T) -> bool:
        return item in self._sessions

    def __iter__(self) -> Iterator[T]:
        """Every waiting caller, in arrival order."""
        return iter(self._sessions)

    def wait(self, item: T, session_id: str | None, in_line: bool = True) -> None:
        """``item`` waits; ``in_line`` False: held elsewhere for now (``line`` it later)."""
        if in_line:
            self._fifo.append(item)
        self._sessions[item] = session_id

    def line(self, item: T) -> None:
        """A waiting caller whose hold ended joins the FIFO, at its back."""
        self._fifo.append(item)

    def session(self, item: T) -> str | None:
        return self._sessions[item]

    def leave(self, item: T) -> bool:
        """``item`` stops waiting; False if it was not waiting."""
        return self._sessions.pop(item, False) is not False

    def served(self, item: T) -> str | None:
        """``item`` gets a lease: it stops waiting; its session (None if it had left)."""
        return self._sessions.pop(item, None)

    def oldest(self) -> T | None:
        """The oldest caller in the FIFO that still waits (it keeps waiting: ``served``)."""
        while self._fifo:
            item = self._fifo.popleft()
            if item in self._sessions:
                return item
        return None

    def pop_newest(self) -> T | None:
        """The newest caller in the FIFO that still waits, which stops waiting."""
        while self._fifo:
            item = self._fifo.pop()
            if self.leave(item):
                return item
        return None

    def clear(self) -> None:
        self._fifo.clear()
        self._sessions.clear()
