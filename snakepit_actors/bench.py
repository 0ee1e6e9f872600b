"""``snakepit-actors bench``: the figures of DESIGN §9, measured against raw gRPC in the same run.

The raw baseline calls the pool's own worker processes over their gRPC endpoints with no pool
in between, through a *perfect router*: a caller takes any free worker slot (``capacity`` per
worker) at once and gives it back when its call returns, so the same number of requests is in
flight per worker as the pool allows. Ratios therefore compare the pool's overhead and nothing
else. The router is FIFO-fair, as the pool is: a freed slot goes to the caller that waited
longest. For throughput the bench also shows a *barging* router (``queue.SimpleQueue``: the
thread that frees a slot usually takes it straight back, saving a thread switch per request,
which a GIL-bound process feels; no fair pool can do that). Both data paths are measured:
"direct" (leases) and "actor" (every request through the actors). Every loop is bounded in
count and in time.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from .client import Pool
from .config import DataPath, PoolConfig


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


@dataclass(frozen=True, slots=True)
class _Budget:
    sequential: int
    load: int
    sleep: int
    seconds: float


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sequential(calls: list[Callable[[], Any]], count: int,
                budget_s: float) -> list[list[float]]:
    """Latencies (ms) of each of ``calls``, called in turn (so drift on a noisy machine hits
    them alike), ``count`` times each at most."""
    latencies: list[list[float]] = [[] for _ in calls]
    stop = time.monotonic() + budget_s
    for _ in range(count):
        for call, out in zip(calls, latencies, strict=True):
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1000.0)
        if time.monotonic() > stop:
            break
    return latencies


def _throughputs(calls: list[Callable[[], Any]], callers: int, count: int, budget_s: float,
                 rounds: int = 2) -> list[float]:
    """``_throughput`` of each of ``calls``, measured in alternating rounds and averaged."""
    totals = [0.0] * len(calls)
    for _ in range(rounds):
        for i, call in enumerate(calls):
            totals[i] += _throughput(call, callers, count // rounds, budget_s / rounds)
    return [total / rounds for total in totals]


def _throughput(call: Callable[[], Any], callers: int, count: int, budget_s: float) -> float:
    """Requests per second with ``callers`` threads calling ``call`` (at most ``count`` calls,
    at most ``budget_s`` seconds)."""
    counter = itertools.count()
    stop = time.monotonic() + budget_s
    done = [0] * callers

    def loop(index: int) -> None:
        while time.monotonic() < stop and next(counter) < count:
            call()
            done[index] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def _routed(slots: list[Callable[[], Any]]) -> Callable[[], Any]:
    """The perfect FIFO router over ``slots`` (one callable per worker slot): a freed slot goes
    to the longest-waiting caller, like a lease."""
    lock = threading.Lock()
    free = list(slots)
    waiting: collections.deque[tuple[threading.Lock, list[Callable[[], Any]]]] = (
        collections.deque())

    def call() -> Any:
        with lock:
            slot = free.pop() if free else None
            if slot is None:
                wake, box = threading.Lock(), list[Callable[[], Any]]()
                wake.acquire()
                waiting.append((wake, box))
        if slot is None:
            wake.acquire()
            slot = box[0]
        try:
            return slot()
        finally:
            with lock:
                nxt = waiting.popleft() if waiting else None
                if nxt is None:
                    free.append(slot)
            if nxt is not None:
                nxt[1].append(slot)
                nxt[0].release()

    return call


def _barging(slots: list[Callable[[], Any]]) -> Callable[[], Any]:
    """A router over ``slots`` without fairness (``SimpleQueue``; see the module docstring)."""
    free: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
    for slot in slots:
        free.put(slot)

    def call() -> Any:
        slot = free.get()
        try:
            return slot()
        finally:
            free.put(slot)

    return call


@contextmanager
def _raw_slots(pool: Pool, tool: str, args: dict[str, Any]) -> Iterator[list[Callable[[], Any]]]:
    """One raw gRPC call per worker slot of ``pool`` (its own channels, closed afterwards)."""
    import grpc

    from ._proto import bridge_pb2, bridge_pb2_grpc

    channels = [grpc.insecure_channel(w.endpoint, options=[("grpc.use_local_subchannel_pool", 1)])
                for w in pool.workers()]
    request = bridge_pb2.ExecuteToolRequest(tool=tool, args_json=json.dumps(args).encode())
    slots: list[Callable[[], Any]] = []
    for channel in channels:
        method = bridge_pb2_grpc.BridgeServiceStub(channel).ExecuteTool
        slots.extend([_unary(method, request)] * pool.config.capacity)
    try:
        for slot in slots:
            slot()
        yield slots
    finally:
        for channel in channels:
            channel.close()


def _unary(method: Callable[[Any], Any], request: Any) -> Callable[[], Any]:
    return lambda: method(request)


def _echo_figures(path: DataPath, n: _Budget) -> list[Figure]:
    """Sequential latency and 64-caller throughput of ``path`` and of raw gRPC, 4 workers."""
    cfg = PoolConfig(name=f"bench-{path}", pool_size=4, queue_timeout=60.0, data_path=path)
    with Pool.start(cfg) as pool, _raw_slots(pool, "echo", {"x": 1}) as slots:
        def echo() -> Any:
            return pool.execute("echo", {"x": 1})

        for _ in range(20):
            echo()
        raw, ours = _sequential([slots[0], echo], n.sequential, n.seconds)
        raw_tp, barging_tp, our_tp = _throughputs([_routed(slots), _barging(slots), echo], 64,
                                                  n.load, n.seconds)
        crash = _crash_figures(pool, path)
    raw_p50, p50 = statistics.median(raw), statistics.median(ours)
    figures = [
        Figure(f"raw gRPC sequential echo p50 ({path} run)", raw_p50, "ms"),
        Figure(f"{path} path sequential echo p50", p50, "ms", raw_p50,
               target="<= 1.25x raw" if path == "direct" else ""),
        Figure(f"{path} path sequential echo p99", _percentile(ours, 0.99), "ms",
               _percentile(raw, 0.99)),
        Figure(f"raw gRPC echo, 64 callers, 4 workers ({path} run)", raw_tp, "req/s"),
        Figure(f"{path} path echo, 64 callers, 4 workers", our_tp, "req/s", raw_tp,
               target=">= 0.85x raw" if path == "direct" else ">= 800 req/s"),
        Figure(f"{path} path echo, 64 callers, 4 workers, vs barging raw", our_tp, "req/s",
               barging_tp),
    ]
    if path == "actor":
        figures.insert(2, Figure("actor path p50 overhead over raw", p50 - raw_p50, "ms",
                                 target="<= 3.5 ms"))
    return figures + crash


def _sleep_figures(n: _Budget, capacity: int, pool_executor_tp: float,
                   paths: tuple[DataPath, ...] = ("direct",)) -> list[Figure]:
    """10 ms sleep tool, 8 workers, 64 callers: raw and each of ``paths``."""
    figures: list[Figure] = []
    for path in paths:
        cfg = PoolConfig(name=f"bench-sleep-{path}", pool_size=8, capacity=capacity,
                         queue_timeout=60.0, data_path=path)
        with Pool.start(cfg) as pool, _raw_slots(pool, "sleep", {"seconds": 0.01}) as slots:
            raw_tp, our_tp = _throughputs(
                [_routed(slots), functools.partial(pool.execute, "sleep", {"seconds": 0.01})],
                64, n.sleep * capacity, n.seconds)
        label = f"10 ms sleep, 8 workers x capacity {capacity}, 64 callers"
        if path == "direct":
            figures.append(Figure(f"raw gRPC {label}", raw_tp, "req/s"))
        target = ">= 0.95x raw" if path == "direct" and capacity == 1 else ""
        figures.append(Figure(f"{path} path {label}", our_tp, "req/s", raw_tp, target=target))
        if capacity > 1:
            figures.append(Figure(f"{path} path {label} vs ProcessPoolExecutor(8)", our_tp,
                                  "req/s", pool_executor_tp, target=">= 1.5x"))
    return figures


def _process_pool_executor_tp(n: _Budget) -> float:
    """``ProcessPoolExecutor(8)`` running ``time.sleep(0.01)`` for 64 caller threads."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: this process has gRPC threads by now, and forking those is unsafe.
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as ex:
        list(ex.map(time.sleep, [0.0] * 16))  # start the 8 processes before timing
        return _throughput(lambda: ex.submit(time.sleep, 0.01).result(), 64, n.sleep,
                           n.seconds)


