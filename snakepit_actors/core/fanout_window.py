"""The bounded window of one ``Pool.map``: which chunk may be cut from the input next, and
which finished chunk the consumer may take next (docs/fanout.md).

    runner: may_cut()? -> cut() = seq        ... the chunk runs ...        finish(seq, results)
    consumer:                     take() -> (seq, results) in input order (ordered), or in the
                                  order they finished (unordered); None: nothing ready yet

At most ``window`` chunks are *outstanding* (cut and not yet taken by the consumer), so a map
over a lazy iterable of any length holds at most ``window`` chunks of input and results, however
slow the consumer or the first chunk. Plain data, no threads, no I/O: the caller holds a lock.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["MapWindow"]

T = TypeVar("T")


class MapWindow(Generic[T]):
    """See the module docstring.

    Args:
        window: the most chunks outstanding at once (>= 1).
        ordered: the consumer takes chunks in input order (else as they finish).
    """

    def __init__(self, window: int, ordered: bool) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._window = window
        self._ordered = ordered
        self._cut = 0  # chunks cut so far; the next one's seq
        self._taken = 0  # chunks the consumer took
        self._done: dict[int, T] = {}  # ordered: finished, not taken, by seq
        self._finished: deque[tuple[int, T]] = deque()  # unordered: finished, not taken
        self.exhausted = False  # the input has no more items (or the map was stopped)

    @property
    def outstanding(self) -> int:
        """Chunks cut and not yet taken by the consumer."""
        return self._cut - self._taken

    def may_cut(self) -> bool:
        """Whether a runner may cut another chunk from the input now."""
        return not self.exhausted and self.outstanding < self._window

    def cut(self) -> int:
        """A chunk was cut from the input: its sequence number (0, 1, 2, ...)."""
        assert self.may_cut(), "cut() without may_cut()"
        seq = self._cut
        self._cut += 1
        return seq

    def finish(self, seq: int, results: T) -> None:
        """Chunk ``seq`` finished with ``results``."""
        if self._ordered:
            self._done[seq] = results
        else:
            self._finished.append((seq, results))

    def ready(self) -> bool:
        """Whether ``take`` would return a chunk now."""
        return (self._taken in self._done) if self._ordered else bool(self._finished)

    def take(self) -> tuple[int, T] | None:
        """The next chunk the consumer gets, or None when it is not finished yet."""
        if self._ordered:
            results = self._done.pop(self._taken, _MISSING)
            if results is _MISSING:
                return None
            seq = self._taken
        elif self._finished:
            seq, results = self._finished.popleft()
        else:
            return None
        self._taken += 1
        return seq, results  # type: ignore[return-value]

    def ended(self) -> bool:
        """True once the input is exhausted and the consumer took every chunk cut."""
        return self.exhausted and self._taken == self._cut


_MISSING = object()
