"""Streams on the direct data path: lease a worker slot, iterate ``ExecuteStreamingTool`` from
the caller's thread, give the slot back.

    caller thread: acquire lease -> gRPC server stream -> yield each chunk's value as it arrives
                   final chunk: end (or raise its ToolFailure) -> release the lease
                   the caller leaves the loop early -> cancel the call -> release the lease

Errors are the unary direct path's (``direct.DirectPath``): a deadline recycles the worker,
a vanished worker fails with the ``WorkerCrashedError`` of its revocation. A stream is never
retried (values were already delivered).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from snakepit_actors.client import direct
from snakepit_actors.client.direct import DirectPath
from snakepit_actors.client.tracing import with_trace
from snakepit_actors.core.leases import Lease
from snakepit_actors.messages import Execute
from snakepit_actors.protocols import NO_VALUE


def open_stream(path: DirectPath, lease: Lease, request: Execute) -> Any:
    """Start the gRPC server stream of ``request`` on ``lease``'s worker (sync and asyncio
    streams alike); the lease goes back unused if the call cannot start."""
    stub = lease.stub or path._stub(lease)
    try:
        return stub.ExecuteStreamingTool(path._request(request, lease),
                                         timeout=direct._timeout(request),
                                         metadata=with_trace(path.metadata, request.trace_context))
    except BaseException:
        path.leases.release_unused(lease)
        raise


def stream(path: DirectPath, request: Execute) -> Iterator[Any]:
    """Run the streaming ``request`` on a leased worker; yields values as they arrive.
    See ``Pool.execute_stream`` for blocking and errors."""
    started = time.perf_counter()
    lease = path._counted(path._acquire, request, started)
    call = open_stream(path, lease, request)
    settled, wire = False, path._loaded_wire()
    try:
        for chunk in call:
            final, value, error = wire.chunk(chunk, lease.worker_id)
            if final:
                settled = True
                path.leases.release(lease, "ok", request.session_id, started, ok=error is None)
                if error is not None:
                    raise error
                if value is not NO_VALUE:
                    yield value
                return
            yield value
    except direct._grpc.RpcError as exc:
        settled = True
        outcome = path._settle_error(lease, request, exc, started)
        if outcome.lost:
            raise path._wait_gone(lease, outcome.lost) from None
        assert outcome.error is not None
        raise outcome.error from None
    finally:
        if not settled:  # the caller left the loop: stop the tool, free the slot
            call.cancel()
            path.leases.release(lease, "ok", request.session_id, started, ok=True)
