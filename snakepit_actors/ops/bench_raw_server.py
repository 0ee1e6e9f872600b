"""The bare gRPC servers ``bench scale`` measures the pool against (``bench_scale.py``).

    python -m snakepit_actors.ops.bench_raw_server           one server; prints "PORT <n>"
    python -m snakepit_actors.ops.bench_raw_server --fork N  the fork-server probe: imports
        grpc (no gRPC object), prints "T0 <monotonic>", forks N children; each starts its own
        server and prints "PORT <n> <pid>"

A server has one method, ``/raw.Raw/Sleep``: it sleeps the number of seconds in its request
(ASCII bytes) and answers them back; no stubs, no adapter, no pool. Every process listens on
127.0.0.1 only and exits when its standard input reaches end of file (the bench closes it), or
with its parent (PR_SET_PDEATHSIG). Lines go to stdout with one ``write`` each, so the children
of a probe can share the pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import sys
import time
from typing import Any

METHOD = "/raw.Raw/Sleep"


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _sleep(request: bytes, context: Any) -> bytes:
    time.sleep(float(request or b"0"))
    return request


def serve() -> None:
    """Start one server on 127.0.0.1, announce its port, serve until stdin closes."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    handler = grpc.method_handlers_generic_handler(
        "raw.Raw", {"Sleep": grpc.unary_unary_rpc_method_handler(_sleep)})
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _say(f"PORT {port} {os.getpid()}")
    while os.read(0, 4096):  # every process of a probe reads the same pipe until its EOF
        pass
    os._exit(0)


def fork_probe(count: int) -> None:
    """Import grpc without creating anything of it, then fork ``count`` servers."""
    import grpc  # noqa: F401  (imported, never started, in this process)

    _say(f"T0 {time.monotonic()}")
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            try:
                serve()
            finally:
                os._exit(1)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m snakepit_actors.ops.bench_raw_server")
    parser.add_argument("--fork", type=int, default=0, help="fork this many servers")
    args = parser.parse_args(argv)
    _die_with_parent()
    if args.fork:
        fork_probe(args.fork)
    else:
        serve()


if __name__ == "__main__":
    main(sys.argv[1:])
