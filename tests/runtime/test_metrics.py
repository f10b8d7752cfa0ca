"""Metrics through the OTel SDK, fed by plain counters and queued durations: what the SDK
collects (and ``actorctl status`` shows) is what the hot path counted, and the percentiles
read from the histogram's buckets are within a bucket of the truth."""

from __future__ import annotations

from collections import deque

import pytest

from runtime import Actor, ActorCell
from runtime.metrics import Metrics


class Idle(Actor[str]):
    def handle(self, message: str) -> None:
        return None


def test_counts_are_one_object_per_name_and_attributes_and_are_collected_as_counted() -> None:
    metrics = Metrics()
    decided = metrics.count("actortrade.ticks", {"trading.symbol": "TQQQ", "outcome": "decided"})
    assert metrics.count("actortrade.ticks", {"outcome": "decided", "trading.symbol": "TQQQ"}) is (
        decided
    )
    decided.value += 3
    metrics.count("actortrade.broker.reconnects").value += 1
    counts = metrics.snapshot()["counts"]
    assert counts["actortrade.ticks"] == [
        {"attributes": {"trading.symbol": "TQQQ", "outcome": "decided"}, "value": 3}
    ]
    assert counts["actortrade.broker.reconnects"] == [{"attributes": {}, "value": 1}]
    with pytest.raises(KeyError, match="no count named 'ticks'"):
        metrics.count("ticks")


def test_durations_drain_into_a_histogram_whose_percentiles_are_within_a_bucket() -> None:
    """1..1000 µs, once each: p50 near 500 µs and p99 near 990 µs (buckets are 1.5x apart, and
    the estimate interpolates within its bucket), exact count, mean and max."""
    metrics = Metrics()
    durations = metrics.durations("actortrade.tick_to_order.duration", {"trading.symbol": "X"})
    for us in range(1, 1001):
        durations.record(us * 1000)
    assert len(durations.pending) == 1000
    (row,) = metrics.snapshot()["durations"]["actortrade.tick_to_order.duration"]
    assert not durations.pending  # drained into the SDK
    assert row["count"] == 1000
    assert row["mean_us"] == pytest.approx(500.5, rel=1e-6)
    assert row["max_us"] == pytest.approx(1000.0)
    assert 500 / 1.25 <= row["p50_us"] <= 500 * 1.25
    assert 990 / 1.25 <= row["p99_us"] <= 1000


def test_a_component_thread_fills_its_own_queue_and_cells_report_their_mailboxes() -> None:
    """The store's writer thread appends commit durations to its own deque; the metrics adopt
    it. Watched cells report depth, throughput and restarts."""
    metrics = Metrics()
    commits: deque[int] = deque()
    metrics.durations("actortrade.store.commit.duration", pending=commits)
    commits.extend([700_000, 900_000])
    cell: ActorCell[str] = ActorCell("lot-keeper", Idle)  # not run: its mailbox only
    cell.ref.tell("queued")
    metrics.watch([cell])
    snapshot = metrics.snapshot()
    (commit,) = snapshot["durations"]["actortrade.store.commit.duration"]
    assert commit["count"] == 2
    assert commit["max_us"] == pytest.approx(900.0)
    (actor,) = snapshot["actors"]
    assert actor["actor"] == "lot-keeper"
    assert actor["depth"] == 1
    assert actor["processed"] == 0
    assert actor["restarts"] == 0


def test_the_deferred_otlp_exporter_prefers_what_the_otlp_exporter_prefers() -> None:
    """The reader asks its exporter for temporality and aggregation when it is made, before
    the deferred exporter has built the real one: they must be the OTLP exporter's own."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    from runtime.metrics import DeferredOtlpExporter

    real = OTLPMetricExporter(endpoint="http://127.0.0.1:9/v1/metrics")
    deferred = DeferredOtlpExporter(lambda: real)
    assert not deferred.built
    assert deferred._preferred_temporality == real._preferred_temporality
    assert {k: type(v) for k, v in deferred._preferred_aggregation.items()} == {
        k: type(v) for k, v in real._preferred_aggregation.items()
    }
    assert deferred.force_flush() is True  # nothing built: nothing to flush
    deferred.shutdown()
    assert not deferred.built
