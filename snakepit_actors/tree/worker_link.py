"""The Worker actor's gRPC link to its process: the channel, the calls on it, and what their
ends mean for the caller.

    Worker (actor thread) ── WorkerLink.call / heartbeat / cleanup_session ──> process
           ^                                                                      │
           └── wake pipe <── done callbacks and StreamPumps (grpc threads) ───────┘

Calls run as gRPC futures (or a ``StreamPump`` for a stream) whose completion writes to the
Worker's wake pipe, never calling Thespian from a grpc thread; the Worker then reads each
finished call's ``outcome``: the reply for its caller, or the process is lost. Only the Worker
imports this module, from a leaf actor process, so grpc is imported lazily here: the modules of
actors that fork children must stay free of grpc.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snakepit_actors.errors import (
    PayloadTooLargeError,
    PoolClosedError,
    PoolNotReadyError,
    RequestCancelledError,
    RequestTimeoutError,
    SerializationError,
    WorkerCrashedError,
)
from snakepit_actors.json_codec import decode_value, encode_args, failure_to_error
from snakepit_actors.messages import ExecuteFailed, ExecuteResult, RunRequest, StreamChunk
from snakepit_actors.tree import processes
from snakepit_actors.tree.streaming import StreamPump
from snakepit_actors.worker_token import with_token

Wake = Callable[[Any], None]


@dataclass(slots=True)
class InFlight:
    """One call running in the process."""

    request: RunRequest
    future: Any  # a grpc future, or the StreamPump of a streaming call
    started: float  # perf_counter
    pump: StreamPump | None = None
    seq: int = 0  # the next StreamChunk's sequence number


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a finished call ended: ``reply`` for its caller (``timed_out``: a
    ``RequestTimeoutError``), or ``lost`` (the process is gone or hopeless: the detail)."""

    reply: ExecuteResult | ExecuteFailed | None
    elapsed_ms: float
    timed_out: bool = False
    lost: str = ""


class WorkerLink:
    """The channel to one process (replaced when a swapped-in process takes over)."""

    def __init__(self, worker_id: str, max_payload_bytes: int, token: str = "") -> None:
        self.worker_id = worker_id
        self.limit = max_payload_bytes
        self.token = token
        self._channel: Any = None
        self._stub: Any = None

    def open(self, address: str) -> None:
        """Connect to ``address`` and ping it (blocks up to 10 s).

        Raises:
            PoolNotReadyError: the process did not answer the ping.
        """
        import grpc

        from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc

        self.close()
        limit = self.limit + 1024 * 1024
        self._channel = grpc.insecure_channel(address, options=[
            ("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit),
            ("grpc.enable_http_proxy", 0)])
        self._stub = bridge_pb2_grpc.BridgeServiceStub(with_token(self._channel, self.token))
        try:
            self._stub.Ping(bridge_pb2.PingRequest(message="ready"), timeout=10.0,
                            wait_for_ready=True)
        except grpc.RpcError as exc:
            raise PoolNotReadyError(
                f"worker {self.worker_id} announced {address} but did not answer a ping: "
                f"{exc.code().name}", reason="worker_start_failed",
                details={"worker_id": self.worker_id}) from None

    def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):  # a broken channel must not fail a stop
                self._channel.close()
        self._channel = self._stub = None

    def call(self, msg: RunRequest, wake: Wake) -> InFlight:
        """Start ``msg`` in the process; ``wake`` runs (on a grpc thread) when it ends.

        Raises:
            PayloadTooLargeError, SerializationError: the args cannot be sent.
        """
        request = self._encode(msg)
        deadline = msg.deadline_unix_s
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        if msg.request.stream:
            pump = StreamPump(self._stub.ExecuteStreamingTool(request, timeout=timeout), wake)
            return InFlight(msg, pump, time.perf_counter(), pump)
        future = self._stub.ExecuteTool.future(request, timeout=timeout)
        future.add_done_callback(wake)
        return InFlight(msg, future, time.perf_counter())

    def heartbeat(self, timeout_s: float, wake: Wake) -> Any:
        """A Heartbeat call (its answer counts the tool calls running in the process)."""
        from snakepit_actors._proto import bridge_pb2

        future = self._stub.Heartbeat.future(
            bridge_pb2.HeartbeatRequest(client_time_ns=time.time_ns()), timeout=timeout_s)
        future.add_done_callback(wake)
        return future

    def cleanup_session(self, session_id: str) -> Any:
        from snakepit_actors._proto import bridge_pb2

        return self._stub.CleanupSession.future(
            bridge_pb2.CleanupSessionRequest(session_id=session_id), timeout=5.0)

    def _encode(self, msg: RunRequest) -> Any:
        from snakepit_actors._proto import bridge_pb2

        req, limit = msg.request, self.limit
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

    def outcome(self, flight: InFlight) -> Outcome:
        """How ``flight`` (done) ended; a CANCELLED call was cancelled by its caller."""
        import grpc

        elapsed_ms = (time.perf_counter() - flight.started) * 1000.0
        rid, wid = flight.request.request.request_id, self.worker_id
        cancelled = Outcome(ExecuteFailed(rid, RequestCancelledError(
            f"request {rid} was cancelled", details={"worker_id": wid})), elapsed_ms)
        try:
            response = (_stream_outcome(flight.pump) if flight.pump is not None
                        else flight.future.result())
        except grpc.FutureCancelledError:  # a unary call's future, cancelled (CancelRequest)
            return cancelled
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return cancelled
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(ExecuteFailed(rid, RequestTimeoutError(
                    f"request {rid} ({flight.request.request.tool!r}) passed its deadline on "
                    f"worker {wid}; the worker is recycled to cancel it",
                    details={"worker_id": wid})), elapsed_ms, timed_out=True)
            return Outcome(None, elapsed_ms, lost=f"{exc.code().name}: {exc.details()}")
        return Outcome(self._decode(rid, response, elapsed_ms), elapsed_ms)

    def _decode(self, rid: str, response: Any,
                elapsed_ms: float) -> ExecuteResult | ExecuteFailed:
        outcome = response.WhichOneof("outcome")
        if outcome == "result_json":
            try:
                value = decode_value(response.result_json, "result")
            except SerializationError as exc:
                return ExecuteFailed(rid, exc)
            return ExecuteResult(rid, value, self.worker_id, elapsed_ms)
        if outcome == "binary_result":
            return ExecuteResult(rid, bytes(response.binary_result), self.worker_id, elapsed_ms)
        return ExecuteFailed(rid, failure_to_error(response.error, self.worker_id))


