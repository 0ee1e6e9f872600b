"""The worker-process side of snakepit_actors: what runs inside each external Python process.

Write an adapter with ``BaseAdapter`` and ``@tool`` (see ``docs/adapters.md``); the pool starts
``python -m snakepit_actors.bridge --adapter package.module:Class`` once per worker, or forks
each worker from its fork server (``fork_server.py``, ``start_method="forkserver"``). This package
never imports thespian, and importing it does not import grpc (only ``server`` does).
"""

from .adapter import BaseAdapter, SessionContext, tool

__all__ = ["BaseAdapter", "SessionContext", "tool"]
