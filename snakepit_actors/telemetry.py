"""Structured logging, telemetry events and the counters behind ``PoolStats``.

All logging configuration is reached from here (the output side lives in ``log_output.py``).
The library logs through structlog with a closed catalogue of event names (``EVENTS``) and
keyword fields, never calls ``structlog.configure()``, and stays silent unless the application
opts in:

* ``configure_logging(fmt, level)`` (the CLI and the node call it once): JSON lines or a console
  renderer on a stream, with a timestamp and the level;
* ``enable_logging(handler, level, route=...)``: LogRecords carrying the event's fields on your
  stdlib handlers (``structlog.stdlib.ProcessorFormatter`` renders them with your processors),
  or the events through your own ``structlog.configure()``;
* ``subscribe(handler)``: a callback in *this* process for every event of this process and of
  the actor processes of the pools it started, whatever the log level.

Context bound with ``bind_context`` (pool, worker_id, request_id, session_id) is merged into
every event of the process. Each actor is its own process, forked from its parent: the PoolRoot
binds ``pool`` and every actor below it inherits it; a Worker adds ``worker_id``. Configure
logging *before* ``Pool.start`` (or the node's start): actor processes are forked from the
starting process and inherit it. Subscribers stay in the caller's process: the actor processes
relay their events to it (``event_relay.py``: a Unix socket per pool run, bounded, never
blocking an actor; ``dropped_events()`` counts what a slow subscriber lost).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from snakepit_actors.event_relay import EventInbox, EventSender, socket_path
from snakepit_actors.log_output import (
    LEVELS,
    STDLIB_LOGGER,
    LogFormat,
    configure_cli_logging,
    configure_logging,
    enable_logging,
    formatter,
    reset_logging,
    to_output,
)

__all__ = [
    "EVENTS", "LATENCY_BUCKETS_MS", "LatencyWindow", "LogFormat", "Subscriber", "bind_context",
    "close_event_inbox", "configure_cli_logging", "configure_logging", "dropped_events",
    "enable_logging", "formatter", "get_logger", "open_event_inbox", "relay_events",
    "reset_logging", "subscribe", "wants",
]

#: Every event name the library emits. Tests assert nothing outside this set is logged.
EVENTS = frozenset({
    "pool.init_started", "pool.init_complete", "pool.start_failed", "pool.closing",
    "pool.closed", "pool.degraded", "pool.saturated", "pool.failed", "pool.system_gone",
    "pool.system_restarted", "pool.system_restart_failed",
    "pool.restarted", "pool.child_restarted",
    "worker.spawning", "worker.ready", "worker.start_failed", "worker.exited",
    "worker.restarting", "worker.unhealthy", "worker.stopping", "worker.abandoned",
    "worker.restarted", "worker.recycling", "worker.recycled", "worker.recycle_failed",
    "worker.output", "worker.output_dropped", "worker.output_rotated",
    "fork_server.started", "fork_server.lost", "fork_server.unready",
    "request.queued", "request.completed", "request.rejected", "request.queue_timeout",
    "request.failed", "request.undeliverable", "request.timeout", "request.retried",
    "lease.holder_died",
    "session.expired",
    "session.ended", "session.quota_exceeded", "session.affinity_lost", "session.moved",
    "system.started", "system.stopped", "system.stragglers_killed", "launcher.gone",
    "orphan.killed", "orphan.survived", "orphan.sweep_failed",
    "run_dir.removed", "run_dir.remove_failed",
    "process_table.unavailable", "process_table.write_failed",
    "node.starting", "node.ready", "node.draining", "node.stopped", "node.pool_failed",
    "member.started", "member.stopped", "node.pool_silent", "node.worker_orphaned",
    "node.agent_stopping",
    "placement.watching", "placement.waiting", "placement.placed", "placement.member_joined",
    "placement.member_live", "placement.member_ignored", "placement.member_lost",
    "placement.no_member", "worker.placed", "worker.node_lost", "worker.timeout_recovered",
    "worker.moving", "placement.member_draining", "member.draining", "placement.rebalancing",
    "timer.unknown", "access.refused", "access.unchecked",
    "web.started", "web.stopped", "web.collect_failed", "web.demo_kill",
})

Subscriber = Callable[[str, dict[str, Any]], None]

_stdlib_logger = STDLIB_LOGGER
_LEVELS = LEVELS
_subscribers: dict[int, tuple[Subscriber, frozenset[str] | None]] = {}
_subscribers_lock = threading.Lock()
_relay: EventSender | None = None  # set in a pool's actor processes (relay_events)
_inboxes: list[EventInbox] = []  # the open pools' inboxes in this (the caller's) process
_dropped_by_closed_inboxes = 0


def _notify(logger: Any, method: str, event_dict: Any) -> Any:
    """structlog processor: hand the event to every subscriber (errors in them are ignored),
    or, in a pool's actor process, relay it to the subscribers of the pool's caller."""
    if _relay is not None:
        _relay.send(dict(event_dict))
    elif _subscribers:
        _deliver(str(event_dict.get("event", "")), dict(event_dict))
    return event_dict


def _deliver(event: str, fields: dict[str, Any]) -> None:
    """Call every subscriber that wants ``event`` (on the emitting thread, or an event inbox's
    thread for events relayed from actor processes); what they raise is ignored."""
    for handler, events in list(_subscribers.values()):
        if events is None or event in events:
            with contextlib.suppress(Exception):
                handler(event, dict(fields))


def _nobody_listens(logger: Any, method: str, event_dict: Any) -> Any:
    """Drop the event first thing when neither a subscriber nor a handler would see it (the
    common case for per-request debug events)."""
    if not _someone_subscribed(event_dict.get("event")) and not _stdlib_logger.isEnabledFor(
            _LEVELS.get(method, logging.INFO)):
        raise structlog.DropEvent
    return event_dict


def _someone_subscribed(event: str | None = None) -> bool:
    """A subscriber in this process, or (in an actor process) one of the pool's caller that
    wants ``event`` (None: any)."""
    return bool(_subscribers) or (_relay is not None and _relay.wants(event))


def _level_gate(logger: Any, method: str, event_dict: Any) -> Any:
    """Drop the event before rendering when the stdlib logger would discard it anyway."""
    if not _stdlib_logger.isEnabledFor(_LEVELS.get(method, logging.INFO)):
        raise structlog.DropEvent
    return event_dict


def get_logger(component: str) -> Any:
    """A structlog logger bound to ``component`` (e.g. "pool", "worker").

    Events go to the stdlib logger ``snakepit_actors`` as records carrying their fields, or
    through your structlog configuration (``log_output.py``); that logger has only a
    NullHandler, so nothing shows until the application opts in.
    """
    return structlog.wrap_logger(
        _stdlib_logger,
        processors=[_nobody_listens, structlog.contextvars.merge_contextvars, _notify,
                    _level_gate, to_output],
        wrapper_class=structlog.stdlib.BoundLogger,
    ).bind(component=component)


def bind_context(**fields: Any) -> None:
    """Merge ``fields`` (pool, worker_id, request_id, session_id ...) into every later event of
    this process (and of actor processes it forks afterwards)."""
    structlog.contextvars.bind_contextvars(**fields)


def subscribe(handler: Subscriber, events: Iterable[str] | None = None) -> Callable[[], None]:
    """Call ``handler(event, fields)`` for every event (or only ``events``) of this process
    and of the actor processes of every pool this process started (``Pool.start``), whatever
    the log level; returns the function that unsubscribes it.

    The handler always runs in this process: on the emitting thread for this process's events
    (direct-path requests, worker output), on a pool's event-inbox thread for its actors'
    (``pool.init_complete``, ``worker.exited``, ``worker.restarted``...), in the order each
    process emitted them. Keep it short: while it runs, that pool's relayed events wait in
    bounded buffers, and what does not fit is dropped and counted (``dropped_events()``);
    an exception in it is ignored. Subscribe before ``Pool.start`` to see the start's events;
    a pool's actors notice a later subscription within about 0.5 s. Name the ``events`` you
    need: the actors then encode and send only those (per-request events otherwise cross
    processes too). Workers placed on
    other hosts (``placement``) log where they run; their events are not relayed.

    Raises:
        ValueError: ``events`` names an event that is not in ``EVENTS``.
    """
    wanted = None if events is None else frozenset(events)
    if wanted is not None and not wanted <= EVENTS:
        raise ValueError(f"unknown telemetry events {sorted(wanted - EVENTS)}; "
                         f"known: {sorted(EVENTS)}")
    key = id(handler)
    with _subscribers_lock:
        _subscribers[key] = (handler, wanted)
        _listen()

    def unsubscribe() -> None:
        with _subscribers_lock:
            if _subscribers.pop(key, None) is not None:
                _listen()

    return unsubscribe


def _listen() -> None:
    """Tell the inboxes whether anyone subscribes, and to which events (their actor
    processes then relay only those)."""
    for inbox in list(_inboxes):
        inbox.listen(bool(_subscribers), _wanted_events())


def _wanted_events() -> frozenset[str] | None:
    """The union of the subscriptions' events; None when one wants every event."""
    union: set[str] = set()
    for _, events in _subscribers.values():
        if events is None:
            return None
        union |= events
    return frozenset(union)


