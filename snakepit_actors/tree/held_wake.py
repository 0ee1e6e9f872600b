"""A wake of an actor's loop that may be held a moment, so that one pass handles several calls.

Threads finishing calls report each one (``finished``). With nothing else waiting the actor is
woken at once (a sequential caller never waits on batching); while more calls wait the wake is
held up to ``hold_s`` or ``max_held`` finished calls, whichever comes first, timed by one
holder thread (started lazily). Used by the Worker's call threads (``call_threads``) and the
DataPlane's runners (``data_plane_calls``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class HeldWake:
    """Calls ``wake`` when calls finish: at once, or held (see the module docstring)."""

    def __init__(self, wake: Callable[[], None], *, hold_s: float, max_held: int,
                 name: str) -> None:
        self._wake = wake
        self._hold_s = hold_s
        self._max_held = max_held
        self._name = name
        self._lock = threading.Lock()
        self._held = 0  # finished calls whose wake is held
        self._armed = threading.Event()  # the holder thread is timing a held wake
        self._holder: threading.Thread | None = None
        self._stopped = False

    def finished(self, more_waiting: bool) -> None:
        """One call finished (any thread); ``more_waiting``: calls still wait to run."""
        with self._lock:
            if not more_waiting or self._held + 1 >= self._max_held or self._hold_s <= 0:
                self._held = 0
                wake_now = True
            else:
                self._held += 1
                wake_now = False
                if self._held == 1:
                    self._arm()
        if wake_now:
            self._wake()

    def stop(self) -> None:
        """End the holder thread (a held wake is dropped: the actor is stopping)."""
        self._stopped = True
        self._armed.set()

    def _arm(self) -> None:
        """Start timing a held wake (under the lock)."""
        if self._holder is None:
            self._holder = threading.Thread(target=self._hold, name=f"{self._name}-hold",
                                            daemon=True)
            self._holder.start()
        self._armed.set()

    def _hold(self) -> None:
        while not self._stopped:
            self._armed.wait()
            self._armed.clear()
            if self._stopped:
                return
            time.sleep(self._hold_s)
            with self._lock:
                held, self._held = self._held, 0
            if held:
                self._wake()
