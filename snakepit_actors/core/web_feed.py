"""The web view's event feed: the telemetry events a viewer of the tree wants to see, as short
lines, numbered, in a bounded ring.

    telemetry event (name, fields) ──> EventFeed.add(..., now_unix_s) ──> FeedItem | None
    a page reconnecting with the last number it saw ──> EventFeed.since(seq) ──> what it missed

Only the events of ``FEED_EVENTS`` are kept (crashes, restarts, escalations, recycles, member
nodes coming and going); every other event is ignored, and so is the node's own echo of what
a pool already said. Each gets a kind (what the page
colours it by) and a one-line text built from its fields. The ring holds the last ``size``
items: a page that was away longer gets the ring and a note of how many it missed.

No Thespian, no clock of its own: the event's wall-clock time comes in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: event name -> (kind, severity). Kinds: crash, restart, escalation, recycle, member.
FEED_EVENTS: dict[str, tuple[str, str]] = {
    "worker.exited": ("crash", "warning"),
    "worker.unhealthy": ("crash", "warning"),
    "worker.start_failed": ("crash", "error"),
    "worker.node_lost": ("crash", "warning"),
    "worker.restarting": ("restart", "info"),
    "worker.restarted": ("restart", "info"),
    "pool.restarted": ("restart", "warning"),
    "pool.child_restarted": ("restart", "warning"),
    "worker.abandoned": ("escalation", "error"),
    "pool.degraded": ("escalation", "error"),
    "pool.failed": ("escalation", "error"),
    "worker.recycling": ("recycle", "info"),
    "worker.recycled": ("recycle", "info"),
    "worker.recycle_failed": ("recycle", "warning"),
    "worker.moving": ("member", "info"),
    "placement.member_joined": ("member", "info"),
    "placement.member_live": ("member", "info"),
    "placement.member_draining": ("member", "warning"),
    "placement.member_lost": ("member", "error"),
}
#: The fields shown after the event's subject, in this order, when present.
_DETAILS = ("child", "reason", "exit_code", "pid", "restarts", "error", "silent_s", "workers")
#: (event, component) pairs that repeat what a pool's own actors reported: the node logs
#: ``pool.restarted`` again when it registers the new Pool actor.
_ECHOES = frozenset({("pool.restarted", "node")})
#: Events whose ``node`` field names a member node (elsewhere it is the node's own name,
#: bound to every event of its processes).
_MEMBER_EVENTS = frozenset({"worker.node_lost", "worker.moving"})


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One line of the feed: ``seq`` numbers the node's feed from 1; ``at_unix_s`` is when
    the event was received."""

    seq: int
    at_unix_s: float
    event: str
    kind: str
    severity: str
    pool: str
    text: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def describe(event: str, fields: Mapping[str, Any]) -> str:
    """One line about ``event``: its subject (worker, child or member) and its details."""
    subject = fields.get("worker_id") or (
        f"member {fields['node']}" if event.startswith("placement.") and fields.get("node")
        else "")
    details = [f"{k}={fields[k]}" for k in _DETAILS if fields.get(k) not in (None, "")]
    if event in _MEMBER_EVENTS and fields.get("node"):
        details.append(f"node={fields['node']}")
    text = event + (f" {subject}" if subject else "")
    return text + (f" ({', '.join(details)})" if details else "")


class EventFeed:
    """The last ``size`` feed items of a node (not thread-safe: its owner locks).

    Args:
        size: items kept; older ones are dropped (``since`` reports how many were missed).
    """

    def __init__(self, size: int = 200) -> None:
        self._items: deque[FeedItem] = deque(maxlen=size)
        self.last_seq = 0

    def add(self, event: str, fields: Mapping[str, Any], now_unix_s: float) -> FeedItem | None:
        """Keep ``event`` if the feed shows it; returns its item (None: not a feed event)."""
        kind = FEED_EVENTS.get(event)
        if kind is None or (event, fields.get("component")) in _ECHOES:
            return None
        self.last_seq += 1
        item = FeedItem(self.last_seq, now_unix_s, event, kind[0], kind[1],
                        str(fields.get("pool") or ""), describe(event, fields))
        self._items.append(item)
        return item

    def since(self, seq: int) -> tuple[list[FeedItem], int]:
        """The items after number ``seq`` still kept, and how many after it were dropped."""
        items = [item for item in self._items if item.seq > seq]
        first = items[0].seq if items else self.last_seq + 1
        return items, max(0, first - seq - 1)

    def recent(self) -> list[FeedItem]:
        """Every item kept, oldest first."""
        return list(self._items)
