"""The per-pool token every gRPC call to a worker process carries (issue 13).

A worker on TCP (``transport="tcp"``, or on a member node) answers whoever reaches its port,
and loopback does not keep the host's other users out. Each pool run makes one random token
(``new_token``); it reaches the worker process on its stdin (never its command line, see
``tree/processes.py``) and every call to a worker sends it as the metadata
``x-snakepit-token`` (a channel wrapped by ``with_token``; or ``token_metadata`` passed to each
call, cheaper on a hot path). The bridge refuses calls without it (``UNAUTHENTICATED``;
``bridge/listener.py``). Workers on Unix sockets require it too; their
socket file (0600 in a 0700 directory) already keeps other users out.

grpc is imported only inside ``with_token``: this module is below every layer, and the
processes that fork actors must not import grpc.
"""

from __future__ import annotations

import collections
import secrets
from typing import Any

TOKEN_METADATA_KEY = "x-snakepit-token"


def new_token() -> str:
    """A fresh random token (32 bytes, URL-safe text)."""
    return secrets.token_urlsafe(32)


def token_metadata(token: str) -> tuple[tuple[str, str], ...] | None:
    """The ``metadata=`` argument of a gRPC call that carries ``token`` (None for "")."""
    return ((TOKEN_METADATA_KEY, token),) if token else None


def with_token(channel: Any, token: str) -> Any:
    """``channel`` with ``token`` added to the metadata of every call; ``channel`` itself when
    ``token`` is "". Close the original channel, not the returned one."""
    if not token:
        return channel
    import grpc

    metadata = (TOKEN_METADATA_KEY, token)

    class _Details(collections.namedtuple(
            "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
        pass

    def details(call: Any) -> Any:
        return _Details(call.method, call.timeout, [*(call.metadata or ()), metadata],
                        call.credentials, call.wait_for_ready, call.compression)

    class _AddToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def intercept_unary_unary(self, continuation: Any, call: Any, request: Any) -> Any:
            return continuation(details(call), request)

        def intercept_unary_stream(self, continuation: Any, call: Any, request: Any) -> Any:
            return continuation(details(call), request)

        def intercept_stream_unary(self, continuation: Any, call: Any, requests: Any) -> Any:
            return continuation(details(call), requests)

        def intercept_stream_stream(self, continuation: Any, call: Any, requests: Any) -> Any:
            return continuation(details(call), requests)

    return grpc.intercept_channel(channel, _AddToken())
