"""Launch shim: ``python -m snakepit_actors.compat.shim`` runs Snakepit's own
``grpc_server.py`` (unmodified) as a pool worker process.

Started by the Worker actor with the flags of ``python -m snakepit_actors.bridge`` plus
``--files-prefix`` and ``--python-path`` (``protocols.launch_args``). Its files are
``PREFIX.PID.host.sock`` and ``PREFIX.PID.ready``: a swap's replacement process (same worker,
same prefix) never touches the files of the process it replaces. The steps, in order::

    1. die with the parent   PR_SET_PDEATHSIG(SIGKILL); exit if the parent is already gone;
                             a watchdog thread exits when getppid() changes
    2. find their server     grpc_server.py in the first --python-path entry holding it; the
                             entries go first on sys.path
    3. host service          compat.host_service on PREFIX.PID.host.sock (0600), their own
                             generated messages; it is their --elixir-address
    4. loopback only         their server binds "[::]:PORT" (every interface, hard-coded): the
                             shim patches grpc.aio's Server.add_insecure_port so an address on
                             every interface becomes --listen (a unix socket, or 127.0.0.1)
    5. ready handshake       their server writes its port to SNAKEPIT_READY_FILE; a thread
                             turns that file into the pool's ready line on --ready-fd
                             ({"ok": true, "address", "pid"}); if their server exits first,
                             {"ok": false, "error": {...}} and exit code 3
    6. run                   runpy runs grpc_server.py as __main__ (their SIGTERM handling)

SNAKEPIT_WORKER_ID and SNAKEPIT_RUN_ID come from the Worker's spawn (the reaper finds strays
by them); their --snakepit-run-id is set too. SNAKEPIT_OTEL_CONSOLE defaults to "false" (else
their spans go to stdout, the worker's log). adapter_config is not used: a Snakepit adapter
is built with no arguments, once per request.
"""

from __future__ import annotations

from snakepit_actors.bridge.__main__ import _die_with_parent

if __name__ == "__main__":  # first thing when run; importing this module has no side effect
    _die_with_parent()

import argparse
import contextlib
import os
import runpy
import sys
import threading
import time
from typing import Any

from snakepit_actors.bridge.__main__ import (
    EXIT_PARENT_GONE,
    EXIT_START_FAILED,
    _announce,
    _watch_parent,
)

SERVER_FILE = "grpc_server.py"
_READY_POLL_S = 0.01
_EVERY_INTERFACE = ("[::]:", "0.0.0.0:", "[::0]:")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m snakepit_actors.compat.shim",
                                description="Run Snakepit's grpc_server.py as a pool worker.")
    p.add_argument("--adapter", required=True, help="Snakepit adapter: package.module.Class")
    p.add_argument("--listen", required=True, help="unix:PATH or 127.0.0.1:0")
    p.add_argument("--ready-fd", type=int, required=True)
    p.add_argument("--files-prefix", required=True,
                   help="PREFIX of the host socket and ready file (PREFIX.PID.host.sock)")
    p.add_argument("--python-path", action="append", default=[],
                   help="a folder holding grpc_server.py and snakepit_bridge (repeatable)")
    p.add_argument("--worker-id", default="")
    p.add_argument("--run-id", default="")
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--secrets-stdin", action="store_true")
    p.add_argument("--capacity", type=int, default=1)
    p.add_argument("--max-payload-bytes", type=int, default=64 * 1024 * 1024)
    return p.parse_args(argv)


def find_server(python_path: list[str]) -> str:
    """The first ``grpc_server.py`` in ``python_path``.

    Raises:
        FileNotFoundError: none holds one (the message lists where it looked).
    """
    for entry in python_path:
        candidate = os.path.join(entry, SERVER_FILE)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"no {SERVER_FILE} in python_path={python_path!r}: set python_path to Snakepit's "
        "priv/python folder (the one holding grpc_server.py and snakepit_bridge)")


