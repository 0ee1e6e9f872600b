"""Host-side control of worker processes: spawn, ready handshake, exit status, stop.

Used by the Worker actor, which is event-driven and must not block: everything here returns at
once except ``wait_ready`` (tests, benchmarks) and ``stop_bridge`` (bounded by its grace)::

    spawn_bridge(spec) -> BridgeProcess       Popen python -m snakepit_actors.bridge, own session
        ready pipe (non-blocking read end) <-- one JSON line from the bridge
    read_ready(proc)   -> ReadyInfo | None    poll the pipe; None = not yet; raises on failure
    process_exit_code(proc) -> int | None     poll (does not reap)
    stop_bridge(proc)  -> exit code           SIGTERM group, grace, SIGKILL group, reap

The bridge runs in its own session (process group = its pid), so ``stop_bridge`` also ends
whatever the adapter started (``descendants.py``: also what left the group). Its stdout and
stderr go to ``spec.log_path``; the last 2 KB are quoted in start errors. The bridge dies with
the *thread* that spawned it (PR_SET_PDEATHSIG), so spawn from a thread that lives as long as
the worker (an actor's main thread).

This module imports neither grpc nor thespian.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from snakepit_actors.errors import ConfigError, PoolNotReadyError
from snakepit_actors.tree import descendants

__all__ = ["BridgeProcess", "BridgeSpec", "ReadyInfo", "kill_process_group",
           "process_exit_code", "read_ready", "spawn_bridge", "stop_bridge", "wait_ready"]

LOG_TAIL_BYTES = 2048
_REAP_TIMEOUT_S = 5.0


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
        popen: the ``subprocess.Popen``.
        pid: its process id; also its process group id (``pgid``).
        pgid: its process group.
        create_time: psutil's create time (with ``pid`` and the run id: identity for reaping).
        ready_fd: read end of the ready pipe (non-blocking); None once closed.
        log_path: its log file.
        worker_id: its worker id.
        buffer: bytes read from ``ready_fd`` that do not yet end a line.
        ready: the ``ReadyInfo`` once read.
        stopped: ``stop_bridge`` finished.
        lineage: the ``SNAKEPIT_LINEAGE`` its tree inherits (``descendants.py``).
    """

    popen: subprocess.Popen[bytes]
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


def spawn_bridge(spec: BridgeSpec) -> BridgeProcess:
    """Start ``python -m snakepit_actors.bridge`` for ``spec``; returns at once.

    The process gets its own session (process group), stdin from /dev/null, stdout and stderr
    appended to ``spec.log_path``, and the write end of the ready pipe. It is killed when the
    *thread* calling this exits (PR_SET_PDEATHSIG): call it from a thread that outlives the
    worker, not from a short-lived helper thread.

    Args:
        spec: what to start.

    Returns:
        The started process; poll it with ``read_ready``.

    Raises:
        PoolNotReadyError: reason "spawn_failed": the interpreter could not be executed or the
            log file could not be opened (the OSError text is in the message).
        ConfigError: ``spec.adapter_config`` is not JSON-serialisable.
    """
    lineage = descendants.new_lineage()
    env = {**os.environ, **spec.env, "SNAKEPIT_WORKER_ID": spec.worker_id,
           "SNAKEPIT_RUN_ID": spec.run_id, "PYTHONUNBUFFERED": "1",
           descendants.LINEAGE_VAR: lineage}
    ready_r, ready_w = os.pipe()
    log = None
    try:
        argv, secrets = spec.argv(ready_w), spec.secrets()
        os.makedirs(os.path.dirname(os.path.abspath(spec.log_path)), exist_ok=True)
        log = open(spec.log_path, "ab")  # noqa: SIM115  (closed below, once Popen has it)
        popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                 pass_fds=(ready_w,), start_new_session=True, close_fds=True,
                                 env=env)
        _hand_over(popen, secrets)
    except BaseException as exc:
        os.close(ready_r)
        if not isinstance(exc, OSError):
            raise
        raise PoolNotReadyError(
            f"cannot start worker {spec.worker_id}: {exc} (python={spec.python!r}, "
            f"log={spec.log_path!r})", reason="spawn_failed",
            details={"worker_id": spec.worker_id, "python": spec.python,
                     "error": str(exc)}) from None
    finally:
        os.close(ready_w)
        if log is not None:
            log.close()
    os.set_blocking(ready_r, False)
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    return BridgeProcess(popen=popen, pid=popen.pid, pgid=popen.pid, create_time=create_time,
                         ready_fd=ready_r, log_path=spec.log_path, worker_id=spec.worker_id,
                         lineage=lineage)


def _hand_over(popen: subprocess.Popen[bytes], secrets: bytes) -> None:
    """Write the secrets to the process's stdin and close it. Blocks only while they exceed the
    pipe's buffer (64 KiB) and the process has not read them yet; a process that died first
    shows later as one that exited before it was ready."""
    assert popen.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        popen.stdin.write(secrets)
    with contextlib.suppress(BrokenPipeError):
        popen.stdin.close()


