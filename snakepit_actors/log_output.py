"""Where the library's events go once ``telemetry`` has let them out: stdlib logging or the
host application's structlog configuration. ``telemetry`` re-exports the public functions.

    telemetry.get_logger(...).info("worker.ready", worker_id=...)
        -> telemetry's processors (drop if nobody listens, bound context, subscribers)
        -> to_output (the last processor):
             route "stdlib" (default):  a LogRecord on the logger ``snakepit_actors`` whose
                 ``msg`` is the event dict (``EventMessage``: ``str()`` renders key=value,
                 ``structlog.stdlib.ProcessorFormatter`` renders it with your processors)
                 and whose attributes carry every field (``record.worker_id``)
             route "structlog":  the host's ``structlog.get_logger("snakepit_actors")``, so
                 its configured processors, logger factory and level filter apply

The library never calls ``structlog.configure()`` and adds no handler of its own unless asked
(``configure_logging``, which the CLI calls: console on a TTY, JSON otherwise).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import IO, Any, Literal

import structlog

LogFormat = Literal["json", "console", "keyvalue", "auto"]
Route = Literal["auto", "stdlib", "structlog"]

#: The stdlib logger every event goes to (route "stdlib").
STDLIB_LOGGER = logging.getLogger("snakepit_actors")
STDLIB_LOGGER.addHandler(logging.NullHandler())
# Thespian routes the root logger of every actor process to stderr; stay out of it until the
# application opts in.
STDLIB_LOGGER.propagate = False

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
          "exception": logging.ERROR}
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_FIRST_KEYS = ("timestamp", "level", "event", "component")
_key_value = structlog.processors.KeyValueRenderer(key_order=["event", "component"])
_route: Literal["stdlib", "structlog"] = "stdlib"
_configured_handler: logging.Handler | None = None


class EventMessage(dict[str, Any]):
    """A LogRecord's ``msg``: the event's fields. ``str()`` gives ``event='...' key=value``
    lines for plain ``logging.Formatter``s; structlog's ``ProcessorFormatter`` takes the dict
    itself (as from ``ProcessorFormatter.wrap_for_formatter``)."""

    def __str__(self) -> str:
        return str(_key_value(None, "", dict(self)))


def to_output(logger: Any, method: str, event_dict: Any) -> Any:
    """The last structlog processor of the library's loggers (see the module docstring)."""
    if _route == "structlog":
        fields = dict(event_dict)
        event = fields.pop("event", "")
        host = structlog.get_logger("snakepit_actors")
        getattr(host, "warning" if method == "warn" else method)(event, **fields)
        raise structlog.DropEvent
    extra = {k: v for k, v in event_dict.items() if k not in _RESERVED}
    extra["_logger"], extra["_name"] = logger, method
    return (EventMessage(event_dict),), {"extra": extra}


def level_number(level: str) -> int:
    """Raises ValueError: ``level`` is not a log level name."""
    number = LEVELS.get(str(level).lower())
    if number is None:
        raise ValueError(f"log level must be one of debug, info, warning, error, got {level!r}")
    return number


def enable_logging(handler: logging.Handler | None = None, level: str = "info", *,
                   route: Route = "auto") -> None:
    """Let the library's events out, at ``level`` and above.

    Args:
        handler: a stdlib handler to add to the ``snakepit_actors`` logger; None: the events
            propagate to your root logger's handlers.
        level: "debug" (per-request events too), "info", "warning", "error".
        route: "stdlib": LogRecords whose ``msg`` is the event dict and whose attributes are
            its fields (use ``structlog.stdlib.ProcessorFormatter`` or ``%(worker_id)s``);
            "structlog": through your ``structlog.configure()`` (its processors and logger
            factory; ``handler`` must be None); "auto": "structlog" when you configured
            structlog and gave no handler, else "stdlib".

    Call it before ``Pool.start``: actor processes are forked from the starting process and
    inherit this setting.

    Raises:
        ValueError: an unknown ``level`` or ``route``, or a handler with route "structlog".
    """
    global _route
    if route not in ("auto", "stdlib", "structlog"):
        raise ValueError(f"route must be 'auto', 'stdlib' or 'structlog', got {route!r}")
    if route == "structlog" and handler is not None:
        raise ValueError("route='structlog' sends events through your structlog "
                         "configuration: pass no handler (or use route='stdlib')")
    number = level_number(level)
    if route == "auto":
        route = "structlog" if handler is None and structlog.is_configured() else "stdlib"
    _route = route
    if handler is None:
        STDLIB_LOGGER.propagate = True
    else:
        STDLIB_LOGGER.addHandler(handler)
    STDLIB_LOGGER.setLevel(number)


def formatter(fmt: LogFormat | str = "json", stream: IO[str] | None = None
              ) -> logging.Formatter:
    """A stdlib formatter rendering the library's records as ``configure_logging`` does:
    "json" (one object per line with ``timestamp`` and ``level``), "console" (aligned, human),
    "keyvalue" (``key=value``), "auto" (console if ``stream`` is a TTY, else JSON). Put it on
    your own handler if you want our rendering there.

    Raises:
        ValueError: an unknown ``fmt`` (the message lists the valid ones).
    """
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(out, "isatty", lambda: False)() else "json"
    renderer: Callable[[Any, str, Any], Any]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(default=str)
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    elif fmt == "keyvalue":
        renderer = _key_value
    else:
        raise ValueError(f"log format must be 'json', 'console', 'keyvalue' or 'auto', "
                         f"got {fmt!r}")
    stamp: list[Callable[[Any, str, Any], Any]] = [] if fmt == "keyvalue" else [
        structlog.processors.TimeStamper(fmt="iso", utc=True), _add_level, _first_keys]
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *stamp,
                    renderer])


def _add_level(logger: Any, method: str, event_dict: Any) -> Any:
    event_dict.setdefault("level", "warning" if method == "warn" else method)
    return event_dict


def _first_keys(logger: Any, method: str, event_dict: Any) -> Any:
    """A line reads left to right: when, how bad, what."""
    return {**{k: event_dict[k] for k in _FIRST_KEYS if k in event_dict}, **event_dict}


def configure_logging(fmt: LogFormat | str = "auto", level: str = "warning",
                      stream: IO[str] | None = None) -> None:
    """Print the library's events on ``stream`` (default stderr) at ``level``, rendered by
    ``formatter(fmt)``. For programs that own their output (the CLI calls it); a library
    embedding this one should use ``enable_logging`` instead.

    Calling it again replaces the previous configuration (it never stacks handlers).

    Raises:
        ValueError: an unknown ``fmt`` or ``level`` (the message lists the valid ones).
    """
    global _configured_handler
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(fmt, out))
    number = level_number(level)
    if _configured_handler is not None:
        STDLIB_LOGGER.removeHandler(_configured_handler)
    _configured_handler = handler
    STDLIB_LOGGER.addHandler(handler)
    STDLIB_LOGGER.setLevel(number)


def reset_logging() -> None:
    """Undo ``configure_logging`` and ``enable_logging``'s route: back to silent (for tests
    and embedders; handlers you added yourself stay)."""
    global _route, _configured_handler
    if _configured_handler is not None:
        STDLIB_LOGGER.removeHandler(_configured_handler)
    _route, _configured_handler = "stdlib", None
    STDLIB_LOGGER.setLevel(logging.NOTSET)
    STDLIB_LOGGER.propagate = False


def configure_cli_logging(level: str = "warning") -> None:
    """Send the library's events to stderr at ``level`` (console on a TTY, else JSON)."""
    configure_logging("auto", level)
