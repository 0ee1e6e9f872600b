"""``snakepit-actors bench``: the figures of the performance budget (docs/performance.md), each
against its baselines in the same run.

Scenarios (``BenchOptions.scenarios``)::

    echo     sequential p50/p99 and ``concurrency`` callers on ``workers`` (4) workers, echo
    cpu      ``concurrency`` callers of a 1 ms busy loop on ``workers`` (2) workers
    sleep    10 ms sleep, ``workers`` (8) workers, capacity 1 and 4 (or ``capacity``)
    startup  8 workers with init_delay_s=2 against one worker (sequential would be 8x)
    crash    kill -9 of a busy worker under load: its caller's error, the replacement, losses
    map      Pool.map with chunks against ProcessPoolExecutor.map (bench_map.py)
    message  the message API (an embedding actor; the handle's actor path) against the direct
             path, CPU per request, raw gRPC with one thread per worker (``bench_message``)
    asyncio  64 tasks on one loop beside 64 threads; gathered bursts of 1k and 10k (bench_async.py)

Every pool figure has its baselines from the same run: *raw gRPC* calls the pool's own worker
processes with no pool in between, through a perfect FIFO router (a caller takes any free
worker slot at once, ``capacity`` per worker, so as many requests are in flight per worker as
the pool allows; for throughput also a *barging* router, unfair, which no fair pool can match);
and ``ProcessPoolExecutor`` with as many processes doing the same work. Both data paths are
measured unless ``dispatch`` names one: "direct" (leases) and "actor" (every request through
the actors). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from snakepit_actors.client.handle import Pool
from snakepit_actors.config import DataPath, PoolConfig
from snakepit_actors.ops import bench_async, bench_message
from snakepit_actors.ops.bench_map import map_scenario
from snakepit_actors.ops.bench_tools import (
    Figure,
    Rate,
    barging,
    percentile,
    process_pool,
    raw_slots,
    routed,
    sequential,
    throughputs,
    work_cpu,
    work_echo,
    work_sleep,
)

SCENARIOS = ("echo", "cpu", "sleep", "startup", "crash", "map", *bench_message.SCENARIOS,
             "asyncio")
#: A measurement never runs longer than this, whatever ``duration_s`` asks.
MAX_DURATION_S = 120.0


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to measure. ``None`` fields take each scenario's default (see the module
    docstring); ``duration_s`` bounds each measurement (default 15 s, 3 s with ``quick``)."""

    scenarios: tuple[str, ...] = SCENARIOS
    dispatch: tuple[DataPath, ...] = ("direct", "actor")
    workers: int | None = None
    concurrency: int = 64
    capacity: int | None = None
    duration_s: float | None = None
    quick: bool = False
    progress: Callable[[str], None] | None = None

    @property
    def seconds(self) -> float:
        default = 3.0 if self.quick else 15.0
        return min(MAX_DURATION_S, self.duration_s or default)

    def count(self, full: int) -> int:
        """A request budget: ``full``, a sixth of it with ``quick``, scaled by duration."""
        base = full // 6 if self.quick else full
        scale = (self.duration_s / (3.0 if self.quick else 15.0)) if self.duration_s else 1.0
        return max(10, int(base * scale))

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)


def _pool(name: str, path: DataPath, o: BenchOptions, workers: int, **fields: Any) -> Pool:
    cfg = PoolConfig(name=name, pool_size=workers, queue_timeout=60.0, data_path=path,
                     **fields)
    return Pool.start(cfg, on_progress=_startup_progress(o))


def _startup_progress(o: BenchOptions) -> Callable[[int, int], None] | None:
    if o.progress is None:
        return None
    say = o.progress
    return lambda ready, total: say(f"  workers ready {ready}/{total}")


def _rate_figure(label: str, rate: Rate, baseline: float | None = None,
                 target: str = "") -> Figure:
    return Figure(label, rate.per_s, "req/s", baseline, target, rate.p50_ms, rate.p99_ms)


# --- echo ---------------------------------------------------------------------------------------