def keep_on_loopback(listen: str) -> None:
    """Make grpc.aio servers bind ``listen`` where they ask for every interface."""
    from grpc.aio._server import Server

    original = Server.add_insecure_port

    def add_insecure_port(self: Any, address: str) -> int:
        if address.startswith(_EVERY_INTERFACE):
            port = address.rsplit(":", 1)[1]
            address = listen if listen.startswith("unix:") else f"127.0.0.1:{port}"
        return int(original(self, address))

    Server.add_insecure_port = add_insecure_port


def _announce_when_ready(ready_file: str, listen: str, fd: int, done: threading.Event) -> None:
    """Turn their ready file into our ready line (or give up once ``done`` is set)."""
    while not done.is_set():
        with contextlib.suppress(OSError, ValueError):
            with open(ready_file, encoding="utf-8") as handle:
                port = int(handle.read().strip())
            address = listen if listen.startswith("unix:") else f"127.0.0.1:{port}"
            _announce(fd, {"ok": True, "address": address, "pid": os.getpid()})
            done.set()
            return
        time.sleep(_READY_POLL_S)


def _start_failed(fd: int, type_name: str, message: str) -> int:
    _announce(fd, {"ok": False, "error": {"type": type_name, "message": message,
                                           "traceback": ""}})
    return EXIT_START_FAILED


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if os.getppid() != args.parent_pid:
        return EXIT_PARENT_GONE
    base = f"{args.files_prefix}.{os.getpid()}"
    host_socket, ready_file = base + ".host.sock", base + ".ready"
    threading.Thread(target=_watch_parent, args=(args.parent_pid, [host_socket, ready_file]),
                     name="snakepit-parent-watch", daemon=True).start()
    if args.secrets_stdin:
        sys.stdin.read()  # adapter_config and token: a Snakepit adapter takes neither
    try:
        server_file = find_server(args.python_path)
    except FileNotFoundError as exc:
        return _start_failed(args.ready_fd, "FileNotFoundError", str(exc))
    sys.path[:0] = [os.path.abspath(p) for p in args.python_path]
    os.environ.setdefault("SNAKEPIT_OTEL_CONSOLE", "false")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ready_file)
    os.environ["SNAKEPIT_READY_FILE"] = ready_file
    try:
        host = _serve_host(host_socket, args.max_payload_bytes)
    except Exception as exc:  # their package does not import, or the socket cannot be bound
        return _start_failed(args.ready_fd, type(exc).__name__, str(exc))
    keep_on_loopback(args.listen)
    done = threading.Event()
    threading.Thread(target=_announce_when_ready, name="snakepit-ready", daemon=True,
                     args=(ready_file, args.listen, args.ready_fd, done)).start()
    code = _run_server(server_file, args, host_socket)
    if not done.is_set():
        done.set()
        code = _start_failed(args.ready_fd, "SystemExit",
                             f"Snakepit's {SERVER_FILE} exited with {code} before it was ready "
                             "(its output is in the worker's log)")
    host.stop(0.5)
    for path in (host_socket, ready_file):
        with contextlib.suppress(OSError):
            os.unlink(path)
    return code


def _serve_host(host_socket: str, max_payload_bytes: int) -> Any:
    # Snakepit's own generated modules, from python_path (see host_service's docstring)
    import snakepit_bridge_pb2  # type: ignore[import-not-found]
    import snakepit_bridge_pb2_grpc  # type: ignore[import-not-found]

    from snakepit_actors.compat.host_service import serve

    server, _service = serve(host_socket, snakepit_bridge_pb2, snakepit_bridge_pb2_grpc,
                             os.environ.get("SNAKEPIT_HOST_TOOLS", ""), max_payload_bytes)
    return server


def _run_server(server_file: str, args: argparse.Namespace, host_socket: str) -> int:
    """Run their server as ``__main__`` until it returns; its exit code."""
    sys.argv = [server_file, "--adapter", args.adapter, "--port", "0",
                "--elixir-address", "unix:" + host_socket,
                "--snakepit-run-id", args.run_id]
    try:
        runpy.run_path(server_file, run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
