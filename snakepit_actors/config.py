"""``PoolConfig``: one immutable value that describes a pool, validated in one place.

Nothing below this module reads the environment: ``PoolConfig.from_env`` and
``PoolConfig.from_toml`` turn outside sources into a ``PoolConfig``, and the value is then passed
down (inside actor messages, so it pickles).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from snakepit_actors.config_hints import json_problem, unknown_key
from snakepit_actors.errors import ConfigError
from snakepit_actors.start_method import DEFAULT_START_METHOD, StartMethod, start_method_problems

Affinity = Literal["hint", "strict_queue", "strict_fail_fast"]
Transport = Literal["unix", "tcp"]
DataPath = Literal["direct", "actor"]
ProtocolName = Literal["snakepit_actors", "snakepit"]
SystemLoss = Literal["close", "restart"]

_ADAPTER_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_SNAKEPIT_ADAPTER_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SHOWCASE_ADAPTER = "snakepit_actors.bridge.showcase:ShowcaseAdapter"


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """How the pool's Thespian actor system is started.

    Attributes:
        base: the Thespian system base; only ``multiprocTCPBase`` is supported for real pools
            (the queue base deadlocks under load, the UDP base loses messages).
        admin_port: the admin TCP port; 0 picks a free one per pool (never the shared 1900).
        bind_address: where Thespian listens. Loopback by default: Thespian unpickles whatever
            reaches its ports, so a public address is a remote-code-execution hole.
        log_file: Thespian's own log; None puts it in the pool's run directory.
        convention: lead a Thespian convention on ``bind_address:admin_port``: member nodes
            (``snakepit-actors node --leader``) join it and run workers of pools with a
            ``placement``. Members and leader must be on a trusted network (see ``bind_address``).
        secret: a shared secret member nodes must be started with (``--secret``) to receive
            workers; "" accepts every member. It stops accidental joins, not attackers: the
            transport itself unpickles whatever reaches it.
        allow_non_loopback: the explicit opt-in a ``bind_address`` off loopback needs (with a
            ``secret``). Connections from loopback are read only from this system's user or
            root (``peer_access``); connections from other hosts cannot be attributed to a
            user and are read only with this opt-in: firewall the port.
    """

    base: str = "multiprocTCPBase"
    admin_port: int = 0
    bind_address: str = "127.0.0.1"
    log_file: str | None = None
    convention: bool = False
    secret: str = field(default="", repr=False)
    allow_non_loopback: bool = False


def is_loopback(address: str) -> bool:
    """Whether ``address`` is a loopback IP address (127.0.0.0/8, ::1, or IPv4-mapped
    127.x; a ``%scope`` suffix is ignored)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def exposed_bind(bind_address: object, allow_non_loopback: object, secret: object) -> bool:
    """Whether ``bind_address`` is off loopback without the opt-in and a secret that make it
    acceptable (Thespian's port unpickles what reaches it: off loopback, firewall it)."""
    return (isinstance(bind_address, str) and not is_loopback(bind_address)
            and not (allow_non_loopback is True and bool(secret)))


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Everything that describes one pool. Frozen; build a new one with ``dataclasses.replace``.

    Defaults and what gets worse when a value moves (lower / higher):

    ========================  =========  ===================================================
    field                     default    lower / higher
    ========================  =========  ===================================================
    pool_size                 4          less parallelism / more memory (~36 MiB RSS each)
    capacity                  1          - / requests share one process (threads or asyncio)
    prefetch                  0          more actor messages per request / a request may wait
                                         at a busy worker while another frees (actor path)
    data_plane                True       (False) batched session-less unary Execute via
                                         Pool and Worker (~4 messages) / a DataPlane actor
                                         calls gRPC on leases (2 messages; one more process)
    startup_timeout           30 s       slow adapters fail / a broken start is seen later
    request_timeout           None       (None = no deadline) / stuck tools hold workers
    cancel_grace_s            0.5 s      more recycles after timeouts / a stuck tool holds
                                         its worker longer before its recycle
    queue_timeout             5 s        bursts fail early / callers wait longer when saturated
    max_queue                 1000       bursts are refused / memory and latency in the queue
    heartbeat_interval        2 s        more pings / hung workers are found later
    heartbeat_misses          3          false alarms on a busy box / slower detection
    max_restarts/max_seconds  10 / 60 s  a flapping worker escalates early / late
    restart_backoff_s         0.05 s     restart storms / slower healing
    worker_max_requests       None       more restarts / leaks accumulate (None = never)
    worker_ttl                None       more restarts / leaks accumulate (None = never)
    worker_memory_mb          None       more restarts / bloated workers kept (None = never)
    session_ttl               3600 s     sessions forgotten early / memory
    max_sessions              10000      create_session refused early / memory
    session_sweep_interval    60 s       more sweeps / expired sessions linger longer
    affinity_wait_s           0.02 s     a session hops workers more / waits longer for its own
    max_payload_bytes         64 MiB     big payloads refused / memory per request
    worker_log_max_bytes      16 MiB     less output kept / disk (2x: log + one rotated copy)
    startup_batch_size        0          (0 = all at once) / startup CPU spike
    data_path                 "direct"   the handle's calls: "direct" (leases, gRPC from the
                                         caller: ~raw gRPC speed) or "actor" (through the
                                         actors, unary ones the DataPlane: ~2 ms CPU each)
    retry_idempotent          False      (True: every request counts as idempotent and is
                                         re-run once on another worker if its worker dies)
    on_system_loss            "close"    the handle ends for good when its actor system or
                                         PoolRoot dies / ("restart") it starts them again,
                                         at most 3 times in 60 s (calls fail meanwhile)
    placement                 {}         ({} = workers run here) / capabilities a member node
                                         must advertise to run this pool's workers
    placement_timeout         10 s       start fails early / waits longer for a member
    node_heartbeat_s          1 s        more pings / a dead member is found later
    node_heartbeat_misses     3          false alarms on a busy network / slower detection
    protocol                  (ours)     "snakepit_actors" (our bridge) or "snakepit" (Snakepit
                                         0.13's grpc_server.py: docs/snakepit-compat.md)
    python_path               ()         ("snakepit" only) folders put first on the workers'
                                         sys.path; one must hold Snakepit's grpc_server.py
    start_method              (Linux)    "spawn": fresh interpreters / "forkserver": forks
    ========================  =========  ===================================================
    """

    name: str = "default"
    pool_size: int = 4
    adapter: str = SHOWCASE_ADAPTER
    adapter_config: Mapping[str, Any] = field(default_factory=dict)
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = 30.0
    request_timeout: float | None = None
    cancel_grace_s: float = 0.5
    queue_timeout: float | None = 5.0
    max_queue: int = 1000
    heartbeat_interval: float = 2.0
    heartbeat_misses: int = 3
    max_restarts: int = 10
    max_seconds: float = 60.0
    restart_backoff_s: float = 0.05
    affinity: Affinity = "hint"
    affinity_wait_s: float = 0.02
    session_ttl: float = 3600.0
    max_sessions: int = 10_000
    session_sweep_interval: float = 60.0
    worker_max_requests: int | None = None
    worker_ttl: float | None = None
    worker_memory_mb: int | None = None
    capacity: int = 1
    prefetch: int = 0
    data_plane: bool = True
    transport: Transport = "unix"
    max_payload_bytes: int = 64 * 1024 * 1024
    worker_log_max_bytes: int | None = 16 * 1024 * 1024
    startup_batch_size: int = 0
    retry_idempotent: bool = False
    data_path: DataPath = "direct"
    on_system_loss: SystemLoss = "close"
    placement: Mapping[str, Any] = field(default_factory=dict)
    placement_timeout: float = 10.0
    node_heartbeat_s: float = 1.0
    node_heartbeat_misses: int = 3
    protocol: ProtocolName = "snakepit_actors"
    python_path: tuple[str, ...] = ()
    start_method: StartMethod = DEFAULT_START_METHOD
    preload: tuple[str, ...] = ()
    system: SystemConfig = field(default_factory=SystemConfig)

    def __post_init__(self) -> None:
        for name in ("python_path", "preload"):  # lists from TOML
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = _problems(self)
        if problems:
            raise ConfigError("invalid PoolConfig: " + "; ".join(problems),
                              details={"problems": problems})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PoolConfig:
        """Build from a plain mapping (e.g. parsed TOML); unknown keys are an error.

        Raises:
            ConfigError: unknown keys or invalid values, all named in one message.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("; ".join(unknown_key(key, known, "a PoolConfig field")
                                        for key in unknown), details={"unknown": unknown})
        values = dict(data)
        if isinstance(values.get("system"), Mapping):
            try:
                values["system"] = SystemConfig(**values["system"])
            except TypeError as exc:
                raise ConfigError(f"system: {exc}") from None
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path) -> PoolConfig:
        """Read a TOML file whose top level (or ``[pool]`` table) holds PoolConfig fields.

        Raises:
            ConfigError: the file is missing, not TOML, or holds invalid values.
        """
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read pool config {str(path)!r}: {exc}") from None
        return cls.from_mapping(data.get("pool", data))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 prefix: str = "SNAKEPIT_", **overrides: Any) -> PoolConfig:
        """Build from ``SNAKEPIT_<FIELD>`` variables (e.g. ``SNAKEPIT_POOL_SIZE=8``).

        Values are parsed as TOML scalars (numbers, booleans, quoted strings) and fall back to the
        raw string. Keyword arguments override the environment.
        """
        environ = os.environ if environ is None else environ
        known = {f.name for f in dataclasses.fields(cls)} - {"system", "env", "adapter_config"}
        values: dict[str, Any] = {}
        for name in known:
            raw = environ.get(prefix + name.upper())
            if raw is not None:
                values[name] = _parse_scalar(raw)
        values.update(overrides)
        return cls.from_mapping(values)

    def with_overrides(self, **changes: Any) -> PoolConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def _parse_scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _positive_or_none(value: Any) -> bool:
    return value is None or (_is_number(value) and value > 0)


