"""A second client process of a running pool, through the message-passing API (run by tests).

    python -m tests.second_client ADMIN_PORT POOL_ADDRESS_HEX MODE COUNT HOLD_S

It joins the pool's actor system through its admin port (it never starts or stops it) and talks
to the Pool actor by messages, as code living in another process would:

* ``hold``: take one lease, start a long call (``sleep`` 60 s) on its worker over gRPC, print
  ``granted WORKER_ID PID`` and wait to be killed: a client that dies holding a lease;
* ``hold-stuck``: the same with a call that ignores cancellation (``cpu`` for 60 s);
* ``leases``: COUNT times take a lease, run ``info`` (HOLD_S) over gRPC, give the lease back;
* ``actor``: COUNT times send ``Execute(info)`` to the Pool (the actor path) and await it.

``leases`` and ``actor`` print one JSON list of the ``info`` results.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import time
from typing import Any

from snakepit_actors.messages import (
    Execute,
    ExecuteFailed,
    ExecuteResult,
    LeaseBatch,
    LeaseGranted,
    RequestLease,
    ReturnLease,
)
from snakepit_actors.system import prepare_thespian
from snakepit_actors.worker_token import with_token

WAIT_S = 60.0


def _await(asys: Any, kind: type, request_id: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        msg = asys.listen(1.0)
        if isinstance(msg, kind | ExecuteFailed) and msg.request_id == request_id:
            if isinstance(msg, ExecuteFailed):
                raise msg.error
            return msg
    raise TimeoutError(f"no {kind.__name__} for {request_id}")


def _lease(asys: Any, pool: Any, rid: str) -> LeaseGranted:
    asys.tell(pool, LeaseBatch(requests=(RequestLease(rid),), holder_pid=os.getpid()))
    return _await(asys, LeaseGranted, rid)  # type: ignore[no-any-return]


def _call(endpoint: str, token: str, tool: str, args: dict[str, Any], timeout_s: float) -> Any:
    import grpc

    from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        reply = bridge_pb2_grpc.BridgeServiceStub(with_token(channel, token)).ExecuteTool(
            bridge_pb2.ExecuteToolRequest(request_id="x", tool=tool,
                                          args_json=json.dumps(args).encode()),
            timeout=timeout_s)
    return json.loads(reply.result_json)


def _wait_running(endpoint: str, token: str, timeout_s: float = 10.0) -> None:
    """Until the worker's process reports a call in flight (ours has started)."""
    import grpc

    from snakepit_actors._proto import bridge_pb2, bridge_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(endpoint) as channel:
        stub = bridge_pb2_grpc.BridgeServiceStub(with_token(channel, token))
        while time.monotonic() < deadline:
            if stub.Heartbeat(bridge_pb2.HeartbeatRequest(), timeout=5).in_flight:
                return
            time.sleep(0.01)


def main(argv: list[str]) -> None:
    port, pool_hex, mode, count, hold_s = argv[0], argv[1], argv[2], int(argv[3]), float(argv[4])
    prepare_thespian("127.0.0.1")
    from thespian.actors import ActorSystem

    asys = ActorSystem("multiprocTCPBase", {"Admin Port": int(port)})
    pool = pickle.loads(bytes.fromhex(pool_hex))
    prefix = f"c{os.getpid()}"
    results = []
    if mode in ("hold", "hold-stuck"):
        granted = _lease(asys, pool, f"{prefix}-0")
        tool, args = (("sleep", {"seconds": 60}) if mode == "hold"
                      else ("cpu", {"ms": 60000}))
        threading.Thread(target=_call, args=(granted.endpoint, granted.token, tool, args, 90),
                         daemon=True).start()
        _wait_running(granted.endpoint, granted.token)
        print(f"granted {granted.worker_id} {granted.pid}", flush=True)
        time.sleep(WAIT_S)
        return
    for i in range(count):
        rid = f"{prefix}-{i}"
        if mode == "leases":
            granted = _lease(asys, pool, rid)
            results.append(_call(granted.endpoint, granted.token, "info", {"hold_s": hold_s},
                                 WAIT_S))
            asys.tell(pool, LeaseBatch(returns=(ReturnLease(rid, granted.worker_id),),
                                       holder_pid=os.getpid()))
        else:
            asys.tell(pool, Execute(rid, "info", {"hold_s": hold_s}, timeout_s=WAIT_S))
            results.append(_await(asys, ExecuteResult, rid).result)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
