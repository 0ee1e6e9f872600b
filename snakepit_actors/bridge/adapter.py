"""Adapters: the user's code that a worker process serves, and how its tools are found.

An adapter is a class derived from ``BaseAdapter`` whose methods marked ``@tool`` can be called
by name from the pool. The bridge (``python -m snakepit_actors.bridge``) builds it exactly once
per worker process, as ``Adapter(adapter_config)``, then calls ``setup()``, serves requests, and
calls ``close()`` when it is told to stop::

    Adapter(config) -> setup() -> tools run (many threads if capacity > 1) -> close()

A tool may be a plain method (one reply), an ``async def`` coroutine (run on the bridge's one
asyncio loop), a generator (streaming: one chunk per yielded value) or an async generator
(streaming, on the loop). A tool that declares a parameter named ``ctx`` receives the
``SessionContext`` of the request's session on this worker. Arguments arrive as a JSON object
and are bound to the tool's parameters by name.

This module never imports grpc: it is loaded by the worker before anything else.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload

__all__ = ["AsyncRunner", "BaseAdapter", "BoundTool", "SessionContext", "ToolInfo", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__snakepit_tool__"
CTX_PARAM = "ctx"


@dataclass(slots=True)
class SessionContext:
    """Per-session state on one worker process.

    A session's context is created on its first request (or by ``InitializeSession``) and lives
    until ``CleanupSession`` or the end of the process. It is *not* shared between workers: use
    session affinity in the pool to keep a session on one worker. Requests without a session
    get a fresh throwaway context (``session_id == ""``) whose state is not kept.

    Tools of one session may run concurrently when the worker's capacity is above 1; guard
    ``state`` yourself in that case.

    A session *moves* when its request runs on another worker than its previous one (in the
    default ``affinity="hint"`` mode, when its worker stayed busy past ``affinity_wait_s`` or
    died). That request sees ``session_moved`` True and an empty ``state``: whatever the
    session kept elsewhere is not here, and a stale copy this worker kept from an earlier
    visit is dropped. Use a strict affinity mode if a move must never happen.

    Each request gets its own view of the session (same ``state`` and ``metadata`` objects)
    that also carries the request's cancellation: Python cannot interrupt a running sync tool,
    so a long tool should check ``cancelled`` (or sleep with ``wait``) in small steps and
    return early once the caller has gone (timeout, cancelled stream, closed pool).

    Attributes:
        session_id: the caller's session id ("" for requests without a session).
        worker_id: the id of the worker process serving the request.
        state: free-form per-session state, kept between requests of the session.
        metadata: the metadata given to ``InitializeSession`` (empty otherwise).
        request_id: the id of the request this view belongs to ("" outside a request).
        session_moved: True for the first request of the session on this worker after it ran
            on another worker (or on this worker's previous process); see above.
    """

    session_id: str
    worker_id: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    cancel_event: threading.Event | None = field(default=None, repr=False)
    host: Any = field(default=None, repr=False)  # bridge.host_client.HostToolClient
    deadline_s: float | None = field(default=None, repr=False)  # monotonic, of the request
    session_moved: bool = False

    def call_host_tool(self, name: str, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call the host tool ``name(**kwargs)`` (registered with ``pool.register_host_tool``)
        and return its JSON-decoded result. Blocks until it answers.

        Args:
            timeout: seconds to wait; None: what remains of this request's deadline (no
                limit if it has none).

        Raises:
            HostToolError: the host tool raised (its type, message and traceback attached)
                or no host tool has that name.
            TimeoutError: no answer in time.
            ConnectionError: the pool serves no host tools.
        """
        if self.host is None:
            raise ConnectionError("this worker was started without a host tool service")
        if timeout is None and self.deadline_s is not None:
            timeout = max(0.001, self.deadline_s - time.monotonic())
        return self.host.call(name, kwargs, timeout_s=timeout, session_id=self.session_id,
                              request_id=self.request_id)

    @property
    def cancelled(self) -> bool:
        """True once the request's caller gave up (deadline passed, call cancelled)."""
        return self.cancel_event is not None and self.cancel_event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early if the request is cancelled.

        Returns:
            True if the request was cancelled (stop working), False after a full sleep.
        """
        if self.cancel_event is None:
            time.sleep(seconds)
            return False
        return self.cancel_event.wait(seconds)


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """What ``@tool`` records about one tool.

    Attributes:
        name: the name callers use (the method name unless ``@tool(name=...)`` says otherwise).
        description: ``@tool(description=...)`` or the first paragraph of the docstring.
        streaming: the tool is a generator or an async generator.
        is_async: the tool is a coroutine function or an async generator.
        takes_ctx: the tool declares a parameter named ``ctx``.
    """

    name: str
    description: str
    streaming: bool
    is_async: bool
    takes_ctx: bool


@dataclass(frozen=True, slots=True)
class BoundTool:
    """A tool of one adapter instance, ready to call.

    Attributes:
        info: the tool's ``ToolInfo``.
        func: the bound method.
        signature: the parameters a caller may pass (``ctx`` removed); used to check arguments
            before the call so that a ``TypeError`` raised *inside* a tool is never mistaken
            for bad arguments.
    """

    info: ToolInfo
    func: Callable[..., Any]
    signature: inspect.Signature


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def tool(func: F | None = None, /, *, name: str | None = None,
         description: str | None = None) -> F | Callable[[F], F]:
    """Mark an adapter method as a tool; use bare (``@tool``) or with options.

    Args:
        func: the method (when used bare).
        name: the name callers use; default the method's name.
        description: shown by ``Describe``; default the first paragraph of the docstring.

    Returns:
        The method itself, marked (or a decorator that marks it).

    Raises:
        TypeError: ``func`` is not a function.
    """

    def mark(f: F) -> F:
        if not inspect.isfunction(f):
            raise TypeError(f"@tool applies to functions defined in an adapter class, got {f!r}")
        doc = inspect.getdoc(f) or ""
        params = inspect.signature(f).parameters
        info = ToolInfo(
            name=name or f.__name__,
            description=description if description is not None else doc.split("\n\n")[0],
            streaming=inspect.isgeneratorfunction(f) or inspect.isasyncgenfunction(f),
            is_async=inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f),
            takes_ctx=CTX_PARAM in params,
        )
        setattr(f, _MARK, info)
        return f

    if func is not None:
        return mark(func)
    return mark


class BaseAdapter:
    """Base class of adapters. Subclass it and mark methods with ``@tool``.

    Lifecycle hooks, in the order the bridge calls them:

    * ``__init__(config)``: once per process, before the worker reports ready. Load models
      here; the worker counts as starting until it returns. An exception here fails the
      worker's start with the exception's type and message (the pool raises
      ``PoolNotReadyError``); it is not retried by the bridge.
    * ``setup()``: right after ``__init__``, same rules. Override instead of ``__init__``
      when you do not need the constructor.
    * ``close()``: once, when the worker is stopped gracefully (SIGTERM), after in-flight
      requests finished or the grace period passed. An exception is logged and ignored. Not
      called on SIGKILL or a crash.

    Attributes:
        config: the pool's ``adapter_config`` (a plain dict of JSON values).
        thread_safe: class attribute; True declares that the adapter's plain (non-async)
            tools may run on several threads at once, so a worker with ``capacity`` > 1 runs
            that many of them concurrently. False (the default): the bridge runs plain tools
            one at a time (async tools still overlap on the asyncio loop), so capacity > 1 then
            helps async tools only.
    """

    thread_safe: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        """Keep ``config`` as ``self.config``.

        Args:
            config: the pool's ``adapter_config``; None means empty.
        """
        self.config: dict[str, Any] = dict(config or {})

    def setup(self) -> None:
        """Hook run once after ``__init__``, before the worker reports ready."""

    def close(self) -> None:
        """Hook run once on graceful shutdown."""

    @classmethod
    def tool_infos(cls) -> dict[str, tuple[str, ToolInfo]]:
        """Find the tools of this adapter class.

        A subclass may override a tool; overriding it with an unmarked method removes it.

        Returns:
            tool name -> (attribute name, ToolInfo), in definition order.

        Raises:
            TypeError: two tools share a name.
        """
        by_attr: dict[str, ToolInfo | None] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                info = getattr(value, _MARK, None)
                if isinstance(info, ToolInfo):
                    by_attr[attr] = info
                elif attr in by_attr:
                    by_attr[attr] = None
        found: dict[str, tuple[str, ToolInfo]] = {}
        for attr, maybe in by_attr.items():
            if maybe is None:
                continue
            if maybe.name in found:
                raise TypeError(f"{cls.__qualname__}: two tools are named {maybe.name!r} "
                                f"({found[maybe.name][0]} and {attr}); rename one with "
                                "@tool(name=...)")
            found[maybe.name] = (attr, maybe)
        return found

    def tools(self) -> dict[str, BoundTool]:
        """The tools of this instance, bound and ready to call.

        Returns:
            tool name -> BoundTool.
        """
        bound: dict[str, BoundTool] = {}
        for name, (attr, info) in self.tool_infos().items():
            func = getattr(self, attr)
            sig = inspect.signature(func)
            if info.takes_ctx:
                sig = sig.replace(parameters=[p for p in sig.parameters.values()
                                              if p.name != CTX_PARAM])
            bound[name] = BoundTool(info=info, func=func, signature=sig)
        return bound

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description of the adapter and its tools.

        Returns:
            ``{"adapter": "module:Class", "tools": [{"name", "description", "streaming",
            "is_async", "parameters"}...]}``.
        """
        return {
            "adapter": adapter_name(type(self)),
            "tools": [
                {"name": t.info.name, "description": t.info.description,
                 "streaming": t.info.streaming, "is_async": t.info.is_async,
                 "parameters": str(t.signature)}
                for t in self.tools().values()
            ],
        }


def adapter_name(cls: type) -> str:
    """``"package.module:Class"`` for an adapter class (the form ``--adapter`` takes)."""
    return f"{cls.__module__}:{cls.__qualname__}"


class AsyncRunner:
    """One asyncio event loop on a daemon thread; async tools of every request run on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bridge-asyncio",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout_s: float | None) -> Any:
        """Run ``coro`` on the loop and wait for its result.

        Args:
            coro: the coroutine.
            timeout_s: seconds to wait; None waits as long as it takes.

        Returns:
            What the coroutine returned.

        Raises:
            TimeoutError: ``timeout_s`` passed (the coroutine is cancelled).
            Exception: whatever the coroutine raised.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def iterate(self, agen: AsyncIterator[Any], timeout_s: float | None) -> Iterator[Any]:
        """Drive an async generator from this (non-loop) thread, one value at a time.

        Raises:
            TimeoutError: one step took longer than ``timeout_s``.
        """

        async def step() -> Any:
            return await agen.__anext__()

        try:
            while True:
                try:
                    yield self.run(step(), timeout_s)
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self.loop.is_running():
                asyncio.run_coroutine_threadsafe(aclose(), self.loop)

    def stop(self) -> None:
        """Stop the loop and wait (up to 1 s) for its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(1.0)
