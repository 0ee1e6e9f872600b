"""The error hierarchy: every failed request ends in exactly one of these.

Each class says whose fault it is, whether the request may have run, and what the caller should
do. Errors cross process boundaries inside actor messages, so they pickle: every field lives in
``args`` through ``__reduce__``. The two timeouts are also builtin ``TimeoutError``s, so
``except TimeoutError`` catches them (code that waits on a future with a timeout must therefore
tell its own wait's timeout from a reply that *is* one: ``isinstance(exc, SnakepitError)``).

    SnakepitError                       category       may have run?
    ├── ConfigError (ValueError)        config         no  (fix the PoolConfig field named)
    ├── PoolNotReadyError               pool           no  (the pool could not start)
    ├── PoolClosedError                 pool           no  (you closed the pool)
    ├── PoolSaturatedError              pool           no  (queue full: back off and retry)
    ├── QueueTimeoutError (TimeoutError) pool          no  (never reached a worker)
    ├── RequestTimeoutError (TimeoutError) timeout     yes (a worker had it; it was cancelled)
    ├── RequestCancelledError           request        maybe (the caller cancelled it)
    ├── WorkerCrashedError              worker         yes (the worker died under it)
    ├── ToolError                       tool           yes (the tool raised)
    ├── UnknownToolError                tool           no
    ├── InvalidArgumentsError           tool           no
    ├── SerializationError              serialization  depends on ``reason``
    ├── PayloadTooLargeError            serialization  no
    ├── SessionAffinityError            session        no
    ├── SessionNotFoundError (KeyError) session        no
    └── SessionQuotaError               session        no

Every class is exported from ``snakepit_actors``; ``docs/errors.md`` is the user's guide to them.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SnakepitError(Exception):
    """Base of every error this library raises or sends.

    Attributes:
        message: human-readable text that names what went wrong and the fix.
        category: coarse class of failure ("config", "pool", "timeout", "worker", "tool",
            "serialization", "session"); stable, meant for metrics and dashboards.
        reason: a short machine-readable tag inside the category (e.g. "queue_full").
        details: extra structured facts (worker id, limits, ...); JSON-friendly values.
    """

    category: ClassVar[str] = "internal"
    default_reason: ClassVar[str] = "error"

    def __init__(self, message: str, *, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.details: dict[str, Any] = dict(details or {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.reason, self.details))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return (type(self) is type(other) and isinstance(other, SnakepitError)
                and (self.message, self.reason, self.details)
                == (other.message, other.reason, other.details))

    __hash__ = Exception.__hash__


def _rebuild(cls: type[SnakepitError], message: str, reason: str,
             details: dict[str, Any]) -> SnakepitError:
    err = cls.__new__(cls)
    SnakepitError.__init__(err, message, reason=reason, details=details)
    return err


class ConfigError(SnakepitError, ValueError):
    """The configuration is invalid; nothing was started. The message names every bad field."""

    category = "config"
    default_reason = "invalid_config"


class PoolNotReadyError(SnakepitError):
    """The pool could not start (a worker failed to start, or startup timed out) or is degraded.

    The request never ran. ``details`` may carry the worker's start error.

    With ``reason="pool_restarted"`` the pool's Pool actor died and was restarted while the
    request waited for its answer: ``details["may_have_run"]`` says whether it may have run
    (it had been sent; retry only if idempotent) or not (a lease request: retry). With
    ``reason="session_store_restarted"`` the SessionStore died and was restarted before it
    answered this session command (it may have run); the session exists again without its data
    if the pool routed it, global programs are gone. With ``reason="system_restarting"``
    (``on_system_loss="restart"``) the pool's actor system died and the handle is starting a new
    one: a request in flight at the loss may have run; retry in a moment.
    """

    category = "pool"
    default_reason = "not_ready"


class PoolClosedError(SnakepitError):
    """You closed the pool (or it is closing). The request never ran; do not retry on this pool.

    With ``reason="actor_system_gone"`` the pool ended on its own: its actor system died (the
    Thespian admin or logger process exited, e.g. killed); with ``"pool_tree_gone"`` its actor
    tree did (its PoolRoot exited, or stopped the tree because a child it cannot rebuild died).
    A request that had reached a worker may have run; one still queued did not. Start a new
    pool. With ``on_system_loss="restart"`` these come only past the restart intensity
    (``details["gave_up"]``), and ``"system_restart_failed"`` when the new system did not
    start."""

    category = "pool"
    default_reason = "closed"


class PoolSaturatedError(SnakepitError):
    """Every worker is busy and the queue holds ``max_queue`` requests. The request never ran;
    back off and retry, or raise ``max_queue`` / ``pool_size``."""

    category = "pool"
    default_reason = "queue_full"


class QueueTimeoutError(SnakepitError, TimeoutError):
    """The request waited ``queue_timeout`` (or its own deadline) in the queue and never reached a
    worker. It never ran; retrying is safe. Also a ``TimeoutError``."""

    category = "pool"
    default_reason = "queue_timeout"


class RequestTimeoutError(SnakepitError, TimeoutError):
    """A worker had the request and its deadline passed. The tool may have run partly; its worker
    process was restarted to cancel it. Retry only if the tool is idempotent. Also a
    ``TimeoutError``."""

    category = "timeout"
    default_reason = "deadline_exceeded"


class RequestCancelledError(SnakepitError):
    """The caller cancelled the request (e.g. stopped consuming a stream). It may have run
    partly; nothing more is produced."""

    category = "request"
    default_reason = "cancelled"


class WorkerCrashedError(SnakepitError):
    """The worker process died while it held the request (``details``: worker_id, exit code or
    signal). The tool may have run partly; the pool replaces the worker. Retry if idempotent."""

    category = "worker"
    default_reason = "worker_exited"


class ToolError(SnakepitError):
    """The tool raised. ``python_type``, ``python_message`` and ``python_traceback`` come from the
    worker process. The request ran; the worker is fine."""

    category = "tool"
    default_reason = "tool_raised"

    @property
    def python_type(self) -> str:
        return str(self.details.get("type", ""))

    @property
    def python_message(self) -> str:
        return str(self.details.get("message", ""))

    @property
    def python_traceback(self) -> str:
        return str(self.details.get("traceback", ""))


class UnknownToolError(SnakepitError):
    """The adapter has no tool of that name (``details['available']`` lists the ones it has).
    Nothing ran."""

    category = "tool"
    default_reason = "unknown_tool"


class InvalidArgumentsError(SnakepitError):
    """The arguments do not fit the tool's signature, or are not a JSON object. Nothing ran."""

    category = "tool"
    default_reason = "invalid_arguments"


