"""``snakepit-actors doctor``: check what a node needs, and say what to fix.

Checks, each ``ok`` / ``warn`` / ``fail`` with a fix: this interpreter's version; for every
pool's interpreter: that it runs, imports grpc and imports the adapter (in a subprocess: this
process never imports grpc) and, for a pool whose workers are forked, that the adapter's module
and ``preload`` start no thread when imported (the fork server would refuse them); the data
directory is writable; the admin (and metrics) port is free, or held by a running node;
orphans left by dead runs (a dry-run of ``cleanup``); for a convention leader or a pool with a
``placement``: where Thespian listens (loopback cannot be reached from other hosts; a wildcard
or public address exposes an unpickling port); any node off loopback that leads no convention
fails.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Literal

from snakepit_actors.config import PoolConfig, is_loopback
from snakepit_actors.ops.config_file import NodeFile
from snakepit_actors.tree import fork_server
from snakepit_actors.tree.process_table import ProcessTable, default_data_dir, process_db_path

Level = Literal["ok", "warn", "fail"]
MIN_PYTHON = (3, 11)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``fix`` says what to do when it is not ok."""

    name: str
    level: Level
    detail: str
    fix: str = ""


def run_checks(node_file: NodeFile | None, environ: dict[str, str]) -> list[Check]:
    """Every check, in order. Takes a few seconds (one subprocess per interpreter)."""
    checks = [_this_python()]
    pools = node_file.pools if node_file is not None else (PoolConfig(),)
    seen: set[tuple[str, str]] = set()
    for cfg in pools:
        if (cfg.python, cfg.adapter) not in seen:
            seen.add((cfg.python, cfg.adapter))
            checks += _worker_python(cfg)
    data_dir = (node_file.node.data_dir if node_file and node_file.node.data_dir
                else default_data_dir(environ))
    checks.append(_writable(data_dir))
    if node_file is not None:
        checks.append(_port("admin_port", node_file.node.admin_port))
        if node_file.node.metrics_port:
            checks.append(_port("metrics_port", node_file.node.metrics_port))
            checks.append(_prometheus())
        checks += _multihost(node_file)
    checks.append(_orphans(process_db_path(data_dir)))
    return checks


def _multihost(node_file: NodeFile) -> list[Check]:
    """Convention leader / placement sanity: reachable, not exposed, consistent."""
    node = node_file.node
    placed = [cfg.name for cfg in node_file.pools if cfg.placement]
    out: list[Check] = []
    if placed and not node.convention:
        out.append(Check("placement", "fail", f"pools {placed} have a placement but "
                         "[node] convention is false: no member can join",
                         "set convention = true in [node]"))
    if not node.convention:
        if not is_loopback(node.bind_address):
            out.append(Check("bind_address", "fail", f"{node.bind_address} is off loopback "
                             "but this node leads no convention: Thespian reads connections "
                             "from other hosts, whose user it cannot check",
                             "bind_address = \"127.0.0.1\" (multi-host: docs/multihost.md)"))
        return out
    if not placed:
        out.append(Check("placement", "warn", "convention = true but no pool has a "
                         "placement: members will get no workers",
                         "add placement = { key = value } to the pools that should use them"))
    out.append(_listen_address(node.bind_address))
    if not node.secret:
        out.append(Check("secret", "warn", "no shared secret: any member that joins gets "
                         "workers", "set SNAKEPIT_NODE__SECRET (and --secret on members)"))
    return out


