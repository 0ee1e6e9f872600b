"""The ``snakepit-actors`` console script.

    snakepit-actors demo [--workers N] [--json]
    snakepit-actors bench [--scenario echo|cpu|sleep|startup|crash|asyncio|all ...] [--workers N]
                          [--concurrency N] [--duration S] [--dispatch direct|actor|both]
                          [--capacity N] [--quick] [--json]
    snakepit-actors start --config pool.toml            (a node, in the foreground)
    snakepit-actors node --leader HOST:PORT [--admin-port P] [--capability K=V ...]
                         [--name N] [--bind ADDR] [--worker-host ADDR] [--advertise ADDR]
                         [--secret S] [--drain-timeout S]  (a member node of a convention)
    snakepit-actors status (--config F | --name N | --port P) [--pool NAME] [--json]
    snakepit-actors exec (--config F | --port P) [--pool NAME] [--timeout S] TOOL [JSON]
    snakepit-actors recycle (--config F | --port P) [--pool NAME] WORKER_ID
    snakepit-actors doctor [--config F] [--json]
    snakepit-actors cleanup [--config F | --data-dir DIR] [--dry-run] [--json]

Logging: ``--log-level`` / ``--log-format`` (or ``SNAKEPIT_LOG_LEVEL`` / ``SNAKEPIT_LOG_FORMAT``;
for ``start`` the ``[node]`` table's ``log_level`` / ``log_format`` are the defaults).

Progress (workers starting, bench steps) goes to stderr, results to stdout (``console.py``).
Each command lives in its own module (``demo.py``, ``bench.py``, ``node.py``, ``status.py``,
``doctor.py``, ...); this one parses arguments and dispatches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from snakepit_actors.errors import SnakepitError
from snakepit_actors.ops.console import Progress, say
from snakepit_actors.telemetry import configure_logging


def _demo(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.demo import run_demo

    return run_demo(args.workers, args.json)


def _bench(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.bench import SCENARIOS, BenchOptions, report, run

    chosen = args.scenario or ["all"]
    scenarios = SCENARIOS if "all" in chosen else tuple(dict.fromkeys(chosen))
    progress = Progress()
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
    from snakepit_actors.ops.bench import MAX_DURATION_S

    value = float(text)
    if not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION_S:g}] seconds, "
                                         f"got {text}")
    return value


def _bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="measure the pool against raw gRPC and ProcessPoolExecutor "
        "(docs/performance.md)",
        description="Measure throughput, p50/p99 latency and their ratios to raw gRPC calls to "
                    "the same worker processes and to ProcessPoolExecutor doing the same work, "
                    "in the same run. Every measurement is bounded in count and time.")
    bench.add_argument("--scenario", action="append",
                       choices=["echo", "cpu", "sleep", "startup", "crash", "asyncio", "all"],
                       help="what to measure; repeat for several (default: all)")
    bench.add_argument("--workers", type=_positive_int, default=None,
                       help="workers per pool (default per scenario: echo 4, cpu 2, sleep 8, "
                            "startup 8, crash 4, asyncio 4)")
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


def _cleanup(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.cleanup import cleanup_command
    from snakepit_actors.tree.process_table import default_data_dir

    data_dir = args.data_dir
    if not data_dir and args.config:
        data_dir = _node_file(args).node.data_dir
    return cleanup_command(data_dir or default_data_dir(os.environ), args.dry_run, args.json)


def _node_file(args: argparse.Namespace) -> Any:
    from snakepit_actors.ops.config_file import load_node_file

    return load_node_file(args.config, os.environ)


def _start(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.node import run_node

    node_file = _node_file(args)
    node = node_file.node
    configure_logging(args.log_format or os.environ.get("SNAKEPIT_LOG_FORMAT")
                      or node.log_format,
                      args.log_level or os.environ.get("SNAKEPIT_LOG_LEVEL") or node.log_level)
    return run_node(node_file, say)


def _member(args: argparse.Namespace) -> int:
    from snakepit_actors.multihost.member import (
        MemberOptions,
        parse_capability,
        parse_leader,
        run_member,
    )

    options = MemberOptions(
        leader=parse_leader(args.leader), admin_port=args.admin_port, bind_address=args.bind,
        worker_host=args.worker_host, advertise=args.advertise, name=args.name,
        capabilities=dict(parse_capability(c) for c in args.capability),
        secret=os.environ.get("SNAKEPIT_NODE_SECRET", "") if args.secret is None
        else args.secret, data_dir=args.data_dir, drain_timeout_s=args.drain_timeout)
    return run_member(options, say)


def _connect(args: argparse.Namespace) -> Any:
    from snakepit_actors.ops.node_client import NodeClient

    if args.port:
        return NodeClient(args.port)
    if args.name:
        from snakepit_actors.ops.node import find_node
        from snakepit_actors.tree.process_table import default_data_dir

        record = find_node(args.name, args.data_dir or default_data_dir(os.environ))
        return NodeClient(int(record["admin_port"]), str(record["bind_address"]))
    if args.config:
        node = _node_file(args).node
        return NodeClient(node.admin_port, node.bind_address)
    raise SnakepitError("give --config pool.toml, --name NODE or --port ADMIN_PORT to find "
                        "the node")


def _status(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.status import gather, render

    client = _connect(args)
    if args.pool:
        client.pool(args.pool)  # a clear error for an unknown name
    if args.prometheus:
        from snakepit_actors.ops.metrics import prometheus_text

        entries = [client.pool(args.pool)] if args.pool else client.node.pools
        stats = {e.name: s for e in entries if (s := client.stats(e)) is not None}
        print(prometheus_text(client.node.name, stats), end="", flush=True)
        return 0
    report = gather(client, [args.pool] if args.pool else None)
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return 0


def _exec(args: argparse.Namespace) -> int:
    try:
        tool_args = json.loads(args.args) if args.args else {}
    except json.JSONDecodeError as exc:
        print(f"error: JSON arguments must be an object, e.g. '{{\"a\": 1}}': {exc}",
              file=sys.stderr)
        return 2
    if not isinstance(tool_args, dict):
        print(f"error: JSON arguments must be an object, e.g. '{{\"a\": 1}}', got "
              f"{args.args}", file=sys.stderr)
        return 2
    client = _connect(args)
    result = client.execute(client.pool(args.pool), args.tool, tool_args, args.timeout,
                            session_id=args.session)
    print(json.dumps(result), flush=True)
    return 0


def _recycle(args: argparse.Namespace) -> int:
    client = _connect(args)
    reply = client.recycle(client.pool(args.pool), args.worker_id)
    if reply is None or not reply.accepted:
        print(f"error: cannot recycle {args.worker_id}: "
              f"{reply.detail if reply else 'no answer'}", file=sys.stderr)
        return 1
    print(f"recycling {args.worker_id}: a replacement is starting", flush=True)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.doctor import report, run_checks

    node_file = _node_file(args) if args.config else None
    text, code = report(run_checks(node_file, dict(os.environ)), args.json)
    print(text, flush=True)
    return code


def _node_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="", help="the node's TOML file (finds its port)")
    parser.add_argument("--port", type=int, default=0, help="the node's admin port")
    parser.add_argument("--name", default="", help="a node running on this host, by name")
    parser.add_argument("--data-dir", default="", help="where running nodes are recorded "
                        "(with --name; default: $XDG_DATA_HOME/snakepit_actors)")
    parser.add_argument("--pool", default=None, help="pool name (default: the only pool, or "
                        "'default')")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``snakepit-actors``."""
    parser = argparse.ArgumentParser(prog="snakepit-actors",
                                     description="Supervised pools of external Python workers")
    parser.add_argument("--log-level", default=None,
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default=None,
                        choices=["json", "console", "keyvalue", "auto"])
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
                         help="where the process table lives (default: the node's data_dir "
                              "with --config, else $XDG_DATA_HOME/snakepit_actors)")
    cleanup.add_argument("--config", default="", help="the node's TOML file (its data_dir)")
    start = sub.add_parser("start", help="run a node (pools from a TOML file) in the foreground")
    start.add_argument("--config", required=True, help="the node's TOML file")
    member = sub.add_parser("node", help="run a member node that joins a leader's convention "
                            "and runs workers of pools whose placement it matches")
    member.add_argument("--leader", required=True, help="HOST:PORT of the leader's admin port")
    member.add_argument("--admin-port", type=int, default=0, help="this node's admin port "
                        "(default: a free one)")
    member.add_argument("--capability", action="append", default=[], metavar="KEY=VALUE",
                        help="advertise a capability (repeatable), e.g. worker_node=true")
    member.add_argument("--name", default="", help="this node's name (default host-port)")
    member.add_argument("--bind", default="127.0.0.1", help="where Thespian listens; the "
                        "transport unpickles what it receives: trusted networks only")
    member.add_argument("--worker-host", default="", help="where worker processes listen "
                        "(default: --bind)")
    member.add_argument("--advertise", default="", help="the address clients dial for "
                        "workers here (default: --worker-host)")
    member.add_argument("--secret", default=None, help="the leader's shared secret (default: "
                        "$SNAKEPIT_NODE_SECRET)")
    member.add_argument("--data-dir", default="", help="process table directory")
    member.add_argument("--drain-timeout", type=float, default=30.0, help="on SIGTERM, "
                        "seconds the pools get to move their workers elsewhere (default 30)")
    status = sub.add_parser("status", help="the live tree, workers and stats of a running node")
    _node_args(status)
    status.add_argument("--json", action="store_true")
    status.add_argument("--prometheus", action="store_true",
                        help="print the pools' stats in the Prometheus text format")
    exe = sub.add_parser("exec", help="run a tool on a running node and print its JSON result")
    _node_args(exe)
    exe.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    exe.add_argument("--session", default=None, help="session id")
    exe.add_argument("tool")
    exe.add_argument("args", nargs="?", default="", help="a JSON object (default {})")
    recycle = sub.add_parser("recycle", help="replace a worker's process gracefully")
    _node_args(recycle)
    recycle.add_argument("worker_id")
    doctor = sub.add_parser("doctor", help="check interpreter, grpc, adapter, data dir, ports "
                            "and orphans; print what to fix")
    doctor.add_argument("--config", default="", help="the node's TOML file")
    doctor.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command != "start":
        configure_logging(args.log_format or os.environ.get("SNAKEPIT_LOG_FORMAT") or "auto",
                          args.log_level or os.environ.get("SNAKEPIT_LOG_LEVEL") or "warning")
    commands = {"demo": _demo, "bench": _bench, "cleanup": _cleanup, "start": _start,
                "node": _member,
                "status": _status, "exec": _exec, "recycle": _recycle, "doctor": _doctor}
    try:
        return commands[args.command](args)
    except (SnakepitError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