def _crash_figures(pool: Pool, path: str) -> list[Figure]:
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
    deadline = time.monotonic() + 10
    while pool.stats().busy and time.monotonic() < deadline:  # idle leases go back first
        time.sleep(0.005)
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
        Figure(f"kill -9 busy worker: WorkerCrashedError after ({path})",
               (heard[0] - killed) * 1000 if heard else float("nan"), "ms", target="<= 100 ms"),
        Figure(f"kill -9 busy worker: replacement Ready after ({path})",
               (ready - killed) * 1000, "ms", target="<= 1000 ms"),
    ]


def _startup_figures() -> list[Figure]:
    t1 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench8", pool_size=8,
                               adapter_config={"init_delay_s": 2.0})):
        eight = (time.perf_counter() - t1) * 1000
    t2 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench1", pool_size=1,
                               adapter_config={"init_delay_s": 2.0})):
        one = (time.perf_counter() - t2) * 1000
    return [Figure("startup, 8 workers with init_delay_s=2", eight, "ms", one,
                   target="<= 1.25x one worker")]


def run(quick: bool = False) -> list[Figure]:
    """Run every scenario and return the figures (about two minutes; about 30 s with quick)."""
    n = _Budget(300, 1500, 600, 3.0) if quick else _Budget(2000, 8000, 3200, 15.0)
    figures = _echo_figures("direct", n) + _echo_figures("actor", n)
    executor_tp = _process_pool_executor_tp(n)
    figures += _sleep_figures(n, 1, executor_tp, ("direct",) if quick else ("direct", "actor"))
    figures.append(Figure("ProcessPoolExecutor(8), 10 ms sleep, 64 callers", executor_tp,
                          "req/s"))
    figures += _sleep_figures(n, 4, executor_tp)
    return figures + _startup_figures()


def report(figures: list[Figure], as_json: bool) -> str:
    """The figures as a table (or JSON)."""
    if as_json:
        return json.dumps([asdict(f) | {"ratio": f.ratio} for f in figures], indent=2)
    width = max(len(f.scenario) for f in figures)
    lines = [f"{'scenario':<{width}} {'value':>10} {'unit':<6} {'vs baseline':>11}  target"]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        lines.append(f"{f.scenario:<{width}} {f.value:>10.2f} {f.unit:<6} {ratio:>11}  {f.target}")
    return "\n".join(lines)
