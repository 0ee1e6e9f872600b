"""Which requests the Pool hands to the DataPlane, and the ledger that gives each of them one
answer if the DataPlane dies.

    Execute ──forwardable?──yes──> ForwardLedger.add ──> DataPlane ──reply──> caller
       │                                 ^                   │
       no: the Pool's own queue          └── served(ids) <───┘ DataPlaneServed, batched
                                         lost(): every open entry fails (WorkerCrashedError)

The DataPlane (``tree/data_plane.py``) serves unary requests without a session whose sender
accepts grouped replies (``forwardable``): they need no affinity, no stream and no Worker-side
state. Everything else, and everything while the pool
is not serving (starting, degraded, closed), stays on the Pool's own path, which already knows
how to refuse it. The ledger costs one dict entry per request in flight; the DataPlane reports
what it answered in batches, so after a ``kill -9`` of the DataPlane a request answered in its
last moments may be failed once more (the Python handle drops a second answer; see
docs/architecture.md, "The data plane").

No Thespian, no clock of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from snakepit_actors.config import PoolConfig
from snakepit_actors.core.pool_decisions import Decision, Forward, Reply
from snakepit_actors.core.request_checks import execute_problem
from snakepit_actors.core.request_desk import request_deadline
from snakepit_actors.errors import WorkerCrashedError
from snakepit_actors.messages import CancelRequest, ClosePool, Execute, ExecuteFailed

if TYPE_CHECKING:
    from snakepit_actors.core.pool_records import Counters
    from snakepit_actors.core.readiness import Readiness
    from snakepit_actors.core.scheduling import Scheduler


def forwardable(request: Execute) -> bool:
    """Whether the DataPlane serves ``request``: unary, no session, its sender accepts grouped
    replies (``batch_replies``, as the Python handle does), nothing wrong with it (a bad
    request is refused by the Pool, with the Pool's own error).

    A sender that wants one message per reply is served faster by the Worker actors: their
    replies travel over one Thespian connection per worker, where the DataPlane's would all
    share one, each message waiting for the previous one's acknowledgement (measured in
    alternating rounds: 246-356/s through the DataPlane against 376-415/s; with
    ``ExecuteBatch`` + ``batch_replies``, 995-1,342/s against 500-634/s)."""
    return (request.batch_replies and not request.stream and request.session_id is None
            and execute_problem(request) is None)


class ForwardLedger:
    """The requests forwarded to the DataPlane and not yet reported answered."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}  # request_id -> whom to answer

    def __len__(self) -> int:
        return len(self._open)

    def has(self, request_id: str) -> bool:
        return request_id in self._open

    def add(self, request_id: str, reply_to: Any) -> None:
        self._open[request_id] = reply_to

    def served(self, request_ids: Iterable[str]) -> None:
        """The DataPlane answered these (unknown ids are ignored)."""
        pop = self._open.pop
        for request_id in request_ids:
            pop(request_id, None)

    def lost(self, reason: str) -> list[Reply]:
        """The DataPlane died (``reason``): every request it was not heard to answer fails
        with ``WorkerCrashedError`` (it may have run). The ledger is empty afterwards."""
        out = [Reply(reply_to, ExecuteFailed(request_id, WorkerCrashedError(
            f"the data plane died while request {request_id} was in it ({reason}); the request "
            f"may have run", reason="data_plane_lost", details={"worker_id": None})))
            for request_id, reply_to in self._open.items()]
        self._open.clear()
        return out


class DataPlaneRoute:
    """The Pool core's side of the DataPlane: what to forward, the ledger, and what a new
    DataPlane means. ``address`` is the DataPlane's (None: none; everything stays on the
    Pool's path)."""

    def __init__(self, config: PoolConfig, counters: Counters, readiness: Readiness,
                 scheduler: Scheduler[Any]) -> None:
        self._config, self._counters = config, counters
        self._readiness, self._scheduler = readiness, scheduler
        self.address: Any = None
        self.ledger = ForwardLedger()
        self.waiting = 0  # requests waiting in the DataPlane beyond its lease requests

    def forward(self, msg: Execute, sender: Any, now: float) -> Execute | None:
        """``msg`` as the DataPlane gets it (``reply_to`` and its one deadline filled in,
        counted, in the ledger), or None: the Pool handles it itself (no DataPlane, a stream,
        a session, a bad request, or the pool is not serving: starting, degraded, closed)."""
        if (self.address is None or not forwardable(msg) or self._scheduler.closed
                or self._readiness.refusal() is not None):
            return None
        self._counters.requests += 1
        reply_to = msg.reply_to or sender
        self.ledger.add(msg.request_id, reply_to)
        return replace(msg, reply_to=reply_to, deadline_unix_s=request_deadline(
            msg, now, self._config.request_timeout))

    def cancel(self, msg: CancelRequest) -> list[Decision]:
        """The cancel goes to the DataPlane if it has the request ([]: not forwarded)."""
        if self.address is None or not self.ledger.has(msg.request_id):
            return []
        return [Forward(self.address, msg)]

    def close(self) -> list[Decision]:
        """The pool closes: the DataPlane fails what waits in it."""
        return [] if self.address is None else [Forward(self.address, ClosePool())]

    def replaced(self, address: Any) -> list[Decision]:
        """The DataPlane died and a new one runs at ``address``: what the old one was not
        heard to answer fails (``WorkerCrashedError``); its leases come back when the Pool
        sees its process gone (``HolderWatch``)."""
        self.address, self.waiting = address, 0
        return list(self.ledger.lost("the data plane actor exited"))
