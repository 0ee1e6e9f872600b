"""A node's live web view (``snakepit-actors start --web``), in the optional extra ``[web]``.

    app.py     the ASGI app (Starlette): the page, its JSON, its event stream, demo buttons
    hub.py     the hand-over between the node's threads and the server's loop
    server.py  uvicorn on a thread of the node's process
    static/    the page: one HTML file, a script and a style sheet (no build step)

Nothing here touches Thespian or gRPC: the node (``ops/web_node.py``) looks at its pools and
publishes to the hub. Import the modules of this package only after ``require_web()``: the
base install has neither Starlette nor uvicorn.
"""

from __future__ import annotations

from snakepit_actors.errors import ConfigError

#: How to install what the web view needs.
INSTALL_HINT = "pip install 'snakepit-actors[web]'"


def require_web() -> None:
    """Check that the web extra is installed.

    Raises:
        ConfigError: Starlette or uvicorn is missing; the message says how to install them.
    """
    missing = []
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"the web view (--web, [node] web_port) needs {' and '.join(missing)}"
                          f", which the base install leaves out: {INSTALL_HINT}")
