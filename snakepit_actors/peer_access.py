"""Only the actor system's own user (or root) may talk to it (issue 13; docs/process-hygiene.md).

Thespian's TCP transport unpickles whatever reaches an actor's or the admin's port, and binding
to loopback keeps only the network out, not the other users of the host. ``install_peer_check``
patches the accept path of Thespian's TCP transport in the calling process (the one that starts
the system, or a CLI client); every actor process is forked from it and inherits the patch::

    listening socket --accept()--> new connection
        peer on loopback?  -- no --> allowed only with allow_remote (multi-host opt-in)
        owner uid of the peer's socket (asked of the kernel by the connection's two endpoints,
        sock_diag netlink; a socket without an inode is closed or in TIME_WAIT and proves
        nothing)
        uid in allowed_uids (the system's user, root)?  -- no --> close unread, log
        "access.refused"; Thespian never sees the connection

Cost: one netlink request per accepted connection (Thespian opens one connection per message),
about 10 us, independent of the number of sockets on the host (docs/process-hygiene.md).
Linux only: elsewhere ``peer_uid`` answers None and nothing is refused (``strict`` is off);
the same where neither netlink nor /proc/net/tcp answers (logged once: "access.unchecked").
Peers off loopback cannot be attributed to a uid: they are refused unless ``allow_remote``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import sys
import threading
from collections.abc import Iterable
from typing import Any

from snakepit_actors.config import is_loopback

_installed: list[Any] = []  # [PeerPolicy] once the transport is patched


class PeerPolicy:
    """Who may connect: the uids of ``allowed_uids`` on loopback; remote peers only with
    ``allow_remote`` (their uid cannot be known); connections that cannot be attributed are
    refused when ``strict`` (Linux), accepted elsewhere (no /proc/net/tcp to read)."""

    __slots__ = ("allow_remote", "allowed_uids", "strict")

    def __init__(self, allowed_uids: Iterable[int], allow_remote: bool, strict: bool) -> None:
        self.allowed_uids = frozenset(allowed_uids)
        self.allow_remote = allow_remote
        self.strict = strict

    def decide(self, local: tuple[Any, ...], peer: tuple[Any, ...]) -> tuple[bool, int | None]:
        """Whether the connection ``peer -> local`` may be read, and the peer's uid if known."""
        if not is_loopback(peer[0]):
            return self.allow_remote, None
        uid = peer_uid(local, peer)
        if uid is None:
            return not self.strict, None
        return uid in self.allowed_uids, uid


_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST = 1
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI2s2s16s16sIII")  # inet_diag_req_v2: ..., sockid (if, cookie x2)
_REPLY = struct.Struct("=BBBB2s2s16s16sIIIIIIII")  # inet_diag_msg
_UID_COLUMN, _INODE_COLUMN = 7, 9  # of /proc/net/tcp
_diag_lock = threading.Lock()  # one request in flight per process (threads of a client)
_diag: dict[int, socket.socket] = {}  # pid -> its own netlink socket (never shared by a fork)
_seq = itertools.count(1)


def _packed(host: str) -> tuple[int, bytes]:
    if ":" in host:
        return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    return socket.AF_INET, socket.inet_aton(host).ljust(16, b"\0")


def peer_uid(local: tuple[Any, ...], peer: tuple[Any, ...]) -> int | None:
    """The uid owning the peer's end of the loopback TCP connection ``peer -> local``.

    ``local`` and ``peer`` are ``getsockname()`` and ``getpeername()`` of the accepted socket.
    Asks the kernel for exactly that socket (sock_diag netlink, what ``ss`` uses; about
    10 us); where netlink is not allowed, reads /proc/net/tcp (or tcp6) instead. None when
    unknown: not Linux, no such socket (the peer already closed), or one without an inode
    (TIME_WAIT or orphaned: its uid reads 0 and must not pass for root). Never blocks.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        family, src = _packed(str(peer[0]))
        _, dst = _packed(str(local[0]))
        sport, dport = struct.pack("!H", int(peer[1])), struct.pack("!H", int(local[1]))
    except (OSError, ValueError):
        return None
    try:
        return _diag_uid(family, src, dst, sport, dport)
    except OSError:
        return _proc_uid(family, src, dst, sport, dport)


def _diag_uid(family: int, src: bytes, dst: bytes, sport: bytes, dport: bytes) -> int | None:
    """sock_diag: the one socket whose local end is (src, sport) and remote (dst, dport)."""
    body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF, sport, dport, src, dst,
                         0, _NO_COOKIE, _NO_COOKIE)
    with _diag_lock:
        sock = _diag.get(os.getpid())
        if sock is None:
            for inherited in _diag.values():  # a parent's socket, inherited by fork
                inherited.close()
            _diag.clear()
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
            sock.settimeout(1.0)
            _diag[os.getpid()] = sock
        seq = next(_seq) & 0xFFFFFFFF
        sock.send(_HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST,
                               seq, 0) + body)
        for _ in range(4):  # skip late answers to an earlier, timed-out request
            reply = sock.recv(8192)
            if len(reply) >= _HEADER.size and _HEADER.unpack_from(reply)[3] == seq:
                break
        else:
            return None
    kind = _HEADER.unpack_from(reply)[1]
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < _HEADER.size + _REPLY.size:
        return None  # NLMSG_ERROR: no such socket
    fields = _REPLY.unpack_from(reply, _HEADER.size)
    uid, inode = fields[-2], fields[-1]
    return None if inode == 0 else int(uid)


def _proc_uid(family: int, src: bytes, dst: bytes, sport: bytes, dport: bytes) -> int | None:
    """The same answer from /proc/net/tcp(6): slower, grows with the host's sockets."""
    words = 4 if family == socket.AF_INET6 else 1

    def endpoint(address: bytes, port: bytes) -> str:
        native = struct.unpack(f"={words}I", address[:4 * words])
        return "".join(f"{w:08X}" for w in native) + f":{struct.unpack('!H', port)[0]:04X}"

    path = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    try:
        with open(path, "rb", buffering=0) as table:
            text = table.readall()
    except OSError:
        return None
    needle = f" {endpoint(src, sport)} {endpoint(dst, dport)} ".encode()
    at = text.find(needle)
    if at < 0:
        return None
    end = text.find(b"\n", at)
    columns = text[text.rfind(b"\n", 0, at) + 1:end if end >= 0 else None].split()
    try:
        return None if int(columns[_INODE_COLUMN]) == 0 else int(columns[_UID_COLUMN])
    except (IndexError, ValueError):
        return None


