"""An adapter module that is not fork-safe: importing it starts a thread (test_fork_server)."""

from __future__ import annotations

import threading
import time

from snakepit_actors.bridge.adapter import BaseAdapter, tool

threading.Thread(target=time.sleep, args=(3600,), name="eager-loader", daemon=True).start()


class ThreadyAdapter(BaseAdapter):
    """Serves ``ping``; never reached under the fork server."""

    @tool
    def ping(self) -> str:
        return "pong"
