"""What the DataPlane tells the Pool besides lease traffic, and when: the forwarded requests it
answered with how many wait in it (``DataPlaneServed``), and its usage counters (in its
``LeaseBatch``, as the direct path's clients report them).

    DataPlane ── served(id) / meter ──> PoolReports ── due(now, waiting) ──> DataPlaneServed
                                                    ── usage(now) ──────────> UsageReport

Both go out in batches (``SERVED_EVERY_S`` / ``SERVED_BATCH``, ``REPORT_EVERY_S``), never per
request: the Pool's ledger only needs them when the DataPlane dies, its stats within a moment.
Plain state; ``now`` is monotonic seconds.
"""

from __future__ import annotations

from dataclasses import replace

from snakepit_actors.core.usage import UsageMeter
from snakepit_actors.messages import DataPlaneServed, UsageReport

#: The Pool hears which forwarded requests were answered (``DataPlaneServed``) at least this
#: often (seconds), or once ``SERVED_BATCH`` are waiting to be reported.
SERVED_EVERY_S, SERVED_BATCH = 0.1, 512
#: Usage counters (errors, latencies, calls per worker) reach the Pool this often (seconds).
REPORT_EVERY_S = 0.5


class PoolReports:
    """The DataPlane's reports to the Pool; see the module docstring."""

    def __init__(self, now: float) -> None:
        self.meter = UsageMeter()
        self._served: list[str] = []
        self._served_at = self._reported_at = now
        self._waiting = 0  # what the Pool last heard waits in the DataPlane

    def served(self, request_id: str) -> None:
        self._served.append(request_id)

    def due(self, now: float, waiting: int) -> DataPlaneServed | None:
        """The ``DataPlaneServed`` to send now (None: not yet, or nothing new)."""
        drained = waiting == 0 and self._waiting != 0  # at once: stats must not show stale
        if not self._pending(waiting) or (len(self._served) < SERVED_BATCH and not drained
                                          and now - self._served_at < SERVED_EVERY_S):
            return None
        out = DataPlaneServed(tuple(self._served), waiting)
        self._served, self._served_at, self._waiting = [], now, waiting
        return out

    def usage(self, now: float) -> UsageReport | None:
        """The usage report to send now (None: not yet). Requests are counted by the Pool,
        which forwarded them."""
        if not self.meter.pending or now - self._reported_at < REPORT_EVERY_S:
            return None
        self._reported_at = now
        report = self.meter.take()
        return None if report is None else replace(report, requests=0)

    def next_at(self, waiting: int) -> list[float]:
        """When the reports above are due (monotonic; [] if nothing is pending)."""
        due = [self._served_at + SERVED_EVERY_S] if self._pending(waiting) else []
        return due + ([self._reported_at + REPORT_EVERY_S] if self.meter.pending else [])

    def _pending(self, waiting: int) -> bool:
        return bool(self._served) or waiting != self._waiting
