"""The ``snakepit-actors`` console script: runs the verb ``cli_parser.py`` parsed.

    snakepit-actors demo | bench | start | node | status | exec | recycle | doctor | cleanup

``snakepit-actors --help`` lists them with the exit codes; ``snakepit-actors VERB --help`` shows
a verb's options and examples. Each verb lives in its own module (``demo.py``, ``bench.py``,
``node.py``, ``status.py``, ``doctor.py``, ...); this one dispatches, and turns an exception
into one error report (text on stderr, or JSON on stdout under ``--json``) and an exit code.

Logging: ``--log-level`` / ``--log-format`` (or ``SNAKEPIT_LOG_LEVEL`` / ``SNAKEPIT_LOG_FORMAT``;
for ``start`` the ``[node]`` table's ``log_level`` / ``log_format`` are the defaults; ``demo``
defaults to "error", as it tells what it provokes itself).
Progress (workers starting, bench steps) goes to stderr, results to stdout (``console.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from snakepit_actors.errors import ConfigError, SnakepitError
from snakepit_actors.ops.cli_parser import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    build_parser,
)
from snakepit_actors.ops.console import Progress, say
from snakepit_actors.telemetry import configure_logging

#: Reasons of a PoolNotReadyError that mean "nothing answered at that address".
_UNREACHABLE = {"node_unreachable"}


class UsageError(Exception):
    """The command line names something that does not exist or is malformed (exit 2)."""


def _demo(args: argparse.Namespace) -> int:
    if args.web or args.web_port is not None:
        from snakepit_actors.ops.demo import run_web_demo
        from snakepit_actors.web import require_web

        require_web()  # exit 3 with the install hint, before anything starts

        return run_web_demo(args.workers, args.web_port or 0)
    from snakepit_actors.ops.demo import run_demo

    return run_demo(args.workers, args.json, args.start_method)


def _bench(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.bench import SCENARIOS, BenchOptions, report, run

    if args.what == "scale":
        return _bench_scale(args)
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


def _bench_scale(args: argparse.Namespace) -> int:
    from snakepit_actors.ops import bench_scale
    from snakepit_actors.ops import bench_scale_table as table

    progress = Progress()
    options = table.ScaleOptions(
        ns=args.n or ((16,) if args.quick else table.DEFAULT_NS),
        start_methods=table.START_METHODS if args.start_method == "both"
        else (args.start_method,),
        seconds=args.duration or (3.0 if args.quick else 5.0), progress=progress.line)
    progress.line(f"measuring scale: N = {', '.join(map(str, options.ns))} ...")
    results = bench_scale.run(options)
    progress.done()
    print(json.dumps(table.as_json(results), indent=2) if args.json
          else table.render(results), flush=True)
    return 0


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
    web = None
    if args.web or args.web_port is not None or args.web_demo_controls or node.web_port:
        from snakepit_actors.ops.web_node import WebOptions
        from snakepit_actors.web import require_web

        require_web()  # exit 3 with the install hint, before anything starts
        port = node.web_port if args.web_port is None else args.web_port
        if not 0 <= port <= 65535:
            raise ConfigError(f"--web-port must be in 0..65535, got {port}")
        web = WebOptions(port=port, token=node.web_token,
                         demo_controls=args.web_demo_controls)
    return run_node(node_file, say, web)


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
    raise UsageError("give --config pool.toml, --name NODE or --port ADMIN_PORT to find the "
                     "node")


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
        raise UsageError(f"ARGS must be a JSON object, e.g. '{{\"a\": 1}}': {exc}") from None
    if not isinstance(tool_args, dict):
        raise UsageError(f"ARGS must be a JSON object, e.g. '{{\"a\": 1}}', got {args.args}")
    client = _connect(args)
    result = client.execute(client.pool(args.pool), args.tool, tool_args, args.timeout,
                            session_id=args.session)
    print(json.dumps(result), flush=True)
    return 0


def _recycle(args: argparse.Namespace) -> int:
    client = _connect(args)
    reply = client.recycle(client.pool(args.pool), args.worker_id)
    if reply is None or not reply.accepted:
        raise SnakepitError(f"cannot recycle {args.worker_id}: "
                            f"{reply.detail if reply else 'no answer'}",
                            reason="recycle_refused", details={"worker_id": args.worker_id})
    print(json.dumps({"recycling": args.worker_id}) if args.json
          else f"recycling {args.worker_id}: a replacement is starting", flush=True)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from snakepit_actors.ops.doctor import report, run_checks

    node_file = _node_file(args) if args.config else None
    text, code = report(run_checks(node_file, dict(os.environ)), args.json)
    print(text, flush=True)
    return code


def exit_code(exc: BaseException) -> int:
    """The documented exit code for ``exc`` (``cli_parser.EXIT_CODES``)."""
    if isinstance(exc, UsageError) or (isinstance(exc, SnakepitError)
                                       and exc.reason == "unknown_pool"):
        return EXIT_USAGE
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, SnakepitError) and exc.reason in _UNREACHABLE:
        return EXIT_UNREACHABLE
    return EXIT_ERROR


def error_report(exc: BaseException, as_json: bool) -> tuple[str, int]:
    """``(text, exit code)`` for ``exc``: one JSON document, or ``error: Type: message``."""
    code = exit_code(exc)
    if not as_json:
        return f"error: {type(exc).__name__}: {exc}", code
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, SnakepitError):
        error.update(category=exc.category, reason=exc.reason, details=exc.details)
    else:
        error.update(category="usage" if code == EXIT_USAGE else "cli",
                     reason="invalid_argument", details={})
    return json.dumps({"error": error, "exit_code": code}, default=str), code


#: ``demo`` narrates the warnings it provokes (the crash) itself: its own lines stay readable.
_DEFAULT_LOG_LEVEL = {"demo": "error"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``snakepit-actors``; returns the exit code (``--help`` lists them)."""
    args = build_parser().parse_args(argv)
    if args.command != "start":
        configure_logging(args.log_format or os.environ.get("SNAKEPIT_LOG_FORMAT") or "auto",
                          args.log_level or os.environ.get("SNAKEPIT_LOG_LEVEL")
                          or _DEFAULT_LOG_LEVEL.get(args.command, "warning"))
    commands = {"demo": _demo, "bench": _bench, "cleanup": _cleanup, "start": _start,
                "node": _member, "status": _status, "exec": _exec, "recycle": _recycle,
                "doctor": _doctor}
    try:
        return commands[args.command](args)
    except (SnakepitError, ValueError, UsageError) as exc:
        as_json = bool(getattr(args, "json", False))
        text, code = error_report(exc, as_json)
        print(text, file=sys.stdout if as_json else sys.stderr, flush=True)
        return code


if __name__ == "__main__":
    sys.exit(main())
