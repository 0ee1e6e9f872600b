"""Helpers for multi-host tests: member nodes (``snakepit-actors node``) as real processes.

"Hosts" are actor systems on different admin ports of 127.0.0.1. A member's processes are the
CLI, its actor system (Thespian daemonizes the admin into a session of its own) and everything
below them; killing all of them with SIGKILL at once is what a host dying looks like.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from snakepit_actors.system import free_port
from tests.conftest import describe_process

ROOT = Path(__file__).resolve().parent.parent


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_until(predicate: Any, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def system_tree(cli_pid: int, admin_port: int) -> set[int]:
    """The CLI process, every process of the actor system listening on ``admin_port`` (the
    admin's session) and all their descendants."""
    pids = {cli_pid}
    sid = None
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if (conn.status == psutil.CONN_LISTEN and conn.laddr
                    and conn.laddr.port == admin_port and conn.pid):
                sid = os.getsid(conn.pid)
    if sid is not None:
        for proc in psutil.process_iter(["pid", "status"]):
            with contextlib.suppress(OSError, psutil.Error):
                if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) == sid:
                    pids.add(proc.pid)
    for pid in list(pids):
        with contextlib.suppress(psutil.Error):
            pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    return {pid for pid in pids if alive(pid)}


def terminate(proc: subprocess.Popen[Any], timeout_s: float = 30.0) -> None:
    """SIGTERM ``proc`` (a CLI we started) and wait; SIGKILL it if it takes too long."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def kill_all(pids: set[int]) -> None:
    """SIGKILL every pid at once (all were verified ours just before)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class Member:
    """A member node process: ``snakepit-actors node --leader 127.0.0.1:PORT ...``."""

    def __init__(self, leader_port: int, name: str, *capabilities: str, log_dir: Path,
                 secret: str | None = None, extra: tuple[str, ...] = ()) -> None:
        self.name = name
        self.admin_port = free_port()
        self.log_path = log_dir / f"member-{name}.log"
        argv = [sys.executable, "-m", "snakepit_actors.ops.cli", "--log-format", "json",
                "--log-level", "info", "node", "--leader", f"127.0.0.1:{leader_port}",
                "--admin-port", str(self.admin_port), "--name", name]
        for capability in capabilities:
            argv += ["--capability", capability]
        if secret is not None:
            argv += ["--secret", secret]
        argv += list(extra)
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=cli_env(), start_new_session=True)
        self.started_at = time.monotonic()
        self.known: set[int] = {self.proc.pid}
        self.left_described: list[str] = []

    def tree(self) -> set[int]:
        """Every live process of this member (remembered for the final check)."""
        pids = system_tree(self.proc.pid, self.admin_port)
        self.known |= pids
        return pids

    def kill(self) -> set[int]:
        """The host dies: SIGKILL every process of the member at once."""
        pids = self.tree()
        kill_all(pids)
        assert wait_until(lambda: not any(alive(p) for p in pids), 10.0), "kill -9 failed"
        self.proc.wait(5)
        return pids

    def stop(self) -> list[int]:
        """SIGTERM, wait; the processes of this member still alive afterwards (then killed)."""
        if self.proc.poll() is None:
            self.tree()
            terminate(self.proc)
        self._log.close()
        wait_until(lambda: not any(alive(p) for p in self.known), 5.0)
        left = [p for p in self.known if alive(p)]
        self.left_described = [f"{p} {describe_process(p)}" for p in left]  # for the report
        kill_all(set(left))
        return left

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()
                if line.startswith("{")]
