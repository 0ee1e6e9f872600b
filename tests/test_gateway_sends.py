"""The handle's gateway never waits on a send: a target that takes a message and never
acknowledges it (a Pool killed mid-send: the connection closes before the ack, and Thespian
retries only after 35 s) must not hold the gateway, which has to go on receiving (the
``PoolReplaced`` that fails what the dead Pool held, the replies of every other call).

The bad target is a real loopback socket that reads and closes; the pool is real."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from thespian.actors import ActorAddress
from thespian.system.transport.IPBase import TCPv4ActorAddress

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.messages import DescribeTree

from .conftest import _LIVE_POOLS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def dropping_listener() -> Iterator[int]:
    """A loopback port that accepts each connection, reads what comes, and closes it without
    Thespian's ack (what a process killed while receiving does)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                with contextlib.suppress(OSError):
                    conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2.0)
    server.close()


@pytest.mark.parametrize("path", ["direct", "actor"])
def test_a_target_that_never_acknowledges_does_not_hold_the_gateway(
        dropping_listener: int, path: str) -> None:
    pool = Pool.start(PoolConfig(name=f"gw-{path}", pool_size=1, data_path=path))  # type: ignore[arg-type]
    _LIVE_POOLS.append(pool)
    try:
        assert pool.execute("ping") == "pong"
        gateway = pool._gateway
        dead = ActorAddress(TCPv4ActorAddress("127.0.0.1", dropping_listener, external=True))
        gateway.submit(dead, DescribeTree(gateway.new_id()), key="")
        time.sleep(0.3)  # the send reaches the listener and is dropped unacknowledged
        started = time.monotonic()
        with ThreadPoolExecutor(4) as callers:
            results = [callers.submit(pool.execute, "ping") for _ in range(4)]
            assert [f.result(timeout=10.0) for f in results] == ["pong"] * 4
        assert pool.stats().state == "ready"  # a control call through the gateway too
        assert time.monotonic() - started < 10.0
    finally:
        _LIVE_POOLS.remove(pool)
        started = time.monotonic()
        pool.close()
        assert time.monotonic() - started < 10.0
