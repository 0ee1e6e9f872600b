"""Worker actor: owns one external Python process and proxies requests to it over gRPC.

    Starter_i (one_for_one of exactly this child, restarts it with backoff)
     └─ Worker_i  (this; permanent)  ──gRPC──>  python -m snakepit_actors.bridge  (process_i)

A thin shell around ``core.worker_lifecycle.WorkerLifecycle`` (states and every decision):
each handler turns its message into one core input and executes the effects it returns
(``_run``); the process, pidfd and wake pipe live in ``worker_process``, the gRPC calls in
``worker_link``, a swap's replacement in ``process_swap`` (see "A worker's life" in
docs/architecture.md). gRPC futures wake the actor through a pipe, so it stays responsive while
tools run; the process's death is seen at once (pidfd): in-flight requests are checked in as
crashed (the Pool replies ``WorkerCrashedError`` or re-runs an idempotent one), the Pool is told
``WorkerProcessLost`` (it revokes the leases) and the Worker exits; its Starter restarts it. A
request past its deadline gets ``RequestTimeoutError``; the Worker probes its process and keeps
it if the tool stopped within ``cancel_grace_s``, else recycles it. On ``ActorExitRequest`` it
answers its callers and stops its process: SIGTERM to the group, then SIGKILL.

``InitWorker`` -> pre-register in the ProcessRegistry -> spawn -> ready line (on a socket watched
with ``ThespianWatch``, never a blocking read) -> ping -> ``WorkerReady``. Heartbeats go over
that same socket (``beat_line``): the gRPC channel opens only for a call the Worker proxies
(sessions, streams, the actor path without the DataPlane, a probe). Requests (handled in
``worker_data_path``) run on persistent call threads whose completion wakes the actor through a
pipe, so it stays responsive while tools run (capacity > 1, crash detection, exit requests);
the process's death is seen at once (pidfd).

When its process dies the Worker checks its in-flight requests in as crashed (the Pool replies
``WorkerCrashedError`` or re-runs an idempotent one elsewhere), tells the Pool
``WorkerProcessLost`` (which revokes the clients' leases) and exits; its Starter restarts it.
A request past its deadline gets ``RequestTimeoutError``: the Worker drains and probes its
process, keeping it if the tool stopped within ``cancel_grace_s``, else recycling it (the only
way to stop a running tool). ``RecycleWorker`` from the Pool does the same for a direct-path
call, swaps processes for a graceful reason (the replacement starts first), or exits once
drained when its member node drains. On ``ActorExitRequest`` it answers its callers and stops
its process: SIGTERM to the group, then SIGKILL.

On a member node the Worker uses that node's run directory and process registry, listens on
TCP at the member's worker address, has no host tools, and registers with the pool's NodeAgent
there. It checks in with the sender of the last ``RunRequest`` (a restarted Pool is new) and
follows ``ActorReplaced`` (re-announcing its process and ``WorkerReady`` to a new registry).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from thespian.actors import (
    ActorExitRequest,
    ActorTypeDispatcher,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

from snakepit_actors.core import worker_effects as fx
from snakepit_actors.core.placement import meets_requirements
from snakepit_actors.core.worker_lifecycle import LifecycleTimings, WorkerLifecycle, WorkerState
from snakepit_actors.errors import SnakepitError
from snakepit_actors.messages import (
    ActorReplaced,
    Checkin,
    EndWorkerSession,
    ExecuteFailed,
    InitWorker,
    RecycleWorker,
    WorkerContext,
    WorkerOnNode,
    WorkerProcessLost,
    WorkerStartFailed,
)
from snakepit_actors.proctitle import bind_actor_process
from snakepit_actors.telemetry import bind_context, get_logger
from snakepit_actors.tree import beat_line, log_capture, processes, worker_errors
from snakepit_actors.tree.member_env import MemberEnv
from snakepit_actors.tree.process_swap import Swapper
from snakepit_actors.tree.worker_data_path import CheckinsDue, QueueDeadlineDue, WorkerDataPath
from snakepit_actors.tree.worker_link import InFlight, WorkerLink
from snakepit_actors.tree.worker_process import (
    ProcessHandle,
    bridge_spec,
    member_context,
    ready_fact,
)

log = get_logger("worker")


class Worker(WorkerDataPath, ActorTypeDispatcher):
    """One external process, proxied. See the module docstring for its lifecycle."""

    #: Placement: run only on a system advertising every required capability.
    actorSystemCapabilityCheck = staticmethod(meets_requirements)

    def __init__(self) -> None:
        super().__init__()
        self._core = WorkerLifecycle(LifecycleTimings())
        self._ctx: WorkerContext | None = None
        self._worker_id = ""
        self._member: MemberEnv | None = None  # set on a member node
        self._restarts = 0
        self._process = ProcessHandle(self.send)
        self._link = WorkerLink("", 0)
        self._in_flight: dict[str, InFlight] = {}
        self._heartbeat: Any = None  # the pending Heartbeat future
        self._probe: Any = None  # after a timeout: is the tool still running in the process?
        self._cleanups: set[Any] = set()  # CleanupSession calls in flight
        self._swapper = Swapper(self.send)  # a swap's replacement process
        self._address = ""  # where the process listens (its ready line)
        self._endpoint = ""  # the address in its WorkerReady (advertised on a member)
        self._ready_at = 0.0

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        super().receiveMessage(message, sender)
        starting = self._core.state is WorkerState.STARTING
        return ThespianWatch(self._process.fds(starting) + self._swapper.ready_fds()
                             + self._link.watch_fds())

    # --- messages -----------------------------------------------------------------------------

    def receiveMsg_InitWorker(self, msg: InitWorker, sender: Any) -> None:
        bind_actor_process("Worker", worker=msg.worker_id, pool=msg.context.config.name)
        self._ctx, self._worker_id, self._restarts = msg.context, msg.worker_id, msg.restarts
        self._core = WorkerLifecycle(LifecycleTimings.from_config(msg.context.config))
        self._link = WorkerLink(msg.worker_id, msg.context.config.max_payload_bytes,
                                msg.context.worker_token, msg.context.config.protocol,
                                msg.context.config.capacity)
        bind_context(worker_id=msg.worker_id)
        if msg.node:
            self._join_member(msg)
        self._run(self._core.start())

    def receiveMsg_ActorReplaced(self, msg: ActorReplaced, sender: Any) -> None:
        """A restarted registry or Pool (the Starter says): use it; tell a new registry."""
        if msg.role != "process_registry" or self._member is None:  # a member keeps its own
            self._ctx = self._context().with_actor(msg.role, msg.address)
            if msg.role == "process_registry":
                self._process.reregister(self._ctx)
        if msg.role == "worker_registry" and self._endpoint and self._core.serving:
            self._announce("again")

    def receiveMsg_EndWorkerSession(self, msg: EndWorkerSession, sender: Any) -> None:
        """Free the session's state in the process (fire and forget: a failure means the
        process is gone, and the state with it)."""
        if self._core.serving:
            future = self._link.cleanup_session(msg.session_id)
            self._cleanups.add(future)  # a dropped gRPC future cancels its call
            future.add_done_callback(self._cleanups.discard)

    def receiveMsg_WatchMessage(self, msg: WatchMessage, sender: Any) -> None:
        proc = self._process.proc
        self._link.read_beats(msg.ready)
        if self._process.woken(msg.ready):
            self._collect_done()
        else:
            self._collect_heartbeat()
        if self._process.exited(msg.ready):
            self._run(self._core.process_died("process_exited"))
        elif self._core.state is WorkerState.STARTING and proc is not None \
                and proc.ready_fd in msg.ready:
            self._read_ready_line()
        line = self._swapper.read_line(msg.ready)
        if line is not None:
            generation, address, failure = line
            self._run(self._core.replacement_failed(generation, failure) if failure
                      else self._core.replacement_ready(generation, address) if address else ())

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        match msg.payload:
            case fx.StartupTimeout():
                self._run(self._core.startup_timed_out())
            case fx.HeartbeatDue():
                self._collect_heartbeat()
                log_capture.cap_log(self._process.proc, self._context().config.worker_log_max_bytes)
                self._run(self._core.heartbeat_due())
            case fx.ProbeDue():
                self._run(self._core.probe_due(time.monotonic()))
            case fx.ReplacementTimeout(generation=generation):
                self._run(self._core.replacement_timed_out(generation))
            case QueueDeadlineDue():
                self._queue_deadline_due()
            case CheckinsDue():
                self._checkins_due()
            case other:
                log.error("timer.unknown", actor="Worker", payload=repr(other))

    def receiveMsg_RecycleWorker(self, msg: RecycleWorker, sender: Any) -> None:
        """The Pool: a direct-path call timed out here ("request_timeout"), could not reach the
        process ("unreachable"), the worker is due (a graceful reason) or moves (its node
        drains); the core decides (``WorkerLifecycle.recycle_requested``)."""
        self._run(self._core.recycle_requested(msg.reason, drained=msg.drained, detail=msg.detail,
                                               now=time.monotonic()))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        """Stopped with its tree (or by its own ``Exit``): answer the callers (outside the
        tree) but send nothing to peers, which may be exiting too (a send to a dying peer holds
        an exiting actor up to 7 s); the Pool and ProcessRegistry stop with us."""
        self._deferred = None  # held-back check-ins: the Pool stops too (or hears WorkerExited)
        self._run(self._core.exit_requested())
        self._release()

    # --- what the process and its calls report ------------------------------------------------

    def _read_ready_line(self) -> None:
        assert self._process.proc is not None
        try:
            ready = processes.read_ready(self._process.proc)
        except SnakepitError as exc:
            self._run(self._core.start_failed(exc))
            return
        if ready is not None:
            self._run(self._core.ready_line(ready.address))

    def _collect_done(self) -> None:
        self._collect_calls()
        self._collect_heartbeat()
        if self._probe is not None and self._probe.done():
            probe, self._probe = self._probe, None
            self._link.resume()  # kept or recycled: what comes next may start
            self._run(self._core.probe_answered(beat_line.calls_running(probe)))

    def _collect_heartbeat(self) -> None:
        if self._heartbeat is not None and self._heartbeat.done():
            beat, self._heartbeat = self._heartbeat, None
            self._run(self._core.heartbeat_answered(beat_line.beat_ok(beat)))

    # --- effects ------------------------------------------------------------------------------

    def _run(self, effects: fx.Effects) -> None:
        for effect in effects:
            self._execute(effect)

    def _execute(self, effect: fx.Effect) -> None:
        match effect:
            case fx.SpawnProcess():
                self._spawn()
            case fx.Connect(address=address, swapped_in=swapped_in):
                self._connect(address, swapped_in)
            case fx.AnnounceReady(cause=cause):
                self._announce(cause)
            case fx.ReportStartFailed(error=error):
                self._report_start_failed(error)
            case fx.CheckIn():
                self._check_in(Checkin(self._worker_id, effect.request_id, effect.ok,
                                       effect.elapsed_ms, worker_lost=effect.worker_lost))
            case fx.ReportProcessLost():
                self._report_lost(effect)
            case fx.AbandonInFlight(request_ids=request_ids):
                self._abandon(request_ids)
            case fx.SendHeartbeat(timeout_s=timeout_s):
                self._heartbeat = self._link.heartbeat(timeout_s, self._process.wake)
            case fx.Probe(timeout_s=timeout_s):
                self._probe = self._link.probe(timeout_s, self._process.wake)
            case fx.ScheduleTimer(after_s=after_s, payload=payload):
                self.wakeupAfter(after_s, payload=payload)
            case fx.SpawnReplacement():
                self._spawn_replacement(effect)
            case fx.StopReplacement():
                self._stop_replacement(effect)
            case fx.SwapIn():
                self._swap_in()
            case fx.StopProcess(notify=notify):
                self._flush(force=True)
                self._stop_process(notify)
            case fx.Exit(reason=reason):
                self._flush(force=True)
                if reason in ("recycle", "moving"):
                    log.info("worker.stopping", worker_id=self._worker_id, reason=reason)
                self.send(self.myAddress, ActorExitRequest())
            case fx.StartCall() | fx.RefuseRequest():
                raise TypeError(f"{effect!r} is answered by WorkerDataPath._start")

    def _spawn(self) -> None:
        try:
            proc = self._process.spawn(self._context(), self._spec())
        except SnakepitError as exc:
            self._run(self._core.start_failed(exc))
            return
        log.debug("worker.spawning", worker_id=self._worker_id, pid=proc.pid)
        self._run(self._core.spawned())

    def _connect(self, address: str, swapped_in: bool) -> None:
        proc = self._process.proc
        try:
            self._link.open(address, proc.beat_fd if proc is not None else None)
        except SnakepitError as exc:
            if swapped_in:
                log.warning("worker.recycle_failed", worker_id=self._worker_id, error=str(exc))
            self._run(self._core.connect_failed(exc))
            return
        self._address = address
        self._run(self._core.connected())

    def _announce(self, cause: Literal["started", "recovered", "swapped", "again"]) -> None:
        """``WorkerReady``; after a timeout ("recovered") or to a new registry ("again") with
        the same endpoint and ready time (on a member node: its advertised address)."""
        proc = self._process.proc
        assert proc is not None
        if cause in ("started", "swapped"):
            self._endpoint, self._ready_at = self._address, time.time()
        self.send(self._context().worker_registry, ready_fact(
            self._worker_id, self.myAddress, proc.pid, self._endpoint, self._restarts,
            self._ready_at, self._member, reannounced=cause == "again"))
        if cause == "started":
            log.info("worker.ready", worker_id=self._worker_id, pid=proc.pid)
        elif cause == "recovered":
            log.info("worker.timeout_recovered", worker_id=self._worker_id, pid=proc.pid)
        elif cause == "swapped":
            self._swapper.log_recycled()

    def _report_start_failed(self, error: SnakepitError | None) -> None:
        ctx = self._context()
        if error is None:
            error = worker_errors.startup_timeout_error(
                self._worker_id, ctx.config.startup_timeout, self._spec().log_path)
        log.warning("worker.start_failed", worker_id=self._worker_id, error=str(error))
        self.send(ctx.worker_registry, WorkerStartFailed(self._worker_id, error))

    def _report_lost(self, effect: fx.ReportProcessLost) -> None:
        """Fail what the process held (the Pool replies or retries), then revoke its leases."""
        ctx = self._context()
        if effect.reason == "heartbeat_missed":
            log.warning("worker.unhealthy", worker_id=self._worker_id,
                        missed=self._core.missed_beats)
        error = worker_errors.crash_error(self._worker_id, self._process.proc, effect.reason)
        self._flush(force=True)  # check-ins of calls answered before go first
        for rid in effect.request_ids:
            flight = self._in_flight.pop(rid, None)
            never_ran = flight is not None and flight.pump is None and (
                flight.future.cancel() or flight.never_ran)
            if flight is not None and not never_ran:
                flight.future.cancel()
            self.send(ctx.pool, Checkin(self._worker_id, rid, ok=False, elapsed_ms=0.0,
                                        worker_lost=True, crash=error, never_ran=never_ran))
        self.send(ctx.pool, WorkerProcessLost(self._worker_id, error))
        log.warning("worker.exited", worker_id=self._worker_id, reason=effect.reason,
                    exit_code=error.details.get("exit_code"))

    def _abandon(self, request_ids: tuple[str, ...]) -> None:
        error = self._process.stop_error(self._worker_id)
        for rid in request_ids:
            flight = self._in_flight.pop(rid, None)
            if flight is not None:
                self.send(flight.request.reply_to, ExecuteFailed(rid, error))

    def _spawn_replacement(self, effect: fx.SpawnReplacement) -> None:
        failed = self._swapper.spawn(self._context(), self._spec(), effect.generation,
                                     effect.reason)
        self._run(self._core.replacement_failed(effect.generation, failed) if failed
                  else self._core.replacement_spawned(effect.generation))

    def _stop_replacement(self, effect: fx.StopReplacement) -> None:
        if effect.failure:
            log.warning("worker.recycle_failed", worker_id=self._worker_id, error=effect.failure)
        self._swapper.stop(self._ctx, effect.notify)

    def _swap_in(self) -> None:
        """Stop the old process and adopt the replacement (a ``Connect`` follows)."""
        self._heartbeat = None
        self._link.close()
        self._swapper.swap_in(self._context(), self._process)

    def _stop_process(self, notify: bool) -> None:
        self._process.stop(self._ctx, notify)
        self._release()

    def _release(self) -> None:
        """Close the channel, end the call threads, close the descriptors (idempotent)."""
        self._link.stop()
        self._process.release()

    # --- set-up -------------------------------------------------------------------------------

    def _context(self) -> WorkerContext:
        assert self._ctx is not None, "InitWorker has not arrived"
        return self._ctx

    def _join_member(self, msg: InitWorker) -> None:
        """Running on member node ``msg.node``: its run dir, run id and process registry."""
        from snakepit_actors.tree.member_env import MEMBER_REGISTRY, PROCESS_REGISTRY_ACTOR

        registry = self.createActor(PROCESS_REGISTRY_ACTOR, globalName=MEMBER_REGISTRY)
        self._member, self._ctx = member_context(msg, registry)
        if msg.node_agent is not None:
            self.send(msg.node_agent, WorkerOnNode(msg.worker_id))

    def _spec(self) -> processes.BridgeSpec:
        return bridge_spec(self._context(), self._worker_id, self._member)
