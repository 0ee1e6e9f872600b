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
from typing import Any

import psutil

from snakepit_actors.errors import PoolNotReadyError
from snakepit_actors.tree import descendants, fork_server
from snakepit_actors.tree.bridge_process import BridgeProcess, BridgeSpec, ReadyInfo, ready_channel

__all__ = ["BridgeProcess", "BridgeSpec", "ReadyInfo", "kill_process_group",
           "process_exit_code", "read_ready", "spawn_bridge", "stop_bridge", "wait_ready"]

LOG_TAIL_BYTES = 2048
_REAP_TIMEOUT_S = 5.0


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
        ConfigError: ``spec.adapter_config`` is not JSON-serialisable, or (``fork_server``)
            the fork server refuses to fork a non-fork-safe adapter.

    With ``spec.fork_server`` set, the process is forked by the pool's fork server instead
    (``fork_server.fork_bridge``: blocks for the fork itself, milliseconds) and is not our child.
    """
    if spec.fork_server:
        return fork_server.fork_bridge(spec)
    lineage = descendants.new_lineage()
    env = {**os.environ, **spec.env, "SNAKEPIT_WORKER_ID": spec.worker_id,
           "SNAKEPIT_RUN_ID": spec.run_id, "PYTHONUNBUFFERED": "1",
           descendants.LINEAGE_VAR: lineage}
    ready_r, ready_w = ready_channel()
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
    fd, proc.ready_fd = proc.ready_fd, None
    if not newline:
        _close(fd)
        raise _start_failed(proc, "exited before it was ready", None)
    try:
        msg = json.loads(line)
        if msg.get("ok") is True:
            proc.ready = ReadyInfo(address=str(msg["address"]), pid=int(msg["pid"]))
            proc.beat_fd, fd = fd, None  # the bridge answers heartbeats on it from now on
            return proc.ready
        error = dict(msg["error"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _start_failed(proc, f"wrote an invalid ready line: {line[:200]!r}", None) from None
    finally:
        _close(fd)
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
    if proc.popen is None:
        return _forked_exit_code(proc)
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
        return _returncode(proc)
    tree = descendants.descendants_of(proc.pid)  # setsid ones too, while the bridge holds them
    if process_exit_code(proc) is None and grace_s > 0:
        kill_process_group(proc.pgid, signal.SIGTERM)
        kill_process_group(proc.pgid, signal.SIGCONT)  # a stopped process handles it too
        _wait_exit(proc, grace_s)
    # Before reaping: an unreaped leader keeps the pgid from being reused by someone else.
    kill_process_group(proc.pgid, signal.SIGKILL)
    _reap(proc)
    _close_ready_fd(proc)
    descendants.kill_leftovers(tree, proc.lineage, proc.pid, proc.adopter)
    proc.stopped = _returncode(proc) is not None
    return _returncode(proc)


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


def _returncode(proc: BridgeProcess) -> int | None:
    return proc.returncode if proc.popen is None else proc.popen.returncode


def _reap(proc: BridgeProcess) -> None:
    """Wait (bounded) for the killed process: reap our child, or see a forked one exit."""
    if proc.popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(_REAP_TIMEOUT_S)
        return
    if proc.pidfd is not None:  # it may not lead its group yet (setsid after the fork); by
        with contextlib.suppress(OSError):  # pidfd: never a pid reused after its reaping
            signal.pidfd_send_signal(proc.pidfd, signal.SIGKILL)
    _wait_exit(proc, _REAP_TIMEOUT_S)
    if proc.pidfd is not None:
        with contextlib.suppress(OSError):
            os.close(proc.pidfd)
        proc.pidfd = None


def _forked_exit_code(proc: BridgeProcess) -> int | None:
    """A forked process's exit code: None while its pidfd is not readable; then what its fork
    server reaped (``fork_server.UNKNOWN_EXIT_CODE`` if the fork server is gone)."""
    if proc.returncode is not None:
        return proc.returncode
    if proc.pidfd is not None:
        if not select.select([proc.pidfd], [], [], 0)[0]:
            return None
    elif psutil.pid_exists(proc.pid):
        return None
    proc.returncode = fork_server.exit_status(proc.fork_server, proc.pid)
    return proc.returncode


def _close_ready_fd(proc: BridgeProcess) -> None:
    """Close the ready socket, whichever use it is in (ready line or beat line)."""
    _close(proc.ready_fd)
    _close(proc.beat_fd)
    proc.ready_fd = proc.beat_fd = None


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


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
