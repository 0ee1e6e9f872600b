"""The command line of ``snakepit-actors``: every verb, its description, options and examples.

``cli.py`` runs what this parses. Each verb's ``--help`` shows what it does, an example or two
and, at the top level, the exit codes (``EXIT_CODES``, also in ``docs/operations.md``).
"""

from __future__ import annotations

import argparse
from typing import Any

from snakepit_actors import __version__
from snakepit_actors.start_method import START_METHODS

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
#: Exit code -> what it means; a script can tell "fix the config" from "the node is down".
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "the command or the tool failed (a ToolError, a timeout, a crashed worker...)",
    EXIT_USAGE: "bad command line (unknown option, invalid JSON arguments, unknown pool)",
    EXIT_CONFIG: "invalid configuration (the TOML file, an override or an option value)",
    EXIT_UNREACHABLE: "no node answered at the address given (--config, --name or --port)",
}

_EPILOG = ("exit codes:\n" + "".join(f"  {code}  {text}\n" for code, text in EXIT_CODES.items())
           + "\nWith --json, an error is printed on stdout as {\"error\": {\"type\", "
           "\"category\", \"reason\",\n\"message\", \"details\"}, \"exit_code\"}. Guides: "
           "docs/operations.md (running nodes),\ndocs/errors.md (every error), "
           "docs/performance.md (bench).")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 16,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"every size must be >= 1, got {text!r}")
    return sizes


def _duration(text: str) -> float:
    from snakepit_actors.ops.bench import MAX_DURATION_S

    value = float(text)
    if not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION_S:g}] seconds, "
                                         f"got {text}")
    return value


