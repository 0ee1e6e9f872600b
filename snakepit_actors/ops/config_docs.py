"""The configuration reference (``docs/configuration.md``), generated from the code.

Names, types and defaults come from ``PoolConfig`` / ``NodeConfig`` themselves; the trade-off
of each tunable ("what gets worse lower / higher") from the table in ``PoolConfig``'s docstring;
one line of meaning per field from ``FIELD_HELP`` below (a test fails when a field has none).
Regenerate with ``python scripts/gen_config_reference.py``; ``tests/test_config_docs.py`` fails
when the checked-in file is stale.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from snakepit_actors.config import PoolConfig, SystemConfig
from snakepit_actors.ops.config_file import ENV_PREFIX, NodeConfig

#: What each PoolConfig field means (one line; units in the text).
FIELD_HELP: dict[str, str] = {
    "name": "The pool's name: worker ids (`<name>_worker_<i>`), logs, status. In a node file "
            "it is the `[pools.<name>]` key.",
    "pool_size": "How many worker processes run (each is one external Python process).",
    "adapter": "The adapter class the workers serve, as `package.module:Class`.",
    "adapter_config": "A JSON object given to the adapter's constructor (TOML: a sub-table).",
    "python": "The interpreter that runs the workers (default: the one running the host).",
    "env": "Extra environment variables for the worker processes (str -> str).",
    "startup_timeout": "Seconds a worker (and the whole pool) may take to become ready.",
    "request_timeout": "Default deadline of a request in seconds, queueing included "
                       "(None: none). The caller gets `RequestTimeoutError`; see `cancel_grace_s`.",
    "queue_timeout": "Seconds a request may wait for a free worker before "
                     "`QueueTimeoutError` (None: only its own deadline). Direct path: counted "
                     "from the last time the handle's line of callers moved (docs/asyncio.md).",
    "max_queue": "Requests that may wait; more are refused with `PoolSaturatedError`. Direct "
                 "path: also the callers one handle lets wait beyond its free slots.",
    "heartbeat_interval": "Seconds between health pings of each worker process.",
    "heartbeat_misses": "Missed pings after which a worker is declared unhealthy and replaced.",
    "max_restarts": "Restarts of one worker allowed within `max_seconds` before its slot is "
                    "abandoned (restart intensity).",
    "max_seconds": "The window of the restart intensity, in seconds.",
    "restart_backoff_s": "First delay before restarting a crashed worker; doubles on repeats.",
    "affinity": "Sessions: `hint` (prefer the session's last worker), `strict_queue` (wait "
                "for it) or `strict_fail_fast` (fail if it is busy).",
    "affinity_wait_s": "How long a `hint` request waits for its busy preferred worker.",
    "session_ttl": "Seconds of inactivity after which a session is forgotten.",
    "max_sessions": "How many live sessions the SessionStore keeps; beyond it create_session "
                    "fails with SessionQuotaError.",
    "session_sweep_interval": "Seconds between the SessionStore's expiry sweeps (each ends "
                              "at most one batch of expired sessions).",
    "worker_max_requests": "Recycle a worker's process after this many requests (None: "
                           "never). Drained first; the replacement starts before the old "
                           "process stops. Direct-path requests are counted from usage "
                           "reports (about every second), so a busy worker may serve a few "
                           "more.",
    "worker_ttl": "Recycle a worker's process this many seconds after it became ready "
                  "(None: never). Sampled by the Recycler actor.",
    "worker_memory_mb": "Recycle a worker when the RSS of its process tree exceeds this many "
                        "MiB (None: never). Sampled every heartbeat interval.",
    "capacity": "Concurrent requests per worker process (threads or asyncio in the worker).",
    "prefetch": "Actor path: requests the Pool may send a busy worker ahead, beyond `capacity`, "
                "while others wait (several per message; 0 = none). Unary requests without a "
                "session only, so only with `data_plane=False` (the DataPlane serves those).",
    "data_plane": "Message API: a DataPlane actor leases worker slots from the Pool and makes "
                  "the gRPC calls itself for unary `Execute`s without a session whose sender "
                  "accepts grouped replies (`batch_replies`, as the handle does): 2 actor "
                  "messages per request instead of ~4 (docs/architecture.md, \"The data "
                  "plane\"). False: every request goes through the Pool and Worker actors.",
    "transport": "How workers listen: `unix` sockets in the run directory, or `tcp` on "
                 "127.0.0.1.",
    "max_payload_bytes": "Largest args / result accepted, in bytes "
                         "(`PayloadTooLargeError` beyond).",
    "worker_log_max_bytes": "Cap of each worker's output file (`<run_dir>/<worker_id>.log`, "
                            "its stdout and stderr), in bytes (None: unbounded). Checked every "
                            "heartbeat interval: over the cap, the last `worker_log_max_bytes` "
                            "are kept in `<worker_id>.log.1` and the log starts afresh, so a "
                            "worker uses at most twice the cap on disk once checked.",
    "startup_batch_size": "Workers started at once (0: all at once).",
    "retry_idempotent": "Treat every request as idempotent: re-run once on another worker if "
                        "its worker dies under it.",
    "data_path": "How the Python handle reaches workers: `direct` (leases + gRPC from the "
                 "caller) or `actor` (every request through the actors).",
    "cancel_grace_s": "After a request passes its deadline: how long the worker waits for the "
                      "tool to stop on its own (`ctx.cancelled`) and keeps its warm process; "
                      "a tool still running then has its process recycled (0: at once).",
    "on_system_loss": "What the Python handle does when its actor system (Thespian's admin or "
                      "logger) or its PoolRoot dies: `close` (every call fails with "
                      "`PoolClosedError` for good) or `restart` (calls fail with "
                      "`PoolNotReadyError(reason=\"system_restarting\")` while it starts a "
                      "new system and pool, at most 3 times in 60 s; docs/supervision.md).",
    "placement": "Capabilities a convention member must advertise to run this pool's workers "
                 "(TOML: `placement = { worker_node = true }`); empty: workers run on this "
                 "system. See docs/multihost.md.",
    "placement_timeout": "How long a worker waits for a live member matching `placement` "
                         "before the pool reports it (start-up fails; later: degraded).",
    "node_heartbeat_s": "How often the pool pings each member node that runs its workers.",
    "node_heartbeat_misses": "Missed pings before a member counts as dead: its workers fail "
                             "their requests (`WorkerCrashedError`) and are placed again.",
    "protocol": "What the workers are: `snakepit_actors` (this project's bridge, adapters "
                "`package.module:Class`) or `snakepit` (Snakepit 0.13's own `grpc_server.py`, "
                "adapters `package.module.Class`; see docs/snakepit-compat.md).",
    "python_path": "Protocol `snakepit` only: folders put first on the workers' `sys.path`; "
                   "one must hold Snakepit's `grpc_server.py` (its `priv/python`).",
    "start_method": "How worker processes start: `spawn` (a fresh interpreter each) or "
                    "`forkserver` (forked from one template process per pool that imported "
                    "the bridge, grpc and the adapter's module; Linux only; protocol "
                    "`snakepit` workers are always spawned; docs/scaling.md).",
    "preload": "`forkserver` only: modules the template imports before it forks workers "
               "(shared copy-on-write, e.g. `['numpy']`); each must be fork-safe.",
    "system": "The actor system of a standalone `Pool.start` (not allowed in a node file: "
              "the node owns it).",
}


def _type_name(tp: Any) -> str:
    text = str(tp).replace("typing.", "").replace("collections.abc.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text).replace("NoneType", "None")
    return text.replace("|", "\\|")  # inside a Markdown table


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if f.name == "python":
        return "the host's `sys.executable`"
    if f.name == "start_method":
        return "`'forkserver'` on Linux, else `'spawn'`"
    if isinstance(value, SystemConfig):
        return "loopback, a free admin port"
    return f"`{value!r}`"


def tradeoffs() -> dict[str, str]:
    """field -> "lower / higher" text, from the table in PoolConfig's docstring."""
    doc = PoolConfig.__doc__ or ""
    rows: dict[str, str] = {}
    current = ""
    for line in doc.splitlines():
        match = re.match(r"^\s{4}(\w[\w/]*)\s{2,}(.+?)\s{2,}(.*)$", line)
        if match and not line.strip().startswith("="):
            names, text = match.group(1), match.group(3).strip()
            current = names
            for name in names.split("/"):
                rows[name] = text
        elif current and re.match(r"^\s{30,}\S", line):
            for name in current.split("/"):
                rows[name] += " " + line.strip()
        elif not line.strip() or line.strip().startswith("="):
            current = ""
    return {k: v for k, v in rows.items() if k in {f.name for f in dataclasses.fields(PoolConfig)}}


