"""The HTTP endpoints over a real server and a real client (httpx): /readyz on a real tree
(starting, ready once reconciled, 503 and why while a symbol is halted), /healthz going 503 when
the readings stop coming, /metrics parsed as Prometheus text, and a listen address that cannot
be bound leaving the service running."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from actors.risk import HaltTrading
from app.compose import SimTrading, sim_trading
from app.ops.health import Health, Reading
from app.ops.http import HttpEndpoints, serve_http
from config.lotmap import load_lot_map
from runtime.metrics import Metrics
from runtime.telemetry import Telemetry, Tracer
from sim.replay import generated_session
from supervisors import Supervisor

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, {}


def _trading(data_dir: Path) -> SimTrading:
    return sim_trading(
        data_dir=data_dir,
        bars=generated_session(seed=11, day=date(2026, 11, 23)),
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
        speed=300,
        telemetry=Telemetry(Tracer(enabled=False), Metrics(prometheus=True)),
    )


async def _until(
    client: httpx.AsyncClient, path: str, wanted: Callable[[httpx.Response], bool]
) -> httpx.Response:
    with anyio.fail_after(60):
        while True:
            response = await client.get(path)
            if wanted(response):
                return response
            await anyio.sleep(0.02)


def _samples(page: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(page) for s in family.samples]


@asynccontextmanager
async def _serving(endpoints: HttpEndpoints) -> AsyncIterator[httpx.AsyncClient]:
    address = endpoints.start()
    assert address is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as client:
            yield client
    finally:
        endpoints.close()


async def test_readyz_is_503_until_reconciled_then_200_then_503_naming_a_halted_symbol(
    tmp_path: Path,
) -> None:
    """A real tree on the embedded venue, probed over HTTP from its first moment; /metrics
    carries each actor's mailbox depth, the counts and the tick-to-order histogram."""
    trading = _trading(tmp_path / "ledger")
    health = Health(trading, ["grid:TQQQ"], interval=0.05)
    endpoints = HttpEndpoints(health, trading.telemetry.metrics, port=0)
    root = Supervisor("root", trading.spec, hooks=trading.hooks)
    async with _serving(endpoints) as client:
        starting = await client.get("/readyz")
        assert starting.status_code == 503
        assert starting.headers["content-type"] == "application/json"
        assert starting.json()["reasons"] == ["starting"]
        assert (await client.get("/healthz")).json()["reason"] == "starting"
        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                tg.start_soon(health.run, root, lambda _by: None)
                ready = await _until(client, "/readyz", lambda r: r.status_code == 200)
                assert ready.json()["ready"] is True
                assert ready.json()["summary"].startswith("trading: TQQQ ")
                alive = await client.get("/healthz")
                assert alive.status_code == 200
                assert alive.json()["alive"] is True

                page = await _until(
                    client,
                    "/metrics",
                    lambda r: "actortrade_tick_to_order_duration_seconds_count" in r.text,
                )
                assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
                families = {f.name: f for f in text_string_to_metric_families(page.text)}
                depth = families["actortrade_mailbox_depth"]
                assert depth.type == "gauge"
                actors = {s.labels["actor"] for s in depth.samples}
                assert {"broker", "risk", "lot-keeper", "symbol.TQQQ"} <= actors
                processed = families["actortrade_mailbox_processed"]
                assert processed.type == "counter"
                broker = [s for s in processed.samples if s.labels["actor"] == "broker"]
                assert broker[0].name == "actortrade_mailbox_processed_total"
                assert broker[0].value >= 1
                submitted = families["actortrade_orders_submitted"]
                assert submitted.type == "counter"
                assert sum(s.value for s in submitted.samples) >= 1
                histogram = families["actortrade_tick_to_order_duration_seconds"]
                assert histogram.type == "histogram"
                buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
                assert buckets[-1].labels["le"] == "+Inf"
                assert buckets[-1].labels["trading_symbol"] == "TQQQ"
                assert buckets[-1].value >= 1
                assert [b.value for b in buckets] == sorted(b.value for b in buckets)

                await trading.cells["risk"].ref.request(HaltTrading(symbol="TQQQ"), timeout=30)
                halted = await _until(client, "/readyz", lambda r: r.status_code == 503)
                assert halted.json()["ready"] is False
                assert any(
                    reason.startswith("halted by the operator: TQQQ")
                    for reason in halted.json()["reasons"]
                ), halted.json()
                assert (await client.get("/healthz")).status_code == 200  # alive all the same
                root.stop()
                tg.cancel_scope.cancel()


