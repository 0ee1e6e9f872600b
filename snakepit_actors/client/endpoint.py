"""The gateway's side of Thespian's transport: sends that never wait for the target, and the
receive loop's one wait (``Endpoint``).

Thespian's own ``ActorSystem.tell`` runs the transport until the target acknowledges; a
target killed mid-send (the connection closes before the ack) is retried only after 35 s,
and for that long the caller's thread receives nothing. The gateway instead hands each
message to the transport and lets it go out while the thread waits for replies.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from thespian.system.transport import TransmitIntent


class Endpoint:
    """One ActorSystem's transport, used by one thread (the gateway's)."""

    def __init__(self, actor_system: Any) -> None:
        self._system = actor_system._systemBase
        self._transport = self._system.transport

    def watch(self, fds: list[int]) -> None:
        """The fds a receive selects on beside Thespian's sockets (a ``WatchMessage`` when
        one is ready)."""
        self._transport.set_watch(fds)

    def send(self, target: Any, message: Any) -> None:
        """Queue ``message`` for ``target``; it goes out during later receives. Raises what
        pickling ``message`` raises; a target found dead only loses the message (logged)."""
        self._transport.scheduleTransmit(None, TransmitIntent(target, message,
                                                              onError=_undeliverable))

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
