"""The host side of the fork server (``bridge/fork_server.py``): start one per pool run, fork
worker processes from it, ask it how they ended.

    WorkerSupervisor ── ForkServer.start ──> python -m snakepit_actors.bridge.fork_server
        │ binds <run_dir>/fork-server.sock (0600) and hands the listening fd over
        │ wait_ready: blocks until the template imported (bounded by startup_timeout)
        │ alive() on a timer: a dead one is replaced (its socket file too)
    Worker ── processes.spawn_bridge(spec, fork_server=path) ── fork_bridge ──> {"pid": N}
        fds [ready pipe write end, log file]     the reply comes once the template forked
    processes.process_exit_code ── exit_status(path, pid) ──> what the template reaped

The fork server dies with the WorkerSupervisor (PR_SET_PDEATHSIG and a pidfd of its pid). Its
forked workers are not its to take along: each watches its own Worker actor. This module
imports neither grpc nor thespian.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import psutil

from snakepit_actors.bridge.fork_wire import recv_message, send_message
from snakepit_actors.config import PoolConfig
from snakepit_actors.errors import ConfigError, PoolNotReadyError, SnakepitError
from snakepit_actors.tree import descendants
from snakepit_actors.tree.bridge_process import BridgeProcess, BridgeSpec, ready_channel

__all__ = ["FORK_TIMEOUT_S", "SOCKET_NAME", "UNKNOWN_EXIT_CODE", "ForkServer", "exit_status",
           "fork_bridge", "socket_path", "wanted"]

#: The fork server's socket, in the pool's run directory.
SOCKET_NAME = "fork-server.sock"
#: Its log (stdout and stderr), in the run directory.
LOG_NAME = "fork-server.out"  # not "*.log": those are relayed as worker output
#: Seconds a Worker waits for the reply to its fork request (the fork takes milliseconds;
#: requests of many workers are served one after the other).
FORK_TIMEOUT_S = 10.0
#: The exit code reported for a forked worker whose fork server is gone (nobody kept it).
UNKNOWN_EXIT_CODE = -256
_STATUS_TIMEOUT_S = 1.0


def wanted(cfg: PoolConfig) -> bool:
    """Whether the pool's workers are forked: ``start_method="forkserver"``, this project's
    bridge (protocol "snakepit" runs Snakepit's own script: spawned) and no ``placement``
    (workers on member nodes are spawned there)."""
    return (cfg.start_method == "forkserver" and cfg.protocol == "snakepit_actors"
            and not cfg.placement)


def socket_path(run_dir: str) -> str:
    """Where the fork server of the pool run with ``run_dir`` listens."""
    return os.path.join(run_dir, SOCKET_NAME)


@dataclass(slots=True)
class ForkServer:
    """A running fork server, as its owner (the WorkerSupervisor) holds it.

    Attributes:
        popen: the template process.
        path: its socket.
        create_time: psutil's create time (for the ProcessRegistry row).
    """

    popen: subprocess.Popen[bytes]
    path: str
    create_time: float

    @classmethod
    def start(cls, cfg: PoolConfig, run_id: str, run_dir: str) -> ForkServer:
        """Bind the socket and start the template; returns at once (see ``wait_ready``).

        The template runs ``cfg.python`` with this process's environment plus ``cfg.env``
        (what every worker shares; per-worker variables are set in each fork) and dies with
        the calling thread (PR_SET_PDEATHSIG): call it from an actor's main thread.

        Raises:
            PoolNotReadyError: reason "spawn_failed": the socket or the process could not be
                made.
        """
        path = socket_path(run_dir)
        env = {**os.environ, **cfg.env, "SNAKEPIT_RUN_ID": run_id, "PYTHONUNBUFFERED": "1",
               "GRPC_ENABLE_FORK_SUPPORT": "1"}
        env.pop(descendants.LINEAGE_VAR, None)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            listener.bind(path)
            os.chmod(path, 0o600)
            listener.listen(max(128, 2 * cfg.pool_size))
            argv = [cfg.python, "-m", "snakepit_actors.bridge.fork_server", "--listen-fd",
                    str(listener.fileno()), "--run-id", run_id, "--adapter", cfg.adapter,
                    "--parent-pid", str(os.getpid())]
            for module in cfg.preload:
                argv += ["--preload", module]
            with open(os.path.join(run_dir, LOG_NAME), "ab") as log:
                popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         pass_fds=(listener.fileno(),), start_new_session=True,
                                         close_fds=True, env=env)
        except OSError as exc:
            raise PoolNotReadyError(
                f"cannot start the fork server of pool {cfg.name!r}: {exc} (python="
                f"{cfg.python!r}, socket={path!r})", reason="spawn_failed",
                details={"error": str(exc), "socket": path}) from None
        finally:
            listener.close()
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.Error:
            create_time = 0.0
        return cls(popen=popen, path=path, create_time=create_time)

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the template has imported and answers (or ``timeout_s``). Returns
        whether it answered; a refusal (not fork-safe) still counts as an answer."""
        try:
            _request(self.path, {"op": "status", "pid": 0}, (), timeout_s)
        except (OSError, EOFError, ValueError):
            return False
        return True

    def alive(self) -> bool:
        """Whether the template still runs (reaps it if not; never blocks)."""
        return self.popen.poll() is None

    def stop(self, grace_s: float = 1.0) -> None:
        """SIGTERM, up to ``grace_s``, SIGKILL, reap; remove the socket file. Its forked workers
        are left alone (their Worker actors stop them)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(grace_s)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def fork_bridge(spec: BridgeSpec, timeout_s: float = FORK_TIMEOUT_S) -> BridgeProcess:
    """Have the fork server at ``spec.fork_server`` fork the worker process of ``spec``.

    Blocks until the fork server replies (it forks at once; under a start-up burst it serves
    requests one after the other), at most ``timeout_s``. The ready line then comes on
    ``ready_fd``, as from a spawned process.

    Raises:
        PoolNotReadyError: reason "fork_server_unavailable": no fork server answered (it died:
            its owner starts a new one; the Worker's restart retries), or "spawn_failed".
        ConfigError: the adapter is not fork-safe (the message names the module), or its
            config is not JSON-serialisable.
    """
    lineage = descendants.new_lineage()
    env = {**spec.env, "SNAKEPIT_WORKER_ID": spec.worker_id, "SNAKEPIT_RUN_ID": spec.run_id,
           descendants.LINEAGE_VAR: lineage}
    secrets = json.loads(spec.secrets())
    request = {"op": "fork", "spec": {
        "adapter": spec.adapter, "listen": spec.listen, "worker_id": spec.worker_id,
        "run_id": spec.run_id, "parent_pid": spec.parent_pid, "capacity": spec.capacity,
        "max_payload_bytes": spec.max_payload_bytes, "env": env,
        "adapter_config": secrets["adapter_config"], "token": secrets["token"]}}
    ready_r, ready_w = ready_channel()
    log_fd = -1
    try:
        os.makedirs(os.path.dirname(os.path.abspath(spec.log_path)), exist_ok=True)
        log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        reply = _request(spec.fork_server, request, (ready_w, log_fd), timeout_s)
        pid = _pid(reply, spec)
        adopter = int(reply.get("server_pid", 0))
    except BaseException as exc:
        os.close(ready_r)
        if isinstance(exc, OSError | EOFError | ValueError) and not isinstance(
                exc, SnakepitError):
            raise PoolNotReadyError(
                f"cannot start worker {spec.worker_id}: the fork server at "
                f"{spec.fork_server!r} did not answer ({type(exc).__name__}: {exc}); a new "
                f"one is started", reason="fork_server_unavailable",
                details={"worker_id": spec.worker_id, "error": str(exc)}) from None
        raise
    finally:
        os.close(ready_w)
        if log_fd >= 0:
            os.close(log_fd)
    os.set_blocking(ready_r, False)
    pidfd: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        create_time = 0.0
    return BridgeProcess(popen=None, pid=pid, pgid=pid, create_time=create_time,
                         ready_fd=ready_r, log_path=spec.log_path, worker_id=spec.worker_id,
                         lineage=lineage, pidfd=pidfd, fork_server=spec.fork_server,
                         adopter=adopter)


def exit_status(path: str, pid: int) -> int:
    """The exit code (``-signal`` when killed) the fork server at ``path`` reaped for ``pid``;
    ``UNKNOWN_EXIT_CODE`` when it does not know (it is gone, or restarted since). Asks up to
    three times, 20 ms apart: the exit may be seen on the pidfd a moment before the fork server
    can reap it. Blocks at most about a second."""
    for attempt in range(3):
        try:
            reply = _request(path, {"op": "status", "pid": pid}, (), _STATUS_TIMEOUT_S)
        except (OSError, EOFError, ValueError):
            return UNKNOWN_EXIT_CODE
        code = reply.get("exit_code")
        if isinstance(code, int):
            return code
        if attempt < 2:
            time.sleep(0.02)
    return UNKNOWN_EXIT_CODE


def _pid(reply: dict[str, Any], spec: BridgeSpec) -> int:
    error = reply.get("error")
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        if error.get("type") == "ConfigError":
            raise ConfigError(f"cannot fork worker {spec.worker_id}: {message}",
                              details={"worker_id": spec.worker_id, "adapter": spec.adapter})
        raise PoolNotReadyError(
            f"cannot start worker {spec.worker_id}: the fork server failed: "
            f"{error.get('type')}: {message}", reason="spawn_failed",
            details={"worker_id": spec.worker_id, "error": message})
    pid = reply.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"invalid fork server reply {reply!r}")
    return pid


def _request(path: str, payload: dict[str, Any], fds: tuple[int, ...],
             timeout_s: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(path)
        send_message(sock, payload, fds)
        reply, _ = recv_message(sock)
        return reply
