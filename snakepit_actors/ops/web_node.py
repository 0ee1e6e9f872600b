"""A node's web view (``start --web``): who looks at the pools, who kills for the demo, and
the server's start and stop.

    node process
     ├─ main thread      Node.wait(): the node's own endpoint (PoolReplaced, metrics)
     ├─ "snakepit-web-collector"   a private() endpoint of the node's actor system:
     │     status.gather() (tree, workers, stats, members) -> core.web_page -> ViewHub
     │     every COLLECT_S while a page is open (or the state API was read in the last
     │     10 s), at once after a feed event, a new viewer or a read
     ├─ event inbox threads        telemetry.subscribe(FEED_EVENTS) -> ViewHub.publish_event
     ├─ "snakepit-web"   uvicorn serving web/app.py from the ViewHub
     └─ "snakepit-web-traffic"     (demo --web only) a few showcase requests per second

The collector and the server never block an actor: the collector asks the actors what
``status`` asks them (each call bounded by ``CALL_TIMEOUT_S``), only while someone watches;
the server only reads the hub. A demo kill (``--web-demo-controls`` only) sends SIGKILL to a
pid taken from the page state, after checking that the process descends from the node's
actor system. ``WebView.stop`` ends the streams, the server, the collector and the
subscription; the node then stops its pools as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from snakepit_actors.core.web_feed import FEED_EVENTS
from snakepit_actors.core.web_page import Target, demo_target, page_state
from snakepit_actors.errors import InvalidArgumentsError
from snakepit_actors.telemetry import get_logger, subscribe

log = get_logger("web")

#: Seconds from one look at the pools to the next while a page is open (at least 0.1 s
#: between the end of one and the start of the next).
COLLECT_S = 0.5
#: Seconds a look waits for each actor's answer (a dead actor costs this much, once).
CALL_TIMEOUT_S = 1.0
#: After a feed event, look again this often for FOLLOW_S (a restart settles quickly).
FOLLOW_EVERY_S, FOLLOW_S = 0.2, 3.0
#: Seconds between two requests of ``demo_traffic``.
TRAFFIC_EVERY_S = 0.2


@dataclass(frozen=True, slots=True)
class WebOptions:
    """How a node serves its web view.

    Attributes:
        port: the TCP port on 127.0.0.1 (0: a free one, printed at start).
        token: the token a viewer must present ("" : a new random one per start).
        demo_controls: serve the buttons that kill a worker's process, a Worker actor or the
            Pool actor (never on unless asked for on the command line).
        demo_traffic: send a few showcase ``sleep`` requests per second to every pool, so
            requests and latency move on the page (``demo --web`` only).
    """

    port: int = 0
    token: str = ""
    demo_controls: bool = False
    demo_traffic: bool = False


class Collector:
    """The thread that looks at the node's pools and publishes the page state.

    Args:
        actor_system: the node's actor system (a ``private()`` endpoint is made of it).
        directory: the node's NodeDirectory address.
        port: the node's admin port (shown on the page).
        publish: ``ViewHub.publish_state``.
        wanted: ``ViewHub.wanted``: whether anyone follows the node now (no look otherwise).
    """

    def __init__(self, actor_system: Any, directory: Any, port: int, publish: Any,
                 wanted: Any) -> None:
        self._asys, self._directory, self._port = actor_system, directory, port
        self._publish, self._wanted = publish, wanted
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._follow_until = 0.0
        self._last_error = ""  # logged once, not at every look while it lasts
        self._pids: Any = None  # status.PortPids, made on the collector's thread
        self.looks = 0
        self._thread = threading.Thread(target=self._run, name="snakepit-web-collector",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self, follow: bool = False) -> None:
        """Look now (any thread); with ``follow``, keep looking often for a while."""
        if follow:
            self._follow_until = time.monotonic() + FOLLOW_S
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        from snakepit_actors.ops.node_client import NodeClient

        with self._asys.private() as endpoint:
            client: NodeClient | None = None
            first = True
            while not self._stop.is_set():
                began = time.monotonic()
                if first or self._wanted(began):
                    first = False
                    client = self._look(endpoint, client)
                following = time.monotonic() < self._follow_until
                took = time.monotonic() - began  # a slow look (a loaded host) waits less
                self._wake.wait(max(0.1, (FOLLOW_EVERY_S if following else COLLECT_S) - took))
                self._wake.clear()

    def _look(self, endpoint: Any, client: Any) -> Any:
        """One look at every pool; published to the hub. Errors are logged, never raised."""
        from snakepit_actors.ops.node_client import NodeClient
        from snakepit_actors.ops.status import PortPids, gather

        if self._pids is None:
            self._pids = PortPids()
        try:
            if client is None:
                client = NodeClient.over(endpoint, self._directory, self._port,
                                         timeout_s=CALL_TIMEOUT_S)
            else:
                client.refresh()
            report = gather(client, pids=self._pids)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self._last_error:
                log.warning("web.collect_failed", error=error)
            self._last_error = error
            return client
        self._last_error = ""
        self.looks += 1
        self._publish(page_state(report), time.monotonic())
        return client


class DemoTraffic:
    """A thread sending showcase ``sleep`` requests (10-60 ms) to every pool of the node, one
    at a time, about ``TRAFFIC_EVERY_S`` apart, through a private endpoint (the actor path);
    failures (a worker the viewer just killed) only count on the page."""

    def __init__(self, actor_system: Any, directory: Any, port: int) -> None:
        self._asys, self._directory, self._port = actor_system, directory, port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snakepit-web-traffic",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        import random

        from snakepit_actors.errors import SnakepitError
        from snakepit_actors.ops.node_client import NodeClient

        with self._asys.private() as endpoint:
            client: NodeClient | None = None
            while not self._stop.wait(TRAFFIC_EVERY_S):
                try:
                    client = (NodeClient.over(endpoint, self._directory, self._port,
                                              timeout_s=CALL_TIMEOUT_S)
                              if client is None else client)
                    for entry in client.refresh().pools:
                        client.execute(entry, "sleep", {"seconds": random.uniform(0.01, 0.06)},
                                       timeout_s=2.0)
                except SnakepitError:
                    continue


class DemoControls:
    """The demo buttons' kills: SIGKILL to a pid the page state names, if it is a process of
    the node's actor system (a descendant of its admin).

    Args:
        hub: the ``ViewHub`` (its state names the pids).
        admin_pid: the node's Thespian admin.
        after: called after a kill (the collector looks again soon).
    """

    def __init__(self, hub: Any, admin_pid: int, after: Any = None) -> None:
        self._hub, self._admin_pid, self._after = hub, admin_pid, after

    def kill(self, what: str, pool: str, worker_id: str = "") -> dict[str, Any]:
        """Kill ``what`` ("process", "worker_actor" or "pool") of ``pool``; returns
        ``{"killed": pid, "what": ...}``.

        Raises:
            InvalidArgumentsError: reason "no_such_target": nothing like that runs now (the
                message says why), or the pid is not a process of this node.
        """
        target = demo_target(self._hub.state, pool, what, worker_id)
        if not isinstance(target, Target):
            raise InvalidArgumentsError(target.reason, reason="no_such_target",
                                        details={"what": what, "pool": pool,
                                                 "worker_id": worker_id})
        if not self._ours(target.pid):
            raise InvalidArgumentsError(f"pid {target.pid} ({target.label}) is no longer a "
                                        f"process of this node", reason="no_such_target")
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, signal.SIGKILL)
        log.warning("web.demo_kill", pool=pool, what=what, worker_id=worker_id,
                    pid=target.pid)
        if self._after is not None:
            self._after()
        return {"killed": target.pid, "what": target.label}

    def _ours(self, pid: int) -> bool:
        import psutil

        try:
            return self._admin_pid in {p.pid for p in psutil.Process(pid).parents()}
        except psutil.Error:
            return False


class WebView:
    """A node's web view, running: ``url`` (with the token) is what the node prints.

    Build it with ``start_web_view``; ``stop`` it before the actor system stops.
    """

    def __init__(self, server: Any, hub: Any, collector: Collector, unsubscribe: Any,
                 token: str, traffic: DemoTraffic | None = None) -> None:
        self.server, self.hub, self.collector = server, hub, collector
        self._unsubscribe, self.token, self._traffic = unsubscribe, token, traffic

    @property
    def url(self) -> str:
        """The page's address with the token (the first visit turns it into a cookie)."""
        return f"{self.server.url}?token={self.token}"

    def stop(self) -> None:
        """End the demo traffic, the streams, the server, the collector and the subscription.
        Idempotent."""
        if self._traffic is not None:
            self._traffic.stop()
        self._unsubscribe()
        self.hub.close()
        self.server.stop()
        self.collector.stop()
        log.info("web.stopped", port=self.server.port)


