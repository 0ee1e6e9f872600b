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
from snakepit_actors.json_codec import decode_value, failure_to_error
from snakepit_actors.messages import Execute


def stream(path: DirectPath, request: Execute) -> Iterator[Any]:
    """Run the streaming ``request`` on a leased worker; yields values as they arrive.
    See ``Pool.execute_stream`` for blocking and errors."""
    started = time.perf_counter()
    lease = path._counted(path._acquire, request, started)
    stub = lease.stub or path._stub(lease)
    try:
        call = stub.ExecuteStreamingTool(direct._proto(request, lease),
                                         timeout=direct._timeout(request),
                                         metadata=path.metadata)
    except BaseException:
        path.leases.release_unused(lease)
        raise
    settled = False
    try:
        for chunk in call:
            if chunk.is_final:
                failed = chunk.HasField("error")
                settled = True
                path.leases.release(lease, "ok", request.session_id, started, ok=not failed)
                if failed:
                    raise failure_to_error(chunk.error, lease.worker_id)
                return
            yield decode_value(chunk.data_json, "chunk")
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
