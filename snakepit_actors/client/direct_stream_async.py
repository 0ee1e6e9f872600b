"""Streams for asyncio on the direct data path: ``Pool.execute_stream_async`` on a leased slot.

    asyncio task: acquire a lease (``AsyncDirect``: wait in line without a thread)
        -> gRPC server stream, read by one pump thread per stream (grpc's sync stack has no
           asyncio iterator; see ``direct_async`` for why not grpc.aio)
        -> chunks handed to the loop (call_soon_threadsafe), at most ``WINDOW`` ahead of the
           consumer: a slow consumer slows the tool's stream, as on the sync path
        -> the task decodes each chunk and yields its value; the final chunk settles the lease

Errors are those of the sync direct stream (``direct_stream``): a deadline recycles the worker,
a vanished worker fails with the ``WorkerCrashedError`` of its revocation, a stream is never
retried. Leaving the loop early or cancelling the task cancels the gRPC call (the tool sees
its cancellation) and gives the slot back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

from snakepit_actors.client import direct
from snakepit_actors.client.direct_async import AsyncDirect
from snakepit_actors.client.direct_stream import open_stream
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import Execute
from snakepit_actors.protocols import NO_VALUE

#: Chunks the pump thread may read ahead of the consuming task.
WINDOW = 64

_END = object()


async def stream_async(runner: AsyncDirect, request: Execute) -> AsyncGenerator[Any, None]:
    """Run the streaming ``request`` on a leased worker; yields values as they arrive.
    See ``Pool.execute_stream_async`` for errors and cancellation."""
    path = runner._path
    started = time.perf_counter()
    try:
        lease = await runner._acquire(request, started)
    except SnakepitError as exc:
        path.leases.count_failure(exc)
        raise
    call = open_stream(path, lease, request)
    pump = _Pump(call, asyncio.get_running_loop())
    settled, wire = False, path._loaded_wire()
    try:
        while True:
            item = await pump.take()
            if item is _END:  # the stream ended without its final chunk
                settled = True
                path.leases.release(lease, "ok", request.session_id, started, ok=True)
                return
            if isinstance(item, direct._grpc.RpcError):
                settled = True
                outcome = path._settle_error(lease, request, item, started)
                if outcome.lost:
                    raise await runner._wait_gone(lease, outcome.lost) from None
                assert outcome.error is not None
                raise outcome.error from None
            final, value, error = wire.chunk(item, lease.worker_id)
            if final:
                settled = True
                path.leases.release(lease, "ok", request.session_id, started, ok=error is None)
                if error is not None:
                    raise error
                if value is not NO_VALUE:
                    yield value
                return
            yield value
    finally:
        pump.stop()
        if not settled:  # the caller left the loop or was cancelled: stop the tool
            call.cancel()
            path.leases.release(lease, "ok", request.session_id, started, ok=True)


class _Pump:
    """Reads a gRPC server stream on its own thread and hands each chunk (then ``_END`` or the
    ``RpcError``) to an asyncio queue, at most ``WINDOW`` ahead of ``take``."""

    def __init__(self, call: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._call, self._loop = call, loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(WINDOW)
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="snakepit-stream-pump", daemon=True).start()

    async def take(self) -> Any:
        item = await self._queue.get()
        self._room.release()
        return item

    def stop(self) -> None:
        """The consumer is done: the thread never waits for room again."""
        self._stopped.set()
        self._room.release(WINDOW)

    def _run(self) -> None:
        try:
            for chunk in self._call:
                if not self._put(chunk):
                    return
        except direct._grpc.RpcError as exc:
            self._put(exc)
        else:
            self._put(_END)

    def _put(self, item: Any) -> bool:
        self._room.acquire()
        if self._stopped.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody reads; stop the tool
            self._call.cancel()
            return False
        return True
