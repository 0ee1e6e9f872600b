"""A node's TOML file (and environment overrides) turned into ``NodeConfig`` + ``PoolConfig``s.

Minimal form::

    [node]
    name = "demo"
    admin_port = 27500

    [pools.default]
    pool_size = 2
    adapter = "snakepit_actors.bridge.showcase:ShowcaseAdapter"

Every ``[pools.<name>]`` table holds ``PoolConfig`` fields (``name`` is the table's key; the
actor system belongs to the node, so ``system`` is not allowed there). Environment variables
override the file, one key each, values parsed as TOML scalars::

    SNAKEPIT_NODE__ADMIN_PORT=27600
    SNAKEPIT_POOLS__DEFAULT__POOL_SIZE=8

Errors (``ConfigError``) name the file and the full key (``pools.default.pool_size``), the value
and what is allowed; all problems of a file are reported at once. Like ``config.py`` this is
the only place that reads the environment: ``load_node_file`` takes it as an argument.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from snakepit_actors.config import PoolConfig, exposed_bind
from snakepit_actors.config_hints import unknown_key
from snakepit_actors.core.web_access import MIN_TOKEN_CHARS
from snakepit_actors.errors import ConfigError

ENV_PREFIX = "SNAKEPIT_"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LogFormat = Literal["json", "console", "keyvalue", "auto"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The ``[node]`` table: one long-running process with one actor system and its pools.

    Attributes:
        name: the node's name (shown by ``status``; logs carry it as ``node``).
        admin_port: the Thespian admin port on ``bind_address``; ``status``, ``exec`` and
            ``cleanup`` find the node through it. Must be set (not 0) so other processes can.
        bind_address: where Thespian listens. Loopback: Thespian unpickles what it receives.
        data_dir: process table and run directories; "" = ``$XDG_DATA_HOME/snakepit_actors``.
        log_format: "json" (one object per line), "console", "keyvalue" or "auto" (console
            on a TTY, JSON otherwise).
        log_level: debug | info | warning | error.
        drain_timeout_s: on SIGINT/SIGTERM, how long in-flight requests may finish.
        metrics_port: serve Prometheus text on 127.0.0.1:PORT (needs ``prometheus_client``,
            an optional extra); 0 = off.
        convention: become a Thespian convention leader on ``admin_port`` so member nodes
            (``snakepit-actors node --leader``) can join and run the workers of pools with a
            ``placement``; False = a standalone node. Trusted networks only.
        secret: members must be started with the same ``--secret`` to receive workers ("" =
            any member); prefer the env override ``SNAKEPIT_NODE__SECRET`` to the file.
        web_port: serve the live web view (``start --web``) on 127.0.0.1:PORT; 0 = off
            unless ``--web`` asks for it (then a free port). Needs the ``web`` extra.
        web_token: the token the web view asks for ("" = a new random one at each start,
            printed in the page's URL); at least 16 characters. Prefer the env override
            ``SNAKEPIT_NODE__WEB_TOKEN`` to the file.
        allow_non_loopback: the explicit opt-in a ``bind_address`` off loopback needs, with a
            ``secret``: Thespian then reads connections from other hosts, whose user cannot
            be checked (docs/process-hygiene.md). Firewall the port.
    """

    name: str = "node"
    admin_port: int = 0
    bind_address: str = "127.0.0.1"
    data_dir: str = ""
    log_format: LogFormat = "auto"
    log_level: str = "info"
    drain_timeout_s: float = 10.0
    metrics_port: int = 0
    convention: bool = False
    secret: str = field(default="", repr=False)
    allow_non_loopback: bool = False
    web_port: int = 0
    web_token: str = field(default="", repr=False)

    def problems(self) -> list[str]:
        """Every invalid field, each as 'node.field must ..., got value'."""
        p: list[str] = []

        def need(ok: bool, text: str, value: Any) -> None:
            if not ok:
                p.append(f"node.{text}, got {value!r}")

        need(isinstance(self.name, str) and bool(_NAME_RE.match(self.name)),
             "name must be 1-64 characters of letters, digits, '_', '.' or '-'", self.name)
        for key in ("admin_port", "metrics_port", "web_port"):
            value = getattr(self, key)
            need(_is_int(value) and 0 <= value <= 65535, f"{key} must be an int in 0..65535",
                 value)
        need(self.admin_port != 0, "admin_port must be set (other processes find the node "
             "by it), e.g. admin_port = 27500", self.admin_port)
        need(isinstance(self.bind_address, str) and bool(self.bind_address),
             "bind_address must be an IP address", self.bind_address)
        need(isinstance(self.data_dir, str), "data_dir must be a path", self.data_dir)
        need(self.log_format in ("json", "console", "keyvalue", "auto"),
             "log_format must be 'json', 'console', 'keyvalue' or 'auto'", self.log_format)
        need(str(self.log_level).lower() in ("debug", "info", "warning", "error"),
             "log_level must be 'debug', 'info', 'warning' or 'error'", self.log_level)
        need(isinstance(self.drain_timeout_s, int | float)
             and not isinstance(self.drain_timeout_s, bool) and self.drain_timeout_s >= 0,
             "drain_timeout_s must be a number of seconds >= 0", self.drain_timeout_s)
        need(isinstance(self.convention, bool), "convention must be true or false",
             self.convention)
        need(isinstance(self.secret, str), "secret must be a string", "<hidden>")
        need(isinstance(self.web_token, str) and (self.web_token == "" or len(
            self.web_token) >= MIN_TOKEN_CHARS), f"web_token must be '' (a new one per "
             f"start) or at least {MIN_TOKEN_CHARS} characters", "<hidden>")
        need(not self.web_port or self.web_port not in (self.admin_port, self.metrics_port),
             "web_port must differ from admin_port and metrics_port", self.web_port)
        need(isinstance(self.allow_non_loopback, bool),
             "allow_non_loopback must be true or false", self.allow_non_loopback)
        need(not exposed_bind(self.bind_address, self.allow_non_loopback, self.secret),
             "bind_address off loopback exposes Thespian's unpickling port beyond this host: "
             "bind 127.0.0.1, or set allow_non_loopback = true and a secret "
             "(SNAKEPIT_NODE__SECRET)", self.bind_address)
        return p