def _is_number(value: Any) -> bool:
    """A real, finite number (not a bool): NaN and infinity are no number of seconds."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(cfg: PoolConfig) -> list[str]:
    """Every invalid field of ``cfg``, each as 'field must ..., got value'."""
    p: list[str] = []

    def need(ok: bool, text: str, value: Any) -> None:
        if not ok:
            p.append(f"{text}, got {value!r}")

    need(isinstance(cfg.name, str) and bool(_NAME_RE.match(cfg.name)),
         "name must be 1-64 characters of letters, digits, '_', '.' or '-'", cfg.name)
    need(_is_int(cfg.pool_size) and 1 <= cfg.pool_size <= 512,
         "pool_size must be an int in 1..512", cfg.pool_size)
    need(cfg.protocol in ("snakepit_actors", "snakepit"),
         "protocol must be 'snakepit_actors' or 'snakepit'", cfg.protocol)
    if cfg.protocol == "snakepit":
        need(isinstance(cfg.adapter, str) and bool(_SNAKEPIT_ADAPTER_RE.match(cfg.adapter)),
             "adapter of protocol 'snakepit' must look like 'package.module.Class', e.g. "
             "'snakepit_bridge.adapters.showcase.ShowcaseAdapter'", cfg.adapter)
        need(isinstance(cfg.python_path, tuple) and bool(cfg.python_path)
             and all(isinstance(p, str) and p for p in cfg.python_path),
             "python_path of protocol 'snakepit' must list folders, one holding Snakepit's "
             "grpc_server.py, e.g. ['deps/snakepit/priv/python']", cfg.python_path)
    else:
        need(isinstance(cfg.adapter, str) and bool(_ADAPTER_RE.match(cfg.adapter)),
             "adapter must look like 'package.module:Class'", cfg.adapter)
        need(cfg.python_path == (), "python_path is for protocol 'snakepit' only: set "
             "protocol='snakepit' or use env={'PYTHONPATH': ...}", cfg.python_path)
    p.extend(start_method_problems(cfg.start_method, cfg.preload, cfg.protocol))
    need(isinstance(cfg.adapter_config, Mapping), "adapter_config must be a mapping",
         cfg.adapter_config)
    problem = json_problem(cfg.adapter_config)
    need(problem is None, f"adapter_config is sent to the worker as JSON: {problem}",
         cfg.adapter_config)
    need(isinstance(cfg.python, str) and bool(cfg.python), "python must be an interpreter path",
         cfg.python)
    need(isinstance(cfg.env, Mapping)
         and all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.env.items()),
         "env must map str to str", cfg.env)
    need(_is_number(cfg.startup_timeout) and cfg.startup_timeout > 0,
         "startup_timeout must be a number of seconds > 0", cfg.startup_timeout)
    for name in ("request_timeout", "queue_timeout", "worker_ttl"):
        value = getattr(cfg, name)
        need(_positive_or_none(value), f"{name} must be None or a number of seconds > 0", value)
    need(_is_number(cfg.cancel_grace_s) and 0 <= cfg.cancel_grace_s <= 60,
         "cancel_grace_s must be a number of seconds in 0..60", cfg.cancel_grace_s)
    need(_is_int(cfg.max_queue) and cfg.max_queue >= 0, "max_queue must be an int >= 0",
         cfg.max_queue)
    need(_is_number(cfg.heartbeat_interval) and cfg.heartbeat_interval > 0,
         "heartbeat_interval must be a number of seconds > 0", cfg.heartbeat_interval)
    need(_is_int(cfg.heartbeat_misses) and cfg.heartbeat_misses >= 1,
         "heartbeat_misses must be an int >= 1", cfg.heartbeat_misses)
    need(_is_int(cfg.max_restarts) and cfg.max_restarts >= 0,
         "max_restarts must be an int >= 0", cfg.max_restarts)
    need(_is_number(cfg.max_seconds) and cfg.max_seconds > 0,
         "max_seconds must be a number of seconds > 0", cfg.max_seconds)
    need(_is_number(cfg.restart_backoff_s) and cfg.restart_backoff_s >= 0,
         "restart_backoff_s must be a number of seconds >= 0", cfg.restart_backoff_s)
    need(cfg.affinity in ("hint", "strict_queue", "strict_fail_fast"),
         "affinity must be 'hint', 'strict_queue' or 'strict_fail_fast'", cfg.affinity)
    need(_is_number(cfg.affinity_wait_s) and 0 <= cfg.affinity_wait_s <= 60,
         "affinity_wait_s must be a number of seconds in 0..60", cfg.affinity_wait_s)
    need(_is_number(cfg.session_ttl) and cfg.session_ttl > 0,
         "session_ttl must be a number of seconds > 0", cfg.session_ttl)
    need(isinstance(cfg.max_sessions, int) and cfg.max_sessions >= 1,
         "max_sessions must be an int >= 1", cfg.max_sessions)
    need(_is_number(cfg.session_sweep_interval) and cfg.session_sweep_interval > 0,
         "session_sweep_interval must be a number of seconds > 0", cfg.session_sweep_interval)
    for name in ("worker_max_requests", "worker_memory_mb"):
        value = getattr(cfg, name)
        need(value is None or (_is_int(value) and value >= 1),
             f"{name} must be None or an int >= 1", value)
    need(_is_int(cfg.capacity) and 1 <= cfg.capacity <= 1024, "capacity must be an int in 1..1024",
         cfg.capacity)
    need(_is_int(cfg.prefetch) and 0 <= cfg.prefetch <= 64, "prefetch must be an int in 0..64",
         cfg.prefetch)
    need(cfg.transport in ("unix", "tcp"), "transport must be 'unix' or 'tcp'", cfg.transport)
    need(_is_int(cfg.max_payload_bytes) and 1024 <= cfg.max_payload_bytes <= 2**31 - 1,
         "max_payload_bytes must be an int in 1024..2147483647", cfg.max_payload_bytes)
    need(cfg.worker_log_max_bytes is None or (
        _is_int(cfg.worker_log_max_bytes) and cfg.worker_log_max_bytes >= 64 * 1024),
         "worker_log_max_bytes must be None (unbounded) or an int >= 65536, e.g. 16777216",
         cfg.worker_log_max_bytes)
    need(_is_int(cfg.startup_batch_size) and cfg.startup_batch_size >= 0,
         "startup_batch_size must be an int >= 0 (0 = all at once)", cfg.startup_batch_size)
    for flag in ("data_plane", "retry_idempotent"):
        need(isinstance(getattr(cfg, flag), bool), f"{flag} must be True or False",
             getattr(cfg, flag))
    need(cfg.data_path in ("direct", "actor"), "data_path must be 'direct' or 'actor'",
         cfg.data_path)
    need(cfg.on_system_loss in ("close", "restart"),
         "on_system_loss must be 'close' (the handle ends with its actor system) or 'restart' "
         "(it starts a new one), e.g. on_system_loss='restart'", cfg.on_system_loss)
    need(isinstance(cfg.placement, Mapping) and all(
        isinstance(k, str) and k and not k.startswith(("snakepit_", "Admin", "Convention",
                                                        "Thespian"))
        and isinstance(v, str | int | float | bool) for k, v in cfg.placement.items()),
        "placement must map capability names (not 'snakepit_*' or Thespian's own) to str, "
        "int, float or bool, e.g. {'worker_node': True}", cfg.placement)
    need(_is_number(cfg.placement_timeout) and cfg.placement_timeout > 0,
         "placement_timeout must be a number of seconds > 0", cfg.placement_timeout)
    need(_is_number(cfg.node_heartbeat_s) and 0 < cfg.node_heartbeat_s <= 60,
         "node_heartbeat_s must be a number of seconds in (0, 60]", cfg.node_heartbeat_s)
    need(_is_int(cfg.node_heartbeat_misses) and cfg.node_heartbeat_misses >= 1,
         "node_heartbeat_misses must be an int >= 1", cfg.node_heartbeat_misses)
    if isinstance(cfg.system, SystemConfig):
        sysc = cfg.system
        need(sysc.base == "multiprocTCPBase",
             "system.base must be 'multiprocTCPBase' (other bases deadlock or lose messages)",
             sysc.base)
        need(_is_int(sysc.admin_port) and 0 <= sysc.admin_port <= 65535,
             "system.admin_port must be an int in 0..65535 (0 = pick a free port)",
             sysc.admin_port)
        need(isinstance(sysc.bind_address, str) and bool(sysc.bind_address),
             "system.bind_address must be an IP address", sysc.bind_address)
        for flag in ("convention", "allow_non_loopback"):
            need(isinstance(getattr(sysc, flag), bool), f"system.{flag} must be True or False",
                 getattr(sysc, flag))
        need(isinstance(sysc.secret, str), "system.secret must be a str", "<hidden>")
        need(not exposed_bind(sysc.bind_address, sysc.allow_non_loopback, sysc.secret),
             "system.bind_address off loopback exposes Thespian's unpickling port beyond this "
             "host: bind 127.0.0.1, or set system.allow_non_loopback=True and a system.secret",
             sysc.bind_address)
    else:
        need(False, "system must be a SystemConfig", cfg.system)
    return p

