"""An adapter whose worker process records OpenTelemetry spans in memory, for test_tracing:
``traced_work`` makes a span of its own and returns every span the worker finished so far."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from snakepit_actors.bridge.adapter import BaseAdapter, tool


class TracedAdapter(BaseAdapter):
    """Configures an SDK tracer provider with an in-memory exporter in the worker process."""

    def setup(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(provider)
        self.tracer = trace.get_tracer("traced_adapter")

    @tool
    def traced_work(self) -> list[dict[str, Any]]:
        with self.tracer.start_as_current_span("tool.inner"):
            pass
        return self._spans()

    @tool
    def traced_steps(self, steps: int = 2) -> Iterator[list[dict[str, Any]]]:
        for _ in range(steps):
            with self.tracer.start_as_current_span("tool.step"):
                pass
        yield self._spans()

    def _spans(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "trace_id": f"{s.context.trace_id:032x}",
                 "span_id": f"{s.context.span_id:016x}",
                 "parent_id": f"{s.parent.span_id:016x}" if s.parent else None}
                for s in self.exporter.get_finished_spans()]
