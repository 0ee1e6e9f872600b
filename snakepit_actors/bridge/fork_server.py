"""The fork server: one template process per pool run that forks the pool's worker processes.

Started by the WorkerSupervisor (``tree/fork_server.py``) with ``PoolConfig(start_method=
"forkserver")`` as ``python -m snakepit_actors.bridge.fork_server --listen-fd N --run-id RUN
--adapter pkg.mod:Class [--preload mod ...] --parent-pid P``, its unix socket (mode 0600, in the
run directory) already bound and listening on fd N. Never imports thespian. The steps::

    1. die with the parent   PR_SET_PDEATHSIG(SIGKILL), and a pidfd of --parent-pid; become
                             the subreaper of the workers' trees (their orphans come here)
    2. import                grpc, the bridge's server code, the adapter's module, each
                             --preload module; no gRPC object is created (a channel or server
                             would start threads that the forked children cannot use)
    3. check fork safety     a Python thread alive after an import: every fork request is
                             refused with a ConfigError naming the module ("use spawn")
    4. serve, one request per connection (``fork_wire``):
         {"op": "fork", "spec": {...}} + fds [ready pipe, log file] -> {"pid": N}
         {"op": "status", "pid": N} -> {"exit_code": code | null, "known": bool}
    5. reap                  SIGCHLD: waitpid every exited child; keep the last 4096 statuses

Before the first fork it calls ``gc.freeze()``: the objects it imported are never touched by the
children's garbage collector, so their pages stay shared (copy-on-write).

A forked child: new session (pgid = pid), stdin /dev/null, stdout and stderr to its log file,
the request's environment, then ``bridge.__main__.serve`` exactly as a spawned worker (same
ready line, same adapter and gRPC server code). It watches the Worker actor's pid (a pidfd: it is
not its parent) and exits (code 5) when that is gone. It does not die with the fork server: a
fork server that dies leaves its running workers serving; the next start gets a new one.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # first thing when run; importing this module has no side effect
    from snakepit_actors.bridge.__main__ import _die_with_parent

    _die_with_parent()

import argparse
import collections
import contextlib
import ctypes
import gc
import importlib
import json
import os
import select
import signal
import socket
import threading
import time
import traceback
from typing import Any, NoReturn

from snakepit_actors.bridge.fork_wire import recv_message, send_message

#: Exit statuses kept for ``status`` requests (the oldest are forgotten first).
MAX_STATUSES = 4096
#: Seconds one client may take to send its request or read the reply.
CONNECTION_TIMEOUT_S = 5.0
EXIT_PARENT_GONE = 4
EXIT_PARENT_DIED = 5
EXIT_START_FAILED = 3
_PR_SET_CHILD_SUBREAPER = 36


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m snakepit_actors.bridge.fork_server",
                                description="Fork a pool's worker processes from one template.")
    p.add_argument("--listen-fd", type=int, required=True, help="a listening unix socket")
    p.add_argument("--run-id", required=True)
    p.add_argument("--adapter", required=True, help="package.module:Class")
    p.add_argument("--preload", action="append", default=[], help="a module to import first")
    p.add_argument("--parent-pid", type=int, required=True)
    return p.parse_args(argv)


def _log(event: str, **fields: Any) -> None:
    record = {"event": event, "pid": os.getpid(), "ts": round(time.time(), 3), **fields}
    sys.stderr.write(json.dumps(record, default=str) + "\n")
    sys.stderr.flush()


def import_template(adapter: str, preload: list[str]) -> str:
    """Import what every worker shares; return why forking is refused ("" = it is not).

    An adapter module that fails to import is not refused here: each forked worker imports it
    again and reports the error on its ready line, as a spawned one does.
    """
    importlib.import_module("snakepit_actors.bridge.listener")  # grpc and the server code
    from snakepit_actors.bridge import tracing

    tracing.preload()  # the trace interceptor's imports (when opentelemetry is installed)
    for lazy in ("grpc._server", "grpc._interceptor"):  # what grpc.server() imports on first use
        with contextlib.suppress(ImportError):
            importlib.import_module(lazy)
    problem = _threads_problem("grpc and snakepit_actors.bridge")
    modules = [adapter.partition(":")[0], *preload]
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            _log("fork_server.import_failed", module=module, error=f"{type(exc).__name__}: {exc}")
            continue
        problem = problem or _threads_problem(module)
    native = len(os.listdir("/proc/self/task")) - threading.active_count()
    if native > 0:
        _log("fork_server.native_threads", count=native, note="threads started by C code "
             "(e.g. BLAS pools) are not copied into the children; the library must be fork-aware")
    return problem


def _threads_problem(module: str) -> str:
    if threading.active_count() <= 1:
        return ""
    names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    return (f"the adapter's module or a preload module is not fork-safe: importing {module!r} "
            f"left Python threads running ({', '.join(names)}), and a process forked from a "
            f"threaded one can deadlock; use start_method='spawn' for this adapter (or start "
            f"the threads inside the adapter, not at import)")


class Template:
    """The fork server's state: its socket, what it reaped, why it refuses (if it does)."""

    def __init__(self, listen: socket.socket, parent_pidfd: int, refused: str) -> None:
        self.listen = listen
        self.parent_pidfd = parent_pidfd
        self.refused = refused
        self.statuses: collections.OrderedDict[int, int] = collections.OrderedDict()
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def serve(self) -> int:
        """Serve until the parent is gone or SIGTERM; returns the exit code."""
        signal.set_wakeup_fd(self.wake_w)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: None)
        listen = self.listen.fileno()
        while True:
            ready, _, _ = select.select([listen, self.wake_r, self.parent_pidfd], [], [])
            if self.parent_pidfd in ready:
                return 0
            if self.wake_r in ready:
                signals = _drain(self.wake_r)
                self.reap()
                if signal.SIGTERM in signals or signal.SIGINT in signals:
                    return 0
            if listen in ready:
                self.accept()

    def reap(self) -> None:
        """Collect every exited child's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.statuses[pid] = os.waitstatus_to_exitcode(status)
            while len(self.statuses) > MAX_STATUSES:
                self.statuses.popitem(last=False)

    def accept(self) -> None:
        """One connection: read the request, answer it, close."""
        try:
            conn, _ = self.listen.accept()
        except (BlockingIOError, InterruptedError):
            return
        fds: list[int] = []
        with conn:
            try:
                conn.settimeout(CONNECTION_TIMEOUT_S)
                request, fds = recv_message(conn, max_fds=2)
                reply = self.answer(request, fds, conn)
                send_message(conn, reply)
            except (OSError, EOFError, ValueError) as exc:
                _log("fork_server.request_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def answer(self, request: dict[str, Any], fds: list[int],
               conn: socket.socket) -> dict[str, Any]:
        if request.get("op") == "status":
            pid = int(request.get("pid", 0))
            self.reap()
            return {"exit_code": self.statuses.get(pid), "known": pid in self.statuses}
        if request.get("op") != "fork":
            return _error("ValueError", f"unknown fork server op {request.get('op')!r}")
        if self.refused:
            return _error("ConfigError", self.refused)
        if len(fds) != 2:
            return _error("ValueError", f"a fork request carries 2 fds, got {len(fds)}")
        spec = request.get("spec")
        if not isinstance(spec, dict):
            return _error("ValueError", "a fork request carries a 'spec' object")
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            return _error("OSError", f"fork failed: {exc}")
        if pid == 0:
            self._child(spec, fds, conn)
        self.children.add(pid)
        return {"pid": pid, "server_pid": os.getpid()}

    def _child(self, spec: dict[str, Any], fds: list[int], conn: socket.socket) -> NoReturn:
        """In the forked child: become the worker. Never returns."""
        code = EXIT_START_FAILED
        try:
            ready_fd, log_fd = fds
            os.setsid()
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for fd in (conn.detach(), self.listen.detach(), self.wake_r, self.wake_w,
                       self.parent_pidfd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            for fd in (devnull, log_fd):
                os.close(fd)
            os.environ.update({str(k): str(v) for k, v in dict(spec["env"]).items()})
            code = run_forked(spec, ready_fd)
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def run_forked(spec: dict[str, Any], ready_fd: int) -> int:
    """The worker, in a forked child whose stdio and environment are set: watch the Worker
    actor's pid, then serve as a spawned worker does. Returns the exit code."""
    from snakepit_actors.bridge.__main__ import serve

    args = argparse.Namespace(
        adapter=str(spec["adapter"]), listen=str(spec["listen"]), ready_fd=ready_fd,
        worker_id=str(spec["worker_id"]), run_id=str(spec["run_id"]),
        parent_pid=int(spec["parent_pid"]), capacity=int(spec["capacity"]),
        max_payload_bytes=int(spec["max_payload_bytes"]))
    try:
        parent = os.pidfd_open(args.parent_pid)
    except OSError:
        return EXIT_PARENT_GONE
    socket_paths: list[str] = []
    threading.Thread(target=_watch_pidfd, args=(parent, socket_paths),
                     name="bridge-parent-watch", daemon=True).start()
    secrets = (json.dumps(spec.get("adapter_config", {})), str(spec.get("token", "")))
    return serve(args, socket_paths, secrets)


