"""Round trip of a small message: a unary gRPC call against one message on an open
bidirectional stream, same server process, same channel (issue 7: "a lease may well be an
open stream"). Bounded; prints p50/p99 for each, alternating so drift hits both alike.

    PYTHONPATH=. python scripts/measure_stream.py [COUNT]
"""

from __future__ import annotations

import queue
import statistics
import subprocess
import sys
import time

SERVER = r"""
import sys, grpc
from concurrent import futures

def unary(request, context):
    return request

def stream(requests, context):
    for request in requests:
        yield request

handler = grpc.method_handlers_generic_handler("m.S", {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "Stream": grpc.stream_stream_rpc_method_handler(stream),
})
server = grpc.server(futures.ThreadPoolExecutor(4))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(0)
"""


def main(count: int) -> None:
    import grpc

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        unary = channel.unary_unary("/m.S/Unary")
        outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def requests() -> object:
            while (item := outbox.get()) is not None:
                yield item

        replies = channel.stream_stream("/m.S/Stream")(requests())
        payload = b"x" * 64
        unary(payload, timeout=10)
        outbox.put(payload)
        next(replies)
        times: dict[str, list[float]] = {"unary": [], "stream": []}
        deadline = time.monotonic() + 60
        for _ in range(count):
            t0 = time.perf_counter()
            unary(payload, timeout=10)
            t1 = time.perf_counter()
            outbox.put(payload)
            next(replies)
            t2 = time.perf_counter()
            times["unary"].append((t1 - t0) * 1e3)
            times["stream"].append((t2 - t1) * 1e3)
            if time.monotonic() > deadline:
                break
        outbox.put(None)
        channel.close()
        for name, values in times.items():
            values.sort()
            print(f"{name:<7} p50 {statistics.median(values):.3f} ms  "
                  f"p99 {values[int(0.99 * (len(values) - 1))]:.3f} ms  n={len(values)}")
        ratio = statistics.median(times["stream"]) / statistics.median(times["unary"])
        print(f"stream / unary p50: {ratio:.2f}x")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
