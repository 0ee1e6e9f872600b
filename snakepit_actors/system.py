"""Starting a Thespian actor system safely (docs/architecture.md, "Process hygiene").

* Thespian's TCP listeners bind ``0.0.0.0`` and unpickle whatever arrives. ``prepare_thespian``
  makes every listener bind the configured address (loopback by default) before the system
  starts; forked actor processes inherit the patch.
* Binding to loopback keeps the network out, not the host's other users: ``prepare_thespian``
  also installs ``peer_access``, which closes unread every connection whose peer is not the
  system's own user (or root).
* Every pool gets its own free admin port (never the shared default 1900) and a private run
  directory (mode 0700) for Unix sockets, worker logs and Thespian's log.
* ``GRPC_ENABLE_FORK_SUPPORT=1`` is set as insurance: grpc is kept out of every process that
  forks actors, but a user's launcher may already have imported it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from snakepit_actors.config import SystemConfig
from snakepit_actors.core.process_rows import ProcessIdentity
from snakepit_actors.core.run_dirs import RUN_DIR_MARKER, RunDirMarker

_patched_bind: list[str] = []


def prepare_thespian(bind_address: str, allow_remote: bool = False) -> None:
    """Make Thespian listen on ``bind_address`` only, read connections only from this
    process's user or root (``peer_access``; peers off loopback only with ``allow_remote``)
    and wait with one ``poll()`` per pass (``thespian_select``). Idempotent; call before
    ``ActorSystem()``."""
    from snakepit_actors import thespian_select
    from snakepit_actors.peer_access import install_peer_check

    install_peer_check(allow_remote=allow_remote)
    thespian_select.install()
    os.environ["THESPIAN_BASE_IPADDR"] = bind_address
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "1"
    if _patched_bind:
        _patched_bind[0] = bind_address
        return
    from thespian.system.transport import IPBase

    original = IPBase.IPActorAddress.__init__

    def _init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.sockname and self.sockname[0] == _patched_bind[0]:
            self.bindname = self.sockname  # bind the address itself, not '' (0.0.0.0)

    IPBase.IPActorAddress.__init__ = _init
    _patched_bind.append(bind_address)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout_s):
        return True
    return False


def make_run_dir(pool_name: str) -> str:
    """A private (0700) directory for one pool run: sockets, logs. Short, for socket paths.

    It holds a marker file (``core.run_dirs.RUN_DIR_MARKER``) naming this process (pid and
    create time) and user: once this process is gone, the reaper (``tree/run_dirs.py``) removes
    the directory, even if nobody called ``remove_run_dir``.
    """
    import psutil

    path = tempfile.mkdtemp(prefix=f"sp-{pool_name[:16]}-")
    me = psutil.Process()
    marker = RunDirMarker(ProcessIdentity(me.pid, me.create_time()), os.getuid())
    fd = os.open(os.path.join(path, RUN_DIR_MARKER), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(marker.to_text())
    return path


def remove_run_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class SpuriousCreateFailure(logging.Filter):
    """Drops Thespian's ``Pending Actor create for ... failed (3585): None``: logged at ERROR
    for every actor created on another system of a convention although the creation succeeds
    (measured; 3585 is ``ERROR_ActorSystem_Shutting_Down`` with no detail). Real failures carry
    another code or a detail and still show."""

    _SPURIOUS = re.compile(r"^Pending Actor create for .* failed \(3585\): (None|---)?$")

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):
            return not self._SPURIOUS.match(record.getMessage())
        return True


#: Thespian's own logging (its logger process): as its default (WARNING and up to stderr),
#: minus the spurious convention noise above.
THESPIAN_LOG_DEFS: dict[str, Any] = {
    "version": 1,
    "filters": {"spurious": {"()": SpuriousCreateFailure}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "filters": ["spurious"],
                            "level": "WARNING"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


#: Free ports tried for an admin before giving up (another process may take one first).
_PORT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StartedSystem:
    """A running actor system owned by one pool handle."""

    actor_system: Any
    admin_port: int
    capabilities: dict[str, Any]


def start_actor_system(cfg: SystemConfig, run_dir: str,
                       extra_capabilities: dict[str, Any] | None = None) -> StartedSystem:
    """Start a new, private multiprocTCPBase system on loopback with its own admin port.

    ``extra_capabilities`` are added to Thespian's (e.g. a convention address for a node that
    leads a multi-host convention). Blocks about 0.1 s. A free port picked here can be taken by
    another process before the admin binds it (many systems starting at once): then another is
    tried, up to ``_PORT_ATTEMPTS`` in all. Raises whatever Thespian raises if a configured
    ``admin_port`` is taken, or every attempt failed.
    """
    from thespian.actors import ActorSystem, InvalidActorAddress
    from thespian.system import utilis

    prepare_thespian(cfg.bind_address, allow_remote=cfg.allow_non_loopback)
    os.environ["THESPLOG_FILE"] = cfg.log_file or os.path.join(run_dir, "thespian.log")
    utilis._thesplog_file = None  # Thespian caches the log path on first use; take ours
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = cfg.admin_port or free_port(cfg.bind_address)
        capabilities: dict[str, Any] = {**(extra_capabilities or {}), "Admin Port": port}
        if cfg.convention:  # lead a convention on our own admin port (multi-host placement)
            capabilities["Convention Address.IPv4"] = (cfg.bind_address, port)
        # The admin and every actor are forks of this process: frozen, its heap is shared
        # with them instead of copied by their collections (tree/fork_warmup.py); unfrozen
        # again for the caller's own program.
        gc.freeze()
        try:
            asys = ActorSystem(cfg.base, capabilities, logDefs=THESPIAN_LOG_DEFS,
                               transientUnique=True)
        except InvalidActorAddress:  # the admin could not take the port
            if cfg.admin_port or attempt == _PORT_ATTEMPTS:
                raise
            continue
        finally:
            gc.unfreeze()
        return StartedSystem(asys, port, capabilities)
    raise AssertionError("unreachable")


def shutdown_actor_system(started: StartedSystem, admin_pid: int = 0,
                          grace_s: float = 3.0) -> list[int]:
    """Stop every actor of the system (ActorExitRequest, recursively) and its admin.

    With ``admin_pid``, also make sure: the admin and every process below it (actors, worker
    processes) must be gone within ``grace_s`` of the shutdown; stragglers are SIGKILLed (psutil
    checks each pid still names the same process). So are actor processes forked while the
    system stopped (a supervisor restarting a child just then): they never got their first
    message, so they neither heard the shutdown nor set PR_SET_PDEATHSIG; they are found in
    the admin's session (Thespian gives the admin a session of its own). Returns the
    pids that had to be killed.
    """
    import psutil

    procs: list[psutil.Process] = []
    session = 0
    if admin_pid:
        with contextlib.suppress(psutil.Error, OSError):
            admin = psutil.Process(admin_pid)
            procs = [admin, *admin.children(recursive=True)]
            session = os.getsid(admin_pid)
    with contextlib.suppress(Exception):
        started.actor_system.shutdown()
    alive = wait_gone(procs, grace_s)
    if session > 1 and session != os.getsid(0):
        # An actor forked during the shutdown (a Starter restarting its Worker) was in no list
        # above and, its parent gone before its first message set PR_SET_PDEATHSIG, would
        # outlive it. Every actor shares the admin's session (Thespian daemonizes it).
        alive += _session_strays(session, {proc.pid for proc in procs})
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    if alive:
        from snakepit_actors.telemetry import get_logger

        get_logger("system").warning("system.stragglers_killed",
                                     pids=[proc.pid for proc in alive])
    return [proc.pid for proc in alive]


@dataclass(frozen=True, slots=True)
class SystemPids:
    """The processes whose death ends an actor system: its admin and its logger (the admin
    exits within 0.2 s of its logger, measured), and the admin's session (every actor and
    Thespian helper is in it). 0: unknown."""

    admin: int
    logger: int
    session: int


def system_pids(admin_pid: int) -> SystemPids:
    """Read ``admin_pid``'s logger and session. Call right after the system started, before
    any actor but the first top-level one exists: the logger is then the admin's oldest child.
    Never raises (unknown parts are 0)."""
    import psutil

    logger, session = 0, 0
    with contextlib.suppress(psutil.Error, OSError):
        session = os.getsid(admin_pid)
        children = sorted(psutil.Process(admin_pid).children(),
                          key=lambda child: (child.create_time(), child.pid))
        logger = children[0].pid if children else 0
    return SystemPids(admin_pid, logger, session)


def kill_lost_system(pids: SystemPids) -> list[int]:
    """SIGKILL what is left of an actor system whose admin or logger died: every process of
    its session and their descendants (worker processes run in sessions of their own below
    their Worker actors). Never this process nor its session; never raises. Returns the pids
    killed."""
    import psutil

    if pids.session <= 1 or pids.session == os.getsid(0):
        return []
    members = _session_strays(pids.session, set())
    doomed = {proc.pid: proc for proc in members}
    for proc in members:
        with contextlib.suppress(psutil.Error):
            doomed.update((child.pid, child) for child in proc.children(recursive=True))
    doomed.pop(os.getpid(), None)
    for proc in doomed.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return sorted(doomed)


def _session_strays(session_id: int, known: set[int]) -> list[Any]:
    """Live processes of session ``session_id`` (the actor system's) not in ``known``."""
    import psutil

    me = os.getpid()
    strays = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid in known or proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(proc.pid) == session_id:
                strays.append(proc)
    return strays


def process_running(proc: Any) -> bool:
    """Whether the ``psutil.Process`` ``proc`` still runs: a zombie or a reused pid counts as
    gone (``is_running`` checks the create time)."""
    import psutil

    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(procs: Iterable[Any], timeout_s: float) -> list[Any]:
    """The processes of ``procs`` still running after up to ``timeout_s``. A zombie counts as
    gone: the admin's children are reparented when it exits and may wait a while for whoever
    reaps them (``psutil.wait_procs`` would wait for that too: ~1.6 s per pool here)."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if process_running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [p for p in alive if process_running(p)]
    return alive