def _node_help() -> dict[str, str]:
    doc = NodeConfig.__doc__ or ""
    out: dict[str, str] = {}
    key = ""
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        match = re.match(r"^\s{8}(\w+): (.*)$", line)
        if match:
            key = match.group(1)
            out[key] = match.group(2).strip()
        elif key and line.startswith(" " * 12):
            out[key] += " " + line.strip()
    return out


def render_reference() -> str:
    """The whole of ``docs/configuration.md``."""
    hints = typing.get_type_hints(PoolConfig)
    trade = tradeoffs()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_reference.py from snakepit_actors/config.py and "
        "config_file.py; do not edit by hand. -->",
        "",
        "A pool is described by one immutable `PoolConfig` (Python) or one `[pools.<name>]` "
        "table of a node file (`snakepit-actors start --config pool.toml`). Invalid values "
        "raise `ConfigError` naming every bad key, its value and what is allowed.",
        "",
        "```toml",
        "[node]",
        'name = "demo"',
        "admin_port = 27500",
        "",
        "[pools.default]",
        "pool_size = 4",
        'adapter = "snakepit_actors.bridge.showcase:ShowcaseAdapter"',
        "worker_max_requests = 10000",
        "```",
        "",
        f"Environment overrides (one key each, values parsed as TOML scalars): "
        f"`{ENV_PREFIX}NODE__<KEY>` and `{ENV_PREFIX}POOLS__<POOL>__<KEY>`, e.g. "
        f"`{ENV_PREFIX}POOLS__DEFAULT__POOL_SIZE=8`. `PoolConfig.from_env()` reads "
        f"`{ENV_PREFIX}<FIELD>` for a standalone pool. The CLI also reads "
        f"`{ENV_PREFIX}LOG_LEVEL` and `{ENV_PREFIX}LOG_FORMAT`.",
        "",
        "## Pool (`PoolConfig`, `[pools.<name>]`)",
        "",
        "| field | type | default | meaning | lower / higher |",
        "|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(PoolConfig):
        lines.append(f"| `{f.name}` | `{_type_name(hints[f.name])}` | {_default(f)} | "
                     f"{FIELD_HELP.get(f.name, '')} | {trade.get(f.name, '')} |")
    node_hints = typing.get_type_hints(NodeConfig)
    node_help = _node_help()
    lines += ["", "## Node (`[node]`)", "", "| key | type | default | meaning |",
              "|---|---|---|---|"]
    for f in dataclasses.fields(NodeConfig):
        lines.append(f"| `{f.name}` | `{_type_name(node_hints[f.name])}` | {_default(f)} | "
                     f"{node_help.get(f.name, '')} |")
    return "\n".join(lines) + "\n"
