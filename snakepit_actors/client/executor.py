"""``PoolExecutor``: the ``concurrent.futures`` way to fan out over one pool (docs/fanout.md).

    submit(tool, args) -> Future        queued here (FIFO) until a runner is free
    runner threads (at most max_in_flight, started on demand, kept until shutdown):
      take the oldest queued request (up to ``chunksize`` of them, as one ExecuteBatch call)
      -> Future.set_running_or_notify_cancel: a future cancelled while queued never runs
      -> run it on the pool -> set_result / set_exception
    map(tool, iterable) -> the same as Pool.map, stopped by shutdown(cancel_futures=True)
    shutdown(wait, cancel_futures)      no new work; cancel the queued; wait for the running

It is not a ``concurrent.futures.Executor`` subclass on purpose: it runs *tools* by name on the
pool's workers, not Python callables, so code that hands an Executor a function (e.g.
``loop.run_in_executor``) must not be given one. Its futures are real
``concurrent.futures.Future`` objects: ``as_completed``, ``wait`` and ``asyncio.wrap_future``
work on them.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from snakepit_actors.client.batch_call import Cancel, ChunkArgs, Failed
from snakepit_actors.client.fanout import MapIterator, Target, _MapState, start_map
from snakepit_actors.core.request_checks import check_call, check_timeout
from snakepit_actors.errors import InvalidArgumentsError, PoolClosedError, RequestCancelledError
from snakepit_actors.json_codec import encode_args

__all__ = ["PoolExecutor", "check_fanout"]


@dataclass(frozen=True, slots=True)
class _Work:
    future: Future[Any]
    tool: str
    args_json: bytes
    session_id: str | None
    deadline_unix_s: float | None
    idempotent: bool


class PoolExecutor:
    """Runs tools on a pool's workers, ``concurrent.futures`` style. Made by
    ``Pool.executor()``; thread-safe; a context manager (``shutdown(wait=True)`` on exit).

    Args:
        target: the pool (its handle's fan-out view).
        max_in_flight: how many requests (or chunks) run at once at most.
        chunksize: how many queued requests one runner sends as one call (1: each alone).
    """

    def __init__(self, target: Target, max_in_flight: int, chunksize: int = 1) -> None:
        self._target = target
        self._max = max_in_flight
        self._chunksize = chunksize
        self._lock = threading.Condition(threading.Lock())
        self._queue: deque[_Work] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._shutdown = False
        self._maps: weakref.WeakSet[_MapState] = weakref.WeakSet()
        self._cancel = Cancel()

    def submit(self, tool: str, args: Mapping[str, Any] | None = None, *,
               session_id: str | None = None, timeout: float | None = None,
               idempotent: bool = False) -> Future[Any]:
        """Queue ``tool(**args)``; returns at once with its ``concurrent.futures.Future``.

        Parameters as ``Pool.execute``; the deadline (``timeout``, None: the pool's
        ``request_timeout``) is fixed now, so time queued here counts. ``future.result()``
        returns the tool's result or raises ``Pool.execute``'s errors; ``future.cancel()``
        succeeds while the request is queued here, and then it never runs.

        Raises:
            InvalidArgumentsError, SerializationError, PayloadTooLargeError: bad parameters
                (nothing is queued).
            PoolClosedError: the pool is closed or this executor shut down.
        """
        timeout = check_call(tool, args, session_id, timeout, idempotent)
        self._target.check_open()
        payload = encode_args(tool, {} if args is None else args,
                              self._target.config.max_payload_bytes)
        work = _Work(Future(), tool, payload, session_id,
                     self._target.deadline_after(
                         self._target.config.request_timeout if timeout is None else timeout),
                     idempotent)
        with self._lock:
            self._refuse_if_shut()
            self._queue.append(work)
            if self._idle == 0 and len(self._threads) < self._max:
                thread = threading.Thread(target=self._runner, name="snakepit-executor",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._lock.notify()
        return work.future

    def map(self, tool: str, iterable: Iterable[Mapping[str, Any] | None], *,
            chunksize: int = 1, ordered: bool = True, timeout: float | None = None,
            idempotent: bool = False, return_exceptions: bool = False) -> MapIterator:
        """``Pool.map`` on this executor: at most its ``max_in_flight`` chunks at once, and
        ``shutdown(cancel_futures=True)`` stops it. Same parameters, results and errors."""
        source = check_fanout(tool, iterable, chunksize, ordered, timeout, idempotent,
                              return_exceptions, self._max)
        self._target.check_open()
        with self._lock:
            self._refuse_if_shut()
            results, state = start_map(self._target, tool, source, chunksize=chunksize,
                                       ordered=ordered, timeout=timeout, idempotent=idempotent,
                                       return_exceptions=return_exceptions,
                                       max_in_flight=self._max)
            self._maps.add(state)
        return results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more work. ``cancel_futures=True`` cancels every queued request (its
        future is cancelled and it never runs) and stops this executor's maps (their
        remaining items raise ``RequestCancelledError``). ``wait=True`` blocks until every
        request already running (and, without ``cancel_futures``, every queued one) has
        finished. Idempotent. The pool stays open."""
        with self._lock:
            self._shutdown = True
            dropped = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
            maps = list(self._maps) if cancel_futures else []
            threads = list(self._threads)
            self._lock.notify_all()
        for work in dropped:
            work.future.cancel()
        for state in maps:
            state.stop(RequestCancelledError("the executor was shut down with cancel_futures"
                                             "=True before this item ran"), True)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def close_with(self, error: PoolClosedError) -> None:
        """The pool is closing: queued requests fail with ``error``, maps start no new chunk
        (their running chunks finish, as running requests do)."""
        with self._lock:
            self._shutdown = True
            dropped, maps = list(self._queue), list(self._maps)
            self._queue.clear()
            self._lock.notify_all()
        for work in dropped:
            if work.future.set_running_or_notify_cancel():
                work.future.set_exception(error)
        for state in maps:
            state.stop(error, False)

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    def _refuse_if_shut(self) -> None:
        if self._shutdown:
            raise PoolClosedError("this executor was shut down: make a new one with "
                                  "pool.executor(), or submit to the pool itself "
                                  "(pool.submit)", reason="executor_shut_down")

    # --- runner threads -------------------------------------------------------------------------

    def _runner(self) -> None:
        while (batch := self._take()) is not None:
            first = batch[0]
            deadlines = [w.deadline_unix_s for w in batch if w.deadline_unix_s is not None]
            try:
                outcomes = self._target.run(first.tool, ChunkArgs.of([w.args_json for w in batch]),
                                            first.session_id,
                                            min(deadlines) if deadlines else None,
                                            first.idempotent, self._cancel, unary_single=True)
            except BaseException as exc:  # a bug of ours: the futures still get an outcome
                outcomes = [Failed(exc)] * len(batch)
            for work, outcome in zip(batch, outcomes, strict=True):
                if type(outcome) is Failed:
                    work.future.set_exception(outcome.error)
                else:
                    work.future.set_result(outcome)

    def _take(self) -> list[_Work] | None:
        """The oldest queued requests not cancelled (up to ``chunksize``, same tool, session
        and idempotence, within ``max_payload_bytes`` together), marked running; None: shut
        down and nothing queued (the runner ends)."""
        with self._lock:
            limit = self._target.config.max_payload_bytes
            while True:
                batch: list[_Work] = []
                size = 0
                while self._queue and len(batch) < self._chunksize:
                    work = self._queue[0]
                    size += len(work.args_json) + 1
                    if batch and ((work.tool, work.session_id, work.idempotent) != (
                            batch[0].tool, batch[0].session_id, batch[0].idempotent)
                            or size > limit):
                        break
                    self._queue.popleft()
                    if work.future.set_running_or_notify_cancel():
                        batch.append(work)
                if batch:
                    return batch
                if self._shutdown:
                    return None
                self._idle += 1
                self._lock.wait()
                self._idle -= 1


def check_fanout(tool: Any, iterable: Any, chunksize: Any, ordered: Any, timeout: Any,
                 idempotent: Any, return_exceptions: Any, max_in_flight: Any) -> Any:
    """The parameters of a map; returns an iterator over ``iterable``.

    Raises:
        InvalidArgumentsError: the first bad parameter, named with its value and a fix.
    """
    check_call(tool, None, None, None, idempotent)
    check_timeout(timeout)
    example = f"pool.map({tool!r}, [{{'x': 1}}, {{'x': 2}}])"
    if isinstance(iterable, Mapping | str | bytes):
        raise _bad("iterable_of_args", iterable, "an iterable of argument mappings (one per "
                   "request), not a single one", example)
    try:
        source = iter(iterable)
    except TypeError:
        raise _bad("iterable_of_args", iterable, "an iterable of argument mappings", example
                   ) from None
    for name, value in (("chunksize", chunksize), ("max_in_flight", max_in_flight)):
        if type(value) is not int or value < 1:
            raise _bad(name, value, "an int >= 1", f"{name}=16")
    for name, value in (("ordered", ordered), ("return_exceptions", return_exceptions)):
        if type(value) is not bool:
            raise _bad(name, value, "True or False", f"{name}=True")
    return source


def _bad(name: str, value: Any, rule: str, example: str) -> InvalidArgumentsError:
    shown = repr(value)
    shown = (shown if len(shown) <= 60 else shown[:60] + "...") + f" ({type(value).__name__})"
    return InvalidArgumentsError(f"{name} must be {rule}, got {shown}: e.g. {example}",
                                 reason=f"invalid_{name}", details={"parameter": name})
