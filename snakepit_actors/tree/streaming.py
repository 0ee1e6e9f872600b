"""``StreamPump``: reads one server-streaming gRPC call on a helper thread for a Worker actor.

A Worker actor must never block, and Thespian APIs must never be called from another thread.
The pump iterates the call on its own thread, appends what arrives to a deque and writes a byte
to the Worker's wake pipe; the Worker drains the deque between messages.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from snakepit_actors.errors import SerializationError, SnakepitError
from snakepit_actors.protocols import NO_VALUE, WireProtocol


class StreamPump:
    """Pulls ``ToolChunk`` messages off ``call`` until it ends.

    After ``finished`` is True: ``failure`` holds the typed error of the final chunk (the tool
    raised) or of a value that is not JSON, or ``rpc_error`` the transport error; both None
    means the stream ended cleanly. ``wire`` reads the chunks (``protocols``).
    """

    def __init__(self, call: Any, wake: Callable[[Any], None], wire: WireProtocol,
                 worker_id: str = "") -> None:
        self._call = call
        self._wake = wake
        self._wire, self._worker_id = wire, worker_id
        self._values: deque[Any] = deque()
        self.count = 0
        self.failure: SnakepitError | None = None
        self.rpc_error: Any = None
        self.finished = False
        self._thread = threading.Thread(target=self._run, name="snakepit-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for chunk in self._call:
                final, value, self.failure = self._wire.chunk(chunk, self._worker_id)
                if value is not NO_VALUE:
                    self._values.append(value)
                    self._wake(None)
                if final:
                    break
        except SerializationError as exc:  # a chunk against json_codec's rule
            self.failure = exc
            cancel = getattr(self._call, "cancel", None)
            if cancel is not None:
                cancel()  # the tool stops: nobody reads the rest
        except Exception as exc:  # grpc.RpcError
            self.rpc_error = exc
        self.finished = True
        self._wake(None)

    def drain(self) -> list[Any]:
        """The values that arrived since the last drain (called on the actor's thread)."""
        out: list[Any] = []
        while self._values:
            out.append(self._values.popleft())
        self.count += len(out)
        return out

    def done(self) -> bool:
        """True once the stream ended and every value has been drained."""
        return self.finished and not self._values

    def cancel(self) -> None:
        self._call.cancel()
