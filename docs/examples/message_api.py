"""The message-passing API: drive a pool from your own actor.

Run: python docs/examples/message_api.py
Your actor creates a PoolRoot, sends StartPool, then Execute messages; replies come back to it
as ExecuteResult / ExecuteFailed. The outside world talks to your actor with ask().
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher

from snakepit_actors import (
    Execute,
    ExecuteFailed,
    ExecuteResult,
    PoolConfig,
    PoolRoot,
    PoolStarted,
    PoolStartFailed,
    StartPool,
)
from snakepit_actors.config import SystemConfig
from snakepit_actors.system import shutdown_actor_system, start_actor_system


class Client(ActorTypeDispatcher):
    """Starts a 2-worker pool, runs three requests, reports the outcomes to whoever asked."""

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        self.asker, self.outcomes = sender, {}
        self.root = self.createActor(PoolRoot)
        self.send(self.root, StartPool(config=PoolConfig(name="embedded", pool_size=2)))

    def receiveMsg_PoolStarted(self, msg: PoolStarted, sender: Any) -> None:
        self.send(msg.pool, Execute(request_id="r1", tool="echo", args={"x": 1}, timeout_s=5))
        self.send(msg.pool, Execute(request_id="r2", tool="add", args={"a": 2, "b": 3}))
        self.send(msg.pool, Execute(request_id="r3", tool="fail", args={"message": "no"}))

    def receiveMsg_PoolStartFailed(self, msg: PoolStartFailed, sender: Any) -> None:
        self.send(self.asker, f"start failed: {msg.error}")

    def receiveMsg_ExecuteResult(self, msg: ExecuteResult, sender: Any) -> None:
        self._record(msg.request_id, msg.result)

    def receiveMsg_ExecuteFailed(self, msg: ExecuteFailed, sender: Any) -> None:
        self._record(msg.request_id, f"{type(msg.error).__name__}: {msg.error}")

    def _record(self, request_id: str, outcome: Any) -> None:
        self.outcomes[request_id] = outcome
        if len(self.outcomes) == 3:
            self.send(self.asker, dict(sorted(self.outcomes.items())))
            self.send(self.root, ActorExitRequest())  # stops the pool's whole tree


def main() -> None:
    log_dir = tempfile.mkdtemp(prefix="sp-example-")
    system = start_actor_system(SystemConfig(), log_dir)  # loopback-only, own admin port
    try:
        client = system.actor_system.createActor(Client)
        print(system.actor_system.ask(client, "begin", 30))
    finally:
        shutdown_actor_system(system)
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