def wants(level: str = "debug") -> bool:
    """Whether an event at ``level`` would reach anyone (a subscriber or a handler): hot paths
    check this before building an event's fields."""
    return _someone_subscribed() or _stdlib_logger.isEnabledFor(_LEVELS[level])


def relay_events(run_dir: str) -> None:
    """In a pool's actor process (the PoolRoot calls it; every actor forked below inherits
    it): send this process's events to the subscribers of the process that started the pool,
    through ``run_dir``'s event socket (``event_relay``), instead of to subscribers here (the
    ones inherited through fork belong to the caller's process)."""
    global _relay
    with _subscribers_lock:
        _subscribers.clear()
    _relay = EventSender(socket_path(run_dir))


def open_event_inbox(run_dir: str) -> EventInbox:
    """In the process that starts a pool (before its actors start): receive the events its
    actor processes relay (``relay_events``) and hand them to this process's subscribers.
    Close it with ``close_event_inbox(run_dir)`` once the pool's processes are gone."""
    inbox = EventInbox(run_dir, _deliver)
    with _subscribers_lock:
        _inboxes.append(inbox)
        if _subscribers:
            inbox.listen(True, _wanted_events())
    return inbox


def close_event_inbox(run_dir: str) -> None:
    """Deliver the events already relayed to the inbox of ``run_dir``'s pool, then stop it;
    nothing if there is none."""
    global _dropped_by_closed_inboxes
    with _subscribers_lock:
        found = [inbox for inbox in _inboxes if inbox.path == socket_path(run_dir)]
        for inbox in found:
            _inboxes.remove(inbox)
    for inbox in found:
        inbox.close()
        with _subscribers_lock:
            _dropped_by_closed_inboxes += inbox.dropped