def _stream_outcome(pump: StreamPump) -> Any:
    """A stream's end as an ExecuteTool-like response (or raises its RpcError)."""
    from snakepit_actors._proto import bridge_pb2

    if pump.rpc_error is not None:
        raise pump.rpc_error
    if pump.failure is not None:
        return bridge_pb2.ExecuteToolResponse(error=pump.failure)
    return bridge_pb2.ExecuteToolResponse(result_json=str(pump.count).encode())


def next_chunk(flight: InFlight) -> StreamChunk | None:
    """The values a stream produced since the last chunk, as the next ``StreamChunk``."""
    values = flight.pump.drain() if flight.pump is not None else None
    if not values:
        return None
    flight.seq += 1
    return StreamChunk(flight.request.request.request_id, flight.seq - 1, tuple(values))


def beat_ok(future: Any) -> bool:
    """Whether a finished Heartbeat call answered (any failure counts as a missed beat)."""
    try:
        future.result()
    except Exception:
        return False
    return True


def calls_running(future: Any) -> int | None:
    """The tool calls a finished probe counted in the process (None: no answer)."""
    try:
        return int(future.result().in_flight)
    except Exception:
        return None


def not_ready_error(worker_id: str, state: str) -> WorkerCrashedError:
    """For a request that reached a worker not serving (it never ran)."""
    return WorkerCrashedError(f"worker {worker_id} is {state}", reason="worker_not_ready",
                              details={"worker_id": worker_id})


def stopped_error(worker_id: str) -> PoolClosedError:
    """For the requests running while the tree stops."""
    return PoolClosedError(f"worker {worker_id} was stopped while running the request",
                           reason="stopped_in_flight", details={"worker_id": worker_id})


def startup_timeout_error(worker_id: str, startup_timeout_s: float,
                          log_path: str) -> PoolNotReadyError:
    return PoolNotReadyError(
        f"worker {worker_id} was not ready within startup_timeout={startup_timeout_s}s "
        f"(see {log_path})", reason="startup_timeout", details={"worker_id": worker_id})


def crash_error(worker_id: str, proc: processes.BridgeProcess | None,
                detail: str) -> WorkerCrashedError:
    """The error its requests fail with when ``proc`` died (its exit code, waited for up to
    0.5 s; the process is not reaped: ``stop_bridge`` kills its group while the pid cannot
    have been reused)."""
    code = _exit_code(proc, wait_s=0.5)
    how = ("still running" if code is None
           else f"killed by signal {-code}" if code < 0 else f"exit code {code}")
    return WorkerCrashedError(
        f"worker {worker_id} (pid {proc.pid if proc else '?'}) died ({how}) while running the "
        f"request: {detail}",
        details={"worker_id": worker_id, "exit_code": code,
                 "signal": -code if code is not None and code < 0 else None})


def _exit_code(proc: processes.BridgeProcess | None, wait_s: float) -> int | None:
    deadline = time.monotonic() + wait_s
    while proc is not None:
        code = processes.process_exit_code(proc)
        if code is not None or time.monotonic() >= deadline:
            return code
        time.sleep(0.005)
    return None