def _verb(sub: Any, name: str, summary: str, description: str,
          *examples: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows ``description`` and ``examples`` verbatim."""
    epilog = "examples:\n" + "".join(f"  snakepit-actors {e}\n" for e in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as JSON; errors too, on stdout")


def _node_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="", help="the node's TOML file (finds its port)")
    parser.add_argument("--port", type=int, default=0, help="the node's admin port")
    parser.add_argument("--name", default="", help="a node running on this host, by name")
    parser.add_argument("--data-dir", default="", help="where running nodes are recorded "
                        "(with --name; default: $XDG_DATA_HOME/snakepit_actors)")
    parser.add_argument("--pool", default=None, help="pool name (default: the only pool, or "
                        "'default')")


def _web_args(parser: argparse.ArgumentParser, demo: bool) -> None:
    parser.add_argument("--web", action="store_true",
                        help="serve the live web view on 127.0.0.1 (needs the web extra: "
                             "pip install 'snakepit-actors[web]'); prints its URL"
                             + ("; turns the demo buttons on" if demo else ""))
    parser.add_argument("--web-port", type=int, default=None, metavar="PORT",
                        help="the web view's port (implies --web; default: "
                             + ("a free one" if demo else "[node] web_port, else a free one")
                             + ")")
    if not demo:
        parser.add_argument("--web-demo-controls", action="store_true",
                            help="add buttons that kill a worker's process, a Worker actor or "
                                 "the Pool actor, to watch the tree restart them (implies "
                                 "--web; demos only)")


def _demo(sub: Any) -> None:
    demo = _verb(sub, "demo", "start a showcase pool, run a few tools, shut down",
                 "Start a pool of the bundled showcase adapter, run a plain call, a session, a "
                 "stream, a failing tool\nand a worker crash (showing its restart), print the "
                 "tree and the stats, then stop every process.\nWith --web: run the pool "
                 "under light load with its live web view and kill buttons until\nSIGINT "
                 "(docs/web.md).", "demo",
                 "demo --workers 2 --json", "demo --web")
    _web_args(demo, demo=True)
    demo.add_argument("--workers", type=_positive_int, default=4,
                      help="workers in the pool (default 4)")
    demo.add_argument("--start-method", choices=START_METHODS, default=None,
                      help="how worker processes start (default: forkserver on Linux, else "
                      "spawn; docs/scaling.md)")
    _json_flag(demo, "the results")


def _bench(sub: Any) -> None:
    bench = _verb(
        sub, "bench", "measure the pool against raw gRPC and ProcessPoolExecutor",
        "Measure throughput, p50/p99 latency and their ratios to raw gRPC calls to the same "
        "worker\nprocesses and to ProcessPoolExecutor doing the same work, in the same run. "
        "Every measurement\nis bounded in count and time. The targets and measured figures: "
        "docs/performance.md.",
        "bench --quick", "bench --scenario echo --dispatch direct --duration 5 --json",
        "bench scale --n 16,64", "bench scale --quick")
    bench.add_argument("what", nargs="?", choices=["scale"], default=None,
                       help="scale: a node of N workers (start-up, processes, USS by role, "
                            "throughput, close) beside bare gRPC servers; docs/scaling.md")
    bench.add_argument("--n", type=_sizes, default=None, metavar="N,N,...",
                       help="with scale: pool sizes (default 16,64,256; 16 with --quick)")
    bench.add_argument("--start-method", default="both",
                       choices=["spawn", "forkserver", "both"],
                       help="with scale: how workers start (default both)")
    bench.add_argument("--scenario", action="append",
                       choices=["echo", "cpu", "sleep", "startup", "crash", "map", "message",
                                "asyncio", "all"],
                       help="what to measure; repeat for several (default: all)")
    bench.add_argument("--workers", type=_positive_int, default=None,
                       help="workers per pool (default per scenario: echo 4, cpu 2, sleep 8, "
                            "startup 8, crash 4, map 4, asyncio 4)")
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
    _json_flag(bench, "the figures")


def _cleanup(sub: Any) -> None:
    cleanup = _verb(
        sub, "cleanup", "kill worker processes left behind by dead runs",
        "Kill worker processes whose owner died (each verified by pid, create time and run id "
        "before\nanything is killed) and remove stale rows of the process table.",
        "cleanup --dry-run", "cleanup --config pool.toml --json")
    cleanup.add_argument("--dry-run", action="store_true",
                         help="only show what would be killed or removed")
    _json_flag(cleanup, "the report")
    cleanup.add_argument("--data-dir", default="",
                         help="where the process table lives (default: the node's data_dir "
                              "with --config, else $XDG_DATA_HOME/snakepit_actors)")
    cleanup.add_argument("--config", default="", help="the node's TOML file (its data_dir)")


def _start(sub: Any) -> None:
    start = _verb(
        sub, "start", "run a node (pools from a TOML file) in the foreground",
        "Run a node: one actor system on the [node] admin_port with every [pools.<name>] of "
        "the file.\nSIGINT or SIGTERM drains it and stops every process. Every key: "
        "docs/configuration.md.\nThe live web view (--web): docs/web.md.",
        "start --config pool.toml", "--log-format json start --config pool.toml",
        "start --config pool.toml --web",
        "start --config pool.toml --web-port 8780 --web-demo-controls")
    start.add_argument("--config", required=True, help="the node's TOML file")
    _web_args(start, demo=False)


def _member(sub: Any) -> None:
    member = _verb(
        sub, "node", "run a member node that joins a leader's convention",
        "Run a member node: it joins the leader's Thespian convention and runs the workers of "
        "pools\nwhose placement matches its capabilities. Trusted networks only: Thespian "
        "unpickles what\nreaches its ports (docs/multihost.md).",
        "node --leader 10.0.0.5:27500 --capability worker_node=true",
        "node --leader 127.0.0.1:27500 --name gpu1 --capability gpu=true --admin-port 27601")
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


def _status(sub: Any) -> None:
    status = _verb(
        sub, "status", "the live tree, workers and stats of a running node",
        "Attach to a running node's admin port and show its supervision tree (class, pid, "
        "state,\nrestarts of every actor), its workers and the stats. Changes nothing.",
        "status --config pool.toml", "status --name demo --pool default --json",
        "status --port 27500 --prometheus")
    _node_args(status)
    _json_flag(status, "the report")
    status.add_argument("--prometheus", action="store_true",
                        help="print the pools' stats in the Prometheus text format")


def _exec(sub: Any) -> None:
    exe = _verb(
        sub, "exec", "run a tool on a running node and print its JSON result",
        "Run TOOL with the JSON object ARGS on a pool of a running node (through the actor "
        "path, with\nthe pool's queueing, timeouts and errors) and print the result as JSON.",
        "exec --config pool.toml echo '{\"a\": 1}'",
        "exec --port 27500 --pool gpu --timeout 60 --json embed '{\"text\": \"hi\"}'")
    _node_args(exe)
    exe.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    exe.add_argument("--session", default=None, help="session id")
    exe.add_argument("--json", action="store_true",
                     help="print errors as JSON on stdout too (the result always is JSON)")
    exe.add_argument("tool", metavar="TOOL", help="the tool's name, e.g. echo")
    exe.add_argument("args", metavar="ARGS", nargs="?", default="",
                     help="its arguments, a JSON object (default {})")


def _recycle(sub: Any) -> None:
    recycle = _verb(
        sub, "recycle", "replace a worker's process gracefully",
        "Start a replacement for WORKER_ID's process, then retire the old one once its "
        "requests are\ndone: no request fails.", "recycle --config pool.toml default_worker_1",
        "recycle --port 27500 --pool gpu --json gpu_worker_1")
    _node_args(recycle)
    _json_flag(recycle, "the outcome")
    recycle.add_argument("worker_id", metavar="WORKER_ID",
                         help="as `status` lists it, e.g. default_worker_1")


def _doctor(sub: Any) -> None:
    doctor = _verb(
        sub, "doctor", "check the environment and print what to fix",
        "Check the interpreter, grpc, the adapters' imports, the data directory, free ports "
        "and orphans;\nprint each check as ok / warn / fail with the fix. Exits 1 if a check "
        "fails.", "doctor", "doctor --config pool.toml --json")
    doctor.add_argument("--config", default="", help="the node's TOML file")
    _json_flag(doctor, "the checks")


def build_parser() -> argparse.ArgumentParser:
    """The ``snakepit-actors`` parser: global options and one subparser per verb."""
    parser = argparse.ArgumentParser(
        prog="snakepit-actors", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Supervised pools of hot external Python workers (Thespian actors + gRPC).",
        epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default=None,
                        choices=["debug", "info", "warning", "error"],
                        help="default: warning ($SNAKEPIT_LOG_LEVEL; for start, [node])")
    parser.add_argument("--log-format", default=None,
                        choices=["json", "console", "keyvalue", "auto"],
                        help="default: auto, console on a TTY and JSON otherwise "
                             "($SNAKEPIT_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_demo, _bench, _start, _member, _status, _exec, _recycle, _doctor, _cleanup):
        add(sub)
    return parser