@dataclass(frozen=True, slots=True)
class NodeFile:
    """A parsed node file: the node and its pools (in file order)."""

    path: str
    node: NodeConfig
    pools: tuple[PoolConfig, ...]

    def pool(self, name: str) -> PoolConfig:
        """The pool ``name``. Raises ConfigError naming the pools that exist."""
        for cfg in self.pools:
            if cfg.name == name:
                return cfg
        raise ConfigError(f"{self.path}: no [pools.{name}]; pools: "
                          f"{[p.name for p in self.pools]}")


def load_node_file(path: str | Path, environ: Mapping[str, str] | None = None) -> NodeFile:
    """Read ``path`` and apply ``environ``'s ``SNAKEPIT_NODE__*`` / ``SNAKEPIT_POOLS__*``
    overrides.

    Raises:
        ConfigError: the file is missing or not TOML, or any key is unknown or invalid; the
            message names every bad key (``details["problems"]`` lists them).
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read node config {str(path)!r}: {exc}") from None
    return parse_node_config(data, str(path), environ or {})


def parse_node_config(data: Mapping[str, Any], origin: str = "<config>",
                      environ: Mapping[str, str] | None = None) -> NodeFile:
    """``load_node_file`` on already-parsed TOML ``data`` (``origin`` names it in errors)."""
    data = _with_env_overrides(data, environ or {})
    problems = [f"unknown table or key {key!r} (expected [node] and [pools.<name>])"
                for key in sorted(set(data) - {"node", "pools"})]
    node = _node(data.get("node", {}), problems)
    pools: list[PoolConfig] = []
    tables = data.get("pools", {})
    if not isinstance(tables, Mapping) or not tables:
        problems.append("at least one [pools.<name>] table is needed, e.g. [pools.default] "
                        "with pool_size and adapter")
    else:
        for name, table in tables.items():
            cfg = _pool(str(name), table, problems)
            if cfg is not None:
                pools.append(cfg)
    if problems:
        raise ConfigError(f"{origin}: " + "; ".join(problems), details={"problems": problems})
    return NodeFile(origin, node, tuple(pools))


def _node(table: Any, problems: list[str]) -> NodeConfig:
    if not isinstance(table, Mapping):
        problems.append(f"node must be a table, got {table!r}")
        return NodeConfig(admin_port=1)
    known = {f.name for f in dataclasses.fields(NodeConfig)}
    for key in sorted(set(table) - known):
        problems.append(unknown_key(f"node.{key}", known, "a node setting"))
    node = NodeConfig(**{k: v for k, v in table.items() if k in known})
    problems.extend(node.problems())
    return node


def _pool(name: str, table: Any, problems: list[str]) -> PoolConfig | None:
    prefix = f"pools.{name}"
    if not isinstance(table, Mapping):
        problems.append(f"{prefix} must be a table, got {table!r}")
        return None
    known = {f.name for f in dataclasses.fields(PoolConfig)} - {"system"}
    bad = sorted(set(table) - known)
    for key in bad:
        problems.append(f"{prefix}.system is not a PoolConfig field (the node owns the actor "
                        f"system: set [node] admin_port instead)" if key == "system"
                        else unknown_key(f"{prefix}.{key}", known, "a PoolConfig field"))
    if "name" in table and table["name"] != name:
        problems.append(f"{prefix}.name must match the table's key {name!r}, got "
                        f"{table['name']!r} (or leave it out)")
    if bad or ("name" in table and table["name"] != name):
        return None
    try:
        return PoolConfig.from_mapping({**table, "name": name})
    except ConfigError as exc:
        for problem in exc.details.get("problems", [str(exc)]):
            problems.append(f"{prefix}.{problem}")
        return None
    except TypeError as exc:
        problems.append(f"{prefix}: {exc}")
        return None


def _with_env_overrides(data: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """A deep copy of ``data`` with ``SNAKEPIT_NODE__KEY`` and ``SNAKEPIT_POOLS__NAME__KEY``
    applied (names lower-cased; values parsed as TOML scalars, else kept as strings)."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    if isinstance(out.get("pools"), dict):
        out["pools"] = {k: (dict(v) if isinstance(v, Mapping) else v)
                        for k, v in out["pools"].items()}
    for var, raw in sorted(environ.items()):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX):].lower().split("__")
        if parts[0] == "node" and len(parts) == 2:
            out.setdefault("node", {})[parts[1]] = _scalar(raw)
        elif parts[0] == "pools" and len(parts) == 3:
            pool = out.setdefault("pools", {}).setdefault(parts[1], {})
            if isinstance(pool, dict):
                pool[parts[2]] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
