"""Prometheus metrics of a node's pools: ``[node] metrics_port`` and ``status --prometheus``.

Both go through ``client.metrics.PoolStatsCollector`` (prometheus_client's custom-collector
API; an optional extra, ``pip install 'snakepit-actors[prometheus]'``, never a dependency),
with the label ``node``. The node refreshes a snapshot of its pools' stats from its main
thread (the only user of its actor system endpoint); the HTTP thread of ``serve_metrics``
only reads the latest snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from snakepit_actors.client.metrics import (
    PoolStatsCollector,
    exposition_text,
    prometheus_client_module,
    serve,
)
from snakepit_actors.errors import ConfigError
from snakepit_actors.messages import PoolStats


def prometheus_text(node: str, stats: Mapping[str, PoolStats]) -> str:
    """The Prometheus text exposition of every pool's stats (labels: node, pool).

    Raises:
        ConfigError: prometheus_client is not installed (the message says how to get it).
    """
    snapshot = dict(stats)
    return exposition_text(PoolStatsCollector(lambda: snapshot, {"node": node}))


class StatsCache:
    """The latest snapshots, shared by the node's main thread (writer) and the HTTP thread."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._stats: dict[str, PoolStats] = {}

    def update(self, pool: str, stats: PoolStats) -> None:
        with self._lock:
            self._stats[pool] = stats

    def snapshot(self) -> dict[str, PoolStats]:
        with self._lock:
            return dict(self._stats)

    def collector(self) -> PoolStatsCollector:
        """A collector reading the latest snapshot (never the actor system)."""
        return PoolStatsCollector(self.snapshot, {"node": self.node})


def prometheus_modules() -> Any:
    """``prometheus_client``, for a node with ``metrics_port`` (checked before it starts).

    Raises:
        ConfigError: it is not installed (the message says how to get it).
    """
    try:
        return prometheus_client_module()
    except ConfigError:
        raise ConfigError("node.metrics_port is set but prometheus_client is not installed: "
                          "pip install 'snakepit-actors[prometheus]', or set metrics_port = 0"
                          ) from None


def serve_metrics(cache: StatsCache, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``cache`` at ``http://host:port/metrics`` (a daemon thread of prometheus_client);
    returns the server (``.shutdown()``).

    Raises:
        ConfigError: prometheus_client is not installed (the message says how to get it).
    """
    prometheus_modules()
    return serve(cache.collector(), port, host)
