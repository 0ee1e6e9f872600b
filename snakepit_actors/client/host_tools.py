"""Host tools: Python callables of the process holding the ``Pool`` handle that adapters call
from inside a tool (``ctx.call_host_tool(name, **kwargs)``), over a small gRPC service.

    worker process: tool -> ctx.call_host_tool --gRPC (unix socket, 0600)--> HostToolServer
                                                                       runs fn(**kwargs)
                     <-- result_json | ToolFailure{category, type, message, traceback} --

The server listens on ``host-tools.sock`` in the pool's run directory (only the owning user
can connect), started by the first ``register_host_tool``; every worker is told that address
at spawn (``SNAKEPIT_HOST_TOOLS``). A host tool runs on one of the server's threads; the
caller's timeout is a gRPC deadline (the host function itself is not interrupted).

An ``async def`` host tool runs on the event loop that was running where it was registered
(``register_host_tool`` called from a coroutine), so it may share that loop's clients and
locks; registered outside any loop, each call runs it in a new loop on its host-tool thread.
At the caller's deadline its task is cancelled.
grpc is imported only when the first host tool is registered, long after the actor system
started.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from snakepit_actors.errors import InvalidArgumentsError, SerializationError
from snakepit_actors.json_codec import decode_value, encode_value
from snakepit_actors.protocols import LIST_HOST_TOOLS
from snakepit_actors.tree.worker_process import HOST_TOOLS_SOCKET, host_tools_address

#: Host tools that may run at once (calls beyond it wait for a thread).
HOST_TOOL_THREADS = 8


class HostToolServer:
    """The host-tool registry and its gRPC server (started on the first ``register``).

    Args:
        run_dir: the pool's run directory (the socket goes there).
        max_payload_bytes: the largest args / result accepted.
    """

    def __init__(self, run_dir: str, max_payload_bytes: int) -> None:
        self._path = os.path.join(run_dir, HOST_TOOLS_SOCKET)
        self._limit = max_payload_bytes
        self._tools: dict[str, Callable[..., Any]] = {}
        self._loops: dict[str, asyncio.AbstractEventLoop] = {}  # async tools -> their loop
        self._lock = threading.Lock()
        self._server: Any = None

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` callable by adapters as ``name`` (replacing an earlier one).

        Raises:
            InvalidArgumentsError: ``fn`` is not callable or ``name`` is not a non-empty string
                (nothing is registered).
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgumentsError(
                f"host tool name must be a non-empty str, got {name!r:.80}: e.g. "
                "pool.register_host_tool('lookup', fn)", reason="invalid_name")
        if not callable(fn):
            raise InvalidArgumentsError(
                f"host tool {name!r} must be a function, got {fn!r:.80}: e.g. "
                f"pool.register_host_tool({name!r}, lambda key: ...)", reason="invalid_fn")
        loop = None
        if inspect.iscoroutinefunction(fn):
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        with self._lock:
            self._tools[name] = fn
            self._loops.pop(name, None)
            if loop is not None:
                self._loops[name] = loop
            if self._server is None:
                self._server = self._start()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tools)

    def stop(self) -> None:
        """Stop serving (in-flight host calls are cancelled) and remove the socket."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(0.5).wait()
            with contextlib.suppress(OSError):
                os.unlink(self._path)

    def _start(self) -> Any:
        import grpc

        from snakepit_actors._proto import bridge_pb2_grpc

        limit = self._limit + 1024 * 1024
        server = grpc.server(ThreadPoolExecutor(HOST_TOOL_THREADS,
                                                thread_name_prefix="snakepit-host-tool"),
                             options=[("grpc.max_receive_message_length", limit),
                                      ("grpc.max_send_message_length", limit)])
        bridge_pb2_grpc.add_HostToolServiceServicer_to_server(_Servicer(self), server)
        old_umask = os.umask(0o177)
        try:
            port = server.add_insecure_port(host_tools_address(os.path.dirname(self._path)))
        finally:
            os.umask(old_umask)
        if not port:
            raise RuntimeError(f"gRPC could not bind the host-tool socket {self._path!r}")
        os.chmod(self._path, 0o600)
        server.start()
        return server

    def call(self, request: Any, time_left: float | None = None) -> Any:
        """Run one host tool for a ``HostToolRequest``; every failure is a ``ToolFailure``.
        ``time_left``: the caller's remaining seconds (an async tool is cancelled after)."""
        from snakepit_actors._proto import bridge_pb2

        def failure(category: str, type_name: str, message: str, tb: str = "") -> Any:
            return bridge_pb2.HostToolResponse(error=bridge_pb2.ToolFailure(
                category=category, type=type_name, message=message, traceback=tb))

        with self._lock:
            fn = self._tools.get(request.name)
            loop = self._loops.get(request.name)
            known = sorted(self._tools)
        if fn is None and request.name == LIST_HOST_TOOLS:
            return bridge_pb2.HostToolResponse(result_json=encode_value(known, "result"))
        if fn is None:
            return failure("unknown_tool", "LookupError",
                           f"unknown host tool {request.name!r}; registered host tools: {known}")
        try:
            kwargs = decode_value(request.args_json, "args") if request.args_json else {}
        except SerializationError as exc:
            return failure("invalid_arguments", type(exc).__name__, exc.message)
        if type(kwargs) is not dict:
            return failure("invalid_arguments", "TypeError",
                           f"args of host tool {request.name!r} must be a JSON object")
        try:
            result = fn(**kwargs)
            if inspect.isawaitable(result):
                result = _await(result, loop, time_left)
        except Exception as exc:
            return failure("tool", type(exc).__name__, str(exc),
                           "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        try:
            data = encode_value(result, "result")
        except SerializationError as exc:
            return failure("serialization", type(exc).__name__,
                           f"{exc.message} (host tool {request.name!r})")
        return bridge_pb2.HostToolResponse(result_json=data)


class _Servicer:
    """``HostToolService`` over a ``HostToolServer`` (duck-typed servicer)."""

    def __init__(self, host: HostToolServer) -> None:
        self._host = host

    def CallHostTool(self, request: Any, context: Any) -> Any:
        return self._host.call(request, context.time_remaining())


def _await(awaitable: Any, loop: asyncio.AbstractEventLoop | None,
           time_left: float | None) -> Any:
    """The result of an async host tool: on ``loop`` (its registration's), else in a new loop
    here; cancelled after ``time_left`` seconds (raises TimeoutError)."""
    async def bounded() -> Any:
        return await asyncio.wait_for(awaitable, time_left)

    if loop is None:
        return asyncio.run(bounded())
    if loop.is_closed():
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("the event loop this async host tool was registered on is closed: "
                           "register it again from the running loop")
    future = asyncio.run_coroutine_threadsafe(bounded(), loop)
    try:  # a loop that stopped running never answers: bounded here too
        return future.result(None if time_left is None else time_left + 1.0)
    except TimeoutError:
        future.cancel()
        raise


class HostToolMethods:
    """The host-tool part of ``client.Pool``."""

    config: Any
    _run_dir: str
    _host_tools: HostToolServer | None = None

    def register_host_tool(self, name: str, fn: Callable[..., Any]) -> None:
        """Let adapters call ``fn(**kwargs)`` as ``ctx.call_host_tool(name, **kwargs)``.

        ``fn`` runs in this process on a host-tool thread (up to ``HOST_TOOL_THREADS`` at
        once); its arguments and result are JSON values. What it raises reaches the adapter as
        ``HostToolError`` (type, message, traceback). Registering a name again replaces it.
        Returns at once (the first call starts the host-tool service).

        Raises:
            InvalidArgumentsError: ``name`` is not a non-empty str or ``fn`` is not callable.
        """
        if self._host_tools is None:
            self._host_tools = HostToolServer(self._run_dir, self.config.max_payload_bytes)
        self._host_tools.register(name, fn)

    def _stop_host_tools(self) -> None:
        if self._host_tools is not None:
            self._host_tools.stop()
