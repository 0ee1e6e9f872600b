"""The Worker actor's hold on its process: the ``BridgeProcess``, a pidfd that turns readable
the moment it exits, and the wake pipe that gRPC threads write to when a call ends.

    Worker ──ThespianWatch──> [wake pipe, pidfd, ready pipe while starting]
      │                          ^ grpc done callbacks / StreamPumps write a byte
      └── ProcessHandle.spawn / stop / adopt (a swapped-in replacement) / release

No decisions here (they are ``core.worker_lifecycle``'s); the handle keeps the ProcessRegistry
informed (pre-registered before the spawn, so a crash now still leaves the process reapable).
``bridge_spec`` says how this worker's process is started (its socket, log
file and host tools; on a member node, TCP on the member's worker address; forked by the
pool's fork server with ``start_method="forkserver"``, except on a member node: spawned there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import Any

from snakepit_actors.errors import SnakepitError, WorkerCrashedError
from snakepit_actors.messages import (
    LOCAL_NODE,
    InitWorker,
    ProcessEnded,
    ProcessSpawned,
    ProcessSpawning,
    WorkerContext,
    WorkerReady,
)
from snakepit_actors.protocols import launch_args
from snakepit_actors.tree import descendants, fork_server, processes
from snakepit_actors.tree.member_env import MemberEnv

#: The file name of the socket on which the pool's handle serves host tools, in its run
#: directory (client/host_tools.py listens there; every worker is told the address at spawn).
HOST_TOOLS_SOCKET = "host-tools.sock"


def host_tools_address(run_dir: str) -> str:
    """Where the host tools of the pool with ``run_dir`` are served."""
    return "unix:" + os.path.join(run_dir, HOST_TOOLS_SOCKET)


class ProcessHandle:
    """One worker process at a time, with its pidfd and the wake pipe."""

    def __init__(self, send: Callable[[Any, Any], None]) -> None:
        self._send = send
        self._lineage = _lineage()  # made in the Worker's own process: (Starter, supervisor)
        self.proc: processes.BridgeProcess | None = None
        self.pidfd: int | None = None
        self.wake_r, self.wake_w = -1, -1

    def spawn(self, ctx: WorkerContext, spec: processes.BridgeSpec) -> processes.BridgeProcess:
        """Start the process (returns at once; its ready line comes on ``proc.ready_fd``).

        Raises:
            SnakepitError: it could not be started (``ConfigError``, ``PoolNotReadyError``).
        """
        descendants.become_subreaper()  # orphans of its tools reparent here, to be killed
        registry, wid = ctx.process_registry, spec.worker_id
        self._send(registry, ProcessSpawning(wid, ctx.run_id, ctx.config.name))
        try:
            proc = processes.spawn_bridge(spec)
        except SnakepitError:
            self._send(registry, ProcessEnded(wid))
            raise
        self.proc = proc
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.pidfd = _open_pidfd(proc.pid)
        self._send(registry, ProcessSpawned(wid, proc.pid, proc.pgid, proc.create_time))
        return proc

    def reregister(self, ctx: WorkerContext) -> None:
        """Tell a new ProcessRegistry (``ctx.process_registry``) about the running process:
        it may have missed its spawn."""
        proc, registry = self.proc, ctx.process_registry
        if proc is not None:
            self._send(registry, ProcessSpawning(proc.worker_id, ctx.run_id, ctx.config.name))
            self._send(registry, ProcessSpawned(proc.worker_id, proc.pid, proc.pgid,
                                                proc.create_time))

    def stop_error(self, worker_id: str) -> SnakepitError:
        """What a request still running when the Worker is stopped fails with:
        ``PoolClosedError`` while the tree stops, ``WorkerCrashedError`` if its Starter died
        first (killed with the WorkerSupervisor, which is restarted: retry)."""
        from snakepit_actors.tree.worker_errors import stopped_error

        if _lineage() == self._lineage:
            return stopped_error(worker_id)
        return WorkerCrashedError(
            f"worker {worker_id} was stopped while running the request: its Starter died (its "
            f"supervisor was killed and restarts every worker); it may have run",
            reason="starter_exited", details={"worker_id": worker_id})

    def fds(self, starting: bool) -> list[int]:
        """What the actor watches: the wake pipe, the pidfd, and the ready pipe if
        ``starting``."""
        fds = [fd for fd in (self.wake_r, self.pidfd) if fd is not None and fd >= 0]
        if starting and self.proc is not None and self.proc.ready_fd is not None:
            fds.append(self.proc.ready_fd)
        return fds

    def wake(self, _future: Any) -> None:
        """A done callback: runs on a grpc thread, so it only writes to the pipe."""
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"x")

    def woken(self, ready: list[int]) -> bool:
        """Whether the wake pipe is among ``ready`` (then it is emptied)."""
        if self.wake_r < 0 or self.wake_r not in ready:
            return False
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_r, 4096)
        return True

    def exited(self, ready: list[int]) -> bool:
        return self.pidfd is not None and self.pidfd in ready

    def stop(self, ctx: WorkerContext | None, notify: bool = True) -> int | None:
        """Stop the process (SIGTERM to its group, 1 s, SIGKILL); returns its pid.
        ``notify=False`` while the tree stops (the ProcessRegistry may be exiting too)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        processes.stop_bridge(proc, grace_s=1.0)
        if notify and ctx is not None:
            self._send(ctx.process_registry, ProcessEnded(proc.worker_id, proc.pid))
        return proc.pid

    def adopt(self, proc: processes.BridgeProcess) -> None:
        """``proc`` (a swap's replacement) is the worker's process now."""
        self._close_pidfd()
        self.proc, self.pidfd = proc, _open_pidfd(proc.pid)

    def release(self) -> None:
        """Close the descriptors (idempotent)."""
        self._close_pidfd()
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.wake_r, self.wake_w = -1, -1

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


