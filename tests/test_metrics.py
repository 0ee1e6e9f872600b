"""Prometheus metrics through prometheus_client collectors: a node's and a library Pool's,
and the HTTP endpoint (client/metrics.py, ops/metrics.py)."""

from __future__ import annotations

import importlib.util
import urllib.request

import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.client.metrics import PoolStatsCollector, pools_collector
from snakepit_actors.errors import ConfigError, PoolClosedError
from snakepit_actors.messages import PoolStats
from snakepit_actors.ops.metrics import StatsCache, prometheus_modules, prometheus_text
from snakepit_actors.telemetry import LatencyWindow

needs_prometheus = pytest.mark.skipif(importlib.util.find_spec("prometheus_client") is None,
                                      reason="prometheus_client is not installed (dev extra)")


def stats(requests: int) -> PoolStats:
    window = LatencyWindow()
    for ms in (0.7, 3.0, 40.0):
        window.add(ms)
    return PoolStats(workers=2, available=1, busy=1, queued=0, requests=requests, errors=1,
                     queue_timeouts=0, saturated=0, restarts=0, latency_p50_ms=3.0,
                     latency_p99_ms=40.0, recycled=2, latency_buckets_ms=window.buckets(),
                     latency_sum_ms=window.sum_ms)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode("utf-8"))


@needs_prometheus
def test_the_text_has_counters_gauges_and_a_histogram_per_pool() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = prometheus_text("n1", {"a": stats(10), "b": stats(20)})
    assert 'snakepit_requests_total{node="n1",pool="a"} 10.0' in text
    assert 'snakepit_requests_total{node="n1",pool="b"} 20.0' in text
    assert 'snakepit_recycled_total{node="n1",pool="a"} 2.0' in text
    assert 'snakepit_busy{node="n1",pool="a"} 1.0' in text
    assert 'snakepit_request_latency_seconds_bucket{le="0.001",node="n1",pool="a"} 1.0' in text
    assert 'snakepit_request_latency_seconds_count{node="n1",pool="b"} 3.0' in text
    assert text.count("# TYPE snakepit_request_latency_seconds histogram") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["snakepit_requests"].type == "counter"
    assert families["snakepit_queued"].type == "gauge"
    (total,) = [s for s in families["snakepit_request_latency_seconds"].samples
                if s.name.endswith("_sum") and s.labels["pool"] == "a"]
    assert total.value == pytest.approx(0.0437)


@needs_prometheus
def test_the_cache_exposes_the_latest_snapshot() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    cache = StatsCache("n1")
    cache.update("a", stats(1))
    cache.update("a", stats(5))
    registry = CollectorRegistry()
    registry.register(cache.collector())
    assert b'snakepit_requests_total{node="n1",pool="a"} 5.0' in generate_latest(registry)


@needs_prometheus
def test_a_collector_whose_pool_is_closed_exposes_no_samples() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    def closed() -> dict[str, PoolStats]:
        raise PoolClosedError("pool 'x' is closed")

    registry = CollectorRegistry()
    registry.register(PoolStatsCollector(closed))
    assert b"snakepit_requests_total{" not in generate_latest(registry)


@pytest.mark.skipif(importlib.util.find_spec("prometheus_client") is not None,
                    reason="prometheus_client is installed")
def test_the_endpoint_needs_prometheus_client_and_says_how_to_get_it() -> None:
    with pytest.raises(ConfigError, match=r"pip install 'snakepit-actors\[prometheus\]'"):
        prometheus_modules()


@needs_prometheus
def test_a_library_pool_has_a_collector_and_serves_its_metrics_over_http_until_closed(
        ) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    with Pool.start(PoolConfig(name="served", pool_size=1)) as pool:
        registry = CollectorRegistry()  # the host's own registry
        registry.register(pool.metrics_collector())
        for _ in range(3):
            pool.execute("echo", {"x": 1})
        assert registry.get_sample_value("snakepit_requests_total", {"pool": "served"}) == 3.0
        assert b"# TYPE snakepit_busy gauge" in generate_latest(registry)
        several = CollectorRegistry()
        several.register(pools_collector([pool]))
        assert several.get_sample_value("snakepit_workers", {"pool": "served"}) == 1.0
        port = pool.start_metrics_server(0)
        text = scrape(port)
        assert 'snakepit_workers{pool="served"} 1.0' in text
        assert 'snakepit_requests_total{pool="served"} 3.0' in text
        assert 'snakepit_request_latency_seconds_count{pool="served"} 3.0' in text
    with pytest.raises(OSError):
        scrape(port)  # closing the pool stopped the server
    assert registry.get_sample_value("snakepit_requests_total", {"pool": "served"}) is None
