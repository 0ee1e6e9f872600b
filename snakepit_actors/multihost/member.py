"""A member node: ``snakepit-actors node --leader HOST:PORT --capability k=v ...``.

    leader: snakepit-actors start --config pool.toml   ([node] convention = true)
     └─ pool with placement = { worker_node = true } ── Starter_i ─┐ creates, over the convention
                                                                   ▼
    member (this process, in the foreground)
     └─ ActorSystem admin on bind:admin_port, joined to the leader's convention, advertising
        {"snakepit_node": name, "worker_node": True, ...}
         ├─ LauncherWatch       the system ends if this process dies (even by SIGKILL)
         ├─ ProcessRegistry     globalName: worker processes of this host, persisted (reaping)
         │                      (their output is copied into this process's log)
         ├─ MemberDirectory     globalName: the NodeAgents here (to drain them)
         ├─ NodeAgent per pool  created by the pool's NodeWatch: heartbeats
         └─ Worker_i            created by a Starter on the leader -> external process_i

A member runs no pools of its own: it lends its actor system to the leader's pools. Start:
sweep orphans left on this host, export the member's run dir / run id / worker address for
the Workers Thespian will fork here, start the system with the capabilities, wait for SIGINT or
SIGTERM. Drain: every pool with workers here moves them to other members (each Worker finishes
its requests first), for up to ``drain_timeout_s``. Stop: shut the system down (Workers still
here stop their processes; the leader sees the member leave and places them elsewhere), kill
stragglers, sweep, remove the run directory.

Thespian's convention timers are module constants read from the environment: a member
re-registers every ``CONVENTION_REREGISTRATION_PERIOD`` (we default it to 2 s, Thespian to
7 min 22 s) and retries a leader that was not up yet after ``CONVENTION_RESTART_PERIOD`` (we
default it to 1 s). grpc is never imported here: this process forks the actor system.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.core.placement import NODE_CAPABILITY, SECRET_CAPABILITY, secret_digest
from snakepit_actors.errors import ConfigError
from snakepit_actors.telemetry import bind_context, get_logger
from snakepit_actors.tree.member_env import MEMBER_REGISTRY, MemberEnv

log = get_logger("member")

_RESERVED = (NODE_CAPABILITY, SECRET_CAPABILITY, "Admin Port", "Convention Address.IPv4")


def parse_capability(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, value); the value is a TOML scalar (``true``, ``1``, ``0.5``,
    ``"a b"``) or else the raw string.

    Raises:
        ConfigError: no ``=``, an empty key, or a key snakepit or Thespian reserve.
    """
    import tomllib

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--capability must look like key=value, got {text!r}")
    if key in _RESERVED or key.startswith("snakepit_"):
        raise ConfigError(f"--capability {key!r} is reserved; pick another name")
    try:
        value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    if not isinstance(value, str | int | float | bool):
        raise ConfigError(f"--capability {key!r}: the value must be a string, number or "
                          f"boolean, got {raw!r}")
    return key, value