def echo(o: BenchOptions) -> list[Figure]:
    workers, callers = o.workers or 4, o.concurrency
    where = f"{callers} callers, {workers} workers"
    with process_pool(workers) as ex:
        def ppe() -> Any:
            return ex.submit(work_echo, {"x": 1}).result()

        (ppe_seq,) = sequential([ppe], o.count(2000), o.seconds)
        (ppe_tp,) = throughputs([ppe], callers, o.count(8000), o.seconds)
    figures = [Figure(f"ProcessPoolExecutor({workers}) sequential echo p50", statistics.median(
        ppe_seq), "ms"), _rate_figure(f"ProcessPoolExecutor({workers}) echo, {where}", ppe_tp)]
    for path in o.dispatch:
        o.say(f"echo, {path} path ...")
        with _pool(f"bench-{path}", path, o, workers) as pool, \
                raw_slots(pool, "echo", {"x": 1}) as slots:
            call = functools.partial(pool.execute, "echo", {"x": 1})
            for _ in range(20):
                call()
            raw, ours = sequential([slots[0], call], o.count(2000), o.seconds)
            raw_tp, barging_tp, our_tp = throughputs([routed(slots), barging(slots), call],
                                                     callers, o.count(8000), o.seconds)
        raw_p50, p50 = statistics.median(raw), statistics.median(ours)
        figures.append(Figure(f"raw gRPC sequential echo p50 ({path} run)", raw_p50, "ms"))
        figures.append(Figure(f"{path} path sequential echo p50", p50, "ms", raw_p50,
                              target="<= 1.15x raw" if path == "direct" else ""))
        if path == "actor":
            figures.append(Figure("actor path p50 overhead over raw", p50 - raw_p50, "ms",
                                  target="<= 3.5 ms"))
        figures += [
            Figure(f"{path} path sequential echo p99", percentile(ours, 0.99), "ms",
                   percentile(raw, 0.99)),
            _rate_figure(f"raw gRPC echo, {where} ({path} run)", raw_tp),
            _rate_figure(f"{path} path echo, {where}", our_tp, raw_tp.per_s,
                         ">= 0.85x raw" if path == "direct" else ">= 800 req/s"),
            _rate_figure(f"{path} path echo, {where}, vs barging raw", our_tp, barging_tp.per_s),
            _rate_figure(f"{path} path echo, {where}, vs ProcessPoolExecutor", our_tp,
                         ppe_tp.per_s),
        ]
    return figures


# --- cpu and sleep: the same work in the pool, raw and in ProcessPoolExecutor -----------------

def _work(o: BenchOptions, tool: str, args: dict[str, Any], ppe_call: Callable[[Any], Any],
          label: str, workers: int, capacity: int, budget: int,
          targets: dict[str, str]) -> list[Figure]:
    callers = o.concurrency
    where = f"{label}, {workers} workers x capacity {capacity}, {callers} callers"
    with process_pool(workers) as ex:
        (ppe_tp,) = throughputs([lambda: ex.submit(ppe_call, *args.values()).result()],
                                callers, budget, o.seconds)
    figures = [_rate_figure(f"ProcessPoolExecutor({workers}) {label}, {callers} callers",
                            ppe_tp)]
    for path in o.dispatch:
        o.say(f"{label}, {path} path, capacity {capacity} ...")
        with _pool(f"bench-{tool}-{path}", path, o, workers, capacity=capacity) as pool, \
                raw_slots(pool, tool, args) as slots:
            raw_tp, our_tp = throughputs(
                [routed(slots), functools.partial(pool.execute, tool, args)], callers,
                budget * capacity, o.seconds)
        figures += [
            _rate_figure(f"raw gRPC {where} ({path} run)", raw_tp),
            _rate_figure(f"{path} path {where}", our_tp, raw_tp.per_s,
                         targets.get(f"{path}-raw", "")),
            _rate_figure(f"{path} path {where} vs ProcessPoolExecutor({workers})", our_tp,
                         ppe_tp.per_s, targets.get(f"{path}-ppe", "")),
        ]
    return figures


def cpu(o: BenchOptions) -> list[Figure]:
    return _work(o, "cpu", {"ms": 1.0}, work_cpu, "1 ms cpu", o.workers or 2, o.capacity or 1,
                 o.count(4000), {})


def sleep(o: BenchOptions) -> list[Figure]:
    figures: list[Figure] = []
    for capacity in (o.capacity,) if o.capacity else (1, 4):
        targets = ({"direct-raw": ">= 0.95x raw"} if capacity == 1
                   else {"direct-ppe": ">= 1.5x"})
        figures += _work(o, "sleep", {"seconds": 0.01}, work_sleep, "10 ms sleep",
                         o.workers or 8, capacity, o.count(3200), targets)
    return figures


# --- startup ------------------------------------------------------------------------------------

def startup(o: BenchOptions) -> list[Figure]:
    workers, delay = o.workers or 8, 2.0
    o.say(f"startup, {workers} workers with init_delay_s={delay} ...")
    t0 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench-start-n", pool_size=workers,
                               adapter_config={"init_delay_s": delay}),
                    on_progress=_startup_progress(o)):
        many = (time.perf_counter() - t0) * 1000
    o.say("startup, one worker ...")
    t1 = time.perf_counter()
    with Pool.start(PoolConfig(name="bench-start-1", pool_size=1,
                               adapter_config={"init_delay_s": delay})):
        one = (time.perf_counter() - t1) * 1000
    t2 = time.perf_counter()
    with process_pool(workers, init_delay_s=delay):
        ppe = (time.perf_counter() - t2) * 1000
    return [
        Figure(f"startup, 1 worker with init_delay_s={delay:g}", one, "ms"),
        Figure(f"startup, {workers} workers with init_delay_s={delay:g}, vs one", many, "ms",
               one, target="<= 1.25x one worker"),
        Figure(f"startup, {workers} workers, vs ProcessPoolExecutor({workers}) with the same "
               f"initializer", many, "ms", ppe),
    ]


