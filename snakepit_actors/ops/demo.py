"""``snakepit-actors demo``: start a showcase pool, run plain, parallel, failing, session and
crashing requests, print the workers and stats, shut down (every process stopped).

    Pool.start(pool_size=N, on_progress) -> echo, add -> N x sleep 0.5 s in parallel
        -> fail (ToolError) -> no_such_tool (UnknownToolError) -> session_counter x3
        -> crash (WorkerCrashedError; the Starter restarts the worker) -> workers(), stats()

``demo --web`` instead runs a node (``ops/node.py``) with one showcase pool, its live web view
and the demo buttons, until SIGINT.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from snakepit_actors.client.handle import Pool
from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import SnakepitError, ToolError, WorkerCrashedError
from snakepit_actors.ops.console import Progress, say
from snakepit_actors.start_method import StartMethod


def run_demo(workers: int, as_json: bool, start_method: StartMethod | None = None) -> int:
    """Run the demo with a ``workers``-worker pool; print its results as JSON too when
    ``as_json``. Blocks for a few seconds; returns the exit code (0).

    ``start_method``: how the workers start (None: ``PoolConfig``'s default).

    Raises:
        SnakepitError: the pool did not start (e.g. PoolNotReadyError).
    """
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    say(f"starting a {workers}-worker showcase pool ...")
    progress = Progress()
    cfg = PoolConfig(name="demo", pool_size=workers)
    if start_method is not None:
        cfg = cfg.with_overrides(start_method=start_method)
    with Pool.start(cfg,
                    on_progress=progress.workers) as pool:
        progress.done()
        out["startup_s"] = round(time.perf_counter() - t0, 3)
        say(f"  ready in {out['startup_s']} s")
        out["echo"] = pool.execute("echo", {"message": "hello", "n": 1})
        say(f"echo                -> {out['echo']}")
        out["add"] = pool.execute("add", {"a": 2, "b": 3})
        say(f"add 2 + 3           -> {out['add']}")
        t1 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            slept = list(ex.map(lambda _: pool.execute("sleep", {"seconds": 0.5}),
                                range(workers)))
        out["parallel_sleep_s"] = round(time.perf_counter() - t1, 3)
        say(f"{workers} x sleep 0.5 s    -> {slept} in {out['parallel_sleep_s']} s "
            f"(in parallel)")
        try:
            pool.execute("fail", {"message": "this tool always fails"})
        except ToolError as exc:
            out["fail"] = {"error": type(exc).__name__, "python_type": exc.python_type,
                           "message": exc.python_message}
            say(f"fail                -> {type(exc).__name__}: {exc}")
        try:
            pool.execute("no_such_tool", {})
        except SnakepitError as exc:
            out["unknown"] = type(exc).__name__
            say(f"no_such_tool        -> {type(exc).__name__}: {exc}")
        out["session"] = [pool.execute("session_counter", session_id="demo-session")
                          for _ in range(3)]
        say(f"session_counter x3  -> {out['session']} (state kept on the worker)")
        _crash_and_recover(pool, out)
        infos = pool.workers()
        out["workers"] = [asdict(w) for w in infos]
        say()
        say(f"{'worker':<18} {'pid':>7} {'state':<9} {'requests':>8} {'restarts':>8}  endpoint")
        for w in infos:
            say(f"{w.worker_id:<18} {w.pid or '-':>7} {w.state:<9} {w.requests:>8} "
                f"{w.restarts:>8}  {w.endpoint}")
        stats = pool.stats()
        out["stats"] = asdict(stats)
        say()
        say(f"stats: requests={stats.requests} errors={stats.errors} "
            f"p50={stats.latency_p50_ms:.2f} ms p99={stats.latency_p99_ms:.2f} ms "
            f"restarts={stats.restarts}")
        say("shutting down ...")
    say("done: every actor and worker process stopped")
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    return 0



def _crash_and_recover(pool: Pool, out: dict[str, Any]) -> None:
    restarts = pool.stats().restarts
    t0 = time.perf_counter()
    try:
        pool.execute("crash", {"code": 3})
    except WorkerCrashedError as exc:
        out["crash"] = {"error": type(exc).__name__, "after_ms": round(
            (time.perf_counter() - t0) * 1000, 1), "worker_id": exc.details.get("worker_id")}
        say(f"crash               -> {type(exc).__name__} after {out['crash']['after_ms']} ms: "
            f"{exc}")
    deadline = time.monotonic() + 30
    while pool.stats().restarts == restarts and time.monotonic() < deadline:
        time.sleep(0.02)
    out["recovered_s"] = round(time.perf_counter() - t0, 3)
    say(f"                       the worker was restarted; pool back to full size in "
        f"{out['recovered_s']} s")


def run_web_demo(workers: int, web_port: int = 0) -> int:
    """``demo --web``: run a node with one ``workers``-worker showcase pool and its live web
    view, demo buttons on and a few requests per second, until SIGINT or SIGTERM; prints the
    page's URL. Returns the exit
    code (0 after a clean stop, 1 if the node could not start).

    Raises:
        ConfigError: the web extra is missing, or ``web_port`` is taken.
    """
    from snakepit_actors.ops.config_file import NodeConfig, NodeFile
    from snakepit_actors.ops.node import run_node
    from snakepit_actors.ops.web_node import WebOptions
    from snakepit_actors.system import free_port

    node_file = NodeFile("<demo>", NodeConfig(name="demo", admin_port=free_port(),
                                              drain_timeout_s=2.0),
                         (PoolConfig(name="demo", pool_size=workers),))
    say(f"starting a node with a {workers}-worker showcase pool and its web view; open the "
        f"URL below, press the buttons and watch the tree restart what they kill")
    return run_node(node_file, say, WebOptions(port=web_port, demo_controls=True,
                                               demo_traffic=True))