def read_ready(proc: BridgeProcess) -> ReadyInfo | None:
    """Read what the ready pipe holds, without blocking.

    Args:
        proc: a process from ``spawn_bridge``.

    Returns:
        ``ReadyInfo`` once the process announced it serves (again on later calls); None while
        its line is incomplete.

    Raises:
        PoolNotReadyError: reason "worker_start_failed": the process reported a start error
            (its type and message are in the message, e.g. "ModuleNotFoundError: No module
            named 'nope'"), wrote something that is not a ready line, or closed the pipe without
            a line (it died). ``details``: worker_id, exit_code, error, log_tail. On failure
            only, this waits up to 0.1 s for the exit code.
    """
    if proc.ready is not None:
        return proc.ready
    eof = _drain(proc)
    line, newline, _ = bytes(proc.buffer).partition(b"\n")
    if not newline and not eof:
        return None
    _close_ready_fd(proc)
    if not newline:
        raise _start_failed(proc, "exited before it was ready", None)
    try:
        msg = json.loads(line)
        if msg.get("ok") is True:
            proc.ready = ReadyInfo(address=str(msg["address"]), pid=int(msg["pid"]))
            return proc.ready
        error = dict(msg["error"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _start_failed(proc, f"wrote an invalid ready line: {line[:200]!r}", None) from None
    raise _start_failed(proc, f"{error.get('type')}: {error.get('message')}", error)


def wait_ready(proc: BridgeProcess, timeout_s: float) -> ReadyInfo:
    """Block until the process is ready (for tests, benchmarks and scripts; not for actors).

    Args:
        proc: a process from ``spawn_bridge``.
        timeout_s: seconds to wait.

    Returns:
        The process's ``ReadyInfo``.

    Raises:
        PoolNotReadyError: reason "worker_start_failed" (see ``read_ready``) or
            "startup_timeout" (the process is left running: stop it with ``stop_bridge``).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        ready = read_ready(proc)
        if ready is not None:
            return ready
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.ready_fd is None:
            raise PoolNotReadyError(
                f"worker {proc.worker_id} (pid {proc.pid}) was not ready after {timeout_s} s; "
                f"log tail:\n{_log_tail(proc.log_path)}", reason="startup_timeout",
                details={"worker_id": proc.worker_id, "timeout_s": timeout_s})
        select.select([proc.ready_fd], [], [], remaining)


def process_exit_code(proc: BridgeProcess) -> int | None:
    """The exit code if the process ended, else None. Never blocks; does not reap.

    Returns:
        None while running; the exit code, or ``-signal`` when a signal killed it (as
        ``Popen.returncode``).
    """
    if proc.popen.returncode is not None:
        return proc.popen.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return proc.popen.poll()
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def kill_process_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``.

    Returns:
        True if delivered; False when the group no longer exists (or is not ours).
    """
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_bridge(proc: BridgeProcess, grace_s: float = 2.0) -> int | None:
    """Stop the process and its group: SIGTERM, up to ``grace_s``, SIGKILL, reap, close fds;
    then SIGKILL every other process its tree left (``descendants.kill_leftovers``).

    Blocks at most ``grace_s`` plus a short reap. Safe to call twice and on a dead process (the
    group still gets a SIGKILL for anything the adapter left behind).

    Args:
        proc: a process from ``spawn_bridge``.
        grace_s: seconds the bridge gets to drain and exit after SIGTERM (0 = SIGKILL at once).

    Returns:
        The exit code (``-signal`` when killed by a signal); None if it could not be reaped.
    """
    if proc.stopped:
        return proc.popen.returncode
    tree = descendants.descendants_of(proc.pid)  # setsid ones too, while the bridge holds them
    if process_exit_code(proc) is None and grace_s > 0:
        kill_process_group(proc.pgid, signal.SIGTERM)
        kill_process_group(proc.pgid, signal.SIGCONT)  # a stopped process handles it too
        _wait_exit(proc, grace_s)
    # Before reaping: an unreaped leader keeps the pgid from being reused by someone else.
    kill_process_group(proc.pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(_REAP_TIMEOUT_S)
    _close_ready_fd(proc)
    descendants.kill_leftovers(tree, proc.lineage, proc.pid)
    proc.stopped = proc.popen.returncode is not None
    return proc.popen.returncode


# --- helpers ---------------------------------------------------------------------------------

def _drain(proc: BridgeProcess) -> bool:
    """Move what the pipe holds into ``proc.buffer``; True at end of file."""
    if proc.ready_fd is None:
        return True
    while True:
        try:
            chunk = os.read(proc.ready_fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        proc.buffer += chunk


def _close_ready_fd(proc: BridgeProcess) -> None:
    if proc.ready_fd is not None:
        with contextlib.suppress(OSError):
            os.close(proc.ready_fd)
        proc.ready_fd = None


def _wait_exit(proc: BridgeProcess, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while (code := process_exit_code(proc)) is None and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.02)
    return code


def _log_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<log unavailable: {exc}>"


def _start_failed(proc: BridgeProcess, what: str,
                  error: dict[str, Any] | None) -> PoolNotReadyError:
    code = _wait_exit(proc, 0.1)
    tail = _log_tail(proc.log_path)
    status = "still running" if code is None else f"exit code {code}"
    message = f"worker {proc.worker_id} (pid {proc.pid}) failed to start: {what} ({status})"
    if error is None:
        message += f"; log tail:\n{tail}"
    return PoolNotReadyError(message, reason="worker_start_failed", details={
        "worker_id": proc.worker_id, "exit_code": code, "error": error or {}, "log_tail": tail})