def _listen_address(address: str) -> Check:
    """Where a convention leader listens: reachable by members, not by everyone."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return Check("bind_address", "warn", f"{address!r} is not an IP address",
                     "use the IP address of a private interface")
    if ip.is_loopback:
        return Check("bind_address", "warn", f"{address} is loopback: only members on this "
                     "host can join", "use the address of a private interface for other hosts")
    if ip.is_unspecified or ip.is_global:
        return Check("bind_address", "fail", f"{address} exposes Thespian's port, which "
                     "unpickles what it receives, beyond a private network",
                     "bind a private interface behind a firewall (docs/multihost.md)")
    return Check("bind_address", "ok", f"{address} (private)")


def _this_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if tuple(sys.version_info[:2]) >= MIN_PYTHON:
        return Check("interpreter", "ok", f"Python {version} at {sys.executable}")
    return Check("interpreter", "fail", f"Python {version}", "use Python 3.11 or newer")


def _worker_python(cfg: PoolConfig) -> list[Check]:
    module, _, cls = (cfg.adapter.rpartition(".") if cfg.protocol == "snakepit"
                      else cfg.adapter.partition(":"))
    env = {**os.environ, **cfg.env}
    if cfg.python_path:  # protocol "snakepit": where Snakepit's python side is
        env["PYTHONPATH"] = os.pathsep.join([*cfg.python_path, env.get("PYTHONPATH", "")])
    probe = ("import sys, importlib\n"
             "print(sys.version.split()[0])\n"
             "try:\n import grpc; print('grpc', grpc.__version__)\n"
             "except Exception as e: print('grpc-error', type(e).__name__, e)\n"
             f"try:\n m = importlib.import_module({module!r})\n"
             f" getattr(m, {cls.split('.')[0]!r}); print('adapter ok')\n"
             "except Exception as e: print('adapter-error', type(e).__name__, e)\n"
             f"for p in {list(cfg.preload)!r}:\n try: importlib.import_module(p)\n"
             " except Exception as e: print('preload-error', p, type(e).__name__, e)\n"
             "import threading\n"
             "print('threads', *sorted(t.name for t in threading.enumerate()\n"
             "                         if t is not threading.main_thread()))\n")
    try:
        done = subprocess.run([cfg.python, "-c", probe], capture_output=True, text=True,
                              timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Check(f"pool {cfg.name}: python", "fail", f"{cfg.python!r}: {exc}",
                      "set python = \"/path/to/python3\" in the pool's table")]
    lines = done.stdout.splitlines()
    out = [Check(f"pool {cfg.name}: python", "ok" if done.returncode == 0 else "fail",
                 f"{cfg.python} -> Python {lines[0] if lines else '?'}",
                 "" if done.returncode == 0 else done.stderr.strip()[-300:])]
    grpc_line = next((line for line in lines if line.startswith("grpc")), "grpc-error ?")
    out.append(Check(f"pool {cfg.name}: grpc", "ok" if grpc_line.startswith("grpc ") else "fail",
                     grpc_line, "" if grpc_line.startswith("grpc ") else
                     f"{cfg.python} -m pip install grpcio protobuf"))
    adapter_line = next((line for line in lines if line.startswith("adapter")), "adapter-error ?")
    ok = adapter_line == "adapter ok"
    out.append(Check(f"pool {cfg.name}: adapter", "ok" if ok else "fail",
                     f"{cfg.adapter}: {adapter_line.removeprefix('adapter-error ')}",
                     "" if ok else f"make {module!r} importable by {cfg.python} (install it, or "
                                   f"set env = {{ PYTHONPATH = \"...\" }} in the pool's table)"))
    if fork_server.wanted(cfg) and ok:
        out.append(_fork_safety(cfg, lines))
    return out


def _fork_safety(cfg: PoolConfig, lines: list[str]) -> Check:
    """Whether the fork server would refuse the pool: threads alive after its imports."""
    threads = next((line for line in lines if line.startswith("threads")), "threads").split()[1:]
    if not threads:
        return Check(f"pool {cfg.name}: fork-safety", "ok",
                     "the adapter's module and preload start no thread when imported")
    return Check(f"pool {cfg.name}: fork-safety", "fail",
                 f"importing {cfg.adapter} / preload {list(cfg.preload)} starts threads: "
                 f"{', '.join(threads)}; the fork server refuses to fork it",
                 "set start_method = \"spawn\" in the pool's table, or start those threads in "
                 "the adapter's __init__ / setup()")


def _writable(path: str) -> Check:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Check("data dir", "fail", f"{path}: {exc}",
                     "set [node] data_dir to a writable directory (or XDG_DATA_HOME)")
    return Check("data dir", "ok", f"{path} is writable")


def _port(name: str, port: int) -> Check:
    from snakepit_actors.system import port_in_use

    if port_in_use(port):
        return Check(name, "warn", f"127.0.0.1:{port} is in use (a running node? try "
                     f"`snakepit-actors status --port {port}`)",
                     f"stop what holds it, or choose another {name}")
    return Check(name, "ok", f"127.0.0.1:{port} is free")


def _prometheus() -> Check:
    import importlib.util

    if importlib.util.find_spec("prometheus_client") is not None:
        return Check("prometheus_client", "ok", "installed")
    return Check("prometheus_client", "fail", "metrics_port is set but prometheus_client is "
                 "not installed", "pip install 'snakepit-actors[prometheus]' or set "
                 "metrics_port = 0")


def _orphans(db_path: str) -> Check:
    from snakepit_actors.tree.reaper import reap_orphans

    if not os.path.exists(db_path):
        return Check("orphans", "ok", "no process table yet")
    try:
        with ProcessTable(db_path) as table:
            report = reap_orphans(table, dry_run=True)
    except Exception as exc:
        return Check("orphans", "warn", f"cannot read {db_path}: {exc}",
                     "remove the file if no pool is running")
    if report.killed:
        pids = sorted(o.pid for o in report.killed)
        return Check("orphans", "warn", f"{len(pids)} orphaned worker process(es) of dead runs: "
                     f"{pids}", "snakepit-actors cleanup")
    return Check("orphans", "ok", f"none ({len(report.kept)} process(es) of live runs)")


def report(checks: list[Check], as_json: bool) -> tuple[str, int]:
    """The text (or JSON) to print, and the exit code (1 if any check failed)."""
    code = 1 if any(c.level == "fail" for c in checks) else 0
    if as_json:
        return json.dumps({"ok": code == 0, "checks": [asdict(c) for c in checks]},
                          indent=2), code
    lines = []
    for c in checks:
        lines.append(f"[{c.level:>4}] {c.name}: {c.detail}")
        if c.fix and c.level != "ok":
            lines.append(f"       fix: {c.fix}")
    lines.append("all good" if code == 0 else "some checks failed: see 'fix' above")
    return "\n".join(lines), code
