"""OpenTelemetry (the [otel] extra): a span per request whose context crosses into the worker
as gRPC metadata, so a tool's own spans join the caller's trace (client/tracing.py,
bridge/tracing.py). Spans are read from the SDK's in-memory exporters on both sides."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from snakepit_actors import Pool, PoolConfig
from snakepit_actors.client import tracing
from snakepit_actors.errors import UnknownToolError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("opentelemetry.sdk") is None,
                                reason="opentelemetry-sdk is not installed (dev extra)")


@pytest.fixture(scope="module")
def exporter() -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first SDK provider of this process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing._checked_at = float("-inf")  # an earlier test's "no provider yet" is stale now
    yield memory
    memory.shutdown()


@pytest.fixture(scope="module")
def pool(exporter: Any) -> Iterator[Pool]:
    with Pool.start(PoolConfig(name="traced", pool_size=1,
                               adapter="tests.traced_adapter:TracedAdapter")) as started:
        yield started


def hex_ids(span: Any) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def test_a_tools_spans_join_the_callers_trace_on_the_direct_path(
        pool: Pool, exporter: Any) -> None:
    exporter.clear()
    pool.execute("traced_work")
    (client,) = [s for s in exporter.get_finished_spans() if s.name == "snakepit.execute"]
    trace_id, client_id = hex_ids(client)
    assert client.kind.name == "CLIENT"
    assert client.attributes["snakepit.tool"] == "traced_work"
    assert client.attributes["snakepit.pool"] == "traced"
    worker_spans = pool.execute("traced_work")  # the worker's spans, the first call's ended
    spans = {s["name"]: s for s in worker_spans if s["trace_id"] == trace_id}
    assert spans["tool.inner"]["parent_id"] == spans["snakepit.tool"]["span_id"]
    assert spans["snakepit.tool"]["parent_id"] == client_id  # crossed the process boundary


def test_a_failed_request_marks_its_span_as_an_error(pool: Pool, exporter: Any) -> None:
    exporter.clear()
    with pytest.raises(UnknownToolError):
        pool.execute("no_such_tool_here_either", timeout=10)
    (client,) = exporter.get_finished_spans()
    assert client.status.status_code.name == "ERROR"


@pytest.mark.parametrize("data_path", ["actor", "direct"])
def test_an_async_stream_carries_the_context_of_the_callers_own_span(
        exporter: Any, data_path: str) -> None:
    """The actor path (Execute -> Pool -> Worker, whose gRPC call sends the trace context as
    metadata) and the direct path (the handle's own gRPC call) alike."""
    import asyncio

    from opentelemetry import trace

    async def run(pool: Pool) -> list[Any]:
        with trace.get_tracer("test").start_as_current_span("test.parent") as parent:
            values = [v async for v in pool.execute_stream_async("traced_steps", {"steps": 2})]
        return [parent, values]

    with Pool.start(PoolConfig(name=f"traced_{data_path}", pool_size=1,
                               adapter="tests.traced_adapter:TracedAdapter",
                               data_path=data_path)) as pool:  # type: ignore[arg-type]
        parent, _values = asyncio.run(run(pool))
        trace_id, parent_id = hex_ids(parent)
        spans = [s for s in pool.execute("traced_work") if s["trace_id"] == trace_id]
    (server,) = [s for s in spans if s["name"] == "snakepit.tool"]
    assert server["parent_id"] == parent_id
    steps = [s for s in spans if s["name"] == "tool.step"]
    assert len(steps) == 2 and all(s["parent_id"] == server["span_id"] for s in steps)


def test_a_worker_imports_opentelemetry_only_for_its_first_traced_call() -> None:
    """A spawned worker that serves untraced calls never pays for the import (about 25 ms
    of CPU); the first call carrying a ``traceparent`` loads it."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from snakepit_actors.bridge.tracing import TraceContext\n"
        "ctx = TraceContext()\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))\n"
        "ctx._load()\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules), ctx._tracer is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split("\n")
    assert out[:2] == ["False", "True True"]
