"""``thespian_select``: Thespian's TCP transport waits with one ``poll()`` per pass.

Real sockets; a real actor system (the transport must still deliver, watch and notice a bad
watched descriptor the way it did with epoll)."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time

import pytest

from snakepit_actors import thespian_select
from snakepit_actors.thespian_select import EVENT_READ, EVENT_WRITE, PassSelector

pytestmark = pytest.mark.timeout(60)


def test_a_pass_reports_what_is_ready_as_the_selectors_module_would() -> None:
    a, b = socket.socketpair()
    quiet_a, quiet_b = socket.socketpair()
    try:
        sel = PassSelector()
        sel.register(a.fileno(), EVENT_READ)
        sel.register(quiet_a, EVENT_READ)  # a file object works too
        assert sel.select(0) == []
        b.send(b"x")
        ready = sel.select(1.0)
        assert [(key.fd, events) for key, events in ready] == [(a.fileno(), EVENT_READ)]
        sel.close()
        again = PassSelector()
        again.register(a.fileno(), EVENT_WRITE)
        again.register(a.fileno(), EVENT_READ)  # both ways on one descriptor
        assert [(k.fd, ev) for k, ev in again.select(0)] == [
            (a.fileno(), EVENT_READ | EVENT_WRITE)]
    finally:
        for s in (a, b, quiet_a, quiet_b):
            s.close()


def test_a_pass_waits_for_its_timeout_and_a_closed_descriptor_raises_ebadf() -> None:
    a, b = socket.socketpair()
    try:
        sel = PassSelector()
        sel.register(a.fileno(), EVENT_READ)
        started = time.monotonic()
        assert sel.select(0.05) == []
        assert time.monotonic() - started >= 0.04
        fd = os.dup(a.fileno())
        os.close(fd)
        sel.register(fd, EVENT_READ)
        with pytest.raises(OSError) as caught:
            sel.select(0)
        assert caught.value.errno == errno.EBADF
        with pytest.raises(ValueError):
            sel.register(-1, EVENT_READ)
    finally:
        a.close()
        b.close()


def test_the_transport_uses_it_once_installed() -> None:
    from thespian.system.transport import TCPTransport as transport_module

    assert thespian_select.install()
    assert thespian_select.install()  # idempotent
    assert transport_module.selectors.DefaultSelector is PassSelector
    assert transport_module.selectors.EVENT_READ == selectors.EVENT_READ
