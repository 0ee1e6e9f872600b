"""One chunk of fan-out work (``Pool.map``, a batch of submits) as one call: ``ExecuteBatch`` on
a leased worker (the direct path), or one ``Execute`` per item through the actors.

    run_chunk(items) -> one outcome per item, in item order (a value, or a ``Failed(error)``)
      direct:  acquire a lease -> ExecuteBatch (items run in turn; replies stream back) -> release
               the worker died: items with a reply keep it; the others fail with its
               WorkerCrashedError, or run once more on another lease if they may (idempotent)
               the deadline passed: the items without a reply fail with RequestTimeoutError
      actor:   one Execute per item through the gateway (batched into one message to the Pool)

A chunk counts as one request in ``pool.stats()`` on the direct path (one call to its worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from snakepit_actors.client import direct
from snakepit_actors.client.direct import DirectPath
from snakepit_actors.client.replies import REPLY_GRACE_S, reply_wait_s
from snakepit_actors.errors import (
    RequestTimeoutError,
    SerializationError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.json_codec import decode_value, encode_value, failure_to_error
from snakepit_actors.messages import Execute

__all__ = ["Cancel", "ChunkArgs", "Failed", "run_chunk"]


class ChunkArgs:
    """The encoded arguments of a chunk's items: one JSON array (what ``ExecuteBatch`` sends)
    and each item's JSON, made on demand (a retry, the actor path, a single item).

    Args:
        array: the JSON array of every item's arguments.
        values: the items' argument dicts (encoded on demand), or None with ``each``.
        each: the items' encoded arguments, when already known.
    """

    __slots__ = ("_each", "_values", "array")

    def __init__(self, array: bytes, values: list[Any] | None,
                 each: list[bytes] | None = None) -> None:
        self.array = array
        self._values = values
        self._each = each

    @classmethod
    def of(cls, each: list[bytes]) -> ChunkArgs:
        """From each item's encoded arguments."""
        return cls(b"[" + b",".join(each) + b"]", None, each)

    def __len__(self) -> int:
        return len(self._each if self._each is not None else self._values or ())

    def __getitem__(self, index: int) -> bytes:
        if self._each is not None:
            return self._each[index]
        assert self._values is not None
        return encode_value(self._values[index], "args")

    def subset(self, indices: list[int]) -> ChunkArgs:
        """The arguments of the items at ``indices`` (in that order)."""
        if len(indices) == len(self):
            return self
        return ChunkArgs.of([self[i] for i in indices])


class Failed:
    """The outcome of an item that failed: ``error`` (a ``SnakepitError``)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Cancel:
    """Lets another thread stop the chunks of one map or executor: no new call starts, and a
    running ``ExecuteBatch`` is cancelled (its worker stops before its next item)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: set[Any] = set()
        self.error: SnakepitError | None = None

    def cancel(self, error: SnakepitError) -> None:
        with self._lock:
            self.error = self.error or error
            calls, self._calls = list(self._calls), set()
        for call in calls:
            call.cancel()

    def track(self, call: Any) -> bool:
        """Register a running call; False (and the call cancelled) when already cancelled."""
        with self._lock:
            if self.error is None:
                self._calls.add(call)
                return True
        call.cancel()
        return False

    def untrack(self, call: Any) -> None:
        with self._lock:
            self._calls.discard(call)


def run_chunk(path: DirectPath | None, submit: Callable[[Execute], Any], new_id: Callable[[], str],
              tool: str, items: ChunkArgs, *, session_id: str | None,
              deadline_unix_s: float | None, idempotent: bool, retry_idempotent: bool,
              cancel: Cancel, unary_single: bool = False) -> list[Any]:
    """Run ``tool`` once per item; one outcome per item, in order: a value or ``Failed(error)``.

    Args:
        path: the direct path, or None: one ``Execute`` per item through ``submit``.
        submit: sends an ``Execute`` through the gateway; returns its Future.
        new_id: makes a request id.
        tool: the tool every item runs.
        items: the items' arguments, in order.
        session_id: the session of every item (None: none).
        deadline_unix_s: the chunk's deadline (None: none).
        idempotent, retry_idempotent: whether items whose worker died may run once more.
        cancel: stops the chunk from another thread.
        unary_single: a single item goes as ``ExecuteTool`` (cheaper, but ``cancel`` cannot
            stop it once it runs).
    """
    if path is None:
        return _through_actors(submit, new_id, tool, items, session_id, deadline_unix_s,
                               idempotent)
    if unary_single and len(items) == 1:  # a unary call costs less on both ends
        return [_unary(path, new_id, tool, items[0], session_id, deadline_unix_s, idempotent)]
    if path._cfg.protocol != "snakepit_actors":  # Snakepit's workers have no ExecuteBatch
        return _one_by_one(path, new_id, tool, items, session_id, deadline_unix_s, idempotent,
                           cancel)
    outcomes: list[Any] = [_UNSET] * len(items)
    todo = list(range(len(items)))
    retry = idempotent or retry_idempotent
    attempt = 1
    while todo:
        if cancel.error is not None:
            _fail(outcomes, todo, cancel.error)
            break
        execute = Execute(request_id=new_id(), tool=tool, session_id=session_id,
                          deadline_unix_s=deadline_unix_s, idempotent=retry)
        error, lost = _one_call(path, execute, items.subset(todo), todo, outcomes, cancel)
        todo = [i for i in todo if outcomes[i] is _UNSET]
        if error is None or not todo:
            break
        if not (lost and retry and attempt == 1 and isinstance(error, WorkerCrashedError)
                and not path.leases.closed):
            _fail(outcomes, todo, error)
            break
        attempt += 1
    return outcomes


