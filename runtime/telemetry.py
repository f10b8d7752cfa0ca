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

The records and ids themselves are plain data in ``runtime._spans`` (re-exported here), so
noting a span imports no OTel; this module is what loads the SDK and the OTLP exporter. The
supervisors reach it only through ``runtime.SupervisorHooks``: ``TracingHooks`` is the
implementation that turns each child exit a supervisor handled into a span.

Disabled, or with nothing listening at the endpoint, tracing costs a branch per decision and
never stalls or crashes the service: an unreachable endpoint is one warning at start, and
export failures stay in the exporter's thread, bounded by ``export_timeout``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from time import perf_counter_ns
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ._hooks import ExitHandled, SupervisorHooks
from ._spans import AttributeValue as AttributeValue
from ._spans import Deferred as Deferred
from ._spans import SpanRecord as SpanRecord
from ._spans import TraceContext as TraceContext
from ._spans import new_span_id as new_span_id
from ._spans import new_trace_id as new_trace_id
from .metrics import Metrics

log = logging.getLogger("actortrade.telemetry")

DEFAULT_ENDPOINT: Final = "http://localhost:4318"
"""Jaeger's (and any OTel collector's) OTLP/HTTP port."""

KINDS: Final = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}


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
        self.service_name = service_name
        self.recorded = 0
        """Span records and deferred builders accepted."""
        self.dropped = 0
        """Records refused because ``max_pending`` were waiting for a flush."""
        self.flushed = 0
        """Spans built and handed to the exporter's thread."""
        self.watch: _Watch | None = None
        """What the OTLP exporter achieved (exported and failed spans), when it is ours."""
        self._pending: deque[SpanRecord | Deferred] = deque()
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
            warned = _warn_if_unreachable(endpoint)
            url = endpoint.rstrip("/") + "/v1/traces"
            self.watch = _Watch(lambda: _otlp_span_exporter(url, export_timeout), endpoint)
            if warned:
                # Said once already: the first failed exports are no news for a while.
                self.watch.already_warned()
            exporter = self.watch
        # Sized so that a burst is queued, not dropped (the default 2048 lost 55 % of a 50k
        # burst here, ref/alpaca-otel.md B.3); the flush hands spans over in bulk anyway.
        self._processor = BatchSpanProcessor(
            exporter,
            max_queue_size=max(2 * max_pending, 65_536),
            schedule_delay_millis=500,
            max_export_batch_size=2_048,
            export_timeout_millis=export_timeout * 1000,
        )

    def record(self, record: SpanRecord | Deferred) -> None:
        """Queue a finished span, or something that builds spans at the flush (``Deferred``):
        the hot path's only call, an append."""
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

    def flush(self, limit: int | None = None) -> int:
        """Build the queued records (at most ``limit`` of them) into spans and hand them to the
        exporter's thread; returns how many spans. Call it off the hot path."""
        processor = self._processor
        count = 0
        budget = len(self._pending) if limit is None else min(limit, len(self._pending))
        for _ in range(budget):
            item = self._pending.popleft()
            if processor is None:
                continue
            for record in (item,) if isinstance(item, SpanRecord) else item.records():
                processor.on_end(self._span(record))
                count += 1
        self.flushed += count
        return count

    def shutdown(self) -> None:
        """Flush, export what is queued (bounded by the export timeout), stop the thread. When
        nothing answers at the endpoint, what is queued is dropped (and counted) at once: the
        exporter would retry with backoff for seconds, and a stop must not wait for that."""
        self.flush()
        if self.watch is not None and self.endpoint is not None and _unreachable(self.endpoint):
            self.watch.give_up()
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


def _otlp_span_exporter(url: str, timeout: float) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=url, timeout=timeout)


class _Watch(SpanExporter):
    """Wraps the OTLP exporter: counts what it exported and failed, and says so in one warning
    when exporting starts failing (then at most once a minute), and once when it recovers. The
    SDK exporter's own log, a line per failed batch with retries, is silenced.

    The exporter is built by ``build`` at the first export, in the span processor's thread:
    building it imports its protobuf messages and ``requests`` (about 0.15 s here), which a
    start need not wait for."""

    REPEAT: Final = 60.0

    def __init__(self, build: Callable[[], SpanExporter], endpoint: str) -> None:
        self._build = build
        self._inner: SpanExporter | None = None
        self._lock = threading.Lock()
        self.endpoint = endpoint
        self.exported = 0
        self.failed = 0
        self._failing = False
        self._given_up = False
        self._warned_at = 0.0
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)

    def already_warned(self) -> None:
        """The operator was just told nothing answers: the next failures within ``REPEAT``
        seconds say nothing more (the count comes with the next warning)."""
        self._failing = True
        self._warned_at = time.monotonic()

    def give_up(self) -> None:
        """Fail every export from now on without trying (the spans are counted as failed)."""
        self._given_up = True

    @property
    def inner(self) -> SpanExporter:
        """The OTLP exporter, built on first use."""
        with self._lock:
            if self._inner is None:
                self._inner = self._build()
            return self._inner

    @inner.setter
    def inner(self, exporter: SpanExporter) -> None:
        with self._lock:
            self._inner = exporter

    @property
    def built(self) -> bool:
        return self._inner is not None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = SpanExportResult.FAILURE if self._given_up else self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            if self._failing:
                self._failing = False
                log.info("tracing: exporting to %s again", self.endpoint)
            return result
        self.failed += len(spans)
        now = time.monotonic()
        if not self._failing or now - self._warned_at >= self.REPEAT:
            log.warning(
                "tracing: spans cannot be exported to %s (%d dropped so far); trading is not "
                "affected",
                self.endpoint,
                self.failed,
            )
            self._warned_at = now
        self._failing = True
        return result

    def shutdown(self) -> None:
        if self._inner is not None:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True if self._inner is None else self._inner.force_flush(timeout_millis)


