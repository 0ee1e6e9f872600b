"""``ExecuteBatch`` on the worker side: the items of one call run one after another, their
replies stream back in item order, grouped as they finish.

    gRPC thread (the call)                        runner thread (one per batch call)
      take every reply ready, or wait  <--put--     for each item: run_one(item) (the
      yield ExecuteBatchReply(replies)              ExecuteTool path: same errors, same rules)
      ... until the runner is done                  stop early: the call ended or its deadline

The two threads are what keeps a batch both cheap and safe: while one message is on the wire
the runner goes on, and the next message carries every reply finished meanwhile (one message
per ~50 us send, not one per item); and a reply is sent as soon as the gRPC thread is free, so
a process that dies in the middle of a batch has already delivered the items it finished: the
caller fails only the unfinished ones. A batch whose deadline passes stops before its next item
and ends with DEADLINE_EXCEEDED; a cancelled call stops before its next item (the running
tool sees ``ctx.cancelled``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from snakepit_actors._proto import bridge_pb2

if TYPE_CHECKING:
    from .server import BridgeServicer

__all__ = ["run_batch"]


class _Outbox:
    """Replies the runner produced and the gRPC thread has not sent yet."""

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._replies: list[bridge_pb2.ExecuteToolResponse] = []
        self._done = False

    def put(self, reply: bridge_pb2.ExecuteToolResponse) -> None:
        with self._ready:
            self._replies.append(reply)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._done = True
            self._ready.notify()

    def take(self) -> tuple[list[bridge_pb2.ExecuteToolResponse], bool]:
        """Every reply ready (waits for one) and whether the runner is done."""
        with self._ready:
            while not self._replies and not self._done:
                self._ready.wait()
            replies, self._replies = self._replies, []
            return replies, self._done


def run_batch(servicer: BridgeServicer, request: bridge_pb2.ExecuteBatchRequest,
              context: grpc.ServicerContext) -> Iterator[bridge_pb2.ExecuteBatchReply]:
    """Run ``request``'s items in order on a runner thread; yield their replies in groups."""
    outbox = _Outbox()
    ended = threading.Event()
    context.add_callback(ended.set)
    runner = threading.Thread(target=_run, args=(servicer, request, context, outbox, ended),
                              name="batch-runner", daemon=True)
    runner.start()
    sent = 0
    try:
        done = False
        while not done:
            replies, done = outbox.take()
            if replies:
                sent += len(replies)
                yield bridge_pb2.ExecuteBatchReply(replies=replies)
    finally:
        ended.set()  # the call ended early: the runner stops before its next item
    if sent < len(request.items):
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                      f"batch {request.request_id!r}: its deadline passed after {sent} of "
                      f"{len(request.items)} items")


def _run(servicer: BridgeServicer, request: bridge_pb2.ExecuteBatchRequest,
         context: grpc.ServicerContext, outbox: _Outbox, ended: threading.Event) -> None:
    deadline = request.deadline_unix_s
    prefix = request.request_id + "."
    try:
        for index, item in enumerate(request.items):
            if ended.is_set() or (deadline and time.time() > deadline):
                return
            one = bridge_pb2.ExecuteToolRequest(
                request_id=item.request_id or prefix + str(index), session_id=request.session_id,
                tool=item.tool, args_json=item.args_json, deadline_unix_s=deadline,
                # only the first item moves the session here: the rest find it moved
                session_moved_from=request.session_moved_from if index == 0 else "")
            outbox.put(servicer.run_one(one, context))
    finally:
        outbox.close()
