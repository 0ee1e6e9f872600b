"""The Worker actor's request handling (the actor data path), mixed into ``tree/worker.py``.

    Pool ──RunRequest | RunBatch──> Worker ──WorkerLink.call──> call threads ──gRPC──> process
    Worker <── wake pipe <── finished calls
    Worker ──ExecuteResult / ExecuteFailed (or ExecuteReplies per caller)──> callers
    Worker ──Checkin (or CheckinBatch)──> Pool

Every finished call found on one wake-up is answered in one pass: each caller gets exactly one
reply (grouped into one ``ExecuteReplies`` per caller that asked for it with
``Execute.batch_replies``), and the Pool gets the check-ins of the pass in one message. Thespian
carries about one message per millisecond of CPU, so under load this turns three messages per
request into a few per pass; with one request per pass nothing changes.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snakepit_actors.core import worker_effects as fx
from snakepit_actors.errors import QueueTimeoutError, SnakepitError
from snakepit_actors.messages import (
    CancelRequest,
    Checkin,
    CheckinBatch,
    ExecuteFailed,
    ExecuteReplies,
    ExecuteResult,
    RunBatch,
    RunRequest,
)
from snakepit_actors.telemetry import get_logger
from snakepit_actors.tree import worker_errors, worker_link
from snakepit_actors.tree.worker_process import follow_pool

if TYPE_CHECKING:
    from snakepit_actors.core.worker_lifecycle import WorkerLifecycle
    from snakepit_actors.messages import WorkerContext
    from snakepit_actors.tree.worker_link import InFlight, WorkerLink
    from snakepit_actors.tree.worker_process import ProcessHandle

log = get_logger("worker")

Reply = ExecuteResult | ExecuteFailed


@dataclass(frozen=True, slots=True)
class QueueDeadlineDue:
    """Timer payload: a request sent ahead may have passed its queue deadline."""


@dataclass(frozen=True, slots=True)
class CheckinsDue:
    """Timer payload: check-ins held back for ``HOLD_CHECKINS_S`` go to the Pool now."""


#: The longest a check-in is held back (while the next calls run).
HOLD_CHECKINS_S = 0.05


class WorkerDataPath:
    """Request handling of the Worker actor (a mixin: the actor provides what is declared
    below)."""

    _core: WorkerLifecycle
    _ctx: WorkerContext | None
    _worker_id: str
    _link: WorkerLink
    _process: ProcessHandle
    _in_flight: dict[str, InFlight]
    #: While a pass answers finished calls: replies per caller and the check-ins, sent at its
    #: end (``_flush``); None outside a pass (sent at once).
    _replies: dict[str, tuple[Any, list[Reply]]] | None = None
    _checkins: list[Checkin] | None = None
    #: Check-ins held back while calls still wait in the call threads' FIFO (see ``_flush``).
    _deferred: list[tuple[Checkin, float]] | None = None  # with when each was held back
    _checkin_timer = False  # a CheckinsDue is pending
    _queue_timer_at: float | None = None  # when the pending QueueDeadlineDue fires
    _queue_timed_out: set[str] | None = None  # their check-ins say so (the Pool counts them)

    if TYPE_CHECKING:  # provided by the actor (a runtime stub would shadow Thespian's send)
        def send(self, target: Any, message: Any) -> None: ...
        def _run(self, effects: fx.Effects) -> None: ...
        def _context(self) -> WorkerContext: ...
        def wakeupAfter(self, timePeriod: Any, payload: Any = None) -> None: ...

    def receiveMsg_RunRequest(self, msg: RunRequest, sender: Any) -> None:
        self._ctx = follow_pool(self._context(), sender)
        self._start(msg)

    def receiveMsg_RunBatch(self, msg: RunBatch, sender: Any) -> None:
        self._ctx = follow_pool(self._context(), sender)
        self._begin_pass()
        for run in msg.runs:
            self._start(run)
        self._flush()

    def receiveMsg_CancelRequest(self, msg: CancelRequest, sender: Any) -> None:
        flight = self._in_flight.get(msg.request_id)
        if flight is not None and self._link.cancel(flight):
            self._collect_calls()  # a queued call ends RequestCancelledError at once

    # --- steps --------------------------------------------------------------------------------

    def _start(self, msg: RunRequest) -> None:
        rid = msg.request.request_id
        match self._core.request_received(rid):
            case fx.RefuseRequest(state=state):  # it never ran: the Pool runs it elsewhere
                self._check_in(Checkin(  # (or answers it): one reply, from one place
                    self._worker_id, rid, False, 0.0, worker_lost=True, never_ran=True,
                    crash=worker_errors.not_ready_error(self._worker_id, state)))
            case fx.StartCall():
                try:
                    self._in_flight[rid] = self._link.call(msg, self._process.wake)
                    self._arm_queue_timer(msg.queue_deadline_unix_s)
                except SnakepitError as exc:  # the args cannot be sent
                    self.send(msg.reply_to, ExecuteFailed(rid, exc))
                    self._run(self._core.request_finished(
                        rid, ok=False, elapsed_ms=0.0, timed_out=False, now=time.monotonic()))

    def _collect_calls(self) -> None:
        """Stream chunks, then every finished call, answered in one pass."""
        for streaming in self._in_flight.values():
            chunk = worker_link.next_chunk(streaming)
            if chunk is not None:
                self.send(streaming.request.reply_to, chunk)
        done = [rid for rid, f in self._in_flight.items() if f.future.done()]
        if not done:
            return
        self._begin_pass()
        for rid in done:
            flight = self._in_flight.get(rid)
            if flight is not None:  # a crash found earlier in this pass fails the rest at once
                self._complete(flight)
        self._flush()

    def _complete(self, flight: InFlight) -> None:
        """Exactly one reply to the caller, then the core decides the check-in (or the
        process is lost, and every call in flight fails with it)."""
        outcome = self._link.outcome(flight)
        rid = flight.request.request.request_id
        if outcome.handed_back:
            self._hand_back(rid)
            return
        if outcome.reply is None:
            self._flush(force=True)  # what this pass answered goes before the crash's
            self._run(self._core.process_died(outcome.lost))
            return
        del self._in_flight[rid]
        if outcome.timed_out:
            log.info("request.timeout", request_id=rid, worker_id=self._worker_id)
        if isinstance(outcome.reply, ExecuteFailed) \
                and isinstance(outcome.reply.error, QueueTimeoutError):  # sent ahead, never ran
            self._queue_timed_out = (self._queue_timed_out or set()) | {rid}
        self._reply(flight.request, outcome.reply)
        self._run(self._core.request_finished(
            rid, ok=isinstance(outcome.reply, ExecuteResult), elapsed_ms=outcome.elapsed_ms,
            timed_out=outcome.timed_out, now=time.monotonic()))
        if outcome.timed_out:
            self._hand_back_queued()

    def _hand_back_queued(self) -> None:
        """A call passed its deadline, so the process is drained and probed: what was sent
        ahead and has not started goes back to the Pool's queue to run elsewhere."""
        for rid, flight in list(self._in_flight.items()):
            if flight.pump is None and flight.future.cancel():
                self._hand_back(rid)

    def _hand_back(self, rid: str) -> None:
        del self._in_flight[rid]
        self._check_in(Checkin(self._worker_id, rid, ok=False, elapsed_ms=0.0, worker_lost=True,
                               crash=worker_errors.not_ready_error(self._worker_id, "draining"),
                               never_ran=True))
        self._run(self._core.request_handed_back(rid, time.monotonic()))

    def _checkins_due(self) -> None:
        self._checkin_timer = False
        if self._deferred:
            self._flush(force=True)

    # --- the queue deadlines of requests sent ahead -----------------------------------------

    def _arm_queue_timer(self, deadline: float | None) -> None:
        """One timer at a time, at the earliest queue deadline of the calls waiting."""
        if deadline is None or (self._queue_timer_at is not None
                                and self._queue_timer_at <= deadline):
            return
        self._queue_timer_at = deadline
        self.wakeupAfter(max(0.0, deadline - time.time()), payload=QueueDeadlineDue())

    def _queue_deadline_due(self) -> None:
        """Calls still waiting past their queue deadline end with ``QueueTimeoutError``."""
        now, self._queue_timer_at = time.time(), None
        later: list[float] = []
        for flight in self._in_flight.values():
            deadline = flight.request.queue_deadline_unix_s
            if deadline is None or flight.pump is not None or flight.future.running() \
                    or flight.future.done():
                continue
            if deadline <= now:
                flight.queue_expired = flight.future.cancel()
            else:
                later.append(deadline)
        self._collect_calls()
        if later:
            self._arm_queue_timer(min(later))

    # --- sending, grouped within a pass -------------------------------------------------------

    def _begin_pass(self) -> None:
        self._replies, self._checkins = {}, []

    def _reply(self, run: RunRequest, reply: Reply) -> None:
        if self._replies is None or not run.request.batch_replies:
            self.send(run.reply_to, reply)
            return
        self._replies.setdefault(str(run.reply_to), (run.reply_to, []))[1].append(reply)

    def _check_in(self, checkin: Checkin) -> None:
        if self._queue_timed_out and checkin.request_id in self._queue_timed_out:
            self._queue_timed_out.discard(checkin.request_id)
            checkin = dataclasses.replace(checkin, queue_timed_out=True)
        if self._checkins is None:
            self._begin_pass()
            assert self._checkins is not None
            self._checkins.append(checkin)
            self._flush(force=True)
        else:
            self._checkins.append(checkin)

    def _flush(self, force: bool = False) -> None:
        """End the pass: the check-ins sent now, then the replies (one message per caller), so
        the Pool has usually heard a worker is free before its caller, told the answer, asks
        again (a session's next call finds its worker free, not busy).

        Check-ins of calls that succeeded are held back (not the replies) while more calls
        wait in the call threads' FIFO, up to ``prefetch`` of them: the Pool only needs them
        to send more, and the worker has work until its FIFO is empty. A failure (counted at
        once), a check-in that takes the worker out of rotation, and ``force`` (a crash, an
        exit) send them all now, and none is held longer than ``HOLD_CHECKINS_S`` (a timer);
        each says how long it was held (``Checkin.held_ms``), so the Pool's latencies do not
        count it."""
        now = time.monotonic()
        held = (self._deferred or []) + [(c, now) for c in self._checkins or []]
        replies, self._replies = self._replies or {}, None
        self._checkins = self._deferred = None
        if not force and held and len(held) < self._context().config.prefetch \
                and self._link.waiting_calls() and all(c.ok and not c.worker_lost
                                                       for c, _ in held):
            self._deferred = held
            if not self._checkin_timer:
                self._checkin_timer = True
                self.wakeupAfter(HOLD_CHECKINS_S, payload=CheckinsDue())
        else:
            checkins = [c if t == now else dataclasses.replace(c, held_ms=(now - t) * 1000.0)
                        for c, t in held]
            if len(checkins) == 1:
                self.send(self._context().pool, checkins[0])
            elif checkins:
                self.send(self._context().pool, CheckinBatch(tuple(checkins)))
        for target, group in replies.values():
            self.send(target, group[0] if len(group) == 1 else ExecuteReplies(tuple(group)))
