"""``ShowcaseAdapter``: the bundled adapter used by the demo, the tests and the benchmarks.

Each tool exercises one path of the bridge: plain replies (``ping``, ``echo``, ``add``), time
(``sleep``, ``cpu``), failures (``fail``, ``crash``, ``bad_result``), session state
(``session_counter``, ``session_visit``), streaming (``stream_progress``, ``async_count``), asyncio
(``async_echo``), payload size (``big``), memory (``allocate``), identity (``info``) and
processes that try to outlive the worker (``spawn_strays``).

``adapter_config``:
    init_delay_s: seconds ``__init__`` sleeps, to simulate loading a model (default 0).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from .adapter import BaseAdapter, SessionContext, adapter_name, tool

__all__ = ["ShowcaseAdapter"]


class ShowcaseAdapter(BaseAdapter):
    """A demonstration adapter; see the module docstring for its tools. Thread-safe: its
    tools share no state but per-session counters (a session's requests go to one worker and,
    from one caller, one at a time)."""

    thread_safe = True

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        """Sleep ``config["init_delay_s"]`` seconds (simulated model load).

        ``config["fail_init_if_exists"]`` names a file: while it exists the adapter fails to
        start (a broken environment, for restart-intensity tests).

        Args:
            config: the pool's ``adapter_config``.
        """
        super().__init__(config)
        broken = self.config.get("fail_init_if_exists")
        if broken and os.path.exists(str(broken)):
            raise RuntimeError(f"simulated broken environment ({broken} exists)")
        delay = float(self.config.get("init_delay_s", 0) or 0)
        if delay > 0:
            time.sleep(delay)

    @tool
    def ping(self) -> str:
        """Return "pong"."""
        return "pong"

    @tool
    def echo(self, **kwargs: Any) -> dict[str, Any]:
        """Return the arguments unchanged: ``echo {"x": 1}`` -> ``{"x": 1}``."""
        return kwargs

    @tool
    def add(self, a: Any, b: Any) -> Any:
        """Return ``a + b``."""
        return a + b

    @tool
    def sleep(self, seconds: float, ctx: SessionContext) -> float:
        """Sleep ``seconds`` and return them; stops early (returning the seconds slept) when
        the request is cancelled or passes its deadline."""
        started = time.monotonic()
        if ctx.wait(seconds):
            return time.monotonic() - started
        return seconds

    @tool
    def cpu(self, ms: float) -> dict[str, Any]:
        """Busy-loop for ``ms`` milliseconds (holds the GIL); return ``{"ms", "loops"}``."""
        deadline = time.perf_counter() + ms / 1000.0
        loops = 0
        while time.perf_counter() < deadline:
            loops += 1
        return {"ms": ms, "loops": loops}

    @tool
    def fail(self, message: str = "boom") -> None:
        """Raise ``ValueError(message)``."""
        raise ValueError(message)

    @tool
    def crash(self, code: int = 1) -> None:
        """End the worker process at once with exit code ``code`` (no cleanup, no reply)."""
        sys.stderr.flush()
        os._exit(code)

    @tool
    def spawn_strays(self, seconds: float = 60.0) -> dict[str, int]:
        """Start four ``sleep`` processes that try to outlive the worker, and return their
        pids: "group" (a plain child), "session" (``setsid``: another session), "orphan"
        (double-forked: its parent ``sh`` exits at once) and "orphan_session" (both). All of
        them die when the worker process stops (``tree/descendants.py``)."""
        argv = ["sleep", str(float(seconds))]
        strays = [subprocess.Popen(argv), subprocess.Popen(argv, start_new_session=True)]
        self.__dict__.setdefault("_strays", []).extend(strays)  # reaped by whoever outlives
        pids = {"group": strays[0].pid, "session": strays[1].pid}
        for name, prefix in (("orphan", ""), ("orphan_session", "setsid ")):
            shell = f"{prefix}sleep {float(seconds)} >/dev/null 2>&1 </dev/null & echo $!"
            done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True,
                                  check=True, timeout=10)
            pids[name] = int(done.stdout.strip())
        return pids

    @tool
    def session_counter(self, ctx: SessionContext) -> int:
        """Increment and return this session's counter on this worker (starts at 1)."""
        count = int(ctx.state.get("counter", 0)) + 1
        ctx.state["counter"] = count
        return count

    @tool
    def session_visit(self, ctx: SessionContext) -> dict[str, Any]:
        """``session_counter`` that also says where it ran: ``{"counter", "moved",
        "worker_id"}``; ``moved`` is ``ctx.session_moved`` (the counter restarted at 1 here
        because the session came from another worker)."""
        return {"counter": self.session_counter(ctx), "moved": ctx.session_moved,
                "worker_id": ctx.worker_id}

    @tool
    def stream_progress(self, ctx: SessionContext, steps: int = 3, delay: float = 0.0,
                        fail_at: int = 0) -> Iterator[dict[str, int]]:
        """Yield ``{"step": i, "of": steps}`` for i in 1..steps, sleeping ``delay`` between;
        raise ``ValueError`` at step ``fail_at`` (0: never). Stops when cancelled."""
        for i in range(1, steps + 1):
            if delay > 0 and i > 1 and ctx.wait(delay):
                return
            if i == fail_at:
                raise ValueError(f"failed at step {i} of {steps}")
            yield {"step": i, "of": steps}

    @tool
    def info(self, ctx: SessionContext, hold_s: float = 0.0) -> dict[str, Any]:
        """Return ``{"pid", "worker_id", "adapter", "started_at", "ended_at"}`` of this worker
        process; the call lasts ``hold_s`` seconds, between the two wall-clock times (Unix
        seconds), so callers can check which calls overlapped on one process."""
        started = time.time()
        if hold_s > 0:
            time.sleep(hold_s)
        return {"pid": os.getpid(), "worker_id": ctx.worker_id,
                "adapter": adapter_name(type(self)), "started_at": started,
                "ended_at": time.time()}

    @tool
    def allocate(self, mb: int) -> int:
        """Allocate ``mb`` MiB and keep it for the life of the process (memory-recycling
        tests); returns the MiB this process now holds this way."""
        held = self.__dict__.setdefault("_held", [])
        held.append(bytearray(b"x" * (mb * 1024 * 1024)))  # touched: counts in RSS
        return sum(len(block) for block in held) // (1024 * 1024)

    @tool
    def host(self, ctx: SessionContext, name: str, timeout: float | None = None,
             **kwargs: Any) -> Any:
        """Call the host tool ``name(**kwargs)`` and return its result (host-tool tests)."""
        return ctx.call_host_tool(name, timeout=timeout, **kwargs)

    @tool
    def big(self, size: int) -> str:
        """Return a string of ``size`` characters (payload tests)."""
        return "x" * size

    @tool
    def bad_result(self) -> set[int]:
        """Return a value that JSON cannot encode (a set)."""
        return {1, 2, 3}

    @tool
    def odd_result(self, kind: str, n: int = 10_000) -> Any:
        """Return a value against the wire's JSON rule (``json_codec``): "nan", "inf", "int_keys"
        (``{1: 2}``), or "deep" (a list nested ``n`` levels); the host must get a typed error."""
        if kind == "deep":
            value: Any = []
            for _ in range(n):
                value = [value]
            return value
        return {"nan": float("nan"), "inf": [0.0, float("inf")], "int_keys": {1: 2}}[kind]

    @tool
    def shout(self, mb: float, line: int = 1000) -> int:
        """Write ``mb`` MiB to stdout in lines of ``line`` bytes; returns the bytes written."""
        chunk = ("y" * (line - 1) + "\n") * max(1, 65536 // line)
        total, want = 0, int(mb * 1024 * 1024)
        while total < want:
            total += sys.stdout.write(chunk)
        sys.stdout.flush()
        return total

    @tool
    async def async_echo(self, **kwargs: Any) -> dict[str, Any]:
        """Like ``echo``, as a coroutine run on the worker's asyncio loop."""
        await asyncio.sleep(0)
        return kwargs

    @tool
    async def async_count(self, n: int = 3, delay: float = 0.0) -> AsyncIterator[int]:
        """Yield 0..n-1 from an async generator, sleeping ``delay`` between values."""
        for i in range(n):
            if delay > 0:
                await asyncio.sleep(delay)
            yield i
