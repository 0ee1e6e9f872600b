"""``Pool.map``: many requests of one tool, cut into chunks that travel as one call each
(docs/fanout.md).

    consumer (your thread, or a task)         runner threads (at most max_in_flight)
      next(results) ...                         cut: take ``chunksize`` items from the input
        waits for the next chunk in order          (one runner at a time; bounded window)
        (or as finished: ordered=False)         encode -> run_chunk (one ExecuteBatch on a
        yields its items' values; raises           lease) -> finish(seq, outcomes)
        the first error (or returns it)         ... until the input ends or the map stops

The window (``core/fanout_window.py``) bounds the chunks cut and not yet consumed to twice the
runners: a lazy input of any length is read only as fast as results are consumed. A map that
is closed, dropped, or whose consumer stopped at an error cuts no more chunks and cancels its
running calls (their workers stop before their next item).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from snakepit_actors.client.batch_call import Cancel, ChunkArgs, Failed, run_chunk
from snakepit_actors.client.direct import DirectPath
from snakepit_actors.config import PoolConfig
from snakepit_actors.core.fanout_window import MapWindow
from snakepit_actors.errors import RequestCancelledError, SnakepitError
from snakepit_actors.json_codec import encode_args
from snakepit_actors.messages import Execute

__all__ = ["AsyncMapIterator", "MapIterator", "Target"]

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_DECODE = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class Target:
    """What fan-out needs of a ``Pool`` handle."""

    config: PoolConfig
    direct: DirectPath | None
    submit: Callable[[Execute], Any]  # an Execute through the gateway -> its Future
    new_id: Callable[[], str]
    check_open: Callable[[], None]

    def run(self, tool: str, items: ChunkArgs, session_id: str | None,
            deadline_unix_s: float | None, idempotent: bool, cancel: Cancel,
            unary_single: bool = False) -> list[Any]:
        """``run_chunk`` on the path a request of ``session_id`` takes."""
        path = self.direct if (not session_id or self.config.affinity == "hint") else None
        return run_chunk(path, self.submit, self.new_id, tool, items, session_id=session_id,
                         deadline_unix_s=deadline_unix_s, idempotent=idempotent,
                         retry_idempotent=self.config.retry_idempotent, cancel=cancel,
                         unary_single=unary_single)

    def deadline_after(self, timeout: float | None) -> float | None:
        return None if timeout is None else time.time() + timeout


class _MapState:
    """The part of a map its runner threads share (a lock around a ``MapWindow``)."""

    def __init__(self, target: Target, tool: str, source: Iterator[Any], *, chunksize: int,
                 ordered: bool, timeout: float | None, idempotent: bool, runners: int) -> None:
        self.target, self.tool, self._source = target, tool, source
        self.chunksize, self.idempotent, self._max_runners = chunksize, idempotent, runners
        self.deadline = target.deadline_after(timeout)  # one deadline for the whole map
        self._lock = threading.Condition(threading.Lock())
        self._window: MapWindow[tuple[list[Any], bool]] = MapWindow(2 * runners, ordered)
        self._runners = 0
        self._end_error: BaseException | None = None  # raised after the last chunk
        self.cancel = Cancel()
        self.waker: Callable[[], None] | None = None  # an async consumer's

    # --- runner threads -----------------------------------------------------------------------

    def start_runner(self) -> None:
        self._runners += 1
        threading.Thread(target=self._runner, name="snakepit-map", daemon=True).start()

    def _runner(self) -> None:
        try:
            while (cut := self._cut()) is not None:
                seq, raw = cut
                try:
                    done = self._run(seq, raw)
                except BaseException as exc:  # a bug of ours: the items still get an outcome
                    done = [Failed(exc)] * len(raw), False
                self._finish(seq, done)
        finally:
            with self._lock:
                self._runners -= 1
            self._wake()

    def _cut(self) -> tuple[int, list[Any]] | None:
        """The next chunk of the input (waits for room in the window); None: nothing left."""
        with self._lock:
            while not self._window.may_cut():
                if self._window.exhausted:
                    return None
                self._lock.wait()
            seq = self._window.cut()
            raw: list[Any] = []
            try:  # extend keeps what came before an error: those items still run
                raw.extend(itertools.islice(self._source, self.chunksize))
            except Exception as exc:  # the input raised: it ends there, the error after it
                self._end_error = self._end_error or exc
            if len(raw) < self.chunksize or self._end_error is not None:
                self._window.exhausted = True
            elif self._runners < self._max_runners:
                self.start_runner()  # more input: one more runner, up to max_in_flight
        return seq, raw

    def _run(self, seq: int, raw: list[Any]) -> tuple[list[Any], bool]:
        """Run one chunk: its outcomes, and whether none of them failed."""
        outcomes: list[Any] = [None] * len(raw)
        chunk, where = self._encode(seq, raw, outcomes)
        if len(chunk):
            deadline = self.deadline
            if deadline is None and self.target.config.request_timeout is not None:
                deadline = time.time() + self.target.config.request_timeout * len(chunk)
            if len(chunk.array) > self.target.config.max_payload_bytes:  # too big as one call
                results = [self.target.run(self.tool, chunk.subset([i]), None, deadline,
                                           self.idempotent, self.cancel)[0]
                           for i in range(len(chunk))]
            else:
                results = self.target.run(self.tool, chunk, None, deadline, self.idempotent,
                                          self.cancel)
            if len(where) == len(raw):
                outcomes = results
            else:
                for i, outcome in zip(where, results, strict=True):
                    outcomes[i] = outcome
        clean = len(where) == len(raw) and all(type(o) is not Failed for o in outcomes)
        return outcomes, clean

    def _encode(self, seq: int, raw: list[Any], outcomes: list[Any]
                ) -> tuple[ChunkArgs, list[int]]:
        """The chunk's arguments, and where each item sent sits in ``raw``; an item that
        cannot be sent gets its error in ``outcomes``. One C encode for the usual chunk of
        dicts (a decode compared with the input proves the keys were all str), else item by
        item (``encode_args``: the error names the item's problem)."""
        values = [{} if args is None else args for args in raw]
        limit = self.target.config.max_payload_bytes
        if all(type(args) is dict for args in values):
            try:
                text = _ENCODE(values)
                data = text.encode()
                if len(data) <= limit and _DECODE(text) == values:
                    return ChunkArgs(data, values), list(range(len(raw)))
            except (TypeError, ValueError, RecursionError):
                pass
        each: list[bytes] = []
        where: list[int] = []
        for i, args in enumerate(values):
            try:
                each.append(encode_args(self.tool, args, limit))
                where.append(i)
            except SnakepitError as exc:
                outcomes[i] = Failed(type(exc)(f"item {seq * self.chunksize + i} of the map: "
                                               f"{exc.message}", reason=exc.reason,
                                               details=exc.details))
        return ChunkArgs.of(each), where

    def _finish(self, seq: int, done: tuple[list[Any], bool]) -> None:
        with self._lock:
            self._window.finish(seq, done)
            self._lock.notify_all()
        self._wake()

    def _wake(self) -> None:
        waker = self.waker
        if waker is not None:
            waker()

    # --- the consumer -------------------------------------------------------------------------

    def take(self, block: bool) -> tuple[list[Any], bool] | None:
        """The next chunk's outcomes and whether none failed; None when ``block`` is False and
        none is ready.
        Raises StopIteration at the end, or the error that ended the input early."""
        with self._lock:
            while True:
                got = self._window.take()
                if got is not None:
                    self._lock.notify_all()  # room in the window
                    return got[1]
                if self._window.ended():
                    if self._end_error is not None:
                        raise self._end_error
                    raise StopIteration
                if not block:
                    return None
                self._lock.wait()

    def ready(self) -> bool:
        with self._lock:
            return self._window.ready() or self._window.ended()

    def stop(self, error: SnakepitError, cancel_running: bool) -> None:
        """Cut no more chunks; the consumer gets ``error`` after the chunks already cut (and
        for their items, when ``cancel_running`` cancels the calls under way)."""
        with self._lock:
            if not self._window.exhausted:
                self._window.exhausted = True
                self._end_error = self._end_error or error
            self._lock.notify_all()
        if cancel_running:
            self.cancel.cancel(error)
        self._wake()


class MapIterator(Iterator[Any]):
    """The results of ``Pool.map``, in input order (or as finished with ``ordered=False``).

    Iterate it (each ``next`` blocks until the next result), or use it as a context manager:
    leaving the ``with`` block, calling ``close()``, or dropping it stops the map (no new chunk
    starts; running chunks are cancelled). An item's error is raised where its result would
    be (the map then stops), or returned in its place with ``return_exceptions=True``.
    """

    def __init__(self, state: _MapState, return_exceptions: bool) -> None:
        self._state = state
        self._return_exceptions = return_exceptions
        self._chunk: list[Any] = []
        self._at = 0
        self._closed = False
        # The map stops when both this iterator and the generator a for-loop took from it
        # are gone (or at close): both hold the token, which holds neither.
        token = _Token()
        self._finalizer = weakref.finalize(token, state.stop, RequestCancelledError(
            "the map was dropped before its end"), True)
        self._gen = _values(state, return_exceptions, self._finalizer, token)
        with state._lock:
            state.start_runner()

    def __iter__(self) -> Iterator[Any]:
        return self._gen  # a loop runs on the generator itself: no frame of ours per item

    def __next__(self) -> Any:
        return next(self._gen)

    def _next(self, block: bool) -> Any:
        """The next result for an async consumer; raises ``_NotReady`` when ``block`` is
        False and none is ready."""
        while self._at >= len(self._chunk):
            if self._closed:
                raise StopIteration
            try:
                got = self._state.take(block)
            except StopIteration:
                self._closed = True
                raise
            except BaseException:
                self.close()
                raise
            if got is None:
                raise _NotReady
            self._chunk, self._at = got[0], 0
        outcome = self._chunk[self._at]
        self._at += 1
        if type(outcome) is Failed:
            if self._return_exceptions:
                return outcome.error
            self.close()
            raise outcome.error
        return outcome

    def close(self) -> None:
        """Stop the map: no new chunk starts, running ones are cancelled. Idempotent."""
        self._closed = True
        self._chunk, self._at = [], 0
        with contextlib.suppress(ValueError):  # called from inside the generator: it ends
            self._gen.close()
        self._finalizer()

    def __enter__(self) -> MapIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Token:
    """Alive while a map's consumer may still read it (see ``MapIterator.__init__``)."""


def _values(state: _MapState, return_exceptions: bool, stop: Callable[[], object],
            token: _Token) -> Generator[Any, None, None]:
    """Every result of a map, chunk by chunk (a chunk without errors is yielded at C speed)."""
    while token is not None:  # (always: the generator's frame keeps the token alive)
        try:
            got = state.take(True)
        except StopIteration:
            return
        except BaseException:
            stop()
            raise
        assert got is not None
        outcomes, clean = got
        if clean:
            yield from outcomes
            continue
        for outcome in outcomes:
            if type(outcome) is Failed:
                if not return_exceptions:
                    stop()
                    raise outcome.error
                outcome = outcome.error
            yield outcome


class AsyncMapIterator(AsyncIterator[Any]):
    """``Pool.map_async``: ``async for value in ...`` (never blocks the event loop), or
    ``await`` it for the list of every result. Same order, errors and stopping as
    ``MapIterator``; ``aclose()`` stops it."""

    def __init__(self, results: MapIterator) -> None:
        self._results = results

    def __aiter__(self) -> AsyncMapIterator:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                return self._results._next(block=False)
            except StopIteration:
                raise StopAsyncIteration from None
            except _NotReady:
                await _ready(self._results._state)

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._collect().__await__()

    async def _collect(self) -> list[Any]:
        return [value async for value in self]

    async def aclose(self) -> None:
        self._results.close()


class _NotReady(Exception):
    """No result yet (a non-blocking take)."""


async def _ready(state: _MapState) -> None:
    """Wait (without blocking the loop) until the map has a chunk ready or ended."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(_set_done, woken)

    state.waker = wake
    try:
        if not state.ready():
            await woken
    finally:
        state.waker = None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def start_map(target: Target, tool: str, source: Iterator[Any], *, chunksize: int,
              ordered: bool, timeout: float | None, idempotent: bool, return_exceptions: bool,
              max_in_flight: int) -> tuple[MapIterator, _MapState]:
    """Start a map (its first runner); the iterator and its shared state (to stop it)."""
    state = _MapState(target, tool, source, chunksize=chunksize, ordered=ordered,
                      timeout=timeout, idempotent=idempotent, runners=max_in_flight)
    return MapIterator(state, return_exceptions), state
