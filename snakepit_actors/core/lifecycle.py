"""When a worker's process should be recycled: a pure policy, no actors, no clock of its own.

``RecyclePolicy`` answers "is this worker due, and why?" from explicit inputs: requests served
by its current process, when that process became ready, and the RSS of its process tree. The
Pool asks it after counting requests (``max_requests``); the Recycler actor asks it on each
sample (``ttl``, ``memory``). The recycle itself (drain first, the replacement starts before the
old process stops) is the Pool's and the Worker's business, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

from snakepit_actors.config import PoolConfig

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RecyclePolicy:
    """Limits of one process's life; None disables a limit.

    Attributes:
        max_requests: requests served (both data paths) before a recycle.
        ttl_s: seconds since the process became ready.
        memory_mb: RSS of the process and its children, in MiB.
    """

    max_requests: int | None = None
    ttl_s: float | None = None
    memory_mb: int | None = None

    @classmethod
    def from_config(cls, config: PoolConfig) -> RecyclePolicy:
        return cls(config.worker_max_requests, config.worker_ttl, config.worker_memory_mb)

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.max_requests, self.ttl_s, self.memory_mb))

    @property
    def needs_sampling(self) -> bool:
        """Whether something must watch the clock or the memory (the Recycler actor)."""
        return self.ttl_s is not None or self.memory_mb is not None

    def due(self, *, now: float, requests: int = 0, ready_at: float | None = None,
            rss_bytes: int | None = None) -> str | None:
        """The reason the worker is due for a recycle ("max_requests", "memory", "ttl"), or
        None. When several limits are passed, the first in that order is named."""
        if self.max_requests is not None and requests >= self.max_requests:
            return "max_requests"
        if self.memory_mb is not None and rss_bytes is not None \
                and rss_bytes > self.memory_mb * _MIB:
            return "memory"
        if self.ttl_s is not None and ready_at is not None and now - ready_at >= self.ttl_s:
            return "ttl"
        return None

    def sample_interval_s(self, heartbeat_interval_s: float) -> float:
        """How often the Recycler samples: the heartbeat interval, but often enough for a short
        ttl (a quarter of it), and never more than 20 times a second."""
        interval = heartbeat_interval_s
        if self.ttl_s is not None:
            interval = min(interval, self.ttl_s / 4)
        return max(0.05, interval)
