"""A node: one long-running process, one actor system on a known admin port, several pools.

    snakepit-actors start --config pool.toml          (this module, in the foreground)
     └─ ActorSystem admin on 127.0.0.1:[node].admin_port
         ├─ LauncherWatch            the system ends if this process dies (even by SIGKILL)
         ├─ NodeDirectory            globalName: how status / exec find the pools
         └─ PoolRoot per [pools.<name>] -> Pool, registries, WorkerSupervisor -> workers

Start: sweep orphans of dead runs, start the system, then each pool (a failed pool stops the
whole node: nothing is left running), register the pools, copy worker output into the log.
Run: wait for SIGINT or SIGTERM, listening to the pools meanwhile: a pool whose Pool actor was
restarted says where the new one runs (``PoolReplaced``), and the node registers it again so
``status`` and ``exec`` reach it. Stop (drain): every pool refuses new requests and fails its
queued ones (``ClosePool``); in-flight requests get up to ``drain_timeout_s`` to finish; then
the system is shut down, stragglers are SIGKILLed (verified pids), the process table is swept
and the run directories are removed.

With a web view (``--web``, ``ops/web_node.py``) the node also receives its pools' telemetry
events (an event inbox per pool) and serves the page on 127.0.0.1 from threads of its own;
it is stopped first, before the pools drain.

grpc is never imported here: this process forks the actor system.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from snakepit_actors.config import SystemConfig
from snakepit_actors.errors import ConfigError, PoolNotReadyError, SnakepitError
from snakepit_actors.messages import (
    ClosePool,
    GetStats,
    InitNodeDirectory,
    PoolEntry,
    PoolReplaced,
    PoolStarted,
    PoolStartFailed,
    PoolStats,
    RegisterPool,
    StartPool,
)
from snakepit_actors.ops.config_file import NodeFile
from snakepit_actors.ops.metrics import StatsCache, prometheus_modules, serve_metrics
from snakepit_actors.ops.node_directory import NODE_GLOBAL_NAME
from snakepit_actors.ops.web_node import WebOptions, start_web_view
from snakepit_actors.system import (
    StartedSystem,
    make_run_dir,
    port_in_use,
    remove_run_dir,
    shutdown_actor_system,
    start_actor_system,
)
from snakepit_actors.telemetry import bind_context, close_event_inbox, get_logger, open_event_inbox
from snakepit_actors.tree.log_capture import WorkerLogTailer
from snakepit_actors.tree.process_table import default_data_dir, process_db_path
from snakepit_actors.tree.reaper import sweep_orphans
from snakepit_actors.web import require_web

log = get_logger("node")

_CONTROL_TIMEOUT_S = 10.0


def nodes_dir(data_dir: str) -> str:
    """Where running nodes leave ``<name>.json`` (admin port, pid) for ``status --name``."""
    return os.path.join(data_dir, "nodes")


def find_node(name: str, data_dir: str) -> dict[str, Any]:
    """The record of the running node ``name`` (admin_port, bind_address, pid).

    Raises:
        PoolNotReadyError: reason "node_unreachable": no such node runs (a record left by a
            node that died is ignored).
    """
    import json

    import psutil

    try:
        with open(os.path.join(nodes_dir(data_dir), f"{name}.json")) as f:
            record = dict(json.load(f))
        alive = psutil.Process(int(record["pid"])).create_time() == record["create_time"]
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        alive = False
    if not alive:
        raise PoolNotReadyError(f"no running node named {name!r} (looked in "
                                f"{nodes_dir(data_dir)}); start it with `snakepit-actors start "
                                f"--config pool.toml`", reason="node_unreachable")
    return record


@dataclass
class _RunningPool:
    entry: PoolEntry
    run_id: str


@dataclass
class Node:
    """One node's running state. ``start`` -> ``wait`` -> ``stop``; see the module docstring.

    Args:
        node_file: the parsed ``--config`` file.
        environ: where ``data_dir`` defaults come from (``XDG_DATA_HOME``).
        web: serve the live web view (None: no web view).
    """

    node_file: NodeFile
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    web: WebOptions | None = None
    pools: list[_RunningPool] = field(default_factory=list)
    _system: StartedSystem | None = None
    _admin_pid: int = 0
    _run_dir: str = ""
    _process_db: str = ""
    _tailer: WorkerLogTailer | None = None
    _metrics: StatsCache | None = None
    _metrics_server: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _directory: Any = None
    _web: Any = None  # the running WebView
    _inboxes: list[str] = field(default_factory=list)  # run dirs with an event inbox

    @property
    def web_url(self) -> str:
        """The web view's address with its token ("" without a web view)."""
        return str(self._web.url) if self._web is not None else ""

    @property
    def admin_pid(self) -> int:
        return self._admin_pid

    def start(self, on_pool: Callable[[PoolEntry, float], None] | None = None) -> None:
        """Start the actor system and every pool; blocks until all are ready.

        Raises:
            ConfigError: the admin port is taken (e.g. the node already runs), or the web
                view cannot start (no web extra, its port taken); nothing is left running.
            PoolNotReadyError: a pool failed to start (its name and error are in the message);
                everything started so far was stopped.
        """
        node = self.node_file.node
        if self.web is not None:
            require_web()  # fail before anything starts
        if port_in_use(node.admin_port, node.bind_address):
            raise ConfigError(
                f"node.admin_port {node.admin_port} is in use on {node.bind_address}: is the "
                f"node already running? (snakepit-actors status --port {node.admin_port})")
        if node.metrics_port:
            prometheus_modules()  # fail before anything starts
        bind_context(node=node.name)
        log.info("node.starting", node=node.name, admin_port=node.admin_port,
                 pools=[p.name for p in self.node_file.pools])
        self._process_db = process_db_path(node.data_dir or default_data_dir(self.environ))
        sweep_orphans(self._process_db)
        self._run_dir = make_run_dir(node.name)
        self._system = start_actor_system(
            SystemConfig(admin_port=node.admin_port, bind_address=node.bind_address,
                         convention=node.convention,
                         allow_non_loopback=node.allow_non_loopback),
            self._run_dir)
        try:
            self._start_tree(on_pool)
            if self.web is not None:
                self._web = start_web_view(self._system.actor_system, self._directory, node,
                                           self._admin_pid, self.web)
        except BaseException:
            self.stop(grace_s=0.0)
            raise
        self._tailer = WorkerLogTailer((p.entry.name, p.entry.run_dir) for p in self.pools)
        self._tailer.start()
        if node.metrics_port:
            self._metrics = StatsCache(node.name)
            self.refresh_metrics()
            self._metrics_server = serve_metrics(self._metrics, node.metrics_port,
                                                 node.bind_address)
        self._write_record()
        log.info("node.ready", node=node.name, admin_port=node.admin_port,
                 pools=[p.entry.name for p in self.pools])

    def _record_path(self) -> str:
        node = self.node_file.node
        return os.path.join(nodes_dir(node.data_dir or default_data_dir(self.environ)),
                            f"{node.name}.json")

    def _write_record(self) -> None:
        """Leave ``<data_dir>/nodes/<name>.json`` for ``status --name`` (atomically)."""
        import json

        import psutil

        node, path = self.node_file.node, self._record_path()
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with open(path + ".tmp", "w") as f:
                json.dump({"name": node.name, "admin_port": node.admin_port,
                           "bind_address": node.bind_address, "pid": os.getpid(),
                           "create_time": psutil.Process().create_time()}, f)
            os.replace(path + ".tmp", path)

    def _start_tree(self, on_pool: Callable[[PoolEntry, float], None] | None) -> None:
        from snakepit_actors.ops.node_directory import NodeDirectory
        from snakepit_actors.tree.launcher_watch import watch_launcher
        from snakepit_actors.tree.pool_root import PoolRoot

        assert self._system is not None
        asys = self._system.actor_system
        self._admin_pid = watch_launcher(asys, _CONTROL_TIMEOUT_S)
        directory = self._directory = asys.createActor(NodeDirectory,
                                                       globalName=NODE_GLOBAL_NAME)
        asys.tell(directory, InitNodeDirectory(self.node_file.node.name, os.getpid(),
                                               time.time()))
        secret = self.node_file.node.secret
        for cfg in self.node_file.pools:
            if secret:  # members must present it to receive this pool's workers
                cfg = replace(cfg, system=replace(cfg.system, secret=secret))
            t0 = time.perf_counter()
            run_id, run_dir = uuid.uuid4().hex[:12], make_run_dir(cfg.name)
            if self.web is not None:  # the pool's events, for the web view's feed
                open_event_inbox(run_dir)
                self._inboxes.append(run_dir)
            root = asys.createActor(PoolRoot)
            entry = PoolEntry(cfg.name, None, root, cfg.pool_size, cfg.adapter, run_dir)
            self.pools.append(_RunningPool(entry, run_id))
            reply = self._call(root, StartPool(cfg, run_id, run_dir, self._process_db,
                                               os.getpid()),
                               lambda m: isinstance(m, PoolStarted | PoolStartFailed),
                               cfg.startup_timeout + 5.0)
            if not isinstance(reply, PoolStarted):
                error = reply.error if isinstance(reply, PoolStartFailed) else None
                log.error("node.pool_failed", pool=cfg.name, error=str(error))
                raise PoolNotReadyError(f"pool {cfg.name!r} did not start: "
                                        f"{error or 'no answer'}", reason="pool_start_failed")
            entry = PoolEntry(cfg.name, reply.pool, root, cfg.pool_size, cfg.adapter, run_dir)
            self.pools[-1].entry = entry
            asys.tell(directory, RegisterPool(entry))
            if on_pool is not None:
                on_pool(entry, time.perf_counter() - t0)

    def _call(self, target: Any, message: Any, match: Callable[[Any], bool],
              timeout_s: float) -> Any:
        """Send ``message`` and wait for the first reply ``match`` accepts (others dropped);
        None after ``timeout_s``. Main thread only (it owns the endpoint)."""
        assert self._system is not None
        asys = self._system.actor_system
        deadline = time.monotonic() + timeout_s
        asys.tell(target, message)
        while (remaining := deadline - time.monotonic()) > 0:
            reply = asys.listen(remaining)
            if reply is not None and match(reply):
                return reply
            self._follow(reply)
        return None

    def _follow(self, message: Any) -> None:
        """A message no call waited for: a restarted Pool actor moves its pool's entry."""
        if not isinstance(message, PoolReplaced) or self._system is None:
            return
        for pool in self.pools:
            if pool.entry.name == message.name and pool.entry.pool is not None:
                pool.entry = replace(pool.entry, pool=message.pool)
                self._system.actor_system.tell(self._directory, RegisterPool(pool.entry))
                log.warning("pool.restarted", pool=message.name, restarts=message.restarts)

    # --- running and stopping -----------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        """Ask ``wait`` to return (signal handler; any thread)."""
        self._stop.set()

    def wait(self, metrics_every_s: float = 2.0) -> None:
        """Block until ``request_stop`` (SIGINT / SIGTERM once ``install_signal_handlers``),
        refreshing the metrics snapshot every ``metrics_every_s`` if they are served."""
        next_refresh = time.monotonic() + metrics_every_s
        while not self._stop.is_set():
            if self._system is None:
                self._stop.wait(0.2)
            else:
                self._follow(self._system.actor_system.listen(0.2))
            if self._metrics is not None and time.monotonic() >= next_refresh:
                self.refresh_metrics()
                next_refresh = time.monotonic() + metrics_every_s

    def pool_stats(self, timeout_s: float = 2.0) -> dict[str, PoolStats]:
        """Every started pool's stats (main thread: it owns the endpoint)."""
        out: dict[str, PoolStats] = {}
        for pool in self.pools:
            if pool.entry.pool is None:
                continue
            rid = uuid.uuid4().hex
            stats = self._call(pool.entry.pool, GetStats(rid),
                               lambda m, r=rid: isinstance(m, PoolStats)  # type: ignore[misc]
                               and m.request_id == r, timeout_s)
            if isinstance(stats, PoolStats):
                out[pool.entry.name] = stats
        return out

    def refresh_metrics(self) -> None:
        if self._metrics is not None:
            for name, stats in self.pool_stats().items():
                self._metrics.update(name, stats)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def stop(self, grace_s: float | None = None) -> float:
        """Drain (up to ``grace_s``, default the node's ``drain_timeout_s``) and stop
        everything; returns the seconds it took. Idempotent."""
        t0 = time.perf_counter()
        grace = self.node_file.node.drain_timeout_s if grace_s is None else grace_s
        if self._system is None:
            return 0.0
        log.info("node.draining", node=self.node_file.node.name, grace_s=grace)
        with contextlib.suppress(OSError):
            os.unlink(self._record_path())
        if self._web is not None:
            self._web.stop()
            self._web = None
        with contextlib.suppress(Exception):
            self._drain(grace)
        if self._tailer is not None:
            self._tailer.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        shutdown_actor_system(self._system, self._admin_pid)
        self._system = None
        sweep_orphans(self._process_db, ended_runs={p.run_id for p in self.pools})
        for run_dir in self._inboxes:
            close_event_inbox(run_dir)
        self._inboxes.clear()
        for pool in self.pools:
            remove_run_dir(pool.entry.run_dir)
        remove_run_dir(self._run_dir)
        took = time.perf_counter() - t0
        log.info("node.stopped", node=self.node_file.node.name, took_s=round(took, 3))
        return took

    def _drain(self, grace_s: float) -> None:
        """Close every pool, then wait (bounded) until none holds a request."""
        assert self._system is not None
        started = [p.entry for p in self.pools if p.entry.pool is not None]
        for entry in started:
            self._system.actor_system.tell(entry.pool, ClosePool())
        deadline = time.monotonic() + grace_s
        while started and time.monotonic() < deadline:
            stats = self.pool_stats(max(0.1, min(2.0, deadline - time.monotonic())))
            if sum(s.busy for s in stats.values()) == 0:
                return
            time.sleep(0.05)


def run_node(node_file: NodeFile, out: Callable[[str], None] = print,
             web: WebOptions | None = None) -> int:
    """``snakepit-actors start``: start the node, run until SIGINT/SIGTERM, drain, stop.

    With ``web``, also serve the live web view and print its URL (with the token).
    Returns the exit code: 0 after a clean stop, 1 if the node could not start.

    Raises:
        ConfigError: the web view cannot start (no web extra, its port taken).
    """
    node = Node(node_file, web=web)
    node.install_signal_handlers()
    cfg = node_file.node
    try:
        node.start(on_pool=lambda e, s: out(f"pool {e.name}: {e.pool_size} workers ready in "
                                            f"{s:.2f} s"))
    except SnakepitError as exc:
        out(f"error: {type(exc).__name__}: {exc}")
        return 1
    if node.web_url:
        out(f"web view: {node.web_url}")
    out(f"node {cfg.name} ready on {cfg.bind_address}:{cfg.admin_port} (pid {os.getpid()}); "
        f"SIGINT or SIGTERM to stop")
    node.wait()
    out("draining ...")
    took = node.stop()
    out(f"node {cfg.name} stopped in {took:.2f} s")
    return 0