def start_web_view(actor_system: Any, directory: Any, node: Any, admin_pid: int,
                   options: WebOptions) -> WebView:
    """Serve the web view of the node whose ``[node]`` table is ``node`` on 127.0.0.1 (see
    the module docstring); its token: ``options.token``, else ``node.web_token``, else new.

    Raises:
        ConfigError: the web extra is missing, or the port cannot be bound.
    """
    from snakepit_actors.core.web_access import new_token
    from snakepit_actors.web import require_web

    require_web()
    from snakepit_actors.web.app import build_app
    from snakepit_actors.web.hub import ViewHub
    from snakepit_actors.web.server import WebServer

    hub = ViewHub(on_viewer=lambda: collector.wake())  # (the server starts after both)
    collector = Collector(actor_system, directory, node.admin_port, hub.publish_state,
                          hub.wanted)

    def on_event(event: str, fields: dict[str, Any]) -> None:
        if hub.publish_event(event, fields, time.monotonic(), time.time()) is not None:
            collector.wake(follow=True)

    unsubscribe = subscribe(on_event, FEED_EVENTS)
    token = options.token or node.web_token or new_token()
    kill = (DemoControls(hub, admin_pid, lambda: collector.wake(follow=True)).kill
            if options.demo_controls else None)
    server = WebServer(build_app(hub, token, kill, node.name), "127.0.0.1", options.port)
    try:
        server.start()
    except BaseException:
        unsubscribe()
        raise
    collector.start()
    traffic = None
    if options.demo_traffic:
        traffic = DemoTraffic(actor_system, directory, node.admin_port)
        traffic.start()
    log.info("web.started", port=server.port, demo_controls=options.demo_controls)
    return WebView(server, hub, collector, unsubscribe, token, traffic)
