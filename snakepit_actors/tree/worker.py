"""Worker actor: owns one external Python process and proxies requests to it over gRPC.

    Starter_i (one_for_one of exactly this child, restarts it with backoff)
     └─ Worker_i  (this; permanent)  ──gRPC──>  python -m snakepit_actors.bridge  (process_i)

Lifecycle: ``InitWorker`` -> pre-register in ProcessRegistry -> spawn -> ready handshake (a pipe
watched with ``ThespianWatch``, never a blocking read) -> ping -> ``WorkerReady`` to the
WorkerRegistry. Requests (``RunRequest``) run as gRPC futures whose completion wakes the actor
through a pipe, so the Worker stays responsive while tools run (capacity > 1, crash detection,
exit requests). The process's death is seen at once through a pidfd.

On a crash of its process the Worker checks its in-flight requests in as crashed (the Pool
replies ``WorkerCrashedError``, or re-runs an idempotent request once elsewhere) and exits; its
Starter restarts it. A request past its deadline gets ``RequestTimeoutError`` and the Worker
drains, then asks its process whether the tool stopped on its own (cooperative tools watch
``ctx.cancelled``): if so within ``cancel_grace_s`` the warm process stays and the Worker
announces itself ready again; if not it recycles the process (the only way to stop a running
tool); ``RecycleWorker`` from the Pool does the same for a direct-path call (whose gRPC the
client makes itself). ``RecycleWorker`` with a graceful reason (max_requests, ttl, memory,
manual) swaps processes instead: the replacement starts first and takes over once the old one
is drained (``process_swap.ProcessSwapper``). On every process death it tells the Pool
``WorkerProcessLost`` (exit code, signal), which revokes the clients' leases on it. On
``ActorExitRequest`` it stops its process: SIGTERM to the group, then SIGKILL.

On a member node (``InitWorker.node``, multi-host placement) the Worker uses that node's own
run directory and process registry (``member.py`` sets them up), listens on TCP at the
member's worker address (clients on other hosts must reach it) and advertises it, has no host
tools, and registers with the pool's NodeAgent there, which stops it if the pool goes silent.

grpc is imported lazily: this module is imported by processes that fork actors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from thespian.actors import (
    ActorExitRequest,
    ActorTypeDispatcher,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

from snakepit_actors.client.host_tools import host_tools_address
from snakepit_actors.core.placement import meets_requirements
from snakepit_actors.errors import (
    PayloadTooLargeError,
    PoolClosedError,
    PoolNotReadyError,
    RequestCancelledError,
    RequestTimeoutError,
    SnakepitError,
    WorkerCrashedError,
)
from snakepit_actors.json_codec import encode_args, failure_to_error
from snakepit_actors.messages import (
    GRACEFUL_RECYCLE_REASONS,
    LOCAL_NODE,
    MOVE_RECYCLE_REASONS,
    CancelRequest,
    Checkin,
    EndWorkerSession,
    ExecuteFailed,
    ExecuteResult,
    InitWorker,
    ProcessEnded,
    ProcessSpawned,
    ProcessSpawning,
    RecycleWorker,
    RunRequest,
    StreamChunk,
    WorkerContext,
    WorkerOnNode,
    WorkerProcessLost,
    WorkerReady,
    WorkerStartFailed,
)
from snakepit_actors.multihost.member_env import MemberEnv
from snakepit_actors.telemetry import bind_context, get_logger
from snakepit_actors.tree import processes
from snakepit_actors.tree.process_swap import ProcessSwapper
from snakepit_actors.tree.streaming import StreamPump

log = get_logger("worker")


@dataclass(slots=True)
class _InFlight:
    request: RunRequest
    future: Any  # a grpc future, or the StreamPump of a streaming call
    started: float
    pump: StreamPump | None = None
    seq: int = 0


class Worker(ProcessSwapper, ActorTypeDispatcher):
    """One external process, proxied. See the module docstring for its lifecycle; graceful
    recycling (replacement first) comes from ``ProcessSwapper`` (process_swap.py)."""

    #: Placement: run only on a system advertising every required capability.
    actorSystemCapabilityCheck = staticmethod(meets_requirements)

    def __init__(self) -> None:
        super().__init__()
        self._ctx: WorkerContext | None = None
        self._worker_id = ""
        self._member: MemberEnv | None = None  # set on a member node
        self._restarts = 0
        self._proc: processes.BridgeProcess | None = None
        self._pidfd: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._stub: Any = None
        self._channel: Any = None
        self._state = "starting"
        self._in_flight: dict[str, _InFlight] = {}
        self._recycle = False
        self._heartbeat: Any = None
        self._missed_beats = 0
        self._cleanups: set[Any] = set()  # CleanupSession calls in flight
        self._probe: Any = None  # after a timeout: is the tool still running in the process?
        self._probe_until = 0.0
        self._endpoint = ""
        self._ready_at = 0.0
        self._leaving = False  # its member node drains: exit once drained and idle
        self._leave_drained = False

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        super().receiveMessage(message, sender)
        return ThespianWatch(self._watched_fds())

    def _watched_fds(self) -> list[int]:
        fds = [fd for fd in (self._wake_r, self._pidfd) if fd is not None and fd >= 0]
        if self._state == "starting" and self._proc is not None and self._proc.ready_fd is not None:
            fds.append(self._proc.ready_fd)
        return fds + self._swap_fds()

    # --- start-up -----------------------------------------------------------------------------

    def receiveMsg_InitWorker(self, msg: InitWorker, sender: Any) -> None:
        from snakepit_supervision.lifetime import die_with_parent

        die_with_parent()
        self._ctx, self._worker_id, self._restarts = msg.context, msg.worker_id, msg.restarts
        bind_context(worker_id=msg.worker_id)
        if msg.node:
            self._join_member(msg)
        ctx, cfg = self._ctx, msg.context.config
        self.send(ctx.process_registry, ProcessSpawning(self._worker_id, ctx.run_id, cfg.name))
        try:
            self._proc = processes.spawn_bridge(self._spec())
        except SnakepitError as exc:
            self.send(ctx.process_registry, ProcessEnded(self._worker_id))
            self._start_failed(exc)
            return
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        with contextlib.suppress(OSError, AttributeError):
            self._pidfd = os.pidfd_open(self._proc.pid)
        self.send(ctx.process_registry, ProcessSpawned(
            self._worker_id, self._proc.pid, self._proc.pgid, self._proc.create_time))
        self.wakeupAfter(cfg.startup_timeout, payload="startup_timeout")
        log.debug("worker.spawning", worker_id=self._worker_id, pid=self._proc.pid)

    def _join_member(self, msg: InitWorker) -> None:
        """Running on member node ``msg.node``: its run dir, run id and process registry."""
        from snakepit_actors.multihost.member_env import MEMBER_REGISTRY, PROCESS_REGISTRY_ACTOR

        self._member = MemberEnv.from_environ(msg.node)
        registry = self.createActor(PROCESS_REGISTRY_ACTOR, globalName=MEMBER_REGISTRY)
        self._ctx = dataclasses.replace(msg.context, run_id=self._member.run_id,
                                        run_dir=self._member.run_dir, process_registry=registry)
        if msg.node_agent is not None:
            self.send(msg.node_agent, WorkerOnNode(msg.worker_id))

    def _spec(self) -> processes.BridgeSpec:
        assert self._ctx is not None
        cfg, wid, member = self._ctx.config, self._worker_id, self._member
        if member is not None:
            listen = f"{member.worker_host}:0"  # reachable from other hosts; no host tools
        elif cfg.transport == "unix":
            listen = f"unix:{os.path.join(self._ctx.run_dir, wid + '.sock')}"
        else:
            listen = "127.0.0.1:0"
        host_tools = "" if member is not None else host_tools_address(self._ctx.run_dir)
        return processes.BridgeSpec(
            python=cfg.python, adapter=cfg.adapter, adapter_config=dict(cfg.adapter_config),
            listen=listen, worker_id=wid, run_id=self._ctx.run_id,
            env={**cfg.env, "SNAKEPIT_HOST_TOOLS": host_tools},
            log_path=os.path.join(self._ctx.run_dir, wid + ".log"), capacity=cfg.capacity,
            max_payload_bytes=cfg.max_payload_bytes)

    def _check_ready(self) -> None:
        assert self._proc is not None and self._ctx is not None
        try:
            ready = processes.read_ready(self._proc)
            if ready is None:
                return
            self._connect(ready.address)
        except SnakepitError as exc:
            self._start_failed(exc)
            return
        self._state = "ready"
        self.send(self._ctx.worker_registry, self._ready_fact(self._proc.pid, ready.address))
        self.wakeupAfter(self._ctx.config.heartbeat_interval, payload="heartbeat")
        log.info("worker.ready", worker_id=self._worker_id, pid=self._proc.pid)

    def _ready_fact(self, pid: int, address: str, again: bool = False) -> WorkerReady:
        """``WorkerReady`` for the process ``pid`` listening on ``address`` (``again``: the same
        process, back after a timeout); on a member node the endpoint clients get is on its
        advertised address."""
        if not again:
            self._endpoint, self._ready_at = address, time.time()
        node, endpoint = LOCAL_NODE, address
        if self._member is not None:
            node, endpoint = self._member.node, self._member.advertise(address)
        return WorkerReady(self._worker_id, self.myAddress, pid, endpoint, self._restarts,
                           self._ready_at, node)

    def _connect(self, address: str) -> None:
        import grpc

        from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc

        assert self._ctx is not None
        limit = self._ctx.config.max_payload_bytes + 1024 * 1024
        self._channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit),
            ("grpc.enable_http_proxy", 0)])
        self._stub = bridge_pb2_grpc.BridgeServiceStub(self._channel)
        try:
            self._stub.Ping(bridge_pb2.PingRequest(message="ready"), timeout=10.0,
                            wait_for_ready=True)
        except grpc.RpcError as exc:
            raise PoolNotReadyError(
                f"worker {self._worker_id} announced {address} but did not answer a ping: "
                f"{exc.code().name}", reason="worker_start_failed",
                details={"worker_id": self._worker_id}) from None

    def _start_failed(self, error: SnakepitError) -> None:
        assert self._ctx is not None
        log.warning("worker.start_failed", worker_id=self._worker_id, error=str(error))
        self.send(self._ctx.worker_registry, WorkerStartFailed(self._worker_id, error))
        self._exit()

    # --- requests -----------------------------------------------------------------------------

    def receiveMsg_RunRequest(self, msg: RunRequest, sender: Any) -> None:
        rid = msg.request.request_id
        if self._state != "ready":
            self._finish(msg, ok=False, elapsed_ms=0.0, reply=ExecuteFailed(rid, WorkerCrashedError(
                f"worker {self._worker_id} is {self._state}", reason="worker_not_ready",
                details={"worker_id": self._worker_id})))
            return
        try:
            request = self._encode(msg)
        except SnakepitError as exc:
            self._finish(msg, ok=False, elapsed_ms=0.0, reply=ExecuteFailed(rid, exc))
            return
        deadline = msg.deadline_unix_s
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        if msg.request.stream:
            pump = StreamPump(self._stub.ExecuteStreamingTool(request, timeout=timeout),
                              self._wake)
            self._in_flight[rid] = _InFlight(msg, pump, time.perf_counter(), pump)
            return
        future = self._stub.ExecuteTool.future(request, timeout=timeout)
        self._in_flight[rid] = _InFlight(msg, future, time.perf_counter())
        future.add_done_callback(self._wake)

    def _encode(self, msg: RunRequest) -> Any:
        from snakepit_actors._proto import bridge_pb2

        assert self._ctx is not None
        req, limit = msg.request, self._ctx.config.max_payload_bytes
        args = (req.args_json if req.args_json is not None
                else encode_args(req.tool, req.args, limit))
        if len(args) > limit:
            raise PayloadTooLargeError(
                f"args of {req.tool!r} are {len(args)} bytes, over max_payload_bytes={limit}",
                reason="args", details={"size_bytes": len(args), "limit_bytes": limit})
        return bridge_pb2.ExecuteToolRequest(
            request_id=req.request_id, session_id=req.session_id or "", tool=req.tool,
            args_json=args, deadline_unix_s=msg.deadline_unix_s or 0.0,
            session_moved_from=msg.session_moved_from)

    def _wake(self, _future: Any) -> None:  # runs on a grpc thread: no Thespian calls here
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def receiveMsg_CancelRequest(self, msg: CancelRequest, sender: Any) -> None:
        flight = self._in_flight.get(msg.request_id)
        if flight is not None:
            flight.future.cancel()

    def receiveMsg_EndWorkerSession(self, msg: EndWorkerSession, sender: Any) -> None:
        """Free the session's state in the process (fire and forget: a failure means the
        process is gone, and the state with it)."""
        from snakepit_actors._proto import bridge_pb2

        if self._state == "ready" and self._stub is not None:
            future = self._stub.CleanupSession.future(
                bridge_pb2.CleanupSessionRequest(session_id=msg.session_id), timeout=5.0)
            self._cleanups.add(future)  # a dropped gRPC future cancels its call
            future.add_done_callback(self._cleanups.discard)

    def receiveMsg_WatchMessage(self, msg: WatchMessage, sender: Any) -> None:
        if self._wake_r in msg.ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
            self._collect_done()
        if self._pidfd is not None and self._pidfd in msg.ready:
            self._process_died()
        elif (self._state == "starting" and self._proc is not None
              and self._proc.ready_fd in msg.ready):
            self._check_ready()
        if set(self._swap_fds()) & set(msg.ready):
            self._swap_ready()

    def _collect_done(self) -> None:
        for streaming in [f for f in self._in_flight.values() if f.pump is not None]:
            self._forward_chunks(streaming)
        for rid in [rid for rid, f in self._in_flight.items() if f.future.done()]:
            flight = self._in_flight.pop(rid, None)
            if flight is not None:  # a crash found earlier in this loop fails the rest at once
                self._complete(flight)
        if self._heartbeat is not None and self._heartbeat.done():
            self._heartbeat_done()
        if self._probe is not None and self._probe.done():
            self._probe_done()
        self._maybe_recycle()
        self._maybe_leave()
        self._maybe_swap()

    def _forward_chunks(self, flight: _InFlight) -> None:
        assert flight.pump is not None
        values = flight.pump.drain()
        if values:
            self.send(flight.request.reply_to, StreamChunk(
                flight.request.request.request_id, flight.seq, tuple(values)))
            flight.seq += 1

    def _complete(self, flight: _InFlight) -> None:
        import grpc

        elapsed_ms = (time.perf_counter() - flight.started) * 1000.0
        rid = flight.request.request.request_id
        try:
            if flight.pump is not None:
                response = self._stream_outcome(flight.pump)
            else:
                response = flight.future.result()
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and self._state == "ready":
                self._finish(flight.request, ok=False, elapsed_ms=elapsed_ms,
                             reply=ExecuteFailed(rid, RequestCancelledError(
                                 f"request {rid} was cancelled", details={
                                     "worker_id": self._worker_id})))
                return
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                self._recycle = True
                log.info("request.timeout", request_id=rid, worker_id=self._worker_id)
                error: SnakepitError = RequestTimeoutError(
                    f"request {rid} ({flight.request.request.tool!r}) passed its deadline on "
                    f"worker {self._worker_id}; the worker is recycled to cancel it",
                    details={"worker_id": self._worker_id})
                self._finish(flight.request, ok=False, elapsed_ms=elapsed_ms,
                             reply=ExecuteFailed(rid, error))
            else:
                self._in_flight[rid] = flight  # failed with the others, as the worker is lost
                self._process_died(f"{exc.code().name}: {exc.details()}")
            return
        self._finish(flight.request, ok=True, elapsed_ms=elapsed_ms,
                     reply=self._decode(rid, response, elapsed_ms))

    def _stream_outcome(self, pump: StreamPump) -> Any:
        """A stream's end as an ExecuteTool-like response (or raises its RpcError)."""
        from snakepit_actors._proto import bridge_pb2

        if pump.rpc_error is not None:
            raise pump.rpc_error
        if pump.failure is not None:
            return bridge_pb2.ExecuteToolResponse(error=pump.failure)
        return bridge_pb2.ExecuteToolResponse(result_json=str(pump.count).encode())

    def _decode(self, rid: str, response: Any, elapsed_ms: float) -> Any:
        outcome = response.WhichOneof("outcome")
        if outcome == "result_json":
            return ExecuteResult(rid, json.loads(response.result_json), self._worker_id, elapsed_ms)
        if outcome == "binary_result":
            return ExecuteResult(rid, bytes(response.binary_result), self._worker_id, elapsed_ms)
        return ExecuteFailed(rid, failure_to_error(response.error, self._worker_id))

    def _finish(self, run: RunRequest, ok: bool, elapsed_ms: float, reply: Any) -> None:
        """Exactly one reply to the caller, then the check-in to the Pool."""
        assert self._ctx is not None
        if isinstance(reply, ExecuteFailed):
            ok = False
        self.send(run.reply_to, reply)
        lost = self._state != "ready" or self._recycle
        self.send(self._ctx.pool, Checkin(self._worker_id, run.request.request_id, ok, elapsed_ms,
                                          worker_lost=lost))

    # --- health and failure -------------------------------------------------------------------

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload == "startup_timeout" and self._state == "starting":
            assert self._ctx is not None
            self._start_failed(PoolNotReadyError(
                f"worker {self._worker_id} was not ready within startup_timeout="
                f"{self._ctx.config.startup_timeout}s (see {self._spec().log_path})",
                reason="startup_timeout", details={"worker_id": self._worker_id}))
        elif msg.payload == "heartbeat" and self._state == "ready":
            self._beat()
        elif isinstance(msg.payload, str) and msg.payload.startswith("swap:"):
            self._swap_timed_out(msg.payload)
        elif msg.payload == "probe":
            self._maybe_recycle()

    def _beat(self) -> None:
        from snakepit_actors._proto import bridge_pb2

        assert self._ctx is not None
        cfg = self._ctx.config
        if self._heartbeat is not None and not self._heartbeat.done():
            self._missed_beats += 1
            if self._missed_beats >= cfg.heartbeat_misses:
                log.warning("worker.unhealthy", worker_id=self._worker_id,
                            missed=self._missed_beats)
                self._process_died(reason="heartbeat_missed")
                return
        else:
            self._heartbeat = self._stub.Heartbeat.future(
                bridge_pb2.HeartbeatRequest(client_time_ns=time.time_ns()),
                timeout=cfg.heartbeat_interval * cfg.heartbeat_misses)
            self._heartbeat.add_done_callback(self._wake)
        self.wakeupAfter(cfg.heartbeat_interval, payload="heartbeat")

    def _heartbeat_done(self) -> None:
        try:
            self._heartbeat.result()
            self._missed_beats = 0
        except Exception:
            self._missed_beats += 1
        self._heartbeat = None

    def _crash_error(self, detail: str) -> WorkerCrashedError:
        code = self._exit_code(wait_s=0.5)
        how = ("still running" if code is None
               else f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        return WorkerCrashedError(
            f"worker {self._worker_id} (pid {self._proc.pid if self._proc else '?'}) died "
            f"({how}) while running the request: {detail}",
            details={"worker_id": self._worker_id, "exit_code": code,
                     "signal": -code if code is not None and code < 0 else None})

    def _exit_code(self, wait_s: float) -> int | None:
        """The process's exit code (-signal), waiting up to ``wait_s`` for it to exit. Does not
        reap it: ``stop_bridge`` kills its group while the pid cannot have been reused."""
        deadline = time.monotonic() + wait_s
        while self._proc is not None:
            code = processes.process_exit_code(self._proc)
            if code is not None or time.monotonic() >= deadline:
                return code
            time.sleep(0.005)
        return None

    def _process_died(self, reason: str = "process_exited") -> None:
        """The process is gone (or hopeless): fail what it held, check out for good, exit."""
        if self._state == "stopping":
            return
        self._state = "stopping"
        error = self._crash_error(reason)
        assert self._ctx is not None
        for rid, flight in list(self._in_flight.items()):
            flight.future.cancel()  # the Pool replies (WorkerCrashedError) or retries it
            self.send(self._ctx.pool, Checkin(self._worker_id, rid, ok=False, elapsed_ms=0.0,
                                              worker_lost=True, crash=error))
        self._in_flight.clear()
        self.send(self._ctx.pool, WorkerProcessLost(self._worker_id, error))  # revokes leases
        log.warning("worker.exited", worker_id=self._worker_id, reason=reason,
                    exit_code=error.details.get("exit_code"))
        self._exit()

    def receiveMsg_RecycleWorker(self, msg: RecycleWorker, sender: Any) -> None:
        """The Pool, for a direct-path client: a call timed out here ("request_timeout": drain,
        then recycle, as after our own DEADLINE_EXCEEDED) or could not reach the process
        ("unreachable": it is dead or hopeless; fail what it holds and exit)."""
        if self._state != "ready":
            return
        if msg.reason == "unreachable":
            self._process_died(f"unreachable from a client: {msg.detail}")
            return
        if msg.reason in MOVE_RECYCLE_REASONS:  # its node drains: finish, exit, move
            self._leaving = True
            self._leave_drained = self._leave_drained or msg.drained
            self._maybe_leave()
            return
        if msg.reason in GRACEFUL_RECYCLE_REASONS:
            self._recycle_gracefully(msg)
            return
        self._recycle = True
        self._maybe_recycle()

    def _maybe_recycle(self) -> None:
        """After a timeout, once drained: keep the process if the tool stopped on its own
        within ``cancel_grace_s`` (asked with Heartbeat, which counts the calls running in
        it), else recycle it."""
        if not self._recycle or self._in_flight or self._state != "ready" or self._probe:
            return
        assert self._ctx is not None and self._proc is not None
        grace = self._ctx.config.cancel_grace_s
        if not self._probe_until:
            self._probe_until = time.monotonic() + grace
        if grace > 0 and time.monotonic() < self._probe_until and self._stub is not None:
            from snakepit_actors._proto import bridge_pb2

            self._probe = self._stub.Heartbeat.future(
                bridge_pb2.HeartbeatRequest(client_time_ns=time.time_ns()), timeout=1.0)
            self._probe.add_done_callback(self._wake)
            return
        self._recycle, self._probe_until = False, 0.0
        self._state = "stopping"
        log.info("worker.stopping", worker_id=self._worker_id, reason="recycle")
        self._exit()

    def _maybe_leave(self) -> None:
        """Its member node drains: once the Pool's leases are back and nothing runs here,
        stop the process and exit; the Starter places the next Worker on another node."""
        if self._leaving and self._leave_drained and not self._in_flight \
                and self._state == "ready":
            self._state = "stopping"
            log.info("worker.stopping", worker_id=self._worker_id, reason="moving")
            self._exit()

    def _probe_done(self) -> None:
        probe, self._probe = self._probe, None
        try:
            idle = probe.result().in_flight == 0
        except Exception:
            idle = False
        if not idle:
            self.wakeupAfter(0.05, payload="probe")  # ask again, up to the grace
            return
        assert self._ctx is not None and self._proc is not None
        self._recycle, self._probe_until = False, 0.0
        log.info("worker.timeout_recovered", worker_id=self._worker_id, pid=self._proc.pid)
        self.send(self._ctx.worker_registry,
                  self._ready_fact(self._proc.pid, self._endpoint, again=True))

    def _exit(self) -> None:
        self._stop_process()
        self.send(self.myAddress, ActorExitRequest())

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        """Stopped with its tree: answer the callers (outside the tree) but send nothing to
        peers, which may be exiting too (a send to a dying peer holds an exiting actor up to
        7 s); the Pool and ProcessRegistry stop with us."""
        error = PoolClosedError(f"worker {self._worker_id} was stopped while running the request",
                                reason="stopped_in_flight", details={"worker_id": self._worker_id})
        if self._state != "stopping":
            for rid, flight in self._in_flight.items():
                self.send(flight.request.reply_to, ExecuteFailed(rid, error))
        self._state = "stopping"
        self._in_flight.clear()
        self._stop_process(notify=False)

    def _stop_process(self, notify: bool = True) -> None:
        self._stop_replacement(notify)
        if self._channel is not None:
            with contextlib.suppress(Exception):
                self._channel.close()
            self._channel = None
        if self._proc is not None:
            processes.stop_bridge(self._proc, grace_s=1.0)
            if notify and self._ctx is not None:
                self.send(self._ctx.process_registry, ProcessEnded(self._worker_id, self._proc.pid))
            self._proc = None
        for fd in (self._pidfd, self._wake_r, self._wake_w):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pidfd, self._wake_r, self._wake_w = None, -1, -1
