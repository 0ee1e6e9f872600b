"""What a worker process is, as the host sees it: how to start it (``BridgeSpec``), what it
announced (``ReadyInfo``) and the started process (``BridgeProcess``). Plain data shared by
``processes`` (spawn) and ``fork_server`` (fork); ``processes`` re-exports all three.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any

from snakepit_actors.errors import ConfigError

__all__ = ["BridgeProcess", "BridgeSpec", "ReadyInfo"]


@dataclass(frozen=True, slots=True)
class BridgeSpec:
    """Everything needed to start one worker process.

    Attributes:
        python: the interpreter to run (path or name on PATH).
        adapter: ``"package.module:Class"``.
        adapter_config: JSON object given to ``Adapter(config)``.
        listen: ``"unix:/path/w1.sock"`` or ``"127.0.0.1:0"``.
        worker_id: the worker's id (also ``SNAKEPIT_WORKER_ID`` in its environment).
        run_id: the pool run's id (also ``SNAKEPIT_RUN_ID``); orphan reaping checks it.
        env: extra environment variables, on top of this process's environment.
        log_path: file that receives the process's stdout and stderr (appended).
        capacity: concurrent tool calls the process should serve.
        max_payload_bytes: largest args / result the process accepts or sends.
        parent_pid: the pid the bridge watches; it exits when its parent is not this pid.
        token: the pool's token every call to the process must carry ("" = none).
        launch: what follows ``python`` up to the common flags (``protocols.launch_args``).
        fork_server: the socket of the pool's fork server to fork the process from
            (``tree/fork_server.py``); "" spawns it (``python`` and ``launch`` are then used).

    ``adapter_config`` and ``token`` are secrets: they reach the process on its stdin
    (``secrets``), never on its command line, which every user can read in /proc/PID/cmdline.
    """

    python: str
    adapter: str
    adapter_config: dict[str, Any]
    listen: str
    worker_id: str
    run_id: str
    env: dict[str, str]
    log_path: str
    capacity: int = 1
    max_payload_bytes: int = 64 * 1024 * 1024
    parent_pid: int = field(default_factory=os.getpid)
    token: str = field(default="", repr=False)
    launch: tuple[str, ...] = ("-m", "snakepit_actors.bridge")
    fork_server: str = ""

    def secrets(self) -> bytes:
        """What the process reads on its stdin: ``adapter_config`` and ``token`` as JSON.

        Raises:
            ConfigError: ``adapter_config`` is not JSON-serialisable.
        """
        try:
            return json.dumps({"adapter_config": dict(self.adapter_config), "token": self.token},
                              separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"adapter_config must be JSON-serialisable: {exc}") from None

    def argv(self, ready_fd: int) -> list[str]:
        """The command line of the worker process.

        Args:
            ready_fd: the fd (in the child) the bridge writes its ready line to.

        Secrets are not on it: see ``secrets``.
        """
        return [self.python, *self.launch, "--adapter", self.adapter,
                "--listen", self.listen, "--ready-fd", str(ready_fd),
                "--worker-id", self.worker_id, "--run-id", self.run_id,
                "--parent-pid", str(self.parent_pid), "--secrets-stdin",
                "--capacity", str(self.capacity),
                "--max-payload-bytes", str(self.max_payload_bytes)]


@dataclass(frozen=True, slots=True)
class ReadyInfo:
    """What a worker process announced once it was serving.

    Attributes:
        address: where to dial it: ``"unix:/path"`` or ``"127.0.0.1:PORT"``.
        pid: its process id (as it sees it).
    """

    address: str
    pid: int


@dataclass(slots=True)
class BridgeProcess:
    """A started worker process, as the host sees it. Mutable; owned by one thread.

    Attributes:
        popen: the ``subprocess.Popen``; None for a process forked by the fork server (not our
            child: its exit is seen on ``pidfd`` and its status asked of the fork server).
        pid: its process id; also its process group id (``pgid``).
        pgid: its process group.
        create_time: psutil's create time (with ``pid`` and the run id: identity for reaping).
        ready_fd: the host's end of the ready socket (non-blocking); None once the ready line
            was read (it is then ``beat_fd``) or the process failed.
        log_path: its log file.
        worker_id: its worker id.
        buffer: bytes read from ``ready_fd`` that do not yet end a line.
        ready: the ``ReadyInfo`` once read.
        stopped: ``stop_bridge`` finished.
        lineage: the ``SNAKEPIT_LINEAGE`` its tree inherits (``descendants.py``).
        pidfd: forked only: a pidfd of the process (readable once it exited).
        fork_server: forked only: the socket of the fork server that reaps it.
        returncode: forked only: the exit code once known.
        adopter: forked only: the fork server's pid (the subreaper of the process's tree).
        beat_fd: after the ready line: the same socket, the beat line the bridge answers
            heartbeats on (``bridge/beat_line.py``); None for a process that closed it.
    """

    popen: subprocess.Popen[bytes] | None
    pid: int
    pgid: int
    create_time: float
    ready_fd: int | None
    log_path: str
    worker_id: str
    buffer: bytearray = field(default_factory=bytearray)
    ready: ReadyInfo | None = None
    stopped: bool = False
    lineage: str = ""  # SNAKEPIT_LINEAGE of its tree (descendants.py)
    pidfd: int | None = None
    fork_server: str = ""
    returncode: int | None = None
    adopter: int = 0
    beat_fd: int | None = None


def ready_channel() -> tuple[int, int]:
    """``(host end, child end)`` of a new ready socket: the child writes its ready line on
    it, then answers heartbeats (a socketpair, not a pipe: it goes both ways)."""
    host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return host.detach(), child.detach()
