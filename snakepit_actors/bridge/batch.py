"""``ExecuteBatch`` on the worker side: one tool run for each item of the call in turn, the
outcomes streamed back in item order, grouped as they finish.

    gRPC thread (the call)                          runner thread (one per running call)
      take every outcome ready (waits for one,  <--   decode args_json (one JSON array) once;
        then lingers while items keep finishing)      for each item: call the tool; keep its
      encode them as one JSON array; yield            result (or its ToolFailure)
        ExecuteBatchReply(results_json="[r0,...]",
        failures={i: ToolFailure})
      ... until the runner is done                    stop early: the call ended or its deadline

Two threads keep a batch both cheap and safe: while one message is on the wire the runner goes
on, and the next message carries every outcome finished meanwhile (a few messages per batch,
not one per item); and an outcome waits at most ``LINGER_S`` (2 ms) for company, and none at
all once the item after it runs longer than ``QUIET_S``, so a process that dies in the middle
of a batch has delivered the items it finished (all but those of its last 2 ms, when it dies
in the middle of a run of sub-millisecond items): the caller fails only the unfinished ones.
A batch whose deadline passes stops before its next item and ends with DEADLINE_EXCEEDED; a
cancelled call stops before its next item (a running tool sees ``ctx.cancelled``).

The rules are ``ExecuteTool``'s (``server.py``): the same failures, categories and messages. A
plain tool (sync, no ``ctx``) is called directly, its arguments checked against its signature
only when the call raises ``TypeError`` (Python checks them before the body runs, so nothing ran
then); any other tool goes through ``BridgeServicer.run_one`` item by item.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from snakepit_actors._proto import bridge_pb2
from snakepit_actors.errors import SerializationError
from snakepit_actors.json_codec import decode_value, encode_value

from .adapter import BoundTool
from .failures import Refused as _Refused
from .failures import failure_from as _failure_from
from .failures import usage as _usage

if TYPE_CHECKING:
    from .server import BridgeServicer

__all__ = ["run_batch"]

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_DECODE = json.JSONDecoder().decode

Outcome = bytes | bridge_pb2.ToolFailure


class _Outbox:
    """Outcomes (results or ``ToolFailure``s) the runner produced and the gRPC thread has not
    sent yet."""

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._outcomes: list[Any] = []
        self._done = False

    def put(self, outcome: Any) -> None:
        with self._ready:
            self._outcomes.append(outcome)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._done = True
            self._ready.notify()

    def take(self) -> tuple[list[Any], bool]:
        """The outcomes ready, and whether the runner is done and all were taken. Waits for
        one; then, while the runner keeps finishing items, lingers up to ``LINGER_S`` so one
        message carries many (it stops lingering as soon as an item takes longer than
        ``QUIET_S``: a slow item's predecessors are never held back by it)."""
        with self._ready:
            while not self._outcomes and not self._done:
                self._ready.wait()
        until = time.monotonic() + LINGER_S
        seen = len(self._outcomes)
        while not self._done and time.monotonic() < until:
            time.sleep(QUIET_S)
            now = len(self._outcomes)
            if now == seen:
                break
            seen = now
        with self._ready:
            taken, self._outcomes = self._outcomes, []
            return taken, self._done


class _Runners:
    """Daemon threads that run batches, kept between calls (a thread start per batch costs
    more than a small batch's items); one more starts when none is idle."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()
        self._idle = 0

    def run(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._tasks.put((fn, args))
        if spawn:
            threading.Thread(target=self._loop, name="batch-runner", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, args = self._tasks.get()
            try:
                fn(*args)  # _run catches what its items raise; this thread must not die
            except Exception:
                traceback.print_exc()
            with self._lock:
                self._idle += 1


_RUNNERS = _Runners()

#: The longest an outcome waits for others to share its message (seconds).
LINGER_S = 0.002
#: An item running longer than this ends the wait: what finished before it goes at once.
QUIET_S = 0.0002


def run_batch(servicer: BridgeServicer, request: bridge_pb2.ExecuteBatchRequest,
              context: grpc.ServicerContext) -> Iterator[bridge_pb2.ExecuteBatchReply]:
    """Run ``request``'s items in order on a runner thread; yield their outcomes in groups."""
    try:
        items = decode_value(request.args_json, "args")
        if type(items) is not list:
            raise _Refused("invalid_arguments", "TypeError",
                           f"args_json of batch {request.request_id!r} must be a JSON array, "
                           f"got {type(items).__name__}")
    except SerializationError as exc:
        yield bridge_pb2.ExecuteBatchReply(error=bridge_pb2.ToolFailure(
            category="invalid_arguments", type="SerializationError", message=exc.message))
        return
    except _Refused as refused:
        yield bridge_pb2.ExecuteBatchReply(error=refused.failure)
        return
    outbox = _Outbox()
    ended = threading.Event()
    context.add_callback(ended.set)
    _RUNNERS.run(_run, servicer, request, items, context, outbox, ended)
    sent = 0
    try:
        done = False
        while not done:
            outcomes, done = outbox.take()
            sent += len(outcomes)
            yield from _replies(servicer, request.tool, outcomes)
    finally:
        ended.set()  # the call ended early: the runner stops before its next item
    if sent < len(items):
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                      f"batch {request.request_id!r}: its deadline passed after {sent} of "
                      f"{len(items)} items")