def works_here() -> bool:
    """Whether this process can attribute a loopback connection to its user (a self-test)."""
    try:
        with socket.create_server(("127.0.0.1", 0)) as server, \
                socket.create_connection(server.getsockname(), 1.0):
            accepted, _ = server.accept()
            with accepted:
                return peer_uid(accepted.getsockname(), accepted.getpeername()) == os.geteuid()
    except OSError:
        return False


def install_peer_check(allow_remote: bool = False,
                       extra_uids: Iterable[int] = ()) -> PeerPolicy:
    """Patch Thespian's TCP accept path in this process (and every process forked from it):
    only connections from this process's effective uid, root or ``extra_uids`` are read.

    Idempotent: a second call updates the policy. Call before ``ActorSystem()``.
    """
    strict = _installed[0].strict if _installed else sys.platform.startswith("linux")
    if strict and not _installed and not works_here():
        strict = False  # neither netlink nor /proc/net/tcp answers (a sandbox): say so
        with contextlib.suppress(Exception):
            from snakepit_actors.telemetry import get_logger

            get_logger("access").warning("access.unchecked", reason="the owner of a loopback "
                                         "connection cannot be read here (sock_diag, "
                                         "/proc/net/tcp); other local users are not kept out")
    policy = PeerPolicy({os.geteuid(), 0, *extra_uids}, allow_remote, strict=strict)
    if _installed:
        _installed[0] = policy
        return policy
    from thespian.system.transport.TCPTransport import TCPTransport

    original = TCPTransport._acceptNewIncoming

    def _acceptNewIncoming(self: Any) -> None:
        """Accept, check, and hand an allowed connection to Thespian's own code (which then
        calls ``self.new_socket(self.socket.accept)``: answered here with what was accepted)."""
        try:
            accepted = self.new_socket(self.socket.accept)
        except OSError as exc:
            failure = exc

            def new_socket(*_: Any, **__: Any) -> Any:
                raise failure
        else:
            if not _allowed(accepted[0], _installed[0]):
                self._check_indicators()  # what Thespian does after any accept
                return

            def new_socket(*_: Any, **__: Any) -> Any:
                return accepted
        self.new_socket = new_socket  # shadows the method for this one call
        try:
            original(self)
        finally:
            del self.new_socket

    TCPTransport._acceptNewIncoming = _acceptNewIncoming
    _installed.append(policy)
    return policy


def _allowed(conn: socket.socket, policy: PeerPolicy) -> bool:
    """Whether ``conn`` may be read; if not, it is closed unread and "access.refused" logged.
    (Thespian's own path for a failed accept queues a wake-up that crashes its admin, so a
    refused connection is simply dropped here.)"""
    try:
        local, peer = conn.getsockname(), conn.getpeername()
        allowed, uid = policy.decide(local, peer)
    except OSError:  # the peer is already gone
        local, peer, allowed, uid = ("", 0), ("", 0), False, None
    if allowed:
        return True
    conn.close()
    with contextlib.suppress(Exception):
        from snakepit_actors.telemetry import get_logger

        log = get_logger("access")
        # uid None: the peer closed before it could be attributed (a port probe, say)
        (log.warning if uid is not None else log.info)(
            "access.refused", peer=f"{peer[0]}:{peer[1]}", port=local[1], peer_uid=uid)
    return False