class SerializationError(SnakepitError):
    """A value could not be encoded as JSON: ``reason`` is "args" (nothing ran) or "result" (the
    tool ran but its return value could not be sent back)."""

    category = "serialization"
    default_reason = "args"


class PayloadTooLargeError(SnakepitError):
    """The encoded arguments or result exceed the payload limit (``details``: size_bytes,
    limit_bytes). Nothing ran when ``reason`` is "args"."""

    category = "serialization"
    default_reason = "args"


class SessionAffinityError(SnakepitError):
    """Strict affinity: the session's worker is unavailable and the config forbids another one.
    Nothing ran."""

    category = "session"
    default_reason = "affinity_unavailable"


class SessionNotFoundError(SnakepitError, KeyError):
    """No such session: it was never created, was deleted, or expired (TTL from its last
    access). Nothing ran; create it again."""

    category = "session"
    default_reason = "not_found"


class SessionQuotaError(SnakepitError):
    """Creating the session would exceed ``max_sessions``. Nothing was created; delete sessions
    you no longer need, or raise the quota."""

    category = "session"
    default_reason = "quota_exceeded"


#: Maps a worker-side ``ToolFailure.category`` to the error class the host raises.
FAILURE_CATEGORIES: dict[str, type[SnakepitError]] = {
    "tool": ToolError,
    "unknown_tool": UnknownToolError,
    "invalid_arguments": InvalidArgumentsError,
    "serialization": SerializationError,
    "payload_too_large": PayloadTooLargeError,
}