def parse_leader(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port). Raises ConfigError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--leader must look like HOST:PORT (the leader's admin port), "
                          f"got {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class MemberOptions:
    """How to start a member node (the ``node`` command's arguments).

    Attributes:
        leader: the leader's (host, admin_port).
        admin_port: this node's admin port (0: a free one).
        bind_address: where this node's Thespian listens (loopback unless multi-host).
        worker_host: where worker processes listen ("" = ``bind_address``).
        advertise: the address clients are told to dial for workers here ("" = worker_host).
        name: this node's name (``snakepit_node``); "" = "<hostname>-<admin_port>".
        capabilities: advertised to the convention; pools' ``placement`` match them.
        secret: the leader's shared secret, if it has one (its HMAC is advertised, not it).
        data_dir: where the process table lives ("" = ``$XDG_DATA_HOME/snakepit_actors``).
        drain_timeout_s: on SIGINT/SIGTERM, how long the pools get to move their workers off
            this member (each finishes its requests first); 0 = stop at once.
    """

    leader: tuple[str, int]
    admin_port: int = 0
    bind_address: str = "127.0.0.1"
    worker_host: str = ""
    advertise: str = ""
    name: str = ""
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    secret: str = field(default="", repr=False)
    data_dir: str = ""
    drain_timeout_s: float = 30.0


@dataclass
class MemberNode:
    """One member node's running state: ``start`` -> ``wait`` -> ``stop``."""

    options: MemberOptions
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    name: str = ""
    admin_port: int = 0
    _system: Any = None
    _admin_pid: int = 0
    _env: MemberEnv | None = None
    _process_db: str = ""
    _tailer: Any = None  # copies this host's worker output into the member's log
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start the member's actor system and join the leader's convention (asynchronously:
        the leader sees it within about 0.2 s if it is up, else at the next retry).

        Raises:
            ConfigError: the admin port is in use, or ``bind_address`` is off loopback
                without a ``secret``.
        """
        from snakepit_actors.config import SystemConfig, is_loopback
        from snakepit_actors.system import free_port, make_run_dir, port_in_use, start_actor_system
        from snakepit_actors.tree.process_table import default_data_dir, process_db_path
        from snakepit_actors.tree.reaper import sweep_orphans

        opts = self.options
        for var, default in (("CONVENTION_REREGISTRATION_PERIOD", "0:02"),
                             ("CONVENTION_RESTART_PERIOD", "0:01")):
            os.environ.setdefault(var, default)  # read by Thespian's admin (forked below)
        remote = not is_loopback(opts.bind_address)  # the leader and pools on other hosts
        if remote and not opts.secret:
            raise ConfigError(f"--bind-address {opts.bind_address} is off loopback: Thespian "
                              f"would read other hosts' connections for a node that checks "
                              f"no secret; pass --secret (the leader's) or bind 127.0.0.1")
        if opts.admin_port and port_in_use(opts.admin_port, opts.bind_address):
            raise ConfigError(f"--admin-port {opts.admin_port} is in use on "
                              f"{opts.bind_address}")
        self.admin_port = opts.admin_port or free_port(opts.bind_address)
        self.name = opts.name or f"{socket.gethostname()}-{self.admin_port}"
        bind_context(node=self.name)
        self._process_db = process_db_path(opts.data_dir or default_data_dir(self.environ))
        sweep_orphans(self._process_db)
        self._env = MemberEnv(self.name, make_run_dir(f"member-{self.name}"),
                              uuid.uuid4().hex[:12], opts.worker_host or opts.bind_address,
                              opts.advertise)
        os.environ.update(self._env.exports())  # inherited by every actor forked here
        capabilities: dict[str, Any] = {
            **opts.capabilities, "Convention Address.IPv4": opts.leader,
            NODE_CAPABILITY: self.name}
        if opts.secret:
            capabilities[SECRET_CAPABILITY] = secret_digest(opts.secret, self.name)
        self._system = start_actor_system(
            SystemConfig(admin_port=self.admin_port, bind_address=opts.bind_address,
                         allow_non_loopback=remote),
            self._env.run_dir, capabilities)
        try:
            self._start_actors()
        except BaseException:
            self.stop()
            raise
        from snakepit_actors.tree.log_capture import WorkerLogTailer

        self._tailer = WorkerLogTailer([(f"member:{self.name}", self._env.run_dir)]).start()
        log.info("member.started", node=self.name, admin_port=self.admin_port,
                 leader=f"{opts.leader[0]}:{opts.leader[1]}",
                 capabilities=dict(opts.capabilities))

    def _start_actors(self) -> None:
        from snakepit_actors.messages import InitRegistry
        from snakepit_actors.multihost.member_directory import MEMBER_DIRECTORY, MemberDirectory
        from snakepit_actors.tree.launcher_watch import watch_launcher
        from snakepit_actors.tree.process_registry import ProcessRegistry

        asys = self._system.actor_system
        self._admin_pid = watch_launcher(asys, 10.0)
        registry = asys.createActor(ProcessRegistry, globalName=MEMBER_REGISTRY)
        asys.tell(registry, InitRegistry(f"member:{self.name}", self._process_db, os.getpid()))
        asys.createActor(MemberDirectory, globalName=MEMBER_DIRECTORY)

    def drain(self, timeout_s: float) -> int:
        """Ask every pool with workers here to move them away (each finishes its requests
        first); wait up to ``timeout_s`` until no worker process of this member is left.
        Returns how many are left (0: drained)."""
        from snakepit_actors.messages import DrainMember, DrainStarted
        from snakepit_actors.multihost.member_directory import MEMBER_DIRECTORY, MemberDirectory

        if self._system is None or self._env is None:
            return 0
        asys = self._system.actor_system
        directory = asys.createActor(MemberDirectory, globalName=MEMBER_DIRECTORY)
        started = asys.ask(directory, DrainMember(uuid.uuid4().hex), 5.0)
        agents = started.agents if isinstance(started, DrainStarted) else 0
        log.info("member.draining", node=self.name, pools=agents, timeout_s=timeout_s)
        deadline = time.monotonic() + timeout_s
        while (left := self._processes_left()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def _processes_left(self) -> int:
        """Worker processes of this member still running (rows whose pid and create time
        still name a live process; a row left by a stopped Worker does not count)."""
        from snakepit_actors.core.orphans import same_start
        from snakepit_actors.tree.process_table import ProcessTable, identify_process

        assert self._env is not None
        try:
            with ProcessTable(self._process_db) as table:
                rows = table.rows(self._env.run_id)
        except Exception:
            return 0
        now = time.time()
        return sum(1 for row in rows if (row.state == "spawning" and now - row.updated_at < 60)
                   or ((found := identify_process(row.pid)) is not None
                       and same_start(found.create_time, row.create_time)))

    @property
    def admin_pid(self) -> int:
        return self._admin_pid

    def request_stop(self, *_: Any) -> None:
        """Ask ``wait`` to return (signal handler; any thread)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def wait(self) -> None:
        while not self._stop.wait(0.2):
            pass

    def stop(self) -> float:
        """Stop the system and everything under it; returns the seconds it took. Idempotent."""
        from snakepit_actors.system import remove_run_dir, shutdown_actor_system
        from snakepit_actors.tree.reaper import sweep_orphans

        if self._system is None:
            return 0.0
        t0 = time.perf_counter()
        if self._tailer is not None:
            self._tailer.stop()
        shutdown_actor_system(self._system, self._admin_pid)
        self._system = None
        if self._env is not None:
            sweep_orphans(self._process_db, ended_runs={self._env.run_id})
            remove_run_dir(self._env.run_dir)
        took = time.perf_counter() - t0
        log.info("member.stopped", node=self.name, took_s=round(took, 3))
        return took


def run_member(options: MemberOptions, out: Callable[[str], None] = print) -> int:
    """``snakepit-actors node``: run a member node until SIGINT/SIGTERM. Returns the exit
    code, 0 after a clean stop.

    Raises:
        SnakepitError: it could not start (``ConfigError`` for an option such as an
            ``--admin-port`` in use); the command turns it into its exit code.
    """
    member = MemberNode(options)
    member.install_signal_handlers()
    member.start()
    host, port = options.leader
    caps = " ".join(f"{k}={v}" for k, v in options.capabilities.items()) or "(none)"
    out(f"member {member.name} on {options.bind_address}:{member.admin_port} (pid "
        f"{os.getpid()}) joining the convention at {host}:{port}; capabilities {caps}; "
        f"SIGINT or SIGTERM to stop")
    member.wait()
    if options.drain_timeout_s > 0:
        out(f"draining: moving workers to other members (up to {options.drain_timeout_s} s)")
        left = member.drain(options.drain_timeout_s)
        if left:
            out(f"{left} worker process(es) did not move in time; stopping them")
    took = member.stop()
    out(f"member {member.name} stopped in {took:.2f} s")
    return 0
