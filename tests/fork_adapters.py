"""Adapters for test_fork_server: one that reports its environment and writes to its output,
and (``fork_unsafe_adapter``) one whose module starts a thread when imported."""

from __future__ import annotations

import os
import sys
from typing import Any

from snakepit_actors.bridge.adapter import tool
from snakepit_actors.bridge.showcase import ShowcaseAdapter

#: Set when the fork server imported this module: a forked worker sees it without importing.
IMPORTED_IN = os.getpid()


class EnvAdapter(ShowcaseAdapter):
    """The showcase tools, and ``env`` (variables of the worker's environment) and ``say``
    (prints a line)."""

    @tool
    def env(self, names: list[str]) -> dict[str, Any]:
        return {"env": {n: os.environ.get(n) for n in names}, "pid": os.getpid(),
                "imported_in": IMPORTED_IN}

    @tool
    def say(self, text: str) -> str:
        print(text, flush=True)
        sys.stderr.write(text + " (stderr)\n")
        sys.stderr.flush()
        return text
