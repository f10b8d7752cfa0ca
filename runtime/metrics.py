"""Metrics (SPEC 10) through the OTel SDK, fed by counters the hot path bumps for free.

An SDK ``Counter.add`` or ``Histogram.record`` costs 5-6 µs here (measured), as much as a
mailbox hop or three. So the hot path never calls the SDK: it bumps a ``Count`` (an int in a
slot) or appends a nanosecond duration to ``Durations`` (a bounded deque). The SDK reads the
counts through observable instruments when it collects, and ``Metrics.drain``, called off the
hot path, records the queued durations into SDK histograms. Mailbox depth, throughput and
restarts are read from the actor cells themselves when the SDK collects.

Up to three readers share one ``MeterProvider``: an in-memory reader that ``actorctl status``
collects from (``Metrics.snapshot``), so the operator sees the very figures that are exported;
when an endpoint is configured, a periodic OTLP/HTTP exporter (``<endpoint>/v1/metrics``, for an
OTel collector or Prometheus; Jaeger takes traces only); and, with ``prometheus=True``, the OTel
Prometheus reader over a registry of this ``Metrics``'s own (``Metrics.registry``), which
collects when it is scraped (``app.ops.http``'s ``/metrics``).

Collection may run on another thread than the event loop (the OTLP exporter's, the HTTP
server's): the callbacks only read ints and lengths and copy the dicts they walk before walking
them (one C-level copy under the GIL), and ``drain`` may run on two threads at once. The SDK's
``record`` and ``collect`` take its own locks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._actor import ActorCell

COUNTS: Final = {
    "actortrade.ticks": ("{tick}", "price ticks a symbol actor handled, by outcome"),
    "actortrade.bars": ("{bar}", "closed bars a symbol actor handled, by outcome"),
    "actortrade.orders.submitted": ("{order}", "orders handed to the broker actor"),
    "actortrade.reconcile.runs": ("{run}", "reconciliations of a symbol against the broker"),
    "actortrade.reconcile.diffs": ("{diff}", "differences reconciliation found and repaired"),
    "actortrade.broker.reconnects": ("{connection}", "broker connections after the first"),
    "actortrade.spans.dropped": ("{span}", "span records dropped while the export queue was full"),
    "actortrade.risk.refused": ("{order}", "new orders the risk actor refused, by rule"),
    "actortrade.options.skips": ("{decision}", "options decisions that found nothing to trade"),
}
"""Monotonic counts the hot path bumps: name -> (unit, description)."""

DURATIONS: Final = {
    "actortrade.tick_to_order.duration": (
        "from a price tick entering a symbol actor's mailbox to its order reaching the broker"
    ),
    "actortrade.store.commit.duration": "one LMDB write transaction, commit and fsync included",
}
"""Latency histograms, in seconds (OTel's unit for durations)."""

BOUNDARIES: Final = tuple(round(1e-6 * 1.5**k, 9) for k in range(40))
"""Histogram bucket bounds: 1 µs to 7 s, each 1.5x the last (percentiles within 25 %)."""

_PENDING = 65_536


def _key(attributes: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(attributes.items()))


class Count:
    """A monotonic count: ``count.value += 1`` on the hot path, read by the SDK when it collects."""

    __slots__ = ("value", "attributes")

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self.value = 0
        self.attributes = dict(attributes)


class Durations:
    """Durations in ns queued for a histogram: ``record`` is an append; ``Metrics.drain`` hands
    them to the SDK. Bounded: under a flood the oldest unrecorded ones are dropped."""

    __slots__ = ("pending", "attributes")

    def __init__(self, attributes: Mapping[str, str], pending: deque[int] | None = None) -> None:
        self.pending: deque[int] = pending if pending is not None else deque(maxlen=_PENDING)
        self.attributes = dict(attributes)

    def record(self, duration_ns: int) -> None:
        self.pending.append(duration_ns)


def _otlp_metric_exporter(url: str, timeout: float) -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=url, timeout=timeout)