def _unary(path: DirectPath, new_id: Callable[[], str], tool: str, item: bytes,
           session_id: str | None, deadline_unix_s: float | None, idempotent: bool) -> Any:
    try:
        return path.execute(Execute(request_id=new_id(), tool=tool, session_id=session_id,
                                    deadline_unix_s=deadline_unix_s, idempotent=idempotent,
                                    args_json=item))
    except SnakepitError as exc:
        return Failed(exc)


def _one_by_one(path: DirectPath, new_id: Callable[[], str], tool: str, items: ChunkArgs,
                session_id: str | None, deadline_unix_s: float | None, idempotent: bool,
                cancel: Cancel) -> list[Any]:
    """A chunk as one unary call per item, in turn (a protocol without a batch RPC)."""
    outcomes: list[Any] = []
    for index in range(len(items)):
        if cancel.error is not None:
            outcomes += [Failed(cancel.error)] * (len(items) - index)
            break
        outcomes.append(_unary(path, new_id, tool, items[index], session_id, deadline_unix_s,
                               idempotent))
    return outcomes


def _one_call(path: DirectPath, execute: Execute, items: ChunkArgs, where: list[int],
              outcomes: list[Any], cancel: Cancel) -> tuple[SnakepitError | None, bool]:
    """One ``ExecuteBatch`` on one lease; fills ``outcomes`` at ``where`` as replies arrive.
    Returns the error that ended it early (None: every item answered) and whether the worker
    was lost."""
    started = time.perf_counter()
    try:
        lease = path._counted(path._acquire, execute, started)
    except SnakepitError as exc:
        return exc, False
    stub = lease.stub or path._stub(lease)  # imports grpc and the stubs on first use
    from snakepit_actors._proto import bridge_pb2  # loaded with grpc, on first use

    request = bridge_pb2.ExecuteBatchRequest(
        request_id=execute.request_id, session_id=execute.session_id or "", tool=execute.tool,
        args_json=items.array,
        deadline_unix_s=execute.deadline_unix_s or 0.0, session_moved_from=lease.session_from)
    try:
        call = stub.ExecuteBatch(request, timeout=direct._timeout(execute),
                                 metadata=path.metadata)
    except ValueError as exc:  # a closed channel: its process went
        return _ended(path, lease, execute, exc, started, cancel)
    if not cancel.track(call):
        path.leases.release(lease, "ok", execute.session_id, started, ok=False)
        return cancel.error, False
    worker, got, ok = lease.worker_id, 0, True
    refused: SnakepitError | None = None
    try:
        for reply in call:
            for outcome in _decode(reply, worker):
                outcomes[where[got]] = outcome
                got += 1
            ok = ok and not reply.failures
            if reply.HasField("error"):
                refused = failure_to_error(reply.error, worker)
    except (direct._grpc.RpcError, ValueError) as exc:
        return _ended(path, lease, execute, exc, started, cancel)
    except BaseException:
        call.cancel()
        path.leases.release(lease, "ok", execute.session_id, started, ok=False)
        raise
    finally:
        cancel.untrack(call)
    path.leases.release(lease, "ok", execute.session_id, started, ok=ok and refused is None)
    if got < len(items):  # refused as a whole (or a bridge that stopped early)
        return refused or SnakepitError(f"worker {worker} answered {got} of {len(items)} "
                                        "items of a batch"), False
    return None, False


def _ended(path: DirectPath, lease: Any, execute: Execute, exc: BaseException, started: float,
           cancel: Cancel) -> tuple[SnakepitError | None, bool]:
    """The call ended without every reply: cancelled by us, its deadline, or a lost worker."""
    if cancel.error is not None:
        path.leases.release(lease, "ok", execute.session_id, started, ok=False)
        return cancel.error, False
    settled = path._settle_error(lease, execute, exc, started)
    if settled.lost:
        return path._wait_gone(lease, settled.lost), True
    return settled.error, False


def _decode(reply: Any, worker_id: str) -> list[Any]:
    """The outcomes one ``ExecuteBatchReply`` carries."""
    if reply.HasField("error"):  # the batch was refused as a whole: no item ran
        return []
    try:
        values: list[Any] = decode_value(reply.results_json, "result")
    except SerializationError as exc:
        return [Failed(exc)] * reply.results_json.count(b",")  # unreachable from the bridge
    for index, failure in reply.failures.items():
        values[index] = Failed(failure_to_error(failure, worker_id))
    return values


def _fail(outcomes: list[Any], where: list[int], error: BaseException) -> None:
    for i in where:
        outcomes[i] = Failed(error)


def _through_actors(submit: Callable[[Execute], Any], new_id: Callable[[], str], tool: str,
                    items: ChunkArgs, session_id: str | None,
                    deadline_unix_s: float | None, idempotent: bool) -> list[Any]:
    futures = [submit(Execute(request_id=new_id(), tool=tool, session_id=session_id,
                              deadline_unix_s=deadline_unix_s, idempotent=idempotent,
                              args_json=items[i])) for i in range(len(items))]
    outcomes: list[Any] = []
    for future in futures:
        try:
            outcomes.append(future.result(reply_wait_s(deadline_unix_s)))
        except SnakepitError as exc:
            outcomes.append(Failed(exc))
        except TimeoutError:
            outcomes.append(Failed(RequestTimeoutError(
                f"no reply for {tool!r} within its deadline plus {REPLY_GRACE_S}s for the "
                "pool's answer", reason="no_reply")))
    return outcomes


_UNSET: Any = object()
