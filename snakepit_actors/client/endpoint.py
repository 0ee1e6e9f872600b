"""The gateway's side of Thespian's transport: sends that never wait for the target, and the
receive loop's one wait (``Endpoint``).

Thespian's own ``ActorSystem.tell`` runs the transport until the target acknowledges (and
until every other send still under way is done). A target that closes the connection before
the ack (a process killed while receiving) is retried with a growing backoff, and the tell
held the caller's thread for up to its 60 s limit (measured: ``tests/test_gateway_sends.py``),
receiving nothing. The gateway instead hands each message to the transport and lets it go out
while the thread waits for replies; Thespian still sends one message at a time per target.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from thespian.system.transport import TransmitIntent


class Endpoint:
    """One ActorSystem's transport, used by one thread (the gateway's)."""

    def __init__(self, actor_system: Any, on_sent: Callable[[], None]) -> None:
        self._system = actor_system._systemBase
        self._transport = self._system.transport
        self._on_sent = on_sent
        self._unacknowledged: dict[str, int] = {}  # str(target) -> sends not yet finished

    def watch(self, fds: list[int]) -> None:
        """The fds a receive selects on beside Thespian's sockets (a ``WatchMessage`` when
        one is ready)."""
        self._transport.set_watch(fds)

    def send(self, target: Any, message: Any) -> None:
        """Queue ``message`` for ``target``; it goes out during later receives, and
        ``on_sent`` is called once the target acknowledged it (or was found dead: the message
        is then lost, and logged). Raises what pickling ``message`` raises."""
        key = str(target)
        self._unacknowledged[key] = self._unacknowledged.get(key, 0) + 1
        try:
            self._transport.scheduleTransmit(None, TransmitIntent(
                target, message, onSuccess=lambda *_: self._finished(key),
                onError=lambda status, intent: self._finished(key, status, intent)))
        except Exception:
            self._finished(key)
            raise

    def busy(self, target: Any) -> bool:
        """Whether a send to ``target`` is not acknowledged yet (Thespian sends one message at
        a time per target: what waits is better joined into the next batch)."""
        return str(target) in self._unacknowledged

    def _finished(self, key: str, status: Any = None, intent: Any = None) -> None:
        left = self._unacknowledged.get(key, 0) - 1
        if left > 0:
            self._unacknowledged[key] = left
        else:
            self._unacknowledged.pop(key, None)
        if intent is not None:
            _undeliverable(status, intent)
        self._on_sent()

    def receive(self, timeout_s: float) -> Any:
        """Run the transport (sends included) until something arrives or ``timeout_s``: an
        envelope, or None / a Thespian marker when nothing came."""
        return self._system._run_transport(timedelta(seconds=timeout_s))

    def flush(self, timeout_s: float) -> None:
        """Send what is still queued, for at most ``timeout_s`` (a dead target would hold a
        send for minutes); nothing is received."""
        self._transport.set_watch([])
        self._system._run_transport(timedelta(seconds=timeout_s), txonly=True)


def _undeliverable(status: Any, intent: Any) -> None:
    from snakepit_actors.telemetry import get_logger

    get_logger("pool").warning("request.undeliverable", target=str(intent.targetAddr),
                               message=type(intent.message).__name__, error=str(status))
