"""Tracing off the hot path: span records built into OTel spans after the fact and exported
with the SDK's OTLP/HTTP exporter to a real receiver on loopback that decodes the protobuf."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from time import perf_counter_ns

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from runtime.telemetry import SpanRecord, TraceContext, Tracer, new_span_id, new_trace_id
from tests.fresh_interpreter import loaded_modules
from tests.otlp_receiver import otlp_receiver


def decision(trace_id: int, at: int) -> list[SpanRecord]:
    """tick -> decision -> (intent committed, order submitted), linked to another trace."""
    root, child = new_span_id(), new_span_id()
    other = TraceContext(new_trace_id(), new_span_id())
    return [
        SpanRecord(
            name="tick TQQQ",
            trace_id=trace_id,
            span_id=root,
            parent_id=None,
            start_ns=at,
            end_ns=at + 90_000,
            kind="consumer",
            attributes={"trading.symbol": "TQQQ", "trading.price": 52.13, "trading.size": 100},
        ),
        SpanRecord(
            name="decide",
            trace_id=trace_id,
            span_id=child,
            parent_id=root,
            start_ns=at + 10_000,
            end_ns=at + 80_000,
            attributes={"trading.level": 0, "trading.refs": ["a", "b"], "trading.halted": False},
            events=((("intent committed", at + 40_000, {"trading.order_ref": "a"})),),
        ),
        SpanRecord(
            name="submit",
            trace_id=trace_id,
            span_id=new_span_id(),
            parent_id=child,
            start_ns=at + 50_000,
            end_ns=at + 70_000,
            kind="client",
            links=(other,),
            error="rejected: 201",
        ),
    ]


def test_span_records_arrive_as_a_tree_with_their_times_types_links_and_resource() -> None:
    """Parent ids, kinds, typed attributes, an event, a link, an error status, the service
    name, and wall-clock times mapped from perf_counter_ns."""
    with otlp_receiver() as receiver:
        tracer = Tracer(service_name="bot-under-test", endpoint=receiver.endpoint)
        trace_id = new_trace_id()
        before = time.time_ns()
        for record in decision(trace_id, perf_counter_ns()):
            tracer.record(record)
        assert receiver.spans == []  # nothing leaves before a flush
        assert tracer.flush() == 3
        tracer.shutdown()
        receiver.wait_for(lambda spans: len(spans) == 3)
    spans = {s["name"]: s for s in receiver.spans}
    tick, decide, submit = spans["tick TQQQ"], spans["decide"], spans["submit"]
    assert {s["trace_id"] for s in spans.values()} == {f"{trace_id:032x}"}
    assert tick["parent_id"] is None
    assert decide["parent_id"] == tick["span_id"]
    assert submit["parent_id"] == decide["span_id"]
    assert [s["kind"] for s in (tick, decide, submit)] == ["consumer", "internal", "client"]
    assert tick["attributes"] == {
        "trading.symbol": "TQQQ",
        "trading.price": 52.13,
        "trading.size": 100,
    }
    assert decide["attributes"]["trading.refs"] == ["a", "b"]
    assert decide["attributes"]["trading.halted"] is False
    assert decide["events"][0]["name"] == "intent committed"
    assert decide["events"][0]["attributes"] == {"trading.order_ref": "a"}
    assert submit["error"] == "rejected: 201"
    assert len(submit["links"]) == 1
    assert tick["resource"]["service.name"] == "bot-under-test"
    assert tick["scope"] == "actortrade"
    assert before - 1_000_000_000 < tick["start_ns"] < time.time_ns()
    assert tick["end_ns"] - tick["start_ns"] == 90_000
    assert decide["start_ns"] - tick["start_ns"] == 10_000
    assert receiver.requests[0]["content_type"] == "application/x-protobuf"


def test_a_burst_of_20000_spans_is_delivered_whole() -> None:
    """The batch processor is sized for bursts: nothing is dropped."""
    with otlp_receiver() as receiver:
        tracer = Tracer(endpoint=receiver.endpoint)
        at = perf_counter_ns()
        for _ in range(20_000):
            span = new_span_id()
            tracer.record(
                SpanRecord(
                    name="decide",
                    trace_id=new_trace_id(),
                    span_id=span,
                    parent_id=None,
                    start_ns=at,
                    end_ns=at + 1,
                )
            )
        tracer.flush()
        tracer.shutdown()
        receiver.wait_for(lambda spans: len(spans) == 20_000, timeout=60)
    assert tracer.dropped == 0


def test_disabled_tracing_records_and_exports_nothing() -> None:
    """Off: a record is a no-op, and no connection is made."""
    with otlp_receiver() as receiver:
        tracer = Tracer(endpoint=receiver.endpoint, enabled=False)
        for record in decision(new_trace_id(), perf_counter_ns()):
            tracer.record(record)
        assert (tracer.pending, tracer.flush()) == (0, 0)
        tracer.shutdown()
    assert receiver.requests == []


def test_an_unreachable_endpoint_warns_once_and_never_stalls_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens: one warning at start; record and flush return at once; shutdown drops
    what is queued without trying to export it (the exporter would retry with backoff for
    seconds: a stop must not wait for that), and counts it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        caplog.set_level(logging.WARNING, logger="actortrade.telemetry")
        tracer = Tracer(endpoint=f"http://127.0.0.1:{port}", export_timeout=1.0)
        warnings = [r for r in caplog.records if r.name == "actortrade.telemetry"]
        assert [r.levelno for r in warnings] == [logging.WARNING]
        assert tracer.watch is not None
        attempts = _Attempts(tracer.watch.inner)
        tracer.watch.inner = attempts
        for record in decision(new_trace_id(), perf_counter_ns()):
            tracer.record(record)
        assert tracer.flush() == 3
        tracer.shutdown()
    assert attempts.spans == 0
    assert tracer.watch.failed == 3


class _Attempts(SpanExporter):
    """Counts the spans handed to the SDK's OTLP exporter, which it wraps."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()


