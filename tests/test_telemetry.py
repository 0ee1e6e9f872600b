"""Telemetry: a closed catalogue of event names, silent unless the application opts in."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from snakepit_actors.telemetry import (
    EVENTS,
    LatencyWindow,
    enable_logging,
    get_logger,
    reset_logging,
)

PACKAGE = Path(__file__).resolve().parent.parent / "snakepit_actors"


def test_every_event_the_library_logs_is_in_the_catalogue() -> None:
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used |= set(re.findall(r"log\.(?:debug|info|warning|error)\(\s*\"([a-z_.]+)\"",
                               path.read_text()))
    assert used, "the scan found no log calls"
    assert used <= EVENTS, f"events missing from telemetry.EVENTS: {sorted(used - EVENTS)}"


def test_the_library_is_silent_until_logging_is_enabled() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root, keep = logging.getLogger(), Keep()
    root.addHandler(keep)
    try:
        get_logger("test").warning("pool.degraded", reason="x")
    finally:
        root.removeHandler(keep)
    assert logging.getLogger("snakepit_actors").propagate is False
    assert not [r for r in seen if r.name.startswith("snakepit_actors")]


def test_enabled_events_are_key_value_lines_with_the_event_first() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    enable_logging(handler, "info")
    try:
        get_logger("pool").info("pool.init_complete", workers=4)
    finally:
        logging.getLogger("snakepit_actors").removeHandler(handler)
        logging.getLogger("snakepit_actors").setLevel(logging.NOTSET)
    assert records[0].getMessage() == "event='pool.init_complete' component='pool' workers=4"


def test_stdlib_records_carry_the_fields_and_structlog_formatters_render_them() -> None:
    import io
    import json

    import structlog

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.stdlib.add_logger_name, structlog.processors.JSONRenderer()]))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    enable_logging(handler, "info", route="stdlib")
    enable_logging(keep, "info", route="stdlib")
    try:
        get_logger("worker").info("worker.ready", worker_id="w1", pid=42, process="clash")
    finally:
        for h in (handler, keep):
            logging.getLogger("snakepit_actors").removeHandler(h)
        reset_logging()
    (record,) = records
    assert (record.worker_id, record.pid, record.component) == ("w1", 42, "worker")  # type: ignore[attr-defined]
    assert record.process != "clash"  # a LogRecord attribute is never overwritten
    assert json.loads(out.getvalue()) == {"event": "worker.ready", "component": "worker",
                                          "worker_id": "w1", "pid": 42, "process": "clash",
                                          "logger": "snakepit_actors"}


def test_a_hosts_structlog_configuration_gets_the_events() -> None:
    import pytest
    import structlog

    with structlog.testing.capture_logs() as captured:
        enable_logging(level="info")  # route "auto": structlog is configured
        try:
            get_logger("pool").info("pool.init_complete", workers=4)
            get_logger("pool").debug("request.completed", request_id="r")  # below the level
        finally:
            reset_logging()
    assert captured == [{"event": "pool.init_complete", "component": "pool", "workers": 4,
                         "log_level": "info"}]
    with pytest.raises(ValueError, match="pass no handler"):
        enable_logging(logging.NullHandler(), route="structlog")
    with pytest.raises(ValueError, match="route must be"):
        enable_logging(route="syslog")  # type: ignore[arg-type]


def test_latency_percentiles_use_nearest_rank_over_the_window() -> None:
    window = LatencyWindow(size=100)
    assert window.percentile(0.5) == 0.0
    for value in range(1, 201):
        window.add(float(value))
    assert window.percentile(0.0) == 101.0
    assert window.percentile(0.5) == 150.0 or window.percentile(0.5) == 151.0
    assert window.percentile(1.0) == 200.0


def test_subscribers_get_every_event_with_its_fields_whatever_the_level() -> None:
    from snakepit_actors.telemetry import subscribe

    seen: list[tuple[str, dict[str, object]]] = []
    unsubscribe = subscribe(lambda event, fields: seen.append((event, fields)))
    try:
        get_logger("pool").debug("request.completed", request_id="r1", duration_ms=1.5)
    finally:
        unsubscribe()
    get_logger("pool").debug("request.completed", request_id="r2")
    assert seen == [("request.completed", {"event": "request.completed", "component": "pool",
                                           "request_id": "r1", "duration_ms": 1.5})]


def test_a_subscription_can_filter_events_and_rejects_unknown_names() -> None:
    import pytest

    from snakepit_actors.telemetry import subscribe

    seen: list[str] = []
    unsubscribe = subscribe(lambda event, fields: seen.append(event), {"worker.recycled"})
    try:
        get_logger("pool").info("worker.ready", worker_id="w")
        get_logger("pool").info("worker.recycled", worker_id="w")
    finally:
        unsubscribe()
    assert seen == ["worker.recycled"]
    with pytest.raises(ValueError, match="unknown telemetry events"):
        subscribe(lambda e, f: None, {"worker.exploded"})


def test_a_failing_subscriber_does_not_break_logging() -> None:
    from snakepit_actors.telemetry import subscribe

    def broken(event: str, fields: dict[str, object]) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[str] = []
    unsubscribe = subscribe(broken)
    unsubscribe_ok = subscribe(lambda event, _fields: seen.append(event))
    try:
        get_logger("pool").warning("pool.degraded", reason="x")  # raises nothing
    finally:
        unsubscribe()
        unsubscribe_ok()
    assert seen == ["pool.degraded"], "a broken subscriber kept the others from the event"


def test_json_logging_writes_one_object_per_line_with_bound_context() -> None:
    import io
    import json

    import structlog

    from snakepit_actors.telemetry import bind_context, configure_logging, reset_logging

    out = io.StringIO()
    configure_logging("json", "info", out)
    try:
        bind_context(pool="p1")
        get_logger("worker").info("worker.ready", worker_id="w1", pid=5)
        get_logger("worker").debug("request.completed", request_id="r")  # below the level
    finally:
        structlog.contextvars.clear_contextvars()
        reset_logging()
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "worker.ready" and event["pool"] == "p1"
    assert event["worker_id"] == "w1" and event["level"] == "info" and event["timestamp"]


def test_configure_logging_rejects_unknown_formats_and_levels() -> None:
    import pytest

    from snakepit_actors.telemetry import configure_logging

    with pytest.raises(ValueError, match="log format must be"):
        configure_logging("xml", "info")
    with pytest.raises(ValueError, match="log level must be"):
        configure_logging("json", "loud")


def test_the_latency_histogram_is_cumulative_and_counts_everything() -> None:
    from snakepit_actors.telemetry import LATENCY_BUCKETS_MS

    window = LatencyWindow(size=2)
    for value in (0.2, 0.5, 3.0, 20000.0, 99999.0):
        window.add(value)
    buckets = dict(window.buckets())
    assert buckets[0.5] == 2 and buckets[5.0] == 3 and buckets[30000.0] == 4
    assert buckets[float("inf")] == 5 == window.count
    assert len(buckets) == len(LATENCY_BUCKETS_MS) + 1
