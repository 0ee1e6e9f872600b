"""Serving the web view: uvicorn on its own thread and event loop, inside the node's process.

    node main thread ──start()──> socket bound on 127.0.0.1:PORT (errors here, at once)
                                   └─ thread "snakepit-web": uvicorn's loop serves the app
    node main thread ──stop()───> streams ended, uvicorn told to exit, thread joined (bounded)

No actor runs here and nothing here waits for one: the app reads the ``ViewHub``. uvicorn is
given no logging configuration (the node's own stays as it is) and installs no signal
handlers (not the main thread): SIGINT and SIGTERM stay the node's.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from snakepit_actors.errors import ConfigError


class WebServer:
    """One uvicorn server for ``app`` on ``host:port`` (port 0: a free one).

    Args:
        app: the ASGI app (``app.build_app``).
        host: the address to listen on (loopback).
        port: the TCP port; 0 picks a free one (``port`` holds it once started).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind and serve; returns once the server accepts connections (at most
        ``timeout_s``).

        Raises:
            ConfigError: the port is taken (or cannot be bound), or the server did not start.
        """
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"web_port {self.port} cannot be bound on {self.host}: {exc}; "
                              f"choose another (--web-port, [node] web_port) or 0 for any "
                              f"free port") from None
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, log_config=None, log_level="warning",
                                access_log=False, lifespan="off", loop="asyncio", http="h11",
                                ws="none", timeout_graceful_shutdown=2,
                                server_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="snakepit-web",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                break
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise ConfigError(f"the web view did not start on {self.url} within {timeout_s} s")

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        finally:
            sock.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving and join the thread (open streams are cut after a short grace).
        Idempotent."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout_s / 2)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s / 2)
        self._thread = None