def bridge_spec(ctx: WorkerContext, worker_id: str,
                member: MemberEnv | None) -> processes.BridgeSpec:
    """How worker ``worker_id``'s process starts (``member``: it runs on that member node)."""
    cfg = ctx.config
    if member is not None:
        listen = f"{member.worker_host}:0"  # reachable from other hosts; no host tools
    elif cfg.transport == "unix":
        listen = f"unix:{os.path.join(ctx.run_dir, worker_id + '.sock')}"
    else:
        listen = "127.0.0.1:0"
    host_tools = "" if member is not None else host_tools_address(ctx.run_dir)
    return processes.BridgeSpec(
        python=cfg.python, adapter=cfg.adapter, adapter_config=dict(cfg.adapter_config),
        listen=listen, worker_id=worker_id, run_id=ctx.run_id,
        env={**cfg.env, "SNAKEPIT_HOST_TOOLS": host_tools},
        log_path=os.path.join(ctx.run_dir, worker_id + ".log"), capacity=cfg.capacity,
        max_payload_bytes=cfg.max_payload_bytes, token=ctx.worker_token,
        launch=launch_args(cfg.protocol, cfg.python_path, ctx.run_dir, worker_id),
        fork_server=fork_server.socket_path(ctx.run_dir)
        if fork_server.wanted(cfg) and member is None else "")


def member_context(msg: InitWorker, registry: Any) -> tuple[MemberEnv, WorkerContext]:
    """On member node ``msg.node``: its environment, and the context with its run dir, run id
    and process ``registry``."""
    member = MemberEnv.from_environ(msg.node)
    return member, dataclasses.replace(msg.context, run_id=member.run_id,
                                       run_dir=member.run_dir, process_registry=registry)


def ready_fact(worker_id: str, address: Any, pid: int, listen: str, restarts: int,
               ready_at: float, member: MemberEnv | None, *,
               reannounced: bool = False) -> WorkerReady:
    """``WorkerReady`` for the process ``pid`` listening on ``listen``; on a member node the
    endpoint clients get is on its advertised address. ``reannounced``: the same process
    again, for a new WorkerRegistry."""
    node, endpoint = LOCAL_NODE, listen
    if member is not None:
        node, endpoint = member.node, member.advertise(listen)
    return WorkerReady(worker_id, address, pid, endpoint, restarts, ready_at, node,
                       reannounced=reannounced)


def _lineage() -> tuple[int, int]:
    """This process's parent (a Worker's Starter) and grandparent (the WorkerSupervisor)."""
    import psutil

    parent = os.getppid()
    with contextlib.suppress(psutil.Error):
        return parent, psutil.Process(parent).ppid()
    return parent, 0


def _open_pidfd(pid: int) -> int | None:
    """A pidfd of ``pid``, or None where the kernel has none (the heartbeat still notices)."""
    with contextlib.suppress(OSError, AttributeError):
        return os.pidfd_open(pid)
    return None


def follow_pool(context: WorkerContext, pool: Any) -> WorkerContext:
    """``context`` checking in with ``pool``: the sender of a ``RunRequest`` is the Pool that
    runs now (a Pool restarted by the PoolRoot has a new address)."""
    return context if pool == context.pool else dataclasses.replace(context, pool=pool)
