"""How the worker side words a refused or failed call: a ``ToolFailure`` carried out of the
request path (``server.py`` and ``batch.py``)."""

from __future__ import annotations

import inspect
import traceback

from snakepit_actors._proto import bridge_pb2

from .adapter import BoundTool

__all__ = ["Refused", "failure_from", "usage"]


class Refused(Exception):
    """Carries a ``ToolFailure`` out of the request path (never escapes the bridge)."""

    def __init__(self, category: str, type_name: str, message: str, tb: str = "") -> None:
        super().__init__(message)
        self.failure = bridge_pb2.ToolFailure(category=category, type=type_name, message=message,
                                              traceback=tb)


def failure_from(exc: BaseException, category: str = "tool") -> Refused:
    """``exc`` as a ``Refused`` of ``category``, with its type, message and traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Refused(category, type(exc).__name__, str(exc), tb)


def usage(tool: BoundTool) -> str:
    """The tool's parameters without annotations, e.g. ``(a, b)``."""
    empty = inspect.Parameter.empty
    params = [p.replace(annotation=empty) for p in tool.signature.parameters.values()]
    return str(tool.signature.replace(parameters=params, return_annotation=empty))