async def test_healthz_goes_503_when_the_readings_stop_coming(tmp_path: Path) -> None:
    """The loop that takes the readings stops; a few intervals later /healthz (answered from
    the server's own thread) says the event loop is not turning, and /readyz says so first."""
    skew = [0.0]
    trading = _trading(tmp_path / "ledger")
    health = Health(trading, ["grid:TQQQ"], interval=0.05, clock=lambda: time.monotonic() + skew[0])
    endpoints = HttpEndpoints(health, trading.telemetry.metrics, port=0, stale_after=10)
    root = Supervisor("root", trading.spec, hooks=trading.hooks)
    async with _serving(endpoints) as client:
        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                readings = anyio.CancelScope()
                tg.start_soon(_cancelled_by, readings, health, root)
                await _until(client, "/healthz", lambda r: r.status_code == 200)
                readings.cancel()
                skew[0] += 60  # a minute without a reading
                stale = await client.get("/healthz")
                assert stale.status_code == 503
                assert stale.json()["alive"] is False
                assert stale.json()["reason"].startswith("event loop not turning for 6")
                not_ready = await client.get("/readyz")
                assert not_ready.status_code == 503
                assert not_ready.json()["reasons"][0].startswith("event loop not turning")
                root.stop()
                tg.cancel_scope.cancel()


async def _cancelled_by(scope: anyio.CancelScope, health: Health, root: Supervisor) -> None:
    with scope:
        await health.run(root, lambda _by: None)


def _reading(*, ready: bool = True, stopping: bool = False) -> Reading:
    return Reading(
        taken=time.monotonic(),
        alive=not stopping,
        tree_healthy=not stopping,
        ready=ready and not stopping,
        reasons=() if ready else ("broker disconnected",),
        summary="trading",
        stopping=stopping,
    )


async def test_only_get_and_head_of_the_three_paths_are_answered(tmp_path: Path) -> None:
    """HEAD answers as GET without a body; other methods 405 with Allow; other paths 404."""
    trading = _trading(tmp_path / "ledger")
    health = Health(trading, ["grid:TQQQ"])
    health.latest = _reading()
    endpoints = HttpEndpoints(health, trading.telemetry.metrics, port=0)
    async with _serving(endpoints) as client:
        head = await client.head("/readyz")
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-type"] == "application/json"
        posted = await client.post("/healthz", content=b"{}")
        assert posted.status_code == 405
        assert posted.headers["allow"] == "GET, HEAD"
        assert posted.headers["connection"] == "close"  # its body unread
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/healthz/")).status_code == 404
        assert (await client.get("/readyz?verbose=1")).status_code == 200

        health.latest = _reading(ready=False)
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["reasons"] == ["broker disconnected"]
        health.stopping("SIGTERM")
        for path in ("/healthz", "/readyz"):
            stopping = await client.get(path)
            assert stopping.status_code == 503
            assert stopping.json()["stopping"] is True


async def test_a_scrape_records_the_queued_durations_first(tmp_path: Path) -> None:
    """Durations still queued on the hot path's deque are in the scrape that follows."""
    metrics = Metrics(prometheus=True)
    queued = metrics.durations("actortrade.tick_to_order.duration", {"trading.symbol": "TQQQ"})
    queued.record(1_000_000)
    queued.record(3_000_000)
    health = Health(_trading(tmp_path / "ledger"), ["grid:TQQQ"])
    async with _serving(HttpEndpoints(health, metrics, port=0)) as client:
        page = await client.get("/metrics")
        assert page.status_code == 200
        samples = {s.name: s.value for s in _samples(page.text) if "tick_to_order" in s.name}
        assert samples["actortrade_tick_to_order_duration_seconds_count"] == 2
        assert samples["actortrade_tick_to_order_duration_seconds_sum"] == pytest.approx(0.004)
        assert not queued.pending
        openmetrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")


async def test_an_address_in_use_is_logged_and_the_companion_waits_to_be_cancelled(
    tmp_path: Path,
) -> None:
    """A bind failure does not stop the service: no address is reported, nothing raises."""
    health = Health(_trading(tmp_path / "ledger"), ["grid:TQQQ"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoints = _Tried(health, Metrics(prometheus=True), port=port)
        started: list[str] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve_http, endpoints, started.append)
                await endpoints.tried.wait()  # the bind runs in a worker thread
                tg.cancel_scope.cancel()
        assert started == []
        assert endpoints.address is None


class _Tried(HttpEndpoints):
    """Tells when ``start`` has returned."""

    def __init__(self, health: Health, metrics: Metrics, *, port: int) -> None:
        super().__init__(health, metrics, port=port)
        self.tried = anyio.Event()

    def start(self) -> str | None:
        try:
            return super().start()
        finally:
            anyio.from_thread.run_sync(self.tried.set)


async def test_the_companion_serves_until_cancelled_then_releases_the_port(
    tmp_path: Path,
) -> None:
    """``serve_http`` reports the bound address; once cancelled the port is free again."""
    health = Health(_trading(tmp_path / "ledger"), ["grid:TQQQ"])
    health.latest = _reading()
    endpoints = HttpEndpoints(health, Metrics(prometheus=True), port=0)
    bound: list[str] = []
    serving = anyio.Event()

    def started(address: str) -> None:
        bound.append(address)
        serving.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_http, endpoints, started)
            await serving.wait()
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://{bound[0]}/healthz")
            assert answer.status_code == 200
            tg.cancel_scope.cancel()
    host, port = bound[0].rsplit(":", 1)
    with socket.socket() as again:
        again.bind((host, int(port)))  # released
