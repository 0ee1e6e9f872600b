"""The Worker's lifecycle as plain state: inputs in, effects out (no actors, no gRPC, no clock).

    starting ──ready line, ping──> ready <───────── probe: nothing runs ───┐
       │ start failed, timeout      │ a request timed out (or the Pool     │
       v                            v   says a direct call did)            │
    stopping <── past the grace ── draining ──nothing in flight──> probing ┘
       ^   ^                        ready / draining / probing
       │   └─ drained, idle ──── leaving   <── a move (node_draining, rebalance)
       └──── replacement failed ─ swapping <── a graceful recycle (max_requests, ttl, ...)
                                     └── replacement ready, drained, idle: swap in ──> ready

Serving states (ready, draining, probing, swapping, leaving) accept requests; only ``ready``
and ``swapping``/``leaving`` without a timeout check them in without ``worker_lost``. From any
state but ``stopping``, the process's death (or missed heartbeats, or a client that cannot
reach it) fails what runs, reports the loss and exits; ``stopping`` is terminal.

After a timeout the worker drains, then probes: a Heartbeat call counts the tool calls still
running in the process; none within ``cancel_grace_s`` (from the first probe) keeps the warm
process, else it is recycled (the only way to stop a running tool); what was sent ahead and
never started goes back to the Pool (``request_handed_back``). A swap supersedes a pending probe,
a move supersedes both. Each input returns ``worker_effects`` for the actor to run in order; one
that does not apply now returns ``()``; one impossible by construction raises ``LifecycleError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from snakepit_actors.config import PoolConfig
from snakepit_actors.core.worker_effects import (
    AbandonInFlight,
    AnnounceReady,
    CheckIn,
    Connect,
    Effects,
    Exit,
    HeartbeatDue,
    Probe,
    ProbeDue,
    RefuseRequest,
    ReplacementTimeout,
    ReportProcessLost,
    ReportStartFailed,
    ScheduleTimer,
    SendHeartbeat,
    SpawnProcess,
    SpawnReplacement,
    StartCall,
    StartupTimeout,
    StopProcess,
    StopReplacement,
    SwapIn,
)
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import GRACEFUL_RECYCLE_REASONS, MOVE_RECYCLE_REASONS


class WorkerState(enum.Enum):
    """Where the Worker is in its life; see the module docstring."""

    STARTING, READY, DRAINING, PROBING = "starting", "ready", "draining", "probing"
    SWAPPING, LEAVING, STOPPING = "swapping", "leaving", "stopping"


SERVING = frozenset({WorkerState.READY, WorkerState.DRAINING, WorkerState.PROBING,
                     WorkerState.SWAPPING, WorkerState.LEAVING})


class LifecycleError(RuntimeError):
    """The actor reported an outcome the core never asked for (a bug in the shell)."""


@dataclass(frozen=True, slots=True)
class LifecycleTimings:
    """The pool settings the lifecycle needs (seconds; see ``PoolConfig``)."""

    startup_timeout_s: float = 30.0
    heartbeat_interval_s: float = 2.0
    heartbeat_misses: int = 3
    cancel_grace_s: float = 0.5
    probe_timeout_s: float = 1.0
    probe_retry_s: float = 0.05

    @classmethod
    def from_config(cls, c: PoolConfig) -> LifecycleTimings:
        return cls(c.startup_timeout, c.heartbeat_interval, c.heartbeat_misses, c.cancel_grace_s)


@dataclass(slots=True)
class _Swap:
    generation: int
    drained: bool
    spawned: bool = False  # the replacement process runs
    address: str | None = None  # its ready line
    failed: bool = False
    swapping_in: bool = False  # old stopped, connecting to the new one


class WorkerLifecycle:
    """The decisions of one Worker actor; see the module docstring."""

    def __init__(self, timings: LifecycleTimings) -> None:
        self.timings = timings
        self.state = WorkerState.STARTING
        self.in_flight: set[str] = set()
        self.timed_out = False  # a timeout is pending: checks in with worker_lost
        self.missed_beats = 0
        self.process_live = False
        self._started = False
        self._connecting = False
        self._beat_pending = self._beat_unanswered = False  # in flight / not answered ok
        self._beat_age = 0  # ticks since the last beat left
        self._probe_pending = False
        self._probe_until: float | None = None
        self._leave_drained = False
        self._swap: _Swap | None = None
        self._generation = 0

    @property
    def serving(self) -> bool:
        """Whether requests are accepted (and session clean-ups sent)."""
        return self.state in SERVING

    @property
    def replacement_live(self) -> bool:
        return self._swap is not None and self._swap.spawned

    # --- start-up ------------------------------------------------------------------------------

    def start(self) -> Effects:
        """``InitWorker``: spawn the process."""
        if self._started:
            raise LifecycleError("start() twice")
        self._started = True
        return (SpawnProcess(),)

    def spawned(self) -> Effects:
        """The process runs; it has ``startup_timeout`` to announce itself."""
        self._expect(self.state is WorkerState.STARTING and not self.process_live, "spawned")
        self.process_live = True
        return (ScheduleTimer(self.timings.startup_timeout_s, StartupTimeout()),)

    def ready_line(self, address: str) -> Effects:
        """The process announced ``address``: connect and ping it."""
        self._expect(self.state is WorkerState.STARTING and self.process_live, "ready_line")
        self._connecting = True
        return (Connect(address),)

    def connected(self) -> Effects:
        """The ping answered: ready (a new process, or a swapped-in replacement)."""
        if self._swap is not None and self._swap.swapping_in:
            self._swap, self.state, self.timed_out = None, WorkerState.READY, False
            self._probe_until, self._probe_pending = None, False
            return (AnnounceReady("swapped"),)
        self._expect(self.state is WorkerState.STARTING and self._connecting, "connected")
        self.state, self._connecting = WorkerState.READY, False
        return (AnnounceReady("started"),
                ScheduleTimer(self.timings.heartbeat_interval_s, HeartbeatDue()))

    def connect_failed(self, error: SnakepitError) -> Effects:
        if self._swap is not None and self._swap.swapping_in:
            self._swap = None
            return self._stop("swap_failed")
        self._expect(self.state is WorkerState.STARTING and self._connecting, "connect_failed")
        return self.start_failed(error)

    def start_failed(self, error: SnakepitError) -> Effects:
        """Spawning failed, or the ready line was bad, or the ping did not answer."""
        self._expect(self.state is WorkerState.STARTING, "start_failed")
        return (ReportStartFailed(error), *self._stop("start_failed"))

    def startup_timed_out(self) -> Effects:
        """Timer ``StartupTimeout``: not ready in time (ignored once ready)."""
        if self.state is not WorkerState.STARTING:
            return ()
        return (ReportStartFailed(None), *self._stop("start_failed"))

    # --- requests ------------------------------------------------------------------------------

    def request_received(self, request_id: str) -> StartCall | RefuseRequest:
        """``RunRequest``: run it, or refuse it when not serving."""
        if not self.serving:
            return RefuseRequest(request_id, self.state.value)
        if request_id in self.in_flight:
            raise LifecycleError(f"request {request_id!r} is already in flight")
        self.in_flight.add(request_id)
        if self.state is WorkerState.PROBING:  # the probe would count it: drain again
            self.state, self._probe_pending = WorkerState.DRAINING, False
        return StartCall(request_id)

    def request_finished(self, request_id: str, *, ok: bool, elapsed_ms: float,
                         timed_out: bool, now: float) -> Effects:
        """Its caller has its answer (``timed_out``: the deadline passed while it ran)."""
        if request_id not in self.in_flight:
            raise LifecycleError(f"request {request_id!r} finished but was not in flight")
        self.in_flight.discard(request_id)
        if timed_out:
            self._mark_timed_out()
        return (CheckIn(request_id, ok, elapsed_ms, self.timed_out), *self._settle(now))

    def request_handed_back(self, request_id: str, now: float) -> Effects:
        """A request sent ahead never started: the actor gives it back to the Pool itself."""
        self.in_flight.discard(request_id)
        return self._settle(now)

    # --- health --------------------------------------------------------------------------------

    def heartbeat_due(self) -> Effects:
        """Timer ``HeartbeatDue``: ``missed_beats`` counts intervals since the last answered beat
        was sent; at ``heartbeat_misses`` with one pending the process is given up (at most
        ``interval x misses`` after it went silent); else a beat is sent unless one is pending."""
        if not self.serving:
            return ()  # the timer chain ends
        self.missed_beats, self._beat_age = self.missed_beats + 1, self._beat_age + 1
        misses = self.timings.heartbeat_misses
        if self._beat_unanswered and self.missed_beats >= misses:
            return self.process_died("heartbeat_missed")
        again = ScheduleTimer(self.timings.heartbeat_interval_s, HeartbeatDue())
        if self._beat_pending:
            return (again,)
        self._beat_pending, self._beat_unanswered, self._beat_age = True, True, 0
        return (SendHeartbeat(self.timings.heartbeat_interval_s * misses), again)

    def heartbeat_answered(self, ok: bool) -> Effects:
        """A beat answered (the count restarts from its sending) or failed (the count goes on)."""
        if self._beat_pending:
            self._beat_pending, self._beat_unanswered = False, not ok
            self.missed_beats = self._beat_age if ok else self.missed_beats
        return ()

    def process_died(self, reason: str) -> Effects:
        """The process exited, missed its heartbeats, or failed a call: give it up."""
        if self.state is WorkerState.STOPPING:
            return ()
        lost, self.in_flight = tuple(sorted(self.in_flight)), set()
        return (ReportProcessLost(reason, lost), *self._stop("process_lost"))

    # --- timeouts and the probe ----------------------------------------------------------------

    def probe_answered(self, running: int | None) -> Effects:
        """The probe's answer: ``running`` tool calls in the process (None: no answer)."""
        if self.state is not WorkerState.PROBING or not self._probe_pending:
            return ()  # superseded (a request, a swap or a move came meanwhile)
        self._probe_pending = False
        if running != 0:
            return (ScheduleTimer(self.timings.probe_retry_s, ProbeDue()),)
        self.state, self.timed_out, self._probe_until = WorkerState.READY, False, None
        return (AnnounceReady("recovered"),)

    def probe_due(self, now: float) -> Effects:
        """Timer ``ProbeDue``: probe again, or recycle once past the grace."""
        if self.state is not WorkerState.PROBING or self._probe_pending:
            return ()
        return self._probe_or_recycle(now)

    # --- recycling -----------------------------------------------------------------------------

    def recycle_requested(self, reason: str, *, drained: bool, detail: str = "",
                          now: float) -> Effects:
        """``RecycleWorker`` from the Pool; see ``messages.RecycleWorker`` for the reasons."""
        if not self.serving:
            return ()
        if reason == "unreachable":
            return self.process_died(f"unreachable from a client: {detail}")
        if reason in MOVE_RECYCLE_REASONS:
            return self._leave(drained, now)
        if reason in GRACEFUL_RECYCLE_REASONS:
            return self._swap_requested(reason, drained, now)
        self._mark_timed_out()  # "request_timeout": a direct-path call passed its deadline
        return self._settle(now)

    def replacement_spawned(self, generation: int) -> Effects:
        swap = self._swap
        self._expect(swap is not None and swap.generation == generation and not swap.spawned,
                     "replacement_spawned")
        assert swap is not None
        swap.spawned = True
        return (ScheduleTimer(self.timings.startup_timeout_s, ReplacementTimeout(generation)),)

    def replacement_ready(self, generation: int, address: str) -> Effects:
        swap = self._current_swap(generation)
        if swap is None or not swap.spawned:
            return ()
        swap.address = address
        return self._settle_swap(swap)

    def replacement_failed(self, generation: int, why: str) -> Effects:
        """Spawning, or the ready line, failed: exit once drained (the Starter starts anew)."""
        swap = self._current_swap(generation)
        if swap is None:
            return ()
        stop = (StopReplacement(why),) if swap.spawned else ()
        swap.spawned, swap.failed = False, True
        return (*stop, *self._settle_swap(swap))

    def replacement_timed_out(self, generation: int) -> Effects:
        """Timer ``ReplacementTimeout``: ignored once its replacement is ready or gone."""
        swap = self._current_swap(generation)
        if swap is None or swap.address is not None:
            return ()
        return self.replacement_failed(
            generation, f"not ready within startup_timeout={self.timings.startup_timeout_s}s")

    def exit_requested(self) -> Effects:
        """``ActorExitRequest`` (the tree stops, or our own ``Exit``): answer the callers,
        stop the processes without telling peers (they may be exiting too)."""
        if self.state is WorkerState.STOPPING:
            return ()
        abandoned, self.in_flight = tuple(sorted(self.in_flight)), set()
        out = self._stop_processes(notify=False)
        self.state = WorkerState.STOPPING
        return ((AbandonInFlight(abandoned),) if abandoned else ()) + out

    # --- steps ---------------------------------------------------------------------------------

    def _mark_timed_out(self) -> None:
        self.timed_out = True
        if self.state is WorkerState.READY:
            self.state = WorkerState.DRAINING

    def _leave(self, drained: bool, now: float) -> Effects:
        out: Effects = ()
        if self.state is WorkerState.SWAPPING:
            out = (StopReplacement(),) if self.replacement_live else ()
            self._swap = None
        if self.state is not WorkerState.LEAVING:
            self.state, self._probe_pending, self._leave_drained = WorkerState.LEAVING, False, False
        self._leave_drained = self._leave_drained or drained
        return out + self._settle(now)

    def _swap_requested(self, reason: str, drained: bool, now: float) -> Effects:
        if self.state is WorkerState.LEAVING:
            return ()  # it exits anyway
        if self._swap is None:
            self._generation += 1
            self._swap = _Swap(self._generation, drained)
            self.state, self._probe_pending = WorkerState.SWAPPING, False
            return (SpawnReplacement(self._generation, reason),)
        self._swap.drained = self._swap.drained or drained
        return self._settle(now)

    def _settle(self, now: float) -> Effects:
        """Whatever waited for the worker to be drained and idle, now that it may be."""
        if self.in_flight:
            return ()
        if self.state is WorkerState.DRAINING:
            return self._probe_or_recycle(now)
        if self.state is WorkerState.LEAVING and self._leave_drained:
            return self._stop("moving")
        if self.state is WorkerState.SWAPPING and self._swap is not None:
            return self._settle_swap(self._swap)
        return ()

    def _probe_or_recycle(self, now: float) -> Effects:
        grace = self.timings.cancel_grace_s
        if self._probe_until is None:
            self._probe_until = now + grace
        if grace > 0 and now < self._probe_until:
            self.state, self._probe_pending = WorkerState.PROBING, True
            return (Probe(self.timings.probe_timeout_s),)
        return self._stop("recycle")

    def _settle_swap(self, swap: _Swap) -> Effects:
        if not swap.drained or self.in_flight or self.state is not WorkerState.SWAPPING:
            return ()
        if swap.failed:
            self._swap = None
            return self._stop("swap_failed")
        if swap.address is None or swap.swapping_in:
            return ()
        swap.swapping_in, swap.spawned = True, False  # the replacement becomes the process
        self._beat_pending = self._beat_unanswered = False
        self.missed_beats = self._beat_age = 0
        return (SwapIn(), Connect(swap.address, swapped_in=True))

    def _stop(self, reason: str) -> Effects:
        out = self._stop_processes(notify=True)
        self.state = WorkerState.STOPPING
        return (*out, Exit(reason))

    def _stop_processes(self, notify: bool) -> Effects:
        out: Effects = ()
        if self.replacement_live:
            out += (StopReplacement(notify=notify),)
        if self.process_live:
            out += (StopProcess(notify),)
        self._swap, self.process_live = None, False
        return out

    def _current_swap(self, generation: int) -> _Swap | None:
        swap = self._swap
        if (self.state is not WorkerState.SWAPPING or swap is None or swap.failed
                or swap.swapping_in or swap.generation != generation):
            return None
        return swap

    def _expect(self, condition: bool, what: str) -> None:
        if not condition:
            raise LifecycleError(f"{what}() in state {self.state.value}")
