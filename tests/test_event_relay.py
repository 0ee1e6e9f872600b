"""Events of every process of a pool reach ``subscribe()`` in the caller's process, bounded,
with a dropped-events count (event_relay.py)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.errors import WorkerCrashedError
from snakepit_actors.event_relay import EventInbox, EventSender, socket_path
from snakepit_actors.telemetry import dropped_events, subscribe


def _wait(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


def fresh(sender: EventSender) -> EventSender:
    """A real actor re-reads the want file and retries a connection within RETRY_S."""
    sender._checked = sender._next_try = -1e9
    return sender


def test_a_sender_reaches_the_inbox_only_while_it_listens(tmp_path: Path) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    inbox = EventInbox(str(tmp_path), lambda e, f: got.append((e, f)))
    sender = EventSender(socket_path(str(tmp_path)))
    try:
        assert not sender.wants() and not sender.send({"event": "worker.ready"})
        inbox.listen(True)
        assert oct(os.stat(inbox.path).st_mode & 0o777) == "0o600"
        assert not sender.wants()  # read less than RETRY_S ago: one clock read per event
        assert fresh(sender).send({"event": "worker.ready", "worker_id": "w1", "pid": 5})
        assert _wait(lambda: got)
        assert got == [("worker.ready", {"event": "worker.ready", "worker_id": "w1", "pid": 5})]
        inbox.listen(False)
        assert not os.path.exists(inbox.path) and not os.path.exists(inbox.want_path)
        assert not fresh(sender).send({"event": "worker.ready"})
    finally:
        inbox.close()
    assert inbox.dropped == 0


def test_senders_encode_only_the_events_some_subscriber_wants(tmp_path: Path) -> None:
    got: list[str] = []
    inbox = EventInbox(str(tmp_path), lambda e, f: got.append(e))
    sender = EventSender(socket_path(str(tmp_path)))
    try:
        inbox.listen(True, frozenset({"worker.exited"}))
        assert fresh(sender).wants("worker.exited") and sender.wants()
        assert not sender.wants("request.completed")
        assert not sender.send({"event": "request.completed"})
        assert sender.send({"event": "worker.exited"})
        inbox.listen(True, None)  # now someone wants everything
        assert fresh(sender).send({"event": "request.completed"})
        assert _wait(lambda: len(got) == 2) and got == ["worker.exited", "request.completed"]
    finally:
        inbox.close()


def test_a_slow_subscriber_costs_dropped_events_never_a_blocked_sender(tmp_path: Path) -> None:
    release = threading.Event()
    got: list[str] = []

    def slow(event: str, fields: dict[str, Any]) -> None:
        release.wait(5)
        got.append(event)

    inbox = EventInbox(str(tmp_path), slow, max_buffered=10)
    inbox.listen(True)
    sender = fresh(EventSender(inbox.path))
    padding = "x" * 2000
    try:
        t0 = time.monotonic()
        sent = sum(sender.send({"event": "request.completed", "n": i, "pad": padding})
                   for i in range(3000))
        took = time.monotonic() - t0
        assert took < 5.0, "a sender waited for its subscriber"
        assert sent < 3000 and sender.dropped > 0
        release.set()
        _wait(lambda: len(got) >= min(sent, 11))
        sender.send({"event": "pool.closed"})  # carries the count of the sender's drops
        assert _wait(lambda: inbox.dropped >= 3000 - sent - 11)
    finally:
        release.set()
        inbox.close()
    assert len(got) + inbox.dropped >= 3000  # each event: delivered or counted as dropped


def test_a_subscriber_sees_the_events_of_the_actor_processes(tmp_path: Path) -> None:
    """The issue's scenario: a start, a call and a worker crash. Before, a subscriber saw only
    its own process's events (request.completed, worker.output)."""
    events: list[tuple[str, dict[str, Any], int]] = []

    def record(event: str, fields: dict[str, Any]) -> None:
        events.append((event, fields, threading.get_native_id()))

    unsubscribe = subscribe(record)
    before = dropped_events()
    try:
        with Pool.start(PoolConfig(name="relay", pool_size=2, data_path="actor")) as pool:
            pool.execute("echo", {"x": 1})
            with pytest.raises(WorkerCrashedError):
                pool.execute("crash", {"code": 3})
            assert _wait(lambda: any(e == "worker.restarted" for e, _, _ in events))
    finally:
        unsubscribe()
    names = {e for e, _, _ in events}
    assert {"pool.init_started", "pool.init_complete", "worker.ready", "worker.exited",
            "worker.restarted", "request.completed", "pool.closing"} <= names, names
    ready = [f for e, f, _ in events if e == "worker.ready"]
    assert {f["worker_id"] for f in ready} >= {"relay_worker_1", "relay_worker_2"}
    assert all(f["pool"] == "relay" for f in ready)  # the actor's bound context came along
    assert dropped_events() == before


def test_the_socket_exists_only_while_someone_subscribes_even_one_who_leaves_in_a_handler(
        tmp_path: Path) -> None:
    from snakepit_actors.telemetry import close_event_inbox, open_event_inbox

    run_dir = str(tmp_path)
    open_event_inbox(run_dir)
    sender = EventSender(socket_path(run_dir))
    took: list[float] = []
    try:
        assert not os.path.exists(socket_path(run_dir))
        assert not fresh(sender).send({"event": "worker.ready"})  # nobody listens

        def once(event: str, fields: dict[str, Any]) -> None:
            t0 = time.monotonic()
            unsubscribe()  # on the inbox thread: must not wait for that same thread
            took.append(time.monotonic() - t0)

        unsubscribe = subscribe(once)
        assert os.path.exists(socket_path(run_dir))
        assert fresh(sender).send({"event": "worker.ready", "worker_id": "w1"})
        assert _wait(lambda: took) and took[0] < 1.0
        assert _wait(lambda: not os.path.exists(socket_path(run_dir)), 5.0)
    finally:
        close_event_inbox(run_dir)


def test_a_process_forked_while_an_inbox_listens_keeps_none_of_its_sockets(
        tmp_path: Path) -> None:
    inbox = EventInbox(str(tmp_path), lambda e, f: None)
    inbox.listen(True)
    listener = inbox._listener
    assert listener is not None
    fds = [inbox._wake_r, inbox._wake_w, listener.fileno()]
    try:
        pid = os.fork()
        if pid == 0:  # the child: each descriptor must be closed, the socket file kept
            still_open = 0
            for fd in fds:
                try:
                    os.fstat(fd)
                    still_open += 1
                except OSError:
                    pass
            os._exit(10 + still_open if os.path.exists(inbox.path) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 10, "the child kept descriptors or unlinked"
        sender = fresh(EventSender(inbox.path))
        assert sender.send({"event": "worker.ready"})  # the parent's inbox still serves
    finally:
        inbox.close()
