"""The handle's gateway never waits on a send (``client/endpoint.py``). A target that takes a
message and closes the connection before Thespian's ack (what a process killed while receiving
does) made Thespian's blocking ``tell`` retry with a growing backoff for up to its 60 s limit,
and the gateway received nothing meanwhile: not the ``PoolReplaced`` that fails what a dead
Pool held, not any other reply. The send is still retried (Thespian's backoff), in the
background.

The bad target is a real loopback socket that reads and closes; the pool is real."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from thespian.actors import ActorAddress
from thespian.system.transport.IPBase import TCPv4ActorAddress

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.messages import DescribeTree

from .conftest import _LIVE_POOLS

pytestmark = pytest.mark.timeout(60)


@dataclass
class Dropper:
    """A loopback port that accepts each connection, reads what comes, and closes it without
    Thespian's ack (what a process killed while receiving does); counts the connections."""

    port: int
    connections: int = 0

    def address(self) -> ActorAddress:
        return ActorAddress(TCPv4ActorAddress("127.0.0.1", self.port, external=True))

    def wait_connections(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.connections < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.connections >= count


@pytest.fixture
def dropper() -> Iterator[Dropper]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    found = Dropper(server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            found.connections += 1
            with conn:
                conn.settimeout(1.0)
                with contextlib.suppress(OSError):
                    conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield found
    stop.set()
    thread.join(2.0)
    server.close()


@pytest.mark.parametrize("path", ["direct", "actor"])
def test_a_target_that_never_acknowledges_does_not_hold_the_gateway(
        dropper: Dropper, path: str) -> None:
    pool = Pool.start(PoolConfig(name=f"gw-{path}", pool_size=1, data_path=path))  # type: ignore[arg-type]
    _LIVE_POOLS.append(pool)
    try:
        assert pool.execute("ping") == "pong"
        gateway = pool._gateway
        gateway.submit(dropper.address(), DescribeTree(gateway.new_id()), key="")
        assert dropper.wait_connections(1, 5.0)  # sent, and dropped unacknowledged
        started = time.monotonic()
        with ThreadPoolExecutor(4) as callers:
            results = [callers.submit(pool.execute, "ping") for _ in range(4)]
            assert [f.result(timeout=10.0) for f in results] == ["pong"] * 4
        assert pool.stats().state == "ready"  # a control call through the gateway too
        assert time.monotonic() - started < 10.0
        assert dropper.wait_connections(2, 10.0), "the gateway's send was not retried"
    finally:
        _LIVE_POOLS.remove(pool)
        started = time.monotonic()
        pool.close()
        assert time.monotonic() - started < 10.0


def test_a_cancel_sent_with_no_reply_key_leaves_the_cancelled_calls_future_to_its_reply() -> None:
    """``submit(key="")`` registers no reply: a ``CancelRequest`` (which carries the cancelled
    request's id) once took that request's place among the replies awaited, so the request's
    own Future never got its answer."""
    from snakepit_actors.errors import RequestCancelledError
    from snakepit_actors.messages import CancelRequest

    pool = Pool.start(PoolConfig(name="gw-cancel", pool_size=1, data_path="actor"))
    _LIVE_POOLS.append(pool)
    try:
        gateway = pool._gateway
        request = pool._request("sleep", {"seconds": 5.0}, None, None, False)
        future = gateway.submit(pool._pool, request)
        deadline = time.monotonic() + 10.0
        while pool.stats().busy == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        gateway.submit(pool._pool, CancelRequest(request.request_id), key="")
        with pytest.raises(RequestCancelledError):
            future.result(timeout=10.0)
    finally:
        _LIVE_POOLS.remove(pool)
        pool.close()


def test_what_was_submitted_just_before_the_gateway_stopped_is_still_sent(
        dropper: Dropper, actor_system: Any) -> None:
    """The stop sentinel drained in the same pass as earlier messages no longer drops them."""
    from snakepit_actors.client.gateway import Gateway

    gateway = Gateway(actor_system, "stop-test")
    future: Future[Any] = Future()
    future.key, future.target = "", dropper.address()  # type: ignore[attr-defined]
    gateway._outbox.put((dropper.address(), DescribeTree(gateway.new_id()), future))
    gateway.stop()  # the sentinel lands behind it, in the same pass
    assert dropper.wait_connections(1, 5.0), "the message before the stop was dropped"