def _replies(servicer: BridgeServicer, name: str, outcomes: list[Any]
             ) -> Iterator[bridge_pb2.ExecuteBatchReply]:
    """The messages carrying ``outcomes``: one JSON encode for all of them when every result
    encodes under the rule of ``json_codec`` (a decode compared with the values proves the
    keys were all str) and fits; else item by item (a result that cannot be sent gets its own
    ToolFailure, as from ExecuteTool), in messages of at most half the payload limit."""
    failures = {i: o for i, o in enumerate(outcomes) if type(o) is bridge_pb2.ToolFailure}
    values = [None if i in failures else o for i, o in enumerate(outcomes)] if failures \
        else outcomes
    try:
        text = _ENCODE(values)
        if len(text) <= servicer._max_payload and _DECODE(text) == values:
            yield bridge_pb2.ExecuteBatchReply(results_json=text.encode(), failures=failures)
            return
    except (TypeError, ValueError, RecursionError):
        pass
    each: list[Outcome] = []
    for index, outcome in enumerate(outcomes):
        if index in failures:
            each.append(outcome)
            continue
        try:
            each.append(servicer._encode(outcome, name, "result"))
        except _Refused as refused:
            each.append(refused.failure)
    group: list[Outcome] = []
    size = 0
    for outcome in each:
        group.append(outcome)
        size += len(outcome) if isinstance(outcome, bytes) else 256
        if size >= servicer._max_payload // 2:
            yield _reply(group)
            group, size = [], 0
    if group:
        yield _reply(group)


def _reply(outcomes: list[Outcome]) -> bridge_pb2.ExecuteBatchReply:
    failures = {i: o for i, o in enumerate(outcomes) if not isinstance(o, bytes)}
    data = b"[" + b",".join(o if isinstance(o, bytes) else b"null" for o in outcomes) + b"]"
    return bridge_pb2.ExecuteBatchReply(results_json=data, failures=failures)


def _run(servicer: BridgeServicer, request: bridge_pb2.ExecuteBatchRequest, items: list[Any],
         context: grpc.ServicerContext, outbox: _Outbox, ended: threading.Event) -> None:
    deadline = request.deadline_unix_s
    tool = servicer._tools.get(request.tool)
    info = tool.info if tool is not None else None
    plain = info is not None and not (info.takes_ctx or info.is_async or info.streaming)
    serial = None if servicer._adapter.thread_safe else servicer._serial
    with servicer._lock:
        servicer._in_flight += 1
    ran = 0
    try:
        for index, args in enumerate(items):
            if ended.is_set() or (deadline and time.time() > deadline):
                return
            if plain:
                assert tool is not None
                outcome = _call_plain(serial, tool, request.tool, args)
                ran += 1
            else:  # counted by run_one
                outcome = _call_one(servicer, request, index, args, context)
            outbox.put(outcome)
    finally:
        with servicer._lock:
            servicer._in_flight -= 1
            servicer._served += ran
        outbox.close()


def _call_plain(serial: Any, tool: BoundTool, name: str, args: Any) -> Any:
    """A sync tool without ``ctx``, called directly (see the module docstring): its result
    (encoded by ``_replies``), or its ``ToolFailure``. ``serial``: the adapter's lock when its
    tools run one at a time, else None."""
    try:
        if type(args) is not dict:
            raise _Refused("invalid_arguments", "TypeError",
                           f"the args of tool {name!r} must be a JSON object, "
                           f"got {type(args).__name__}")
        try:
            if serial is None:
                return tool.func(**args)
            with serial:
                return tool.func(**args)
        except TypeError as exc:
            try:
                tool.signature.bind(**args)
            except TypeError as bad:
                raise _Refused("invalid_arguments", "TypeError",
                               f"invalid arguments for tool {name}{_usage(tool)}: {bad}"
                               ) from None
            raise _failure_from(exc) from None
        except Exception as exc:
            raise _failure_from(exc) from None
    except _Refused as refused:
        return refused.failure
    except Exception as exc:
        return _failure_from(exc, "internal").failure


def _call_one(servicer: BridgeServicer, request: bridge_pb2.ExecuteBatchRequest, index: int,
              args: Any, context: grpc.ServicerContext) -> Any:
    """Any other tool (or an unknown one): ``run_one``, as ``ExecuteTool`` would."""
    try:
        payload = encode_value(args, "args")
    except SerializationError as exc:  # cannot happen for what JSON decoded; stay typed
        return bridge_pb2.ToolFailure(category="serialization", type="SerializationError",
                                      message=exc.message)
    one = bridge_pb2.ExecuteToolRequest(
        request_id=f"{request.request_id}.{index}", session_id=request.session_id,
        tool=request.tool, args_json=payload, deadline_unix_s=request.deadline_unix_s,
        # only the first item moves the session here: the others find it moved
        session_moved_from=request.session_moved_from if index == 0 else "")
    response = servicer.run_one(one, context)
    if response.WhichOneof("outcome") == "error":
        return response.error
    return decode_value(response.result_json, "result")  # encoded again with the others
