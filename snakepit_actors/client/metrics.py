"""Prometheus metrics of pools, through ``prometheus_client`` (an optional extra:
``pip install 'snakepit-actors[prometheus]'``).

    scrape (your registry / our HTTP thread) -> PoolStatsCollector.collect()
        -> read() -> {pool name: PoolStats}     (a library Pool: pool.stats(), one actor
                                                 round trip; a node: its latest snapshot)
        -> counter, gauge and histogram families (labels: yours + "pool")

Used by the ``Pool`` handle (``pool.metrics_collector()``, ``pool.start_metrics_server(port)``)
and by a node (``ops/metrics.py``: ``[node] metrics_port``, ``status --prometheus``).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from snakepit_actors.errors import ConfigError, SnakepitError
from snakepit_actors.messages import PoolStats

#: ``PoolStats`` field -> help text; each is exposed as ``snakepit_<field>_total``.
COUNTERS = {
    "requests": "requests answered since the pool started (both data paths)",
    "errors": "requests that ended in an error",
    "queue_timeouts": "requests that never reached a worker before their deadline",
    "saturated": "requests refused because the queue was full",
    "restarts": "worker restarts after a crash",
    "recycled": "graceful worker replacements (max_requests, ttl, memory, manual)",
    "session_moves": "sessions moved to another worker",
}
#: ``PoolStats`` field -> help text; each is exposed as ``snakepit_<field>``.
GAUGES = {
    "workers": "workers in the pool",
    "available": "workers with a free slot",
    "busy": "workers running a request or holding a lease",
    "queued": "requests waiting for a worker",
    "lost_workers": "workers without a process: lost node, parked or abandoned",
}
LATENCY = "snakepit_request_latency_seconds"

Read = Callable[[], Mapping[str, PoolStats]]


def prometheus_client_module() -> Any:
    """``prometheus_client``, imported on first use.

    Raises:
        ConfigError: it is not installed (the message says how to get it).
    """
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        raise ConfigError("Prometheus metrics need prometheus_client, which is not installed: "
                          "pip install 'snakepit-actors[prometheus]'") from None


class PoolStatsCollector:
    """A ``prometheus_client`` custom collector of pools' ``PoolStats``, read at each scrape.

    Args:
        read: returns the stats to expose, by pool name (called on the scraping thread; what
            it raises as ``SnakepitError``, e.g. a closed pool, exposes nothing).
        labels: constant labels of every sample (e.g. ``{"node": "n1"}``).
    """

    def __init__(self, read: Read, labels: Mapping[str, str] | None = None) -> None:
        self._read = read
        self._labels = dict(labels or {})

    def describe(self) -> list[Any]:
        """No samples at registration (``read`` may block): the registry asks ``collect``."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families of the current stats."""
        core = importlib.import_module("prometheus_client.core")
        utils = importlib.import_module("prometheus_client.utils")
        stats: Mapping[str, PoolStats] = {}
        with contextlib.suppress(SnakepitError):
            stats = self._read()
        names = [*self._labels, "pool"]
        rows = [([*self._labels.values(), pool], s) for pool, s in sorted(stats.items())]
        for field, text in COUNTERS.items():
            family = core.CounterMetricFamily(f"snakepit_{field}", text, labels=names)
            for values, s in rows:
                family.add_metric(values, getattr(s, field))
            yield family
        for field, text in GAUGES.items():
            family = core.GaugeMetricFamily(f"snakepit_{field}", text, labels=names)
            for values, s in rows:
                family.add_metric(values, getattr(s, field))
            yield family
        histogram = core.HistogramMetricFamily(
            LATENCY, "request latency, queueing included", labels=names)
        for values, s in rows:
            buckets = [(utils.floatToGoString(bound / 1000.0), count)
                       for bound, count in s.latency_buckets_ms]
            if buckets:
                histogram.add_metric(values, buckets, s.latency_sum_ms / 1000.0)
        yield histogram


def exposition_text(collector: PoolStatsCollector) -> str:
    """The Prometheus text format of ``collector``'s samples (``status --prometheus``).

    Raises:
        ConfigError: prometheus_client is not installed.
    """
    client = prometheus_client_module()
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return str(client.generate_latest(registry).decode("utf-8"))


def serve(collector: PoolStatsCollector, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``collector`` at ``http://host:port/metrics`` (prometheus_client's HTTP server,
    on a daemon thread); returns the server (``.server_port``, ``.shutdown()``).

    Raises:
        ConfigError: prometheus_client is not installed.
        OSError: the port is taken.
    """
    client = prometheus_client_module()
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _thread = client.start_http_server(port, addr=host, registry=registry)
    return server


def pools_collector(pools: Iterable[Any]) -> PoolStatsCollector:
    """One collector for several ``Pool`` handles (a registry must not get two collectors of
    the same metric names: ``pool.metrics_collector()`` is for one pool per registry).
    Each scrape calls every pool's ``stats()``; a closed pool is left out."""
    handles = list(pools)

    def read() -> dict[str, PoolStats]:
        found: dict[str, PoolStats] = {}
        for pool in handles:
            with contextlib.suppress(SnakepitError):
                found[pool.config.name] = pool.stats()
        return found

    return PoolStatsCollector(read)


class MetricsMethods:
    """The metrics part of ``client.Pool``."""

    _metrics_servers: list[Any] | None = None

    if TYPE_CHECKING:  # provided by client.Pool
        config: Any

        def stats(self) -> PoolStats: ...

    def metrics_collector(self) -> PoolStatsCollector:
        """A ``prometheus_client`` collector of this pool's stats (``snakepit_requests_total``,
        gauges such as ``snakepit_busy``, the ``snakepit_request_latency_seconds`` histogram;
        label ``pool``), for your own registry: ``REGISTRY.register(pool.metrics_collector())``.

        Each scrape calls ``stats()`` (one actor round trip); a closed pool exposes nothing.
        Unregister it when you close the pool. Several pools in one registry: one
        ``client.metrics.pools_collector(pools)``, not one collector each (the metric names
        would repeat). Returns at once.
        """
        return PoolStatsCollector(lambda: {self.config.name: self.stats()})

    def start_metrics_server(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve this pool's metrics at ``http://host:port/metrics`` until ``close()``;
        ``port=0`` picks a free port. Returns the port. Only loopback by default: a metrics
        endpoint tells anyone who can reach it about your load.

        Raises:
            ConfigError: prometheus_client is not installed (the message says how to get it).
            OSError: the port is taken.
        """
        server = serve(self.metrics_collector(), port, host)
        if self._metrics_servers is None:
            self._metrics_servers = []
        self._metrics_servers.append(server)
        return int(server.server_port)

    def _stop_metrics_servers(self) -> None:
        for server in self._metrics_servers or ():
            server.shutdown()
            server.server_close()
        self._metrics_servers = None
