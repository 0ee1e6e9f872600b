"""Fan-out over a pool: ``map`` in chunks, ``submit`` with ``concurrent.futures``, an executor
with its own queue, and the asyncio forms. Run: ``python docs/examples/fanout.py``."""

from __future__ import annotations

import asyncio
from concurrent.futures import as_completed

from snakepit_actors import Pool, PoolConfig, ToolError


def main() -> None:
    with Pool.start(PoolConfig(name="fanout-example", pool_size=4)) as pool:
        # map: results in input order; each chunk of 100 items is one call to one worker.
        total = sum(pool.map("add", ({"a": i, "b": 1} for i in range(10_000)), chunksize=100))
        print("sum of 10,000 adds:", total)

        # Each item gets its own result or error; return_exceptions keeps going past errors.
        outcomes = list(pool.map("add", [{"a": 1, "b": 2}, {"a": 1, "b": "x"}],
                                 return_exceptions=True))
        print("per item:", [type(o).__name__ if isinstance(o, ToolError) else o
                            for o in outcomes])

        # submit: concurrent.futures futures, usable with as_completed / wait.
        futures = [pool.submit("sleep", {"seconds": s}) for s in (0.2, 0.1, 0.0)]
        print("as completed:", [f.result() for f in as_completed(futures)])

        # An executor of its own: a queued future can be cancelled, and then never runs.
        with pool.executor(max_in_flight=1) as ex:
            running = ex.submit("sleep", {"seconds": 0.2})
            queued = ex.submit("echo", {"never": "runs"})
            print("cancelled while queued:", queued.cancel(), "| running:", running.result())

        async def in_asyncio() -> None:
            values = await pool.map_async("echo", [{"i": i} for i in range(3)])
            print("map_async:", values, "| submit_async:",
                  await pool.submit_async("add", {"a": 2, "b": 3}))

        asyncio.run(in_asyncio())


if __name__ == "__main__":
    main()
