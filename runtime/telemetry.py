"""Tracing off the hot path (SPEC 10): spans built after the fact from ``perf_counter_ns``
stamps and exported over OTLP/HTTP.

An OTel SDK span costs 20-80 µs on these machines (ref/perf-baselines.md 2.7), more than a
whole tick-to-order. So nothing on the tick path calls OTel: an actor that made a decision notes
what happened as a ``SpanRecord`` (ids it drew itself, its stamps, its attributes) and hands it
to the ``Tracer``, which only appends it to a bounded queue. ``Tracer.flush``, called off the hot
path (a background task, and at stop), turns the records into the SDK's ``ReadableSpan`` with
explicit start and end times and gives them to a ``BatchSpanProcessor``, whose own thread
exports them to ``endpoint``/v1/traces. Trace context crosses actors as a ``TraceContext`` in the
envelope's ``trace`` slot, so a span can name its parent before either is exported.

Disabled, or with nothing listening at the endpoint, tracing costs a branch per decision and
never stalls or crashes the service: an unreachable endpoint is one warning at start, and
export failures stay in the exporter's thread, bounded by ``export_timeout``.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections import deque
from collections.abc import Mapping, Sequence
from time import perf_counter_ns
from typing import Final
from urllib.parse import urlsplit

import attrs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

log = logging.getLogger("actortrade.telemetry")

DEFAULT_ENDPOINT: Final = "http://localhost:4318"
"""Jaeger's (and any OTel collector's) OTLP/HTTP port."""

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]

KINDS: Final = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}


def new_trace_id() -> int:
    return random.getrandbits(128) or 1


def new_span_id() -> int:
    return random.getrandbits(64) or 1


@attrs.frozen
class TraceContext:
    """What rides in an envelope's ``trace`` slot: the trace and the span to be a child of."""

    trace_id: int
    span_id: int


@attrs.frozen(kw_only=True)
class SpanRecord:
    """A finished span as an actor noted it: ``perf_counter_ns`` stamps, no OTel objects."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    start_ns: int
    end_ns: int
    kind: str = "internal"
    attributes: Mapping[str, AttributeValue] = attrs.Factory(dict)
    events: tuple[tuple[str, int, Mapping[str, AttributeValue]], ...] = ()
    """(name, perf_counter_ns stamp, attributes)"""
    links: tuple[TraceContext, ...] = ()
    error: str | None = None

    @property
    def context(self) -> TraceContext:
        return TraceContext(self.trace_id, self.span_id)


class Tracer:
    """Collects ``SpanRecord``s and exports them, built as OTel spans, off the hot path."""

    def __init__(
        self,
        *,
        service_name: str = "actortrade",
        endpoint: str | None = DEFAULT_ENDPOINT,
        enabled: bool = True,
        max_pending: int = 100_000,
        export_timeout: float = 5.0,
        exporter: SpanExporter | None = None,
        version: str = "",
    ) -> None:
        self.enabled = enabled
        self.endpoint = endpoint
        self.recorded = 0
        self.dropped = 0
        """Records refused because ``max_pending`` were waiting for a flush."""
        self.exported = 0
        self._pending: deque[SpanRecord] = deque()
        self._max_pending = max_pending
        # perf_counter_ns is monotonic with no epoch: one offset, taken once, maps it to wall
        # time for every span of this process.
        self._offset_ns = time.time_ns() - perf_counter_ns()
        self._resource = Resource.create({"service.name": service_name})
        self._scope = InstrumentationScope("actortrade", version or None)
        self._processor: BatchSpanProcessor | None = None
        if not enabled:
            return
        if exporter is None:
            if endpoint is None:
                raise ValueError("tracing needs an endpoint (or an exporter)")
            _warn_if_unreachable(endpoint)
            exporter = OTLPSpanExporter(
                endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=export_timeout
            )
        # Sized so that a burst is queued, not dropped (the default 2048 lost 55 % of a 50k
        # burst here, ref/alpaca-otel.md B.3); the flush hands spans over in bulk anyway.
        self._processor = BatchSpanProcessor(
            exporter,
            max_queue_size=max(2 * max_pending, 65_536),
            schedule_delay_millis=500,
            max_export_batch_size=2_048,
            export_timeout_millis=export_timeout * 1000,
        )

    def record(self, record: SpanRecord) -> None:
        """Queue a finished span (the hot path's only call: an append)."""
        if not self.enabled:
            return
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append(record)
        self.recorded += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Build the queued records into spans and hand them to the exporter's thread; returns
        how many. Call it off the hot path."""
        processor = self._processor
        count = 0
        while self._pending:
            record = self._pending.popleft()
            if processor is not None:
                processor.on_end(self._span(record))
                count += 1
        self.exported += count
        return count

    def shutdown(self) -> None:
        """Flush, export what is queued (bounded by the export timeout), stop the thread."""
        self.flush()
        if self._processor is not None:
            self._processor.shutdown()  # type: ignore[no-untyped-call]  # the SDK's is unannotated
            self._processor = None

    def _span(self, record: SpanRecord) -> ReadableSpan:
        offset = self._offset_ns
        flags = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(record.trace_id, record.span_id, is_remote=False, trace_flags=flags)
        parent = (
            SpanContext(record.trace_id, record.parent_id, is_remote=False, trace_flags=flags)
            if record.parent_id is not None
            else None
        )
        return ReadableSpan(
            name=record.name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=dict(record.attributes),
            events=[
                Event(name, attributes=dict(attributes), timestamp=at + offset)
                for name, at, attributes in record.events
            ],
            links=[
                Link(SpanContext(link.trace_id, link.span_id, is_remote=False, trace_flags=flags))
                for link in record.links
            ],
            kind=KINDS[record.kind],
            status=Status(StatusCode.ERROR, record.error)
            if record.error is not None
            else Status(StatusCode.UNSET),
            start_time=record.start_ns + offset,
            end_time=record.end_ns + offset,
            instrumentation_scope=self._scope,
        )


def _warn_if_unreachable(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return
    except OSError as exc:
        log.warning(
            "tracing: nothing answers at %s (%s); spans are exported when it does, and dropped "
            "meanwhile (trading is not affected)",
            endpoint,
            exc.strerror or exc,
        )