class DeferredOtlpExporter(MetricExporter):
    """The OTLP/HTTP metric exporter, built by ``build`` at its first use, in the reader's
    thread: building it imports its protobuf messages and ``requests`` (about 0.1 s here),
    which a start need not wait for. It prefers what the OTLP exporter prefers (cumulative
    temporality, its histogram aggregation, the ``OTEL_EXPORTER_OTLP_METRICS_*`` settings)."""

    def __init__(self, build: Callable[[], MetricExporter]) -> None:
        from opentelemetry.exporter.otlp.common._aggregation import (
            _get_aggregation,
            _get_temporality,
        )

        super().__init__(
            preferred_temporality=_get_temporality(None),
            preferred_aggregation=_get_aggregation(None),
        )
        self._build = build
        self._inner: MetricExporter | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._inner is not None

    def _exporter(self) -> MetricExporter:
        with self._lock:
            if self._inner is None:
                self._inner = self._build()
            return self._inner

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return self._exporter().export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        inner = self._inner
        return True if inner is None else inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        inner = self._inner
        if inner is not None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class Metrics:
    """The service's metrics: counts, durations and the actor cells, collected by the SDK."""

    def __init__(
        self,
        *,
        service_name: str = "actortrade",
        endpoint: str | None = None,
        export_interval: float = 10.0,
        export_timeout: float = 5.0,
        version: str = "",
        prometheus: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self._counts: dict[str, dict[tuple[tuple[str, str], ...], Count]] = {n: {} for n in COUNTS}
        self._durations: dict[str, dict[tuple[tuple[str, str], ...], Durations]] = {
            n: {} for n in DURATIONS
        }
        self._cells: dict[str, ActorCell[Any]] = {}
        self._started = time.monotonic()
        self._reader = InMemoryMetricReader()
        readers: list[MetricReader] = [self._reader]
        if endpoint is not None:
            url = endpoint.rstrip("/") + "/v1/metrics"
            readers.append(
                PeriodicExportingMetricReader(
                    DeferredOtlpExporter(lambda: _otlp_metric_exporter(url, export_timeout)),
                    export_interval_millis=export_interval * 1000,
                    export_timeout_millis=export_timeout * 1000,
                )
            )
        self.registry: CollectorRegistry | None = None
        """What the Prometheus reader answers from (``prometheus=True``), else None: this
        ``Metrics``'s own, never prometheus_client's global one (one process may make many)."""
        if prometheus:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry

            self.registry = CollectorRegistry()
            readers.append(PrometheusMetricReader(registry=self.registry))
        self.provider = MeterProvider(
            metric_readers=readers,
            resource=Resource.create({"service.name": service_name}),
            views=[
                View(
                    instrument_type=Histogram,
                    aggregation=ExplicitBucketHistogramAggregation(list(BOUNDARIES)),
                )
            ],
        )
        meter = self.provider.get_meter("actortrade", version or None)
        meter.create_observable_gauge(
            "actortrade.mailbox.depth",
            callbacks=[self._observe_cells(lambda cell: cell.mailbox.statistics().depth)],
            unit="{message}",
            description="messages waiting in an actor's mailbox",
        )
        meter.create_observable_counter(
            "actortrade.mailbox.processed",
            callbacks=[self._observe_cells(lambda cell: cell.mailbox.statistics().processed)],
            unit="{message}",
            description="messages an actor has taken from its mailbox (throughput)",
        )
        meter.create_observable_counter(
            "actortrade.actor.restarts",
            callbacks=[self._observe_cells(lambda cell: cell.restarts)],
            unit="{restart}",
            description="times an actor was started again after its first start",
        )
        for name, (unit, description) in COUNTS.items():
            meter.create_observable_counter(
                name, callbacks=[self._observe_counts(name)], unit=unit, description=description
            )
        self._histograms = {
            name: meter.create_histogram(name, unit="s", description=description)
            for name, description in DURATIONS.items()
        }

    # -- what the actors hold -----------------------------------------------------------------

    def count(self, name: str, attributes: Mapping[str, str] | None = None) -> Count:
        """The count ``name`` with ``attributes`` (the same object every time: it outlives an
        actor's incarnations)."""
        counts = self._counts.get(name)
        if counts is None:
            raise KeyError(f"no count named {name!r}: one of {sorted(COUNTS)}")
        attributes = attributes or {}
        key = _key(attributes)
        found = counts.get(key)
        if found is None:
            found = counts[key] = Count(attributes)
        return found

    def durations(
        self,
        name: str,
        attributes: Mapping[str, str] | None = None,
        *,
        pending: deque[int] | None = None,
    ) -> Durations:
        """The durations ``name`` with ``attributes``; ``pending`` adopts a deque another
        component fills (the store's writer thread, say)."""
        table = self._durations.get(name)
        if table is None:
            raise KeyError(f"no durations named {name!r}: one of {sorted(DURATIONS)}")
        attributes = attributes or {}
        key = _key(attributes)
        found = table.get(key)
        if found is None or (pending is not None and found.pending is not pending):
            found = table[key] = Durations(attributes, pending)
        return found

    def watch(self, cells: Iterable[ActorCell[Any]]) -> None:
        """Report these cells' mailbox depth, throughput and restarts."""
        for cell in cells:
            self._cells[cell.name] = cell

    # -- off the hot path ---------------------------------------------------------------------

    def drain(self) -> int:
        """Record the queued durations into the SDK's histograms; returns how many. Safe on
        two threads at once (the loop's flush and a scrape): each duration is recorded once."""
        recorded = 0
        for name, table in self._durations.items():
            histogram = self._histograms[name]
            for durations in list(table.values()):
                pending, attributes = durations.pending, durations.attributes
                while True:
                    try:
                        duration = pending.popleft()
                    except IndexError:  # emptied here, or by the other thread's drain
                        break
                    histogram.record(duration / 1e9, attributes)
                    recorded += 1
        return recorded

    def snapshot(self) -> dict[str, Any]:
        """Collect through the SDK's in-memory reader and summarize for ``actorctl status``:
        per actor (depth, processed, messages/s since start, restarts), the counts, and each
        latency as count, mean, p50, p99 (interpolated within the histogram's buckets) and max,
        in microseconds."""
        self.drain()
        data = self._reader.get_metrics_data()
        uptime = max(time.monotonic() - self._started, 1e-9)
        actors: dict[str, dict[str, Any]] = {}
        counts: dict[str, list[dict[str, Any]]] = {}
        durations: dict[str, list[dict[str, Any]]] = {}
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        if metric.name.startswith(("actortrade.mailbox.", "actortrade.actor.")):
                            assert isinstance(point, NumberDataPoint)
                            actor = str(attributes["actor"])
                            field = metric.name.rsplit(".", 1)[1]
                            actors.setdefault(actor, {"actor": actor})[field] = point.value
                        elif isinstance(point, HistogramDataPoint):
                            durations.setdefault(metric.name, []).append(
                                {"attributes": attributes, **_summary(point)}
                            )
                        elif isinstance(point, NumberDataPoint):
                            counts.setdefault(metric.name, []).append(
                                {"attributes": attributes, "value": point.value}
                            )
        for row in actors.values():
            row["per_second"] = round(row.get("processed", 0) / uptime, 1)
        return {
            "actors": sorted(actors.values(), key=lambda row: row["actor"]),
            "counts": counts,
            "durations": durations,
            "uptime_s": round(uptime, 1),
        }

    def shutdown(self) -> None:
        """Record what is queued, export it (when exporting), stop the exporter's thread."""
        self.drain()
        self.provider.shutdown()

    # -- callbacks ----------------------------------------------------------------------------

    def _observe_cells(
        self, read: Callable[[ActorCell[Any]], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            cells = list(self._cells.items())  # watch() may add one on the loop meanwhile
            return [Observation(read(cell), {"actor": name}) for name, cell in cells]

        return observe

    def _observe_counts(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            counts = list(self._counts[name].values())  # count() may add one meanwhile
            return [Observation(c.value, c.attributes) for c in counts]

        return observe


def _summary(point: HistogramDataPoint) -> dict[str, Any]:
    count = point.count
    if count == 0:
        return {"count": 0}
    return {
        "count": count,
        "mean_us": round(point.sum / count * 1e6, 1),
        "p50_us": round(_quantile(point, 0.50) * 1e6, 1),
        "p99_us": round(_quantile(point, 0.99) * 1e6, 1),
        "max_us": round(point.max * 1e6, 1),
    }


def _quantile(point: HistogramDataPoint, q: float) -> float:
    """The ``q`` quantile, interpolated linearly within its bucket, clamped to [min, max]."""
    bounds, counts = list(point.explicit_bounds), list(point.bucket_counts)
    rank = q * point.count
    seen = 0
    for index, in_bucket in enumerate(counts):
        if in_bucket and seen + in_bucket >= rank:
            low = bounds[index - 1] if index > 0 else point.min
            high = bounds[index] if index < len(bounds) else point.max
            low, high = max(low, point.min), min(high, point.max)
            value = low + (high - low) * (rank - seen) / in_bucket
            return float(min(max(value, point.min), point.max))
        seen += in_bucket
    return float(point.max)
