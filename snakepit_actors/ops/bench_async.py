"""The ``asyncio`` scenario of ``snakepit-actors bench`` (docs/asyncio.md): one event loop
against threads on the same pool, and gathered bursts, every figure with its baseline from the
same run.

    asyncio   ``concurrency`` (64) asyncio tasks on one loop, closed loop, echo, on ``workers``
              (4) workers, direct path; baseline: as many threads calling ``execute`` on the
              same pool, measured in alternating rounds
    burst     ``asyncio.gather`` of 1,000 and of 10,000 ``execute_async("echo")`` calls at
              once (max_queue raised to hold them); baseline: the 64-task closed-loop rate

Every loop is bounded in count and in time; a burst that overruns its time bound is cancelled
(its calls with it) and reported with its errors.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING, Any

from snakepit_actors.client.handle import Pool
from snakepit_actors.config import PoolConfig
from snakepit_actors.ops.bench_tools import Figure, Rate, throughput

if TYPE_CHECKING:
    from snakepit_actors.ops.bench import BenchOptions

BURSTS = (1_000, 10_000)
#: A burst never runs longer than this (seconds); it is cancelled then.
BURST_BUDGET_S = 60.0


def run(o: BenchOptions) -> list[Figure]:
    """The scenario's figures (see the module docstring)."""
    workers, callers = o.workers or 4, o.concurrency
    where = f"{callers} callers, {workers} workers"
    cfg = PoolConfig(name="bench-asyncio", pool_size=workers, queue_timeout=60.0,
                     max_queue=max(BURSTS) + 1_000)
    o.say("asyncio, direct path ...")
    with Pool.start(cfg) as pool:
        threads, tasks = _interleaved(pool, callers, o.count(8000), o.seconds)
        figures = [
            Figure(f"threads calling execute, echo, {where}", threads.per_s, "req/s",
                   p50_ms=threads.p50_ms, p99_ms=threads.p99_ms),
            Figure(f"asyncio tasks on one loop, echo, {where}", tasks.per_s, "req/s",
                   threads.per_s, ">= 1.0x the threads", tasks.p50_ms, tasks.p99_ms)]
        for size in BURSTS:
            o.say(f"asyncio burst of {size} ...")
            rate, errors = _burst(pool, size, BURST_BUDGET_S)
            label = f"asyncio burst of {size:,} echo (gather), {workers} workers"
            figures.append(Figure(label + (f", {errors} errors" if errors else ""), rate.per_s,
                                  "req/s", tasks.per_s, f">= 1.0x the {callers}-task rate",
                                  rate.p50_ms, rate.p99_ms))
    return figures


def _interleaved(pool: Pool, callers: int, count: int, budget_s: float,
                 rounds: int = 2) -> tuple[Rate, Rate]:
    """Threads and tasks in alternating rounds (drift on a busy machine hits both alike)."""
    def call() -> Any:
        return pool.execute("echo", {"x": 1})

    runs: list[tuple[Rate, Rate]] = []
    for _ in range(rounds):
        runs.append((throughput(call, callers, count // rounds, budget_s / rounds),
                     asyncio.run(_tasks(pool, callers, count // rounds, budget_s / rounds))))
    return _merged([t for t, _ in runs]), _merged([a for _, a in runs])


async def _tasks(pool: Pool, callers: int, count: int, budget_s: float) -> Rate:
    """``callers`` tasks on this loop calling ``execute_async`` in a closed loop (at most
    ``count`` calls, ``budget_s`` seconds)."""
    counter = itertools.count()
    stop = time.monotonic() + budget_s
    latencies: list[float] = []

    async def loop() -> None:
        while time.monotonic() < stop and next(counter) < count:
            t0 = time.perf_counter()
            await pool.execute_async("echo", {"x": 1})
            latencies.append((time.perf_counter() - t0) * 1000.0)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(callers)))
    return Rate(len(latencies) / (time.perf_counter() - t0), latencies)


def _burst(pool: Pool, size: int, budget_s: float) -> tuple[Rate, int]:
    """``size`` calls gathered at once: the rate of the answered ones, and the errors."""
    async def main() -> tuple[Rate, int]:
        latencies: list[float] = []

        async def one(i: int) -> None:
            t0 = time.perf_counter()
            await pool.execute_async("echo", {"i": i})
            latencies.append((time.perf_counter() - t0) * 1000.0)

        t0 = time.perf_counter()
        calls = asyncio.gather(*(one(i) for i in range(size)), return_exceptions=True)
        try:
            outcomes = await asyncio.wait_for(calls, budget_s)
        except TimeoutError:
            outcomes = [None] * len(latencies) + [TimeoutError()] * (size - len(latencies))
        errors = sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
        return Rate(len(latencies) / (time.perf_counter() - t0), latencies), errors

    return asyncio.run(main())


def _merged(rates: list[Rate]) -> Rate:
    return Rate(sum(r.per_s for r in rates) / len(rates),
                [x for r in rates for x in r.latencies_ms])