def dropped_events() -> int:
    """Events of the pools' actor processes that never reached this process's subscribers
    since it started: the subscribers were slower than the events (a relay's buffers were
    full) or an event could not be encoded. Events emitted in this process are never
    dropped (they are delivered on the emitting thread)."""
    with _subscribers_lock:
        return _dropped_by_closed_inboxes + sum(inbox.dropped for inbox in _inboxes)


#: Upper bounds (ms) of the latency histogram's buckets; the last bucket is +inf.
LATENCY_BUCKETS_MS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
                      2500.0, 5000.0, 10000.0, 30000.0)


class LatencyWindow:
    """Request latencies (ms): the last ``size`` for percentiles (O(size log size), stats only),
    and a histogram of every latency ever added (cumulative buckets, as Prometheus has them)."""

    def __init__(self, size: int = 2048) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.count = 0
        self.sum_ms = 0.0

    def add(self, value_ms: float) -> None:
        self._values.append(value_ms)
        self._counts[bisect.bisect_left(LATENCY_BUCKETS_MS, value_ms)] += 1
        self.count += 1
        self.sum_ms += value_ms

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) by nearest rank; 0.0 when empty."""
        if not self._values:
            return 0.0
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    def buckets(self) -> tuple[tuple[float, int], ...]:
        """``(upper bound ms, requests at or below it)`` for each bucket, cumulative; the last
        bound is ``inf`` and its count is ``count``."""
        out, running = [], 0
        for bound, n in zip((*LATENCY_BUCKETS_MS, float("inf")), self._counts, strict=True):
            running += n
            out.append((bound, running))
        return tuple(out)
