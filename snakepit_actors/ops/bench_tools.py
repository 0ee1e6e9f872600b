"""Measuring tools of ``snakepit-actors bench``: figures, bounded timing loops, the raw gRPC
routers and the ``ProcessPoolExecutor`` peer. Nothing here knows a scenario (those are in
bench.py); every loop is bounded in count and in time.
"""

from __future__ import annotations

import collections
import itertools
import json
import multiprocessing
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snakepit_actors.client.handle import Pool


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure; ``baseline`` is what ``ratio`` compares it with. ``p50_ms`` and
    ``p99_ms``: per-call latency during a throughput run (0: not measured)."""

    scenario: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.value / self.baseline


@dataclass(frozen=True, slots=True)
class Rate:
    """A throughput run: requests per second and the calls' latencies (ms)."""

    per_s: float
    latencies_ms: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99) if self.latencies_ms else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sequential(calls: list[Callable[[], Any]], count: int,
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


def throughputs(calls: list[Callable[[], Any]], callers: int, count: int, budget_s: float,
                rounds: int = 2, threads: list[int] | None = None) -> list[Rate]:
    """``throughput`` of each of ``calls``, measured in alternating rounds and merged;
    ``threads``: the callers of each call (default ``callers`` for all)."""
    per_s = [0.0] * len(calls)
    latencies: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            n = threads[i] if threads is not None else callers
            rate = throughput(call, n, count // rounds, budget_s / rounds)
            per_s[i] += rate.per_s / rounds
            latencies[i] += rate.latencies_ms
    return [Rate(r, lat) for r, lat in zip(per_s, latencies, strict=True)]


def throughput(call: Callable[[], Any], callers: int, count: int, budget_s: float) -> Rate:
    """``callers`` threads calling ``call`` (at most ``count`` calls, ``budget_s`` seconds)."""
    counter = itertools.count()
    stop = time.monotonic() + budget_s
    latencies: list[list[float]] = [[] for _ in range(callers)]

    def loop(index: int) -> None:
        mine = latencies[index]
        while time.monotonic() < stop and next(counter) < count:
            t0 = time.perf_counter()
            call()
            mine.append((time.perf_counter() - t0) * 1000.0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = [x for mine in latencies for x in mine]
    return Rate(len(merged) / (time.perf_counter() - t0), merged)


def routed(slots: list[Callable[[], Any]]) -> Callable[[], Any]:
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


def per_slot(slots: list[Callable[[], Any]]) -> Callable[[], Any]:
    """One caller thread per slot, no router at all: each thread that calls it keeps the next
    slot for itself (call it from at most ``len(slots)`` threads per round)."""
    mine = threading.local()
    lock = threading.Lock()
    taken = itertools.count()

    def call() -> Any:
        slot = getattr(mine, "slot", None)
        if slot is None:
            with lock:
                slot = mine.slot = slots[next(taken) % len(slots)]
        return slot()

    return call


def barging(slots: list[Callable[[], Any]]) -> Callable[[], Any]:
    """A router over ``slots`` without fairness (``SimpleQueue``: the thread that frees a slot
    usually takes it straight back)."""
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
def raw_slots(pool: Pool, tool: str, args: dict[str, Any]) -> Iterator[list[Callable[[], Any]]]:
    """One raw gRPC call per worker slot of ``pool`` (its own channels, closed afterwards)."""
    import grpc

    from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc
    from snakepit_actors.worker_token import with_token

    channels = [grpc.insecure_channel(w.endpoint, options=[("grpc.use_local_subchannel_pool", 1)])
                for w in pool.workers()]
    request = bridge_pb2.ExecuteToolRequest(tool=tool, args_json=json.dumps(args).encode())
    slots: list[Callable[[], Any]] = []
    for channel in channels:
        stub = bridge_pb2_grpc.BridgeServiceStub(with_token(channel, pool.worker_token))
        method = stub.ExecuteTool
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


# --- the ProcessPoolExecutor peer: the same work in plain worker processes --------------------

def work_echo(args: dict[str, Any]) -> dict[str, Any]:
    return args


def work_cpu(ms: float) -> int:
    deadline = time.perf_counter() + ms / 1000.0
    loops = 0
    while time.perf_counter() < deadline:
        loops += 1
    return loops


def work_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@contextmanager
def process_pool(workers: int, init_delay_s: float = 0.0) -> Iterator[ProcessPoolExecutor]:
    """``ProcessPoolExecutor(workers)``, spawned (this process has gRPC threads by now, and
    forking those is unsafe), its processes started before it is yielded."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=work_sleep,
                             initargs=(init_delay_s,)) as ex:
        list(ex.map(work_sleep, [0.05] * workers))
        yield ex
