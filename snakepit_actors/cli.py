"""The ``snakepit-actors`` console script.

    snakepit-actors demo [--workers N] [--json]
    snakepit-actors bench [--scenario echo|cpu|sleep|startup|crash|all ...] [--workers N]
                          [--concurrency N] [--duration S] [--dispatch direct|actor|both]
                          [--capacity N] [--quick] [--json]
    snakepit-actors cleanup [--dry-run] [--json] [--data-dir DIR]

Progress (workers starting, bench steps) goes to stderr: one line rewritten in place on a
terminal, plain lines otherwise; results go to stdout.
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


class _Progress:
    """Progress lines on stderr: rewritten in place on a terminal, one per line otherwise.
    Callable from any thread; never blocks on anything but stderr itself."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._open = False

    def line(self, text: str) -> None:
        if self._tty:
            sys.stderr.write(f"\r\x1b[2K{text}")
            self._open = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def workers(self, ready: int, total: int) -> None:
        self.line(f"  workers ready {ready}/{total}")

    def done(self) -> None:
        if self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False


def _demo(args: argparse.Namespace) -> int:
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    _print(f"starting a {args.workers}-worker showcase pool ...")
    progress = _Progress()
    with Pool.start(PoolConfig(name="demo", pool_size=args.workers),
                    on_progress=progress.workers) as pool:
        progress.done()
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
    from .bench import SCENARIOS, BenchOptions, report, run

    chosen = args.scenario or ["all"]
    scenarios = SCENARIOS if "all" in chosen else tuple(dict.fromkeys(chosen))
    progress = _Progress()
    options = BenchOptions(
        scenarios=scenarios,
        dispatch=("direct", "actor") if args.dispatch == "both" else (args.dispatch,),
        workers=args.workers, concurrency=args.concurrency, capacity=args.capacity,
        duration_s=args.duration, quick=args.quick, progress=progress.line)
    progress.line(f"measuring {', '.join(scenarios)} (each measurement at most "
                  f"{options.seconds:g} s) ...")
    figures = run(options)
    progress.done()
    print(report(figures, args.json), flush=True)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _duration(text: str) -> float:
    from .bench import MAX_DURATION_S

    value = float(text)
    if not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION_S:g}] seconds, "
                                         f"got {text}")
    return value


def _bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="measure the pool against raw gRPC and ProcessPoolExecutor (DESIGN §9)",
        description="Measure throughput, p50/p99 latency and their ratios to raw gRPC calls to "
                    "the same worker processes and to ProcessPoolExecutor doing the same work, "
                    "in the same run. Every measurement is bounded in count and time.")
    bench.add_argument("--scenario", action="append",
                       choices=["echo", "cpu", "sleep", "startup", "crash", "all"],
                       help="what to measure; repeat for several (default: all)")
    bench.add_argument("--workers", type=_positive_int, default=None,
                       help="workers per pool (default per scenario: echo 4, cpu 2, sleep 8, "
                            "startup 8, crash 4)")
    bench.add_argument("--concurrency", type=_positive_int, default=64,
                       help="concurrent callers in throughput runs (default 64)")
    bench.add_argument("--duration", type=_duration, default=None, metavar="SECONDS",
                       help="time bound of each measurement (default 15, 3 with --quick; "
                            "max 120)")
    bench.add_argument("--dispatch", "--data-path", dest="dispatch", default="both",
                       choices=["direct", "actor", "both"],
                       help="data path measured: direct (leases), actor, or both (default)")
    bench.add_argument("--capacity", type=_positive_int, default=None,
                       help="concurrent requests per worker (default 1; sleep also runs 4)")
    bench.add_argument("--quick", action="store_true", help="fewer requests (about a minute)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")


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
    _bench_parser(sub)
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
