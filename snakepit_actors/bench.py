"""``snakepit-actors bench``: the figures of DESIGN §9, measured against raw gRPC in the same run.

The raw baseline calls the pool's own worker processes over their gRPC endpoints with no pool
in between (a perfect router: one request in flight per worker slot), so ratios compare the
pool's overhead and nothing else. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .client import Pool
from .config import PoolConfig


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured scenario."""

    scenario: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.value / self.baseline


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sequential(call: Callable[[], Any], count: int, budget_s: float) -> list[float]:
    latencies: list[float] = []
    stop = time.monotonic() + budget_s
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if time.monotonic() > stop:
            break
    return latencies


def _throughput(calls: list[Callable[[], Any]], callers: int, count: int,
                budget_s: float) -> float:
    """Requests per second with ``callers`` threads, round-robin over ``calls``."""
    counter = itertools.count()
    stop = time.monotonic() + budget_s
    done = [0] * callers

    def loop(index: int) -> None:
        while time.monotonic() < stop:
            n = next(counter)
            if n >= count:
                return
            calls[n % len(calls)]()
            done[index] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def _raw_calls(pool: Pool, capacity: int) -> tuple[list[Callable[[], Any]], list[Any]]:
    import grpc

    from ._proto import bridge_pb2, bridge_pb2_grpc

    channels = [grpc.insecure_channel(w.endpoint) for w in pool.workers()]
    calls: list[Callable[[], Any]] = []
    for channel in channels:
        stub = bridge_pb2_grpc.BridgeServiceStub(channel)
        request = bridge_pb2.ExecuteToolRequest(tool="echo", args_json=b'{"x":1}')
        calls.extend([_unary(stub.ExecuteTool, request)] * capacity)
    return calls, channels


def _crash_figures(pool: Pool) -> list[Figure]:
    """kill -9 of a busy worker: how soon its caller hears, how soon a replacement is Ready."""
    import os
    import signal

    from .errors import WorkerCrashedError

    heard: list[float] = []

    def call() -> None:
        try:
            pool.execute("sleep", {"seconds": 10.0}, timeout=20.0)
        except WorkerCrashedError:
            heard.append(time.perf_counter())

    restarts = pool.stats().restarts
    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 10
    while not any(w.state == "busy" for w in pool.workers()) and time.monotonic() < deadline:
        time.sleep(0.005)
    victim = next(w for w in pool.workers() if w.state == "busy")
    killed = time.perf_counter()
    os.kill(victim.pid, signal.SIGKILL)
    thread.join(30)
    while pool.stats().restarts == restarts and time.monotonic() < deadline + 10:
        time.sleep(0.002)
    ready = time.perf_counter()
    return [
        Figure("kill -9 busy worker: WorkerCrashedError after", (heard[0] - killed) * 1000
               if heard else float("nan"), "ms", target="<= 100 ms"),
        Figure("kill -9 busy worker: replacement Ready after", (ready - killed) * 1000, "ms",
               target="<= 1000 ms"),
    ]


def _unary(method: Callable[[Any], Any], request: Any) -> Callable[[], Any]:
    return lambda: method(request)


def run(quick: bool = False) -> list[Figure]:
    """Run every scenario and return the figures (a few tens of seconds; less with quick)."""
    n_seq, n_load, budget = (300, 2000, 10.0) if quick else (2000, 8000, 30.0)
    figures: list[Figure] = []
    t0 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench", pool_size=4, queue_timeout=60.0)) as pool:
        figures.append(Figure("startup, 4 workers", (time.perf_counter() - t0) * 1000, "ms"))
        calls, channels = _raw_calls(pool, capacity=1)
        for call in calls:
            call()
        raw = _sequential(calls[0], n_seq, budget)
        actor = _sequential(lambda: pool.execute("echo", {"x": 1}), n_seq, budget)
        raw_p50, actor_p50 = statistics.median(raw), statistics.median(actor)
        figures += [
            Figure("raw gRPC sequential echo p50", raw_p50, "ms"),
            Figure("actor path sequential echo p50", actor_p50, "ms", raw_p50),
            Figure("actor path sequential echo p99", _percentile(actor, 0.99), "ms",
                   _percentile(raw, 0.99)),
            Figure("actor path p50 overhead over raw", actor_p50 - raw_p50, "ms",
                   target="<= 3.5 ms"),
        ]
        raw_tp = _throughput(calls, 64, n_load, budget)
        actor_tp = _throughput([lambda: pool.execute("echo", {"x": 1})], 64, n_load, budget)
        figures += [
            Figure("raw gRPC echo, 64 callers, 4 workers", raw_tp, "req/s"),
            Figure("actor path echo, 64 callers, 4 workers", actor_tp, "req/s", raw_tp,
                   target=">= 800 req/s"),
        ]
        for channel in channels:
            channel.close()
        figures += _crash_figures(pool)
    t1 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench8", pool_size=8,
                               adapter_config={"init_delay_s": 2.0})):
        eight = (time.perf_counter() - t1) * 1000
    t2 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench1", pool_size=1,
                               adapter_config={"init_delay_s": 2.0})):
        one = (time.perf_counter() - t2) * 1000
    figures.append(Figure("startup, 8 workers with init_delay_s=2", eight, "ms", one,
                          target="<= 1.25x one worker"))
    return figures


def report(figures: list[Figure], as_json: bool) -> str:
    """The figures as a table (or JSON)."""
    if as_json:
        return json.dumps([asdict(f) | {"ratio": f.ratio} for f in figures], indent=2)
    lines = [f"{'scenario':<44} {'value':>10} {'unit':<6} {'vs baseline':>11}  target"]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        lines.append(f"{f.scenario:<44} {f.value:>10.2f} {f.unit:<6} {ratio:>11}  {f.target}")
    return "\n".join(lines)
