"""Prometheus text of pool stats (the optional endpoint needs prometheus_client)."""

from __future__ import annotations

import importlib.util

import pytest

from snakepit_actors.errors import ConfigError
from snakepit_actors.messages import PoolStats
from snakepit_actors.ops.metrics import StatsCache, prometheus_modules, prometheus_text
from snakepit_actors.telemetry import LatencyWindow


def stats(requests: int) -> PoolStats:
    window = LatencyWindow()
    for ms in (0.7, 3.0, 40.0):
        window.add(ms)
    return PoolStats(workers=2, available=1, busy=1, queued=0, requests=requests, errors=1,
                     queue_timeouts=0, saturated=0, restarts=0, latency_p50_ms=3.0,
                     latency_p99_ms=40.0, recycled=2, latency_buckets_ms=window.buckets(),
                     latency_sum_ms=window.sum_ms)


def test_the_text_has_counters_gauges_and_a_histogram_per_pool() -> None:
    text = prometheus_text("n1", {"a": stats(10), "b": stats(20)})
    assert 'snakepit_requests_total{node="n1",pool="a"} 10' in text
    assert 'snakepit_requests_total{node="n1",pool="b"} 20' in text
    assert 'snakepit_recycled_total{node="n1",pool="a"} 2' in text
    assert 'snakepit_busy{node="n1",pool="a"} 1' in text
    assert 'snakepit_request_latency_seconds_bucket{node="n1",pool="a",le="0.001"} 1' in text
    assert 'snakepit_request_latency_seconds_count{node="n1",pool="b"} 3' in text
    assert text.count("# TYPE snakepit_request_latency_seconds histogram") == 1


def test_the_cache_renders_the_latest_snapshot() -> None:
    cache = StatsCache("n1")
    cache.update("a", stats(1))
    cache.update("a", stats(5))
    assert 'snakepit_requests_total{node="n1",pool="a"} 5' in cache.text()


@pytest.mark.skipif(importlib.util.find_spec("prometheus_client") is not None,
                    reason="prometheus_client is installed")
def test_the_endpoint_needs_prometheus_client_and_says_how_to_get_it() -> None:
    with pytest.raises(ConfigError, match=r"pip install 'snakepit-actors\[prometheus\]'"):
        prometheus_modules()
