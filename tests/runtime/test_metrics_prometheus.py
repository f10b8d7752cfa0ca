"""The Prometheus reader of ``Metrics``: a registry of each ``Metrics``'s own, the same
instruments as OTLP under the exporter's Prometheus names, and a drain that two threads may run
at once without recording a duration twice."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from runtime import Actor, ActorCell
from runtime.metrics import COUNTS, DURATIONS, Metrics


class Idle(Actor[str]):
    def handle(self, message: str) -> None:
        return None


def _families(metrics: Metrics) -> dict[str, Metric]:
    assert metrics.registry is not None
    page = generate_latest(metrics.registry).decode()
    return {family.name: family for family in text_string_to_metric_families(page)}


def test_each_metrics_has_a_registry_of_its_own_and_none_without_the_flag() -> None:
    """Many in one process (the tests make many), never prometheus_client's global one."""
    first, second = Metrics(prometheus=True), Metrics(prometheus=True)
    assert first.registry is not None
    assert second.registry is not None
    assert first.registry is not second.registry
    assert REGISTRY not in (first.registry, second.registry)
    assert Metrics().registry is None


def test_every_instrument_is_exported_under_the_exporters_prometheus_name() -> None:
    """Dots become underscores, the unit "s" a _seconds suffix, {annotations} nothing; the
    counters are counters (their samples end in _total) and the depth a gauge."""
    metrics = Metrics(prometheus=True)
    for name in COUNTS:
        metrics.count(name, {"trading.symbol": "TQQQ"}).value += 2
    for name in DURATIONS:
        metrics.durations(name, {"trading.symbol": "TQQQ"}).record(2_000)
    cell: ActorCell[str] = ActorCell("lot-keeper", Idle)
    cell.ref.tell("queued")
    metrics.watch([cell])
    metrics.drain()
    families = _families(metrics)
    expected = {
        "actortrade_mailbox_depth": "gauge",
        "actortrade_mailbox_processed": "counter",
        "actortrade_actor_restarts": "counter",
        **{name.replace(".", "_"): "counter" for name in COUNTS},
        **{name.replace(".", "_") + "_seconds": "histogram" for name in DURATIONS},
    }
    assert {name: families[name].type for name in expected} == expected
    assert set(families) - set(expected) == {"target_info"}  # the resource


def test_the_samples_are_the_figures_the_in_memory_reader_collects() -> None:
    """What Prometheus scrapes is what ``actorctl status`` shows: depth per actor, the counts,
    the histogram's count, sum and cumulative buckets."""
    metrics = Metrics(prometheus=True)
    metrics.count("actortrade.ticks", {"outcome": "decided"}).value += 3
    durations = metrics.durations("actortrade.tick_to_order.duration", {"trading.symbol": "X"})
    for us in (10, 20, 30_000):
        durations.record(us * 1000)
    cell: ActorCell[str] = ActorCell("broker", Idle)
    for message in ("a", "b"):
        cell.ref.tell(message)
    metrics.watch([cell])
    snapshot = metrics.snapshot()  # drains
    assert metrics.registry is not None
    page = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))): s
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.labels.get("le") in (None, "+Inf")
    }

    def value(name: str, **labels: str) -> float:
        scope = {"otel_scope_name": "actortrade", "otel_scope_version": "", **labels}
        scope["otel_scope_schema_url"] = ""
        return samples[(name, tuple(sorted(scope.items())))].value

    assert value("actortrade_mailbox_depth", actor="broker") == snapshot["actors"][0]["depth"] == 2
    assert value("actortrade_ticks_total", outcome="decided") == 3
    (row,) = snapshot["durations"]["actortrade.tick_to_order.duration"]
    histogram = "actortrade_tick_to_order_duration_seconds"
    assert value(f"{histogram}_count", trading_symbol="X") == row["count"] == 3
    assert value(f"{histogram}_sum", trading_symbol="X") == pytest.approx(0.03003)
    assert value(f"{histogram}_bucket", trading_symbol="X") == 3  # le="+Inf"


def test_two_threads_draining_at_once_record_each_duration_once() -> None:
    """The loop's flush and a scrape may drain together: a popleft each, never a duration
    recorded twice or lost."""
    metrics = Metrics(prometheus=True)
    durations = metrics.durations("actortrade.store.commit.duration")
    durations.pending.extend([1_000] * 50_000)
    recorded: list[int] = []
    start = threading.Barrier(3)

    def drain() -> None:
        start.wait()
        recorded.append(metrics.drain())

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    start.wait()
    recorded.append(metrics.drain())
    for thread in threads:
        thread.join()
    assert sum(recorded) == 50_000
    (row,) = metrics.snapshot()["durations"]["actortrade.store.commit.duration"]
    assert row["count"] == 50_000
