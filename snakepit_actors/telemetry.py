"""Structured logging and the counters behind ``PoolStats``.

The library never configures logging: it logs through structlog with a closed catalogue of event
names (below) and keyword fields, and stays silent unless the application (or the CLI, through
``configure_cli_logging``) sets structlog up.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from typing import Any

import structlog

#: Every event name the library emits. Tests assert nothing outside this set is logged.
EVENTS = frozenset({
    "pool.starting", "pool.ready", "pool.start_failed", "pool.closing", "pool.closed",
    "pool.degraded",
    "worker.spawning", "worker.ready", "worker.start_failed", "worker.exited",
    "worker.restarting", "worker.unhealthy", "worker.stopping", "worker.abandoned",
    "request.rejected", "request.queue_timeout", "request.failed", "request.timeout",
    "request.retried",
    "session.ended", "session.quota_exceeded", "session.affinity_lost",
    "worker.restarted",
    "system.started", "system.stopped", "system.stragglers_killed", "launcher.gone",
    "orphan.killed", "orphan.survived", "orphan.sweep_failed",
    "process_table.unavailable", "process_table.write_failed",
})


_stdlib_logger = logging.getLogger("snakepit_actors")
_stdlib_logger.addHandler(logging.NullHandler())
# Thespian routes the root logger of every actor process to stderr; stay out of it until the
# application opts in with ``enable_logging``.
_stdlib_logger.propagate = False


def enable_logging(handler: logging.Handler | None = None, level: str = "info") -> None:
    """Let the library's events out: to ``handler``, or (None) up to the root logger.

    Call before ``Pool.start``: actor processes are forked from the starting process and
    inherit this setting.
    """
    if handler is None:
        _stdlib_logger.propagate = True
    else:
        _stdlib_logger.addHandler(handler)
    _stdlib_logger.setLevel(level.upper())


def get_logger(component: str) -> Any:
    """A structlog logger bound to ``component`` (e.g. "pool", "worker").

    Events go to the stdlib logger ``snakepit_actors`` as ``key=value`` lines; it has only a
    NullHandler, so nothing shows until the application configures logging.
    """
    return structlog.wrap_logger(
        _stdlib_logger,
        processors=[structlog.processors.KeyValueRenderer(key_order=["event", "component"])],
        wrapper_class=structlog.stdlib.BoundLogger,
    ).bind(component=component)


def configure_cli_logging(level: str = "warning") -> None:
    """Send the library's events to stderr at ``level``. Only the CLI calls this."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    enable_logging(handler, level)


class LatencyWindow:
    """The last ``size`` latencies (ms); percentiles on demand (O(size log size), stats only)."""

    def __init__(self, size: int = 2048) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value_ms: float) -> None:
        self._values.append(value_ms)

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) by nearest rank; 0.0 when empty."""
        if not self._values:
            return 0.0
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
