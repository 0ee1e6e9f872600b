"""Entry point of a worker process: ``python -m snakepit_actors.bridge --adapter pkg.mod:Cls``.

Started by ``snakepit_actors.tree.processes.spawn_bridge`` (the Worker actor); never imports
thespian. The steps, in order::

    1. die with the parent   PR_SET_PDEATHSIG(SIGKILL); exit if the parent is already gone;
                             a watchdog thread exits when getppid() changes (every 0.2 s)
    2. load the adapter      with --secrets-stdin, read adapter_config and the pool's token
                             from stdin (a pipe the host writes and closes: never argv);
                             import pkg.mod, Class(adapter_config), setup()
    3. bind                  unix socket (mode 0600) or HOST:PORT (port 0 -> real port)
    4. announce              ONE JSON line on --ready-fd, then close it (a socket: keep it,
                             to answer heartbeats on it, ``beat_line``):
                               {"ok": true, "address": ..., "pid": N}
                             or, if 2 or 3 failed, {"ok": false, "error": {type, message,
                             traceback}} and exit code 3 (a broken adapter fails fast)
    5. serve                 until SIGTERM/SIGINT: stop(grace 2 s), adapter.close(), exit 0

Exit codes: 0 after SIGTERM, 3 start failure, 4 parent already gone, 5 parent died (watchdog).
Logs go to stderr (the host points it at the worker's log file).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
EXIT_START_FAILED = 3
EXIT_PARENT_GONE = 4
EXIT_PARENT_DIED = 5
_MAX_TRACEBACK_CHARS = 3000
_PIPE_BUF = 4096  # a ready line shorter than this is written atomically


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the parent (thread) dies; a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":  # first thing when run; importing this module has no side effect
    _die_with_parent()

import argparse  # noqa: E402  (after prctl: nothing may delay it)
import contextlib  # noqa: E402
import faulthandler  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import select  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

from . import beat_line  # noqa: E402

#: How long in-flight calls may finish after SIGTERM before they are cancelled.
STOP_GRACE_S = 2.0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m snakepit_actors.bridge",
                                description="Serve one adapter over gRPC (a pool worker).")
    p.add_argument("--adapter", required=True, help="package.module:Class")
    p.add_argument("--listen", required=True, help="unix:PATH or HOST:PORT (port 0 = any)")
    p.add_argument("--ready-fd", type=int, required=True, help="fd for the one ready line")
    p.add_argument("--worker-id", default="")
    p.add_argument("--run-id", default="")
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--adapter-config", default="{}", help="a JSON object (visible to every "
                   "user in /proc/PID/cmdline: prefer --secrets-stdin)")
    p.add_argument("--secrets-stdin", action="store_true",
                   help='read {"adapter_config": {...}, "token": "..."} from stdin (until EOF)')
    p.add_argument("--capacity", type=int, default=1)
    p.add_argument("--max-payload-bytes", type=int, default=64 * 1024 * 1024)
    return p.parse_args(argv)


def _log(event: str, **fields: Any) -> None:
    record = {"event": event, "pid": os.getpid(), "ts": round(time.time(), 3), **fields}
    sys.stderr.write(json.dumps(record, default=str) + "\n")
    sys.stderr.flush()


def _watch_parent(parent_pid: int, on_exit: list[str]) -> None:
    """Exit the process (code 5) as soon as the parent is gone; polls every 0.2 s."""
    while True:
        time.sleep(0.2)
        if os.getppid() != parent_pid:
            for path in on_exit:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            os._exit(EXIT_PARENT_DIED)


def _short_traceback(exc: BaseException) -> str:
    """The innermost frames and a shortened exception line (the log keeps the full text)."""
    tbe = traceback.TracebackException.from_exception(exc)
    stack = "".join(tbe.stack.format())[-_MAX_TRACEBACK_CHARS:]
    last = "".join(tbe.format_exception_only())
    if len(last) > 500:
        last = last[:500] + "...\n"
    return "Traceback (most recent call last):\n" + stack + last


def _announce(fd: int, payload: dict[str, Any], keep: bool = False) -> None:
    """Write one JSON line to ``fd`` with a single write, then close it (unless ``keep``: the
    beat line goes on)."""
    line = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
    error = payload.get("error")
    while len(line) >= _PIPE_BUF and isinstance(error, dict) and error.get("traceback"):
        error["traceback"] = error["traceback"][len(error["traceback"]) // 2 + 1:]
        line = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        os.write(fd, line)
    except OSError as exc:
        _log("bridge.ready_write_failed", error=str(exc))
        keep = False
    if not keep:
        with contextlib.suppress(OSError):
            os.close(fd)


def _load_adapter(spec: str, config_json: str) -> Any:
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"--adapter must look like 'package.module:Class', got {spec!r}")
    config = json.loads(config_json)
    if not isinstance(config, dict):
        raise ValueError(f"--adapter-config must be a JSON object, got {config_json[:80]!r}")
    from .adapter import BaseAdapter

    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, BaseAdapter)):
        raise TypeError(f"--adapter {spec!r} must name a subclass of "
                        f"snakepit_actors.bridge.BaseAdapter, got {obj!r}")
    adapter = obj(config)
    setup = getattr(adapter, "setup", None)
    if callable(setup):
        setup()
    return adapter


def _secrets(args: argparse.Namespace) -> tuple[str, str]:
    """The adapter config (JSON text) and the pool's token: from stdin with --secrets-stdin,
    else ``--adapter-config`` and no token."""
    if not args.secrets_stdin:
        return args.adapter_config, ""
    secrets = json.loads(sys.stdin.buffer.read() or b"{}")
    devnull = os.open(os.devnull, os.O_RDONLY)  # the pipe is spent: stdin is /dev/null again
    os.dup2(devnull, 0)
    os.close(devnull)
    if not isinstance(secrets, dict):
        raise ValueError("--secrets-stdin expects a JSON object on stdin, got "
                         f"{type(secrets).__name__}")
    return json.dumps(secrets.get("adapter_config", {})), str(secrets.get("token", ""))


def main(argv: list[str] | None = None) -> int:
    """Run the worker process; see the module docstring. Returns the exit code."""
    args = _parse_args(argv)
    if os.getppid() != args.parent_pid:
        return EXIT_PARENT_GONE
    socket_paths: list[str] = []
    threading.Thread(target=_watch_parent, args=(args.parent_pid, socket_paths),
                     name="bridge-parent-watch", daemon=True).start()
    return serve(args, socket_paths)


def serve(args: argparse.Namespace, socket_paths: list[str],
          secrets: tuple[str, str] | None = None) -> int:
    """Steps 2 to 5 of the module docstring: load the adapter, bind, announce, serve until
    SIGTERM. Shared by a spawned worker (``main``) and a forked one (``fork_server``).

    Args:
        args: the parsed command line (a forked worker builds the same namespace).
        socket_paths: filled with the unix socket bound, for the parent watch to unlink.
        secrets: ``(adapter_config JSON, token)``; None reads them as ``_secrets`` does.

    Returns:
        The exit code (0 after SIGTERM, ``EXIT_START_FAILED``).
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: stacks to the log
    os.set_inheritable(args.ready_fd, False)  # no grandchild may hold the ready pipe open
    started = time.monotonic()
    try:
        from .listener import BridgeServer

        config_json, token = _secrets(args) if secrets is None else secrets
        adapter = _load_adapter(args.adapter, config_json)
        server = BridgeServer(adapter, worker_id=args.worker_id, capacity=max(1, args.capacity),
                              max_payload_bytes=args.max_payload_bytes,
                              host_tools=os.environ.get("SNAKEPIT_HOST_TOOLS", ""),
                              token=token)
        address = server.bind(args.listen)
        if server.unix_path:
            socket_paths.append(server.unix_path)
        server.start()
    except BaseException as exc:  # report anything, fast
        tb = traceback.format_exc()
        _log("bridge.start_failed", worker_id=args.worker_id, adapter=args.adapter,
             error=f"{type(exc).__name__}: {exc}", traceback=tb)
        _announce(args.ready_fd, {"ok": False, "error": {
            "type": type(exc).__name__, "message": str(exc)[:1000],
            "traceback": _short_traceback(exc)}})
        return EXIT_START_FAILED

    # The signal handler does nothing; Python's C handler writes to the wakeup pipe, which the
    # main thread waits on. (An Event set from a handler can deadlock on the Event's own lock.)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: None)
    beats = beat_line.is_socket(args.ready_fd)
    _announce(args.ready_fd, {"ok": True, "address": address, "pid": os.getpid()}, keep=beats)
    _log("bridge.ready", worker_id=args.worker_id, run_id=args.run_id, address=address,
         start_ms=round((time.monotonic() - started) * 1000, 1))
    watched = [wake_r, args.ready_fd] if beats else [wake_r]
    while wake_r not in select.select(watched, [], [])[0]:  # a beat, or SIGTERM
        if not beat_line.answer(args.ready_fd, server.servicer.in_flight):
            watched.remove(args.ready_fd)
    _log("bridge.stopping", worker_id=args.worker_id)
    stopped = server.begin_stop(grace_s=STOP_GRACE_S)
    if args.ready_fd in watched:  # still alive while calls finish: beats are answered
        beat_line.answer_until(args.ready_fd, server.servicer.in_flight, stopped,
                               STOP_GRACE_S + 1.0)
    stopped.wait()
    server.finish_stop()
    close = getattr(adapter, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:
            _log("bridge.close_failed", error=f"{type(exc).__name__}: {exc}")
    _log("bridge.stopped", worker_id=args.worker_id)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # grpc's threads must not delay the exit
