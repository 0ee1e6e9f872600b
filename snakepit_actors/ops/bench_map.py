"""The ``map`` scenario of ``snakepit-actors bench``: ``Pool.map`` with chunks against
``ProcessPoolExecutor.map`` with the same chunksize and as many processes, in the same run.

    echo      100,000 items (a sixth with --quick), chunksize 100 and 1000, ``workers`` (4)
              workers
    1 ms cpu  4,000 items of a 1 ms busy loop, chunksize 10, the same workers

Each figure is items per second over the whole map (from the call to the last result), the
pool measured on the direct path (a chunk is one ExecuteBatch call); the two are measured in
alternating rounds, so drift on a noisy machine hits both alike, and the rounds are averaged.
Every map is bounded in items and in time (``BenchOptions.seconds``: what is done by then
counts).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from snakepit_actors.client.handle import Pool
from snakepit_actors.config import PoolConfig
from snakepit_actors.ops.bench_tools import Figure, process_pool, work_cpu, work_echo

if TYPE_CHECKING:
    from snakepit_actors.ops.bench import BenchOptions

__all__ = ["map_scenario"]

_ROUNDS = 2


def map_scenario(o: BenchOptions) -> list[Figure]:
    """The figures of the ``map`` scenario (see the module docstring)."""
    workers = o.workers or 4
    cases: list[tuple[str, str, dict[str, Any], Callable[[Any], Any], Any, int, int]] = [
        ("echo", "echo", {"x": 1}, work_echo, {"x": 1}, o.count(100_000), 100),
        ("echo", "echo", {"x": 1}, work_echo, {"x": 1}, o.count(100_000), 1000),
        ("1 ms cpu", "cpu", {"ms": 1.0}, work_cpu, 1.0, o.count(4000), 10),
    ]
    figures: list[Figure] = []
    say = o.progress
    with process_pool(workers) as ex, Pool.start(PoolConfig(
            name="bench-map", pool_size=workers, queue_timeout=60.0),
            on_progress=None if say is None else
            (lambda ready, total: say(f"  workers ready {ready}/{total}"))) as pool:
        for label, tool, args, fn, fn_arg, count, chunksize in cases:
            o.say(f"map, {label}: {count} items, chunksize {chunksize} ...")
            ppe_rate = ours = 0.0
            for _ in range(_ROUNDS):
                ppe_rate += _ppe(ex, fn, fn_arg, count, chunksize, o.seconds) / _ROUNDS
                ours += _pool_map(pool, tool, args, count, chunksize, o.seconds) / _ROUNDS
            where = f"{count} items, chunksize {chunksize}, {workers} workers"
            figures += [
                Figure(f"ProcessPoolExecutor({workers}).map {label}, {where}", ppe_rate,
                       "item/s"),
                Figure(f"Pool.map {label}, {where}, vs ProcessPoolExecutor.map", ours, "item/s",
                       ppe_rate, ">= 1x" if label == "echo" else ""),
            ]
    return figures


def _pool_map(pool: Pool, tool: str, args: dict[str, Any], count: int, chunksize: int,
              budget_s: float) -> float:
    t0 = time.perf_counter()
    with pool.map(tool, itertools.repeat(args, count), chunksize=chunksize) as results:
        return _drain(results, t0, budget_s)


def _ppe(ex: ProcessPoolExecutor, fn: Callable[[Any], Any], arg: Any, count: int,
         chunksize: int, budget_s: float) -> float:
    t0 = time.perf_counter()
    results = ex.map(fn, itertools.repeat(arg, count), chunksize=chunksize)
    try:
        return _drain(results, t0, budget_s)
    finally:
        results.close()  # type: ignore[attr-defined]  # a generator: cancels what is left


def _drain(results: Iterator[Any], t0: float, budget_s: float) -> float:
    """Items per second from ``t0`` (the map's call) to the last result of ``results``,
    stopping after ``budget_s``."""
    stop = time.monotonic() + budget_s
    done = 0
    for _ in results:
        done += 1
        if done % 256 == 0 and time.monotonic() > stop:
            break
    return done / (time.perf_counter() - t0)
