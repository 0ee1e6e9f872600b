"""snakepit_actors: a supervised pool of hot external Python workers on Thespian actors + gRPC.

Quick start::

    from snakepit_actors import Pool, PoolConfig

    with Pool.start(PoolConfig(pool_size=4)) as pool:
        pool.execute("echo", {"x": 1})          # -> {"x": 1}

The message-passing API (for code living in a Thespian actor system) is in
``snakepit_actors.messages``; the actor classes are ``PoolRoot`` and friends.
"""

from typing import TYPE_CHECKING, Any

# Imports are lazy: the worker process runs ``python -m snakepit_actors.bridge``, which imports
# this package first, and must not pay for (or be exposed to) Thespian and the client.
_EXPORTS = {
    "Pool": "client.handle",
    "PoolConfig": "config", "SystemConfig": "config", "SHOWCASE_ADAPTER": "config",
    "PoolRoot": "tree.pool_root",
    **{name: "errors" for name in (
        "ConfigError", "InvalidArgumentsError", "PayloadTooLargeError", "PoolClosedError",
        "PoolNotReadyError", "PoolSaturatedError", "QueueTimeoutError", "RequestCancelledError",
        "RequestTimeoutError", "SerializationError", "SessionAffinityError", "SessionNotFoundError",
        "SessionQuotaError", "SnakepitError", "ToolError", "UnknownToolError",
        "WorkerCrashedError")},
    "Session": "client.session_api",
    "PoolExecutor": "client.executor",
    "MapIterator": "client.fanout", "AsyncMapIterator": "client.fanout",
    **{name: "messages" for name in (
        "Execute", "ExecuteFailed", "ExecuteResult", "PoolStarted", "PoolStartFailed",
        "PoolStats", "StartPool", "WorkerInfo")},
}

if TYPE_CHECKING:
    from snakepit_actors.client.executor import PoolExecutor
    from snakepit_actors.client.fanout import AsyncMapIterator, MapIterator
    from snakepit_actors.client.handle import Pool
    from snakepit_actors.client.session_api import Session
    from snakepit_actors.config import SHOWCASE_ADAPTER, PoolConfig, SystemConfig
    from snakepit_actors.errors import (
        ConfigError,
        InvalidArgumentsError,
        PayloadTooLargeError,
        PoolClosedError,
        PoolNotReadyError,
        PoolSaturatedError,
        QueueTimeoutError,
        RequestCancelledError,
        RequestTimeoutError,
        SerializationError,
        SessionAffinityError,
        SessionNotFoundError,
        SessionQuotaError,
        SnakepitError,
        ToolError,
        UnknownToolError,
        WorkerCrashedError,
    )
    from snakepit_actors.messages import (
        Execute,
        ExecuteFailed,
        ExecuteResult,
        PoolStarted,
        PoolStartFailed,
        PoolStats,
        StartPool,
        WorkerInfo,
    )
    from snakepit_actors.tree.pool_root import PoolRoot


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'snakepit_actors' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "SHOWCASE_ADAPTER",
    "AsyncMapIterator",
    "ConfigError",
    "Execute",
    "ExecuteFailed",
    "ExecuteResult",
    "InvalidArgumentsError",
    "MapIterator",
    "PayloadTooLargeError",
    "Pool",
    "PoolClosedError",
    "PoolConfig",
    "PoolExecutor",
    "PoolNotReadyError",
    "PoolRoot",
    "PoolSaturatedError",
    "PoolStartFailed",
    "PoolStarted",
    "PoolStats",
    "QueueTimeoutError",
    "RequestCancelledError",
    "RequestTimeoutError",
    "SerializationError",
    "Session",
    "SessionAffinityError",
    "SessionNotFoundError",
    "SessionQuotaError",
    "SnakepitError",
    "StartPool",
    "SystemConfig",
    "ToolError",
    "UnknownToolError",
    "WorkerCrashedError",
    "WorkerInfo",
]

__version__ = "0.1.0"
