"""What a Worker placed on a member node learns from that node (``member.py`` sets it).

The member node process exports these variables before it starts its actor system, so every
actor Thespian forks there (Workers created by a remote Starter included) inherits them.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

#: Thespian ``globalName`` of the member's own ProcessRegistry (one per member node).
MEMBER_REGISTRY = "snakepit_member_processes"
PROCESS_REGISTRY_ACTOR = "snakepit_actors.tree.process_registry.ProcessRegistry"

RUN_DIR_VAR = "SNAKEPIT_MEMBER_RUN_DIR"
RUN_ID_VAR = "SNAKEPIT_MEMBER_RUN_ID"
WORKER_HOST_VAR = "SNAKEPIT_MEMBER_WORKER_HOST"
ADVERTISE_VAR = "SNAKEPIT_MEMBER_ADVERTISE"


@dataclass(frozen=True, slots=True)
class MemberEnv:
    """A member node as its Workers see it.

    Attributes:
        node: the member's name (its ``snakepit_node`` capability).
        run_dir: the member's private run directory (worker logs).
        run_id: the member's run id in its process table (orphan reaping on that host).
        worker_host: the address worker processes listen on (TCP).
        advertise_host: the address clients are told to connect to ("" = ``worker_host``).
    """

    node: str
    run_dir: str
    run_id: str
    worker_host: str = "127.0.0.1"
    advertise_host: str = ""

    @classmethod
    def from_environ(cls, node: str, environ: Mapping[str, str] | None = None) -> MemberEnv:
        """Read the variables ``member.py`` exported (defaults if this system was not started
        by ``snakepit-actors node``: a fresh temporary run dir, loopback)."""
        env = os.environ if environ is None else environ
        run_dir = env.get(RUN_DIR_VAR) or tempfile.mkdtemp(prefix="sp-member-")
        return cls(node, run_dir, env.get(RUN_ID_VAR) or uuid.uuid4().hex[:12],
                   env.get(WORKER_HOST_VAR) or "127.0.0.1", env.get(ADVERTISE_VAR, ""))

    def exports(self) -> dict[str, str]:
        """The variables to set for ``from_environ`` (node name excepted)."""
        return {RUN_DIR_VAR: self.run_dir, RUN_ID_VAR: self.run_id,
                WORKER_HOST_VAR: self.worker_host, ADVERTISE_VAR: self.advertise_host}

    def advertise(self, address: str) -> str:
        """``address`` ("host:port" the process bound) as clients should dial it."""
        if not self.advertise_host:
            return address
        _host, _, port = address.rpartition(":")
        return f"{self.advertise_host}:{port}"
