"""``UsageMeter``: the counters of one client's direct-path requests, reported to the Pool
(``UsageReport``, about once a second) so ``PoolStats`` and ``WorkerInfo.requests`` cover both
data paths. Plain state: no I/O, no clock."""

from __future__ import annotations

from collections import deque

from snakepit_actors.messages import UsageReport, WorkerUsage


class UsageMeter:
    """Counters of the client's direct-path requests since the last report (``take``). A
    report carries at most ``max_latencies`` latencies, thinned evenly from the most recent
    ``4 * max_latencies``, and each session under the worker it ran on *last* (so the Pool pins
    it there), at most ``max_sessions`` per worker."""

    def __init__(self, max_latencies: int = 256, max_sessions: int = 256) -> None:
        self._max_latencies = max_latencies
        self._max_sessions = max_sessions
        self._reset()

    def _reset(self) -> None:
        self._requests = 0
        self._errors = 0
        self._queue_timeouts = 0
        self._saturated = 0
        self._session_moves = 0
        self._latencies: deque[float] = deque(maxlen=4 * self._max_latencies)
        self._calls: dict[str, int] = {}  # worker_id -> calls
        self._sessions: dict[str, str] = {}  # session -> the worker it ran on last
        self._admitted: dict[str, int] = {}  # worker_id -> sessions first seen on it

    @property
    def pending(self) -> bool:
        return bool(self._requests or self._calls or self._session_moves)

    def ran(self, worker_id: str, session_id: str | None) -> None:
        """One call went to ``worker_id`` (a retried request counts on both workers)."""
        self._calls[worker_id] = self._calls.get(worker_id, 0) + 1
        if session_id in self._sessions:
            self._sessions[session_id] = worker_id
        elif session_id and self._admitted.get(worker_id, 0) < self._max_sessions:
            self._sessions[session_id] = worker_id
            self._admitted[worker_id] = self._admitted.get(worker_id, 0) + 1

    def refused(self) -> None:
        """The client refused a caller itself (max_queue of its own callers waited); the
        request's end is counted by ``finished`` as usual."""
        self._saturated += 1

    def session_moved(self) -> None:
        """A session's request ran on another worker than its previous one (hint mode)."""
        self._session_moves += 1

    def finished(self, *, ok: bool, latency_ms: float | None = None,
                 queue_timeout: bool = False) -> None:
        """One request ended; ``latency_ms`` when a worker answered it (as the Pool counts)."""
        self._requests += 1
        self._errors += 0 if ok else 1
        self._queue_timeouts += 1 if queue_timeout else 0
        if latency_ms is not None:
            self._latencies.append(latency_ms)

    def take(self) -> UsageReport | None:
        """The report since the last one, or None if nothing happened."""
        if not self.pending:
            return None
        step = max(1, -(-len(self._latencies) // self._max_latencies))  # ceiling division
        by_worker: dict[str, list[str]] = {}
        for session_id, worker_id in self._sessions.items():
            by_worker.setdefault(worker_id, []).append(session_id)
        report = UsageReport(self._requests, self._errors, self._queue_timeouts,
                             tuple(list(self._latencies)[::step]), tuple(
                                 WorkerUsage(w, n, tuple(by_worker.get(w, ())))
                                 for w, n in self._calls.items()), self._session_moves,
                             self._saturated)
        self._reset()
        return report
