"""The ``snakepit-actors`` console script.

    snakepit-actors demo [--workers N] [--json]
    snakepit-actors bench [--quick] [--json]
    snakepit-actors cleanup [--dry-run] [--json] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from .client import Pool
from .config import PoolConfig
from .errors import SnakepitError, ToolError, WorkerCrashedError
from .telemetry import configure_cli_logging


def _print(text: str = "") -> None:
    print(text, flush=True)


def _demo(args: argparse.Namespace) -> int:
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    _print(f"starting a {args.workers}-worker showcase pool ...")
    with Pool.start(PoolConfig(name="demo", pool_size=args.workers)) as pool:
        out["startup_s"] = round(time.perf_counter() - t0, 3)
        _print(f"  ready in {out['startup_s']} s")
        out["echo"] = pool.execute("echo", {"message": "hello", "n": 1})
        _print(f"echo                -> {out['echo']}")
        out["add"] = pool.execute("add", {"a": 2, "b": 3})
        _print(f"add 2 + 3           -> {out['add']}")
        t1 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as ex:
            slept = list(ex.map(lambda _: pool.execute("sleep", {"seconds": 0.5}),
                                range(args.workers)))
        out["parallel_sleep_s"] = round(time.perf_counter() - t1, 3)
        _print(f"{args.workers} x sleep 0.5 s    -> {slept} in {out['parallel_sleep_s']} s "
               f"(in parallel)")
        try:
            pool.execute("fail", {"message": "this tool always fails"})
        except ToolError as exc:
            out["fail"] = {"error": type(exc).__name__, "python_type": exc.python_type,
                           "message": exc.python_message}
            _print(f"fail                -> {type(exc).__name__}: {exc}")
        try:
            pool.execute("no_such_tool", {})
        except SnakepitError as exc:
            out["unknown"] = type(exc).__name__
            _print(f"no_such_tool        -> {type(exc).__name__}: {exc}")
        out["session"] = [pool.execute("session_counter", session_id="demo-session")
                          for _ in range(3)]
        _print(f"session_counter x3  -> {out['session']} (state kept on the worker)")
        _crash_and_recover(pool, out)
        workers = pool.workers()
        out["workers"] = [asdict(w) for w in workers]
        _print()
        _print(f"{'worker':<18} {'pid':>7} {'state':<9} {'requests':>8} {'restarts':>8}  endpoint")
        for w in workers:
            _print(f"{w.worker_id:<18} {w.pid:>7} {w.state:<9} {w.requests:>8} {w.restarts:>8}  "
                   f"{w.endpoint}")
        stats = pool.stats()
        out["stats"] = asdict(stats)
        _print()
        _print(f"stats: requests={stats.requests} errors={stats.errors} "
               f"p50={stats.latency_p50_ms:.2f} ms p99={stats.latency_p99_ms:.2f} ms "
               f"restarts={stats.restarts}")
        _print("shutting down ...")
    _print("done: every actor and worker process stopped")
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import report, run

    _print("measuring (bounded; about a minute, 20 s with --quick) ...")
    print(report(run(quick=args.quick), args.json), flush=True)
    return 0


def _crash_and_recover(pool: Pool, out: dict[str, Any]) -> None:
    restarts = pool.stats().restarts
    t0 = time.perf_counter()
    try:
        pool.execute("crash", {"code": 3})
    except WorkerCrashedError as exc:
        out["crash"] = {"error": type(exc).__name__, "after_ms": round(
            (time.perf_counter() - t0) * 1000, 1), "worker_id": exc.details.get("worker_id")}
        _print(f"crash               -> {type(exc).__name__} after {out['crash']['after_ms']} ms: "
               f"{exc}")
    deadline = time.monotonic() + 30
    while pool.stats().restarts == restarts and time.monotonic() < deadline:
        time.sleep(0.02)
    out["recovered_s"] = round(time.perf_counter() - t0, 3)
    _print(f"                       the worker was restarted; pool back to full size in "
           f"{out['recovered_s']} s")


def _cleanup(args: argparse.Namespace) -> int:
    from .process_registry import default_data_dir
    from .reaper import cleanup_command

    return cleanup_command(args.data_dir or default_data_dir(os.environ), args.dry_run, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``snakepit-actors``."""
    parser = argparse.ArgumentParser(prog="snakepit-actors",
                                     description="Supervised pools of external Python workers")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="start a showcase pool, run a few tools, shut down")
    demo.add_argument("--workers", type=int, default=4)
    demo.add_argument("--json", action="store_true", help="also print the results as JSON")
    bench = sub.add_parser("bench", help="measure the pool against raw gRPC (DESIGN §9)")
    bench.add_argument("--quick", action="store_true", help="fewer requests (about 20 s)")
    bench.add_argument("--json", action="store_true")
    cleanup = sub.add_parser("cleanup", help="kill worker processes left behind by dead runs "
                             "(verified by pid, create time and run id)")
    cleanup.add_argument("--dry-run", action="store_true",
                         help="only show what would be killed or removed")
    cleanup.add_argument("--json", action="store_true")
    cleanup.add_argument("--data-dir", default="",
                         help="where the process table lives (default: "
                              "$XDG_DATA_HOME/snakepit_actors)")
    args = parser.parse_args(argv)
    configure_cli_logging(args.log_level)
    try:
        return {"demo": _demo, "bench": _bench, "cleanup": _cleanup}[args.command](args)
    except SnakepitError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
