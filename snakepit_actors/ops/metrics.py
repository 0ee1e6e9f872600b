"""Prometheus metrics of a node's pools: text exposition, and an optional HTTP endpoint.

``prometheus_text`` renders ``PoolStats`` snapshots in the Prometheus text format (counters,
gauges and the request latency histogram, in seconds); ``status --prometheus`` prints it. With
``[node] metrics_port`` set, ``serve_metrics`` exposes the same text at
``http://127.0.0.1:PORT/metrics`` through ``prometheus_client``, which is an optional extra
(``pip install 'snakepit-actors[prometheus]'``), never a dependency. The node refreshes the
snapshots from its main thread (the only user of its actor system endpoint); the HTTP thread
only reads the latest snapshot.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from snakepit_actors.errors import ConfigError
from snakepit_actors.messages import PoolStats
from snakepit_actors.telemetry import histogram_lines

_COUNTERS = ("requests", "errors", "queue_timeouts", "saturated", "restarts", "recycled",
             "session_moves")
_GAUGES = ("workers", "available", "busy", "queued", "lost_workers")


def prometheus_text(node: str, stats: Mapping[str, PoolStats]) -> str:
    """The Prometheus text exposition of every pool's stats (labels: node, pool)."""
    lines: list[str] = []
    for name in _COUNTERS:
        lines += [f"# HELP snakepit_{name}_total {name.replace('_', ' ')} since the pool started",
                  f"# TYPE snakepit_{name}_total counter"]
        lines += [f'snakepit_{name}_total{{node="{node}",pool="{pool}"}} {getattr(s, name)}'
                  for pool, s in stats.items()]
    for name in _GAUGES:
        lines += [f"# HELP snakepit_{name} {name} now", f"# TYPE snakepit_{name} gauge"]
        lines += [f'snakepit_{name}{{node="{node}",pool="{pool}"}} {getattr(s, name)}'
                  for pool, s in stats.items()]
    lines += ["# HELP snakepit_request_latency_seconds request latency, queueing included",
              "# TYPE snakepit_request_latency_seconds histogram"]
    for pool, s in stats.items():
        lines += histogram_lines("snakepit_request_latency_seconds", s.latency_buckets_ms,
                                 s.latency_sum_ms, {"node": node, "pool": pool})
    return "\n".join(lines) + "\n"


class StatsCache:
    """The latest snapshots, shared by the node's main thread (writer) and the HTTP thread."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._stats: dict[str, PoolStats] = {}

    def update(self, pool: str, stats: PoolStats) -> None:
        with self._lock:
            self._stats[pool] = stats

    def text(self) -> str:
        with self._lock:
            return prometheus_text(self.node, dict(self._stats))


class _Collector:
    """A ``prometheus_client`` collector that re-parses our own text (one renderer only)."""

    def __init__(self, cache: StatsCache, parser: Any) -> None:
        self._cache, self._parser = cache, parser

    def collect(self) -> Iterator[Any]:
        yield from self._parser.text_string_to_metric_families(self._cache.text())


def prometheus_modules() -> tuple[Any, Any]:
    """``prometheus_client`` and its parser.

    Raises:
        ConfigError: it is not installed (the message says how to get it).
    """
    try:
        return (importlib.import_module("prometheus_client"),
                importlib.import_module("prometheus_client.parser"))
    except ImportError:
        raise ConfigError("node.metrics_port is set but prometheus_client is not installed: "
                          "pip install 'snakepit-actors[prometheus]', or set metrics_port = 0"
                          ) from None


def serve_metrics(cache: StatsCache, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``cache`` at ``http://host:port/metrics`` (a daemon thread of prometheus_client).

    Raises:
        ConfigError: prometheus_client is not installed (the message says how to get it).
    """
    client, parser = prometheus_modules()
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(cache, parser))
    return client.start_http_server(port, addr=host, registry=registry)
