"""Console output of the ``snakepit-actors`` commands: results on stdout (flushed at once),
progress on stderr (one line rewritten in place on a terminal, plain lines otherwise)."""

from __future__ import annotations

import sys


def say(text: str = "") -> None:
    """Print one line of results to stdout and flush it."""
    print(text, flush=True)


class Progress:
    """Progress lines on stderr: rewritten in place on a terminal, one per line otherwise.
    Callable from any thread; never blocks on anything but stderr itself."""
    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._open = False

    def line(self, text: str) -> None:
        """Show ``text`` as the current progress line."""
        if self._tty:
            sys.stderr.write(f"\r\x1b[2K{text}")
            self._open = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def workers(self, ready: int, total: int) -> None:
        """``Pool.start``'s ``on_progress``: workers ready so far."""
        self.line(f"  workers ready {ready}/{total}")

    def done(self) -> None:
        """End the progress line (a newline on a terminal)."""
        if self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False
