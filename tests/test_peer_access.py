"""Specification of snakepit_actors.peer_access: another local user cannot reach a pool.

The attacker is a real process of another uid (``nobody``, through ``setpriv``), which needs
this test to run as root; it uses only the standard library of the system's Python, since it
cannot read the project's virtualenv. It sends Thespian's wire format by hand: ``LEN>`` and a
pickle, whose unpickling would create a marker file (what ``ActorSystem(...).tell`` would send).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from snakepit_actors import Pool, PoolConfig, telemetry
from snakepit_actors.peer_access import (
    PeerPolicy,
    _allowed,
    _packed,
    _proc_uid,
    peer_uid,
    works_here,
)

_SETPRIV = shutil.which("setpriv")
_OTHER_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                      if os.path.exists(p)), None)
needs_another_user = pytest.mark.skipif(
    os.geteuid() != 0 or not _SETPRIV or not _OTHER_PYTHON or sys.platform != "linux",
    reason="runs an attacker as uid 'nobody': needs Linux, root, setpriv and a system python3")

_ATTACKER = '''
import json, pickle, socket, sys

class Payload:
    def __init__(self, marker):
        self.marker = marker
    def __reduce__(self):
        return (open, (self.marker, "w"))

def thespian(port, marker):
    data = pickle.dumps(Payload(marker))
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(b"%d>" % len(data) + data)
            s.settimeout(5)
            reply = s.recv(100)
            return "answered %r" % reply[:40] if reply else "refused: closed unread"
    except OSError as exc:
        return "refused: %s" % exc

def unix(path):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            return "connected"
    except OSError as exc:
        return "refused: %s" % exc

targets = json.loads(sys.argv[1])
print(json.dumps({"thespian": {p: thespian(int(p), m) for p, m in targets["ports"].items()},
                  "unix": {p: unix(p) for p in targets["unix"]}}))
'''


def run_as_nobody(tmp: Path, targets: dict[str, object], argv: list[str] | None = None,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the attacker (or ``argv``, a script and its arguments) as uid nobody with the
    system's python3; returns the JSON it prints."""
    script = tmp / "attacker.py"
    script.write_text(_ATTACKER)
    script.chmod(0o644)
    assert _SETPRIV and _OTHER_PYTHON
    done = subprocess.run([_SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           _OTHER_PYTHON, *(argv or [str(script), json.dumps(targets)])],
                          capture_output=True, text=True, timeout=60, cwd="/",
                          env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def open_to_others(path: Path) -> Path:
    """Let another user write in ``path`` (and reach it through its pytest parents)."""
    path.chmod(0o1777)
    for parent in path.parents:
        if str(parent) in ("/", "/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    return path


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """A directory the other user can write its marker files to."""
    return open_to_others(tmp_path)


def listening_ports(pool: Pool) -> list[int]:
    """Every TCP port the pool's actor system listens on: the admin and each actor."""
    admin = psutil.Process(pool.admin_pid)
    ports: set[int] = set()
    for proc in [admin, *admin.children(recursive=True)]:
        try:
            ports |= {c.laddr.port for c in proc.net_connections(kind="tcp")
                      if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            continue
    return sorted(ports)


def unix_sockets(pool: Pool) -> list[str]:
    paths: set[str] = set()
    for info in pool.workers():
        if info.pid:
            paths |= {str(c.laddr) for c in psutil.Process(info.pid).net_connections(kind="unix")
                      if c.laddr}
    return sorted(paths)


@needs_another_user
def test_another_user_can_neither_unpickle_on_nor_message_any_port_of_the_actor_system(
        shared_tmp: Path) -> None:
    with Pool.start(PoolConfig(name="peer", pool_size=1)) as pool:
        ports = listening_ports(pool)
        assert len(ports) >= 5, ports  # admin, logger, PoolRoot, Pool, Worker...
        markers = {str(p): str(shared_tmp / f"marker-{p}") for p in ports}
        report = run_as_nobody(shared_tmp, {"ports": markers, "unix": unix_sockets(pool)})
        created = [m for m in markers.values() if os.path.exists(m)]
        assert created == [], f"code ran as the pool's user: {created}; report {report}"
        assert all(r.startswith("refused") for r in report["thespian"].values()), report
        assert report["unix"] and all(r.startswith("refused") for r in report["unix"].values())
        assert pool.execute("echo", {"still": "works"}) == {"still": "works"}


def test_the_owner_of_a_loopback_connection_is_this_process_user() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        accepted, _ = server.accept()
        with accepted:
            assert peer_uid(accepted.getsockname(), accepted.getpeername()) == os.geteuid()
            client.close()
            assert peer_uid(accepted.getsockname(), accepted.getpeername()) is None


def test_the_policy_refuses_remote_peers_unless_allowed_and_unknown_peers_when_strict() -> None:
    strict = PeerPolicy({os.geteuid()}, allow_remote=False, strict=True)
    assert strict.decide(("10.0.0.1", 1900), ("10.0.0.2", 40000)) == (False, None)
    assert PeerPolicy({0}, allow_remote=True, strict=True).decide(
        ("10.0.0.1", 1900), ("10.0.0.2", 40000)) == (True, None)
    assert strict.decide(("127.0.0.1", 1), ("127.0.0.1", 2)) == (False, None)  # no such socket


def test_a_refused_connection_is_closed_unread_and_logged_as_access_refused() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    unsubscribe = telemetry.subscribe(lambda event, fields: events.append((event, fields)),
                                      events=["access.refused"])
    try:
        with socket.create_server(("127.0.0.1", 0)) as server, \
                socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            port = server.getsockname()[1]
            nobody_allowed = PeerPolicy(set(), allow_remote=False, strict=True)
            assert not _allowed(accepted, nobody_allowed)
            assert accepted.fileno() == -1  # closed
            client.settimeout(5)
            assert client.recv(1) == b""
    finally:
        unsubscribe()
    assert [(e, f["peer_uid"], f["port"]) for e, f in events] == [
        ("access.refused", os.geteuid(), port)]


_TELL = """
import json, os, socket, sys, threading
os.environ["THESPLOG_FILE"] = os.path.join(sys.argv[2], "nobody-thespian.log")
from thespian.actors import ActorAddress, ActorSystem
from thespian.system.transport.IPBase import TCPv4ActorAddress

class Payload:
    def __reduce__(self):
        return (open, (os.path.join(sys.argv[2], "marker"), "w"))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    own_port = s.getsockname()[1]
asys = ActorSystem("multiprocTCPBase", {"Admin Port": own_port}, transientUnique=True)
try:
    target = ActorAddress(TCPv4ActorAddress("127.0.0.1", int(sys.argv[1]), external=True))
    told = []
    sender = threading.Thread(target=lambda: told.append(asys.tell(target, Payload())),
                              daemon=True)
    sender.start()
    sender.join(5)
    print(json.dumps({"told": bool(told)}))
finally:
    asys.shutdown()
"""


@needs_another_user
def test_another_user_cannot_tell_the_admin_a_message_with_thespian_itself(
        shared_tmp: Path) -> None:
    import thespian

    site = shared_tmp / "site"
    shutil.copytree(os.path.dirname(thespian.__file__), site / "thespian")
    subprocess.run(["chmod", "-R", "a+rX", str(site)], check=True)
    script = shared_tmp / "tell.py"
    script.write_text(_TELL)
    script.chmod(0o644)
    try:
        with Pool.start(PoolConfig(name="tell", pool_size=1)) as pool:
            report = run_as_nobody(shared_tmp, {}, argv=[
                str(script), str(pool._system.admin_port), str(shared_tmp)],
                env={"PYTHONPATH": str(site)})
            assert report == {"told": False}, report
            assert not (shared_tmp / "marker").exists()
            assert pool.execute("echo", {"owner": 1}) == {"owner": 1}
    finally:  # the attacker's own actor system must be gone too
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if str(script) in (proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    proc.wait(10)


def test_proc_net_tcp_gives_the_same_owner_as_netlink_and_the_self_test_passes() -> None:
    assert works_here()
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()):
        accepted, _ = server.accept()
        with accepted:
            (host, port), (peer_host, peer_port) = accepted.getsockname(), accepted.getpeername()
            family, src = _packed(peer_host)
            _, dst = _packed(host)
            by_proc = _proc_uid(family, src, dst, peer_port.to_bytes(2, "big"),
                                port.to_bytes(2, "big"))
            assert by_proc == peer_uid((host, port), (peer_host, peer_port)) == os.geteuid()
