"""What ``scheduling.Scheduler`` decides, as small records, and the queue-deadline rule that
both data paths share (the Pool for queued requests, the client for callers waiting for a
lease)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dispatch(Generic[T]):
    """Send ``item`` to ``worker_id`` now."""

    worker_id: str
    request_id: str
    item: T


@dataclass(frozen=True, slots=True)
class Queued:
    """The request waits in the queue (``position`` counts from 1)."""

    position: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request is refused: ``reason`` is "queue_full", "closed", "deadline_passed" or
    "affinity_busy" (strict_fail_fast and its worker has no free slot)."""

    reason: Literal["queue_full", "closed", "deadline_passed", "affinity_busy"]


@dataclass(frozen=True, slots=True)
class Expired(Generic[T]):
    """``item`` waited past its queue deadline and never reached a worker."""

    request_id: str
    item: T
    reason: Literal["queue_timeout", "deadline_in_queue"]


ExpiryReason = Literal["queue_timeout", "deadline_in_queue"]


def queue_expiry(now: float, deadline: float | None,
                 queue_timeout_s: float | None) -> tuple[float | None, ExpiryReason]:
    """When a request queued at ``now`` stops waiting, and why: ``queue_timeout_s`` after
    ``now`` or its own ``deadline``, whichever comes first (None: never). Both data paths use
    this rule: the Pool for queued requests, the client for callers waiting for a lease."""
    if queue_timeout_s is not None:
        timeout_at = now + queue_timeout_s
        if deadline is None or timeout_at <= deadline:
            return timeout_at, "queue_timeout"
    return deadline, "deadline_in_queue"