def test_pending_records_are_bounded_and_the_excess_counted() -> None:
    """A tracer nobody flushes cannot grow without bound."""
    tracer = Tracer(exporter=_Discard(), max_pending=10)
    for record in decision(new_trace_id(), perf_counter_ns()) * 5:
        tracer.record(record)
    assert (tracer.pending, tracer.dropped) == (10, 5)
    tracer.shutdown()


class _Discard:
    """An exporter that drops everything (for the bounded-queue test only)."""

    def export(self, spans: object) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def test_the_otlp_exporter_is_built_at_the_first_export_not_at_start() -> None:
    """Building the OTLP exporter imports its protobuf messages and ``requests``: the tracer
    builds it in the span processor's thread when it first exports, so a start does not wait
    for it; the spans still arrive whole."""
    with otlp_receiver() as receiver:
        tracer = Tracer(endpoint=receiver.endpoint)
        assert tracer.watch is not None
        assert not tracer.watch.built
        for record in decision(new_trace_id(), perf_counter_ns()):
            tracer.record(record)
        assert tracer.flush() == 3
        receiver.wait_for(lambda spans: len(spans) == 3)
        assert tracer.watch.built
        tracer.shutdown()
    assert tracer.watch.exported == 3


def test_a_tracer_never_exporting_never_builds_its_exporter() -> None:
    """Nothing recorded: the shutdown neither builds nor waits for an exporter."""
    with otlp_receiver() as receiver:
        tracer = Tracer(endpoint=receiver.endpoint)
        tracer.shutdown()
        assert tracer.watch is not None
        assert not tracer.watch.built
    assert receiver.requests == []


def test_building_the_tracer_and_the_metrics_loads_no_otlp_exporter_nor_requests() -> None:
    """In a fresh interpreter, a tracer and metrics with an endpoint (what a start builds)
    import neither the OTLP/HTTP exporters nor ``requests``: the exporting threads do, later."""
    statements = (
        "from runtime.telemetry import Tracer\n"
        "from runtime.metrics import Metrics\n"
        "Tracer(endpoint='http://127.0.0.1:9')\n"
        "Metrics(endpoint='http://127.0.0.1:9', export_interval=3600)"
    )
    assert loaded_modules(statements, ("requests", "opentelemetry.exporter.otlp.proto.http")) == []
