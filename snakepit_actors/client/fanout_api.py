"""Fan-out on the Python ``Pool`` handle (mixed into ``client.Pool``; docs/fanout.md).

    pool.map(tool, iterable_of_args, chunksize=.., ordered=.., timeout=..)   -> results iterator
    pool.map_async(...)          async for value in ...   /   values = await ...
    pool.submit(tool, args)      -> concurrent.futures.Future  (as_completed, wait)
    await pool.submit_async(tool, args)
    with pool.executor(max_in_flight=8) as ex: ex.submit / ex.map / ex.shutdown(...)

``map`` and ``submit`` on the pool run on its default executor (``max_in_flight``: every worker
slot, ``pool_size * capacity``), which ``close()`` ends: queued requests then fail with
``PoolClosedError``. A chunk of ``map`` travels as one ``ExecuteBatch`` call on the direct path;
on the actor path (``data_path="actor"``, or a session under strict affinity) each item is its
own ``Execute`` (``chunksize`` then only groups the items).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from snakepit_actors.client.executor import PoolExecutor, check_fanout
from snakepit_actors.client.fanout import AsyncMapIterator, MapIterator, Target
from snakepit_actors.errors import PoolClosedError

if TYPE_CHECKING:
    from snakepit_actors.client.direct import DirectPath
    from snakepit_actors.config import PoolConfig

_CREATE_LOCK = threading.Lock()


class FanoutMethods:
    """The fan-out part of ``Pool``; see the module docstring."""

    if TYPE_CHECKING:  # provided by client.Pool
        config: PoolConfig
        _direct: DirectPath | None
        _gateway: Any
        _pool: Any

        def _check_open(self) -> None: ...

    _default_executor: PoolExecutor | None = None
    _executors: weakref.WeakSet[PoolExecutor] | None = None

    def map(self, tool: str, iterable_of_args: Iterable[Mapping[str, Any] | None], *,
            chunksize: int = 1, ordered: bool = True, timeout: float | None = None,
            idempotent: bool = False, return_exceptions: bool = False) -> MapIterator:
        """Run ``tool(**args)`` for every ``args`` of ``iterable_of_args``; iterate the results.

        Returns at once; iterating blocks until the next result. The input is read lazily,
        ``chunksize`` items at a time, at most ``2 * max_in_flight`` chunks ahead of the
        results consumed. Each chunk is one call to one worker, which runs its items in turn.

        Args:
            tool: the tool's name.
            iterable_of_args: one mapping of arguments per request (None: no arguments); may
                be a lazy iterator of any length.
            chunksize: items per call (1: each alone). Raise it for many short calls (100 or
                more for calls under a millisecond); keep it small for long or uneven ones.
            ordered: results in input order (True) or as their chunks finish (False).
            timeout: seconds for the whole map, from this call: every item not finished by
                then fails (``QueueTimeoutError`` if it never started, else
                ``RequestTimeoutError``). None: no bound on the whole; each chunk of n items
                then gets n times the pool's ``request_timeout`` (None: no deadline).
            idempotent: an item whose worker died under it runs once more on another worker
                (the other items of its chunk that had finished keep their results).
            return_exceptions: give an item's error in place of its result instead of raising.

        Returns:
            A ``MapIterator``; ``close()`` it (or leave its ``with`` block) to stop early.

        Raises:
            InvalidArgumentsError: a bad parameter (not an iterable, ``chunksize`` < 1, ...),
                raised by this call; nothing ran.
            PoolClosedError: the pool is closed.
            SnakepitError: while iterating, an item's error (those of ``Pool.execute``; an
                unknown tool is ``UnknownToolError``; an item that is not a mapping,
                ``InvalidArgumentsError``) where its result would be, unless
                ``return_exceptions``; then the map stops. An exception raised by the input
                iterable is raised after the results before it.
        """
        return self._fanout().map(tool, iterable_of_args, chunksize=chunksize, ordered=ordered,
                                  timeout=timeout, idempotent=idempotent,
                                  return_exceptions=return_exceptions)

    def map_async(self, tool: str, iterable_of_args: Iterable[Mapping[str, Any] | None], *,
                  chunksize: int = 1, ordered: bool = True, timeout: float | None = None,
                  idempotent: bool = False, return_exceptions: bool = False
                  ) -> AsyncMapIterator:
        """``map`` for asyncio: ``async for value in pool.map_async(...)``, or
        ``values = await pool.map_async(...)`` for the list. Never blocks the event loop (the
        input iterable is read on the map's threads). Same parameters and errors."""
        return AsyncMapIterator(self.map(tool, iterable_of_args, chunksize=chunksize,
                                         ordered=ordered, timeout=timeout,
                                         idempotent=idempotent,
                                         return_exceptions=return_exceptions))

    def submit(self, tool: str, args: Mapping[str, Any] | None = None, *,
               session_id: str | None = None, timeout: float | None = None,
               idempotent: bool = False) -> Future[Any]:
        """Queue ``tool(**args)`` and return its ``concurrent.futures.Future`` at once.

        Same parameters as ``execute``; ``future.result()`` returns or raises what ``execute``
        would. The deadline is fixed now (time queued counts). ``future.cancel()`` succeeds
        while the request is still queued in this process, and then it never runs.

        Raises:
            InvalidArgumentsError, SerializationError, PayloadTooLargeError: bad parameters.
            PoolClosedError: the pool is closed.
        """
        return self._fanout().submit(tool, args, session_id=session_id, timeout=timeout,
                                     idempotent=idempotent)

    async def submit_async(self, tool: str, args: Mapping[str, Any] | None = None, *,
                           session_id: str | None = None, timeout: float | None = None,
                           idempotent: bool = False) -> Any:
        """``submit`` for asyncio: await the result. Cancelling the awaiting task cancels the
        request if it is still queued (it never runs)."""
        return await asyncio.wrap_future(self.submit(tool, args, session_id=session_id,
                                                     timeout=timeout, idempotent=idempotent))

    def executor(self, max_in_flight: int | None = None, *, chunksize: int = 1
                 ) -> PoolExecutor:
        """A ``PoolExecutor`` of this pool: ``submit`` / ``map`` / ``shutdown`` like
        ``concurrent.futures``, with its own queue and limit.

        Args:
            max_in_flight: requests (or chunks) it runs at once; None: every worker slot
                (``pool_size * capacity``).
            chunksize: queued requests one call may carry (1: each alone). Higher sends many
                short submits in fewer calls; a batch runs under its earliest deadline.

        Raises:
            InvalidArgumentsError: ``max_in_flight`` or ``chunksize`` not an int >= 1.
            PoolClosedError: the pool is closed.
        """
        limit = self.config.pool_size * self.config.capacity if max_in_flight is None \
            else max_in_flight
        check_fanout("executor", [], chunksize, True, None, False, False, limit)
        self._check_open()
        made = PoolExecutor(self._fanout_target(), limit, chunksize)
        with _CREATE_LOCK:
            if self._executors is None:
                self._executors = weakref.WeakSet()
            self._executors.add(made)
        return made

    def _fanout(self) -> PoolExecutor:
        executor = self._default_executor
        if executor is None:
            with _CREATE_LOCK:
                if self._default_executor is None:
                    self._default_executor = PoolExecutor(
                        self._fanout_target(), self.config.pool_size * self.config.capacity)
                executor = self._default_executor
        return executor

    def _fanout_target(self) -> Target:
        gateway = self._gateway
        return Target(self.config, self._direct, lambda msg: gateway.submit(self._pool, msg),
                      gateway.new_id, self._check_open)

    def _stop_fanout(self) -> None:
        """``close()``: queued requests fail with PoolClosedError, maps start no new chunk."""
        error = PoolClosedError(f"pool {self.config.name!r} was closed before the request ran",
                                reason="closed")
        with _CREATE_LOCK:
            executors = list(self._executors or ())
            if self._default_executor is not None:
                executors.append(self._default_executor)
        for executor in executors:
            executor.close_with(error)