def _watch_pidfd(pidfd: int, on_exit: list[str]) -> None:
    """Exit the process (code 5) the moment the process behind ``pidfd`` is gone."""
    select.select([pidfd], [], [])
    for path in on_exit:
        with contextlib.suppress(OSError):
            os.unlink(path)
    os._exit(EXIT_PARENT_DIED)


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _drain(fd: int) -> set[int]:
    signals: set[int] = set()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            signals.update(chunk)
    return signals


def _become_subreaper() -> None:
    """Orphans of a forked worker's tree reparent here (the Worker's stop finds them by their
    lineage among our children and kills them; we reap them)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    """Run the fork server; see the module docstring. Returns the exit code."""
    args = _parse_args(argv)
    _become_subreaper()
    try:
        parent_pidfd = os.pidfd_open(args.parent_pid)
    except OSError:
        return EXIT_PARENT_GONE
    listen = socket.socket(fileno=args.listen_fd)
    listen.setblocking(False)
    started = time.monotonic()
    refused = import_template(args.adapter, list(args.preload))
    gc.freeze()  # what the template allocated stays out of the children's collections: shared
    if refused:
        _log("fork_server.refused", reason=refused)
    _log("fork_server.ready", run_id=args.run_id, adapter=args.adapter, preload=args.preload,
         import_ms=round((time.monotonic() - started) * 1000, 1))
    return Template(listen, parent_pidfd, refused).serve()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