# --- crash --------------------------------------------------------------------------------------

def crash(o: BenchOptions) -> list[Figure]:
    figures: list[Figure] = []
    for path in o.dispatch:
        o.say(f"crash, {path} path ...")
        with _pool(f"bench-crash-{path}", path, o, o.workers or 4) as pool:
            figures += _crash(pool, path, min(o.concurrency, 16), o.seconds)
    return figures


def _crash(pool: Pool, path: str, callers: int, budget_s: float) -> list[Figure]:
    """kill -9 of a worker running a long call while ``callers`` others keep the pool busy
    with 5 ms calls: how soon the long call's caller hears, how soon a replacement is Ready,
    and how many of the other requests failed (the target is none)."""
    from snakepit_actors.errors import SnakepitError, WorkerCrashedError

    heard: list[float] = []
    others = {"ok": 0, "lost": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def victim() -> None:
        try:
            pool.execute("sleep", {"seconds": 30.0}, timeout=60.0)
        except WorkerCrashedError:
            heard.append(time.perf_counter())

    def load() -> None:
        while not stop.is_set():
            try:
                pool.execute("sleep", {"seconds": 0.005}, timeout=60.0)
                outcome = "ok"
            except SnakepitError:
                outcome = "lost"
            with lock:
                others[outcome] += 1

    restarts = pool.stats().restarts
    long_call = threading.Thread(target=victim)
    long_call.start()
    deadline = time.monotonic() + 10
    while not any(w.state == "busy" for w in pool.workers()) and time.monotonic() < deadline:
        time.sleep(0.005)
    busy = {w.worker_id for w in pool.workers() if w.state == "busy"}
    threads = [threading.Thread(target=load) for _ in range(callers)]
    for t in threads:
        t.start()
    time.sleep(min(1.0, budget_s / 3))
    target = next(w for w in pool.workers() if w.worker_id in busy)
    assert target.pid is not None, f"worker {target.worker_id} has no process to kill"
    killed = time.perf_counter()
    os.kill(target.pid, signal.SIGKILL)
    long_call.join(60)
    while pool.stats().restarts == restarts and time.monotonic() < deadline + 20:
        time.sleep(0.002)
    ready = time.perf_counter()
    time.sleep(min(1.0, budget_s / 3))
    stop.set()
    for t in threads:
        t.join(60)
    return [
        Figure(f"kill -9 busy worker: WorkerCrashedError after ({path})",
               (heard[0] - killed) * 1000 if heard else float("nan"), "ms", target="<= 100 ms"),
        Figure(f"kill -9 busy worker: replacement Ready after ({path})",
               (ready - killed) * 1000, "ms", target="<= 1000 ms"),
        Figure(f"kill -9 busy worker: other requests lost ({path}, of {sum(others.values())} "
               f"under load)", others["lost"], "req", target="0"),
    ]


# --- running and reporting --------------------------------------------------------------------

_RUNNERS: dict[str, Callable[[BenchOptions], list[Figure]]] = {
    "echo": echo, "cpu": cpu, "sleep": sleep, "startup": startup, "crash": crash,
    "map": map_scenario,
    **bench_message.RUNNERS,
    "asyncio": bench_async.run}


def run(options: BenchOptions | None = None, *, quick: bool = False) -> list[Figure]:
    """Run the chosen scenarios (all by default: a few minutes; about a minute with quick) and
    return the figures."""
    o = options or BenchOptions(quick=quick)
    figures: list[Figure] = []
    for name in o.scenarios:
        figures += _RUNNERS[name](o)
    return figures


def report(figures: list[Figure], as_json: bool) -> str:
    """The figures as a table (or JSON)."""
    if as_json:
        return json.dumps([asdict(f) | {"ratio": f.ratio} for f in figures], indent=2)
    width = max(len(f.scenario) for f in figures)
    lines = [f"{'scenario':<{width}} {'value':>10} {'unit':<6} {'vs baseline':>11} "
             f"{'p50 ms':>7} {'p99 ms':>7}  target"]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        p50 = f"{f.p50_ms:.2f}" if f.p50_ms else ""
        p99 = f"{f.p99_ms:.2f}" if f.p99_ms else ""
        lines.append(f"{f.scenario:<{width}} {f.value:>10.2f} {f.unit:<6} {ratio:>11} "
                     f"{p50:>7} {p99:>7}  {f.target}")
    return "\n".join(lines)
