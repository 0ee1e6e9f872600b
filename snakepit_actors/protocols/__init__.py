"""The wire-protocol seam: how the host side speaks to one kind of worker process.

    Worker actor (tree/worker_link.py) ─┐                      ┌─> python -m snakepit_actors.bridge
                                        ├─ WireProtocol ──gRPC─┤       (protocol "snakepit_actors")
    direct path (client/direct*.py) ────┘                      └─> Snakepit's grpc_server.py via
                                                                   snakepit_actors.compat.shim
                                                                   (protocol "snakepit")

A ``WireProtocol`` builds the requests, reads the answers into values or typed
``SnakepitError`` s, and says how the process is launched; the pool, leases, sessions,
timeouts and supervision are the same for every protocol. ``wire_for(name)`` imports the
implementation (and grpc with it) on first use: call it only where grpc may be imported (the
Worker actor's link, the client's data path), never at module import of an actor that forks.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from snakepit_actors.protocols.wire import LIST_HOST_TOOLS, NO_VALUE, Chunk, WireProtocol

__all__ = ["LIST_HOST_TOOLS", "LOST_CALL_GRACE_S", "NO_VALUE", "PROTOCOLS", "Chunk",
           "WireProtocol", "close_lost_channel", "launch_args", "lease_channel_options",
           "wire_for"]

#: The protocols a pool can speak (``PoolConfig.protocol``).
PROTOCOLS: tuple[str, ...] = ("snakepit_actors", "snakepit")

_LOADED: dict[str, WireProtocol] = {}

#: gRPC's message limits get this much more than ``max_payload_bytes`` (the envelope).
CHANNEL_OVERHEAD_BYTES = 1024 * 1024


#: After a lease with a call running on it was revoked (its process is gone or being
#: stopped), how long that call may still end by itself (a SIGTERMed worker gives its calls
#: 2 s) before the lease holder closes the channel under it. A call to a process that was
#: stopped (SIGSTOP) and then killed was seen to wait forever otherwise.
LOST_CALL_GRACE_S = 3.0


def close_lost_channel(channels: dict[str, tuple[int, Any, Any]], endpoint: str,
                       pid: int) -> None:
    """A lease holder's lease on ``endpoint`` (process ``pid``) was revoked while a call ran
    on it: ``LOST_CALL_GRACE_S`` from now, on a timer thread (never blocks), the holder's
    channel to that process (``channels``: endpoint -> (pid, channel, stub)) is closed, which
    ends a call still waiting on it. It is looked up then, not now: the caller that holds the
    lease may not have opened it yet. One already replaced by the next process's is left (that
    replacement closed it)."""
    def close() -> None:
        entry = channels.get(endpoint)
        if entry is not None and entry[0] == pid:
            with contextlib.suppress(Exception):
                entry[1].close()

    timer = threading.Timer(LOST_CALL_GRACE_S, close)
    timer.daemon = True
    timer.start()


def lease_channel_options(max_payload_bytes: int) -> list[tuple[str, int]]:
    """The options of a channel a lease holder (the direct path, the DataPlane) opens to a
    worker process: the pool's payload limit, no proxy, and a connection of its own (gRPC's
    global subchannel pool would hand it the old process's connection, still in reconnect
    backoff after that process died)."""
    limit = max_payload_bytes + CHANNEL_OVERHEAD_BYTES
    return [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit),
            ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]


def wire_for(name: str) -> WireProtocol:
    """The protocol named ``name`` (imports grpc and its stubs on first use).

    Raises:
        ValueError: ``name`` is not one of ``PROTOCOLS`` (``PoolConfig`` validated it).
    """
    wire = _LOADED.get(name)
    if wire is None:
        if name == "snakepit_actors":
            from snakepit_actors.protocols.ours import OurWire

            wire = OurWire()
        elif name == "snakepit":
            from snakepit_actors.protocols.snakepit import SnakepitWire

            wire = SnakepitWire()
        else:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {name!r}")
        _LOADED[name] = wire
    return wire


def launch_args(protocol: str, python_path: Sequence[str], run_dir: str,
                worker_id: str) -> tuple[str, ...]:
    """What follows the interpreter on a worker's command line, before the common flags
    (``--adapter``, ``--listen``, ``--ready-fd``, ...): the module that starts the process and
    the protocol's own flags."""
    if protocol != "snakepit":
        return ("-m", "snakepit_actors.bridge")
    args = ["-m", "snakepit_actors.compat.shim",
            "--files-prefix", os.path.join(run_dir, worker_id)]
    for entry in python_path:
        args += ["--python-path", os.path.abspath(entry)]
    return tuple(args)
