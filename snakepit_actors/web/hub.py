"""The hand-over between a node's threads and the web server's event loop.

    collector thread ──publish_state(page state)──┐
    event inbox thread ──publish_event(event)─────┤ ViewHub (one lock) ──call_soon_threadsafe──>
                                                  │   the loop: every viewer's bounded queue
    web server's loop ──connect() / snapshot()────┘   ──> its event stream (app.py)

The threads that publish never wait for the loop or for a viewer: they take the hub's lock
for a few dict operations and schedule the fan-out on the loop. A viewer whose queue is full
(its connection is slower than the changes) is dropped; its browser reconnects and starts
again from a snapshot. What changed is decided by the pure ``core.web_page`` (the state and
its updates) and ``core.web_feed`` (the event lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.core.web_feed import EventFeed, FeedItem
from snakepit_actors.core.web_page import PageDiffer, PageState, apply_worker_event

#: Messages a viewer's queue holds before the viewer is dropped (it reconnects).
VIEWER_QUEUE = 256
#: After a read of the state API, the node is looked at for this long even with no page open
#: (a script polling ``/api/state`` gets fresh data).
READ_KEEPS_LOOKING_S = 10.0

Message = tuple[str, dict[str, Any]]


@dataclass(eq=False)
class Viewer:
    """One connected event stream: its queue, filled on the loop only."""

    queue: asyncio.Queue[Message | None] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE))
    dropped: bool = False


class ViewHub:
    """The page state and event feed of one node, and the viewers that follow them.

    Args:
        feed_size: event lines kept for viewers that connect later.
        on_viewer: called (on the loop) when a viewer connects or the state API is read: the
            collector looks at the node at once instead of at its next turn.
    """

    def __init__(self, feed_size: int = 200, on_viewer: Callable[[], None] | None = None
                 ) -> None:
        self._lock = threading.Lock()
        self._differ = PageDiffer()
        self._feed = EventFeed(feed_size)
        self._viewers: set[Viewer] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_viewer = on_viewer
        self.run = uuid.uuid4().hex[:12]  # this hub's life (a restarted node has another)
        self.published_at = float("-inf")  # monotonic time of the last look published
        self._read_at = float("-inf")

    @property
    def viewers(self) -> int:
        """Event streams connected now."""
        return len(self._viewers)

    def wanted(self, now: float) -> bool:
        """Whether anyone follows the node now (``now``: monotonic seconds): an open event
        stream, or a read of the state API within ``READ_KEEPS_LOOKING_S``."""
        return bool(self._viewers) or now - self._read_at < READ_KEEPS_LOOKING_S

    def asked(self, now: float) -> None:
        """Someone read the state API: keep looking for a while, and look now."""
        self._read_at = now
        if self._on_viewer is not None:
            self._on_viewer()

    @property
    def state(self) -> PageState:
        """The page state as the viewers have it (do not change it)."""
        with self._lock:
            return self._differ.state

    # --- publishing (any thread) -------------------------------------------------------------

    def publish_state(self, state: PageState, now: float) -> None:
        """A new look at the node (``now``: monotonic seconds): send what changed."""
        with self._lock:
            self.published_at = now
            update = self._differ.update(state, now)
            if update is not None:
                self._broadcast(("update", update.as_json()))

    def publish_event(self, event: str, fields: Mapping[str, Any], now: float,
                      now_unix_s: float) -> FeedItem | None:
        """A telemetry event: a feed line if it is one, and the worker's row at once if the
        event changes it (a restart shows before the collector's next look)."""
        with self._lock:
            item = self._feed.add(event, fields, now_unix_s)
            if item is None:
                return None
            self._broadcast(("feed", item.as_json()))
            new = apply_worker_event(self._differ.state, event, fields)
            update = self._differ.update(new, now) if new is not None else None
            if update is not None:
                self._broadcast(("update", update.as_json()))
        return item

    def _broadcast(self, message: Message) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop has stopped
            loop.call_soon_threadsafe(self._fan_out, message)

    def _fan_out(self, message: Message | None) -> None:
        """On the loop: queue ``message`` for every viewer; drop those that are full."""
        for viewer in list(self._viewers):
            try:
                viewer.queue.put_nowait(message)
            except asyncio.QueueFull:
                viewer.dropped = True
                self._viewers.discard(viewer)

    # --- viewers (on the loop) ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole page: state and the feed kept (what a viewer gets first), and this
        hub's ``run`` (a page that sees it change drops the feed it had: numbers restart)."""
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        return {"run": self.run, "state": self._differ.state,
                "feed": [item.as_json() for item in self._feed.recent()]}

    def connect(self) -> tuple[Viewer, dict[str, Any]]:
        """A new viewer and the snapshot it starts from (called on the server's loop)."""
        viewer = Viewer()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            snapshot = self._snapshot()
            if self._closed:
                viewer.queue.put_nowait(None)
            else:
                self._viewers.add(viewer)
        if self._on_viewer is not None:
            self._on_viewer()
        return viewer, snapshot

    def disconnect(self, viewer: Viewer) -> None:
        self._viewers.discard(viewer)

    def close(self) -> None:
        """End every event stream (the server is stopping); later viewers end at once."""
        with self._lock:
            self._closed = True
            loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        for viewer in list(self._viewers):
            while not viewer.queue.empty():
                viewer.queue.get_nowait()
            viewer.queue.put_nowait(None)
        self._viewers.clear()