def _warn_if_unreachable(endpoint: str) -> bool:
    """Warn when nothing answers at ``endpoint``; whether it warned."""
    problem = _unreachable(endpoint)
    if problem is not None:
        log.warning(
            "tracing: nothing answers at %s (%s); spans are exported when it does, and dropped "
            "meanwhile (trading is not affected)",
            endpoint,
            problem,
        )
        return True
    return False


def _unreachable(endpoint: str, timeout: float = 0.5) -> str | None:
    """Why nothing answers at the endpoint (a TCP connect), or None if something does."""
    parts = urlsplit(endpoint)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc.strerror or exc)


class TracingHooks(SupervisorHooks):
    """The supervision hooks that trace: each child exit a supervisor handled becomes a root
    span ``supervisor.<action>`` (``supervisor.restart``, ``.escalate``, ``.give_up``,
    ``.unrecoverable``, ``.none``; docs/tracing.md), noted as a ``SpanRecord`` and built at the
    flush like any other."""

    __slots__ = ("tracer",)

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def exit_handled(self, event: ExitHandled) -> None:
        if not self.tracer.enabled:
            return
        attributes: dict[str, AttributeValue] = {
            "actortrade.supervisor": event.supervisor,
            "actortrade.child": event.child,
            "actortrade.exit_reason": event.reason,
            "actortrade.restarted": list(event.restarted),
            "actortrade.backoff_s": event.backoff,
        }
        events: tuple[tuple[str, int, dict[str, AttributeValue]], ...] = ()
        error = event.error
        if error is not None:
            events = (
                (
                    "exception",
                    event.started_ns,
                    {"exception.type": type(error).__name__, "exception.message": str(error)},
                ),
            )
        self.tracer.record(
            SpanRecord(
                name=f"supervisor.{event.action}",
                trace_id=new_trace_id(),
                span_id=new_span_id(),
                parent_id=None,
                start_ns=event.started_ns,
                end_ns=event.ended_ns,
                attributes=attributes,
                events=events,
                error=None if error is None else f"{type(error).__name__}: {error}",
            )
        )


class Telemetry:
    """A service's tracer and metrics, handed to the actors that report to them."""

    def __init__(self, tracer: Tracer | None = None, metrics: Metrics | None = None) -> None:
        self.tracer = tracer if tracer is not None else Tracer(enabled=False)
        self.metrics = metrics if metrics is not None else Metrics()
        self._dropped = self.metrics.count("actortrade.spans.dropped")

    def supervisor_hooks(self) -> list[SupervisorHooks]:
        """What the service's supervisors report to (``Supervisor(..., hooks=...)``): its
        tracer, when tracing is on."""
        return [TracingHooks(self.tracer)] if self.tracer.enabled else []

    def flush(self) -> int:
        """Build and hand over queued spans, record queued durations; returns spans handed."""
        spans = self.tracer.flush()
        self._dropped.value = self.tracer.dropped
        self.metrics.drain()
        return spans

    async def run(self, interval: float = 0.5, chunk: int = 16) -> None:
        """Flush every ``interval`` seconds, forever (a companion of the service), ``chunk``
        records at a time with a checkpoint between chunks: building a span costs 20-80 µs,
        and the actors share this thread, so a burst must not hold the loop for milliseconds."""
        tracer = self.tracer
        while True:
            await anyio.sleep(interval)
            while tracer.pending:
                tracer.flush(chunk)
                await anyio.lowlevel.checkpoint()
            self.flush()

    def shutdown(self) -> None:
        """Flush, then export what is queued (bounded by the export timeouts) and stop."""
        self.flush()
        self.tracer.shutdown()
        self.metrics.shutdown()


_off: Telemetry | None = None


def off() -> Telemetry:
    """The shared telemetry of actors built without one: tracing disabled, metrics in memory."""
    global _off
    if _off is None:
        _off = Telemetry()
    return _off
