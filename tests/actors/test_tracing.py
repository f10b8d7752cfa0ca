"""One trace per trading decision, end to end: a generated day traded over the wire (symbol
actor -> broker actor -> ib_insync -> our TWS API server) with tracing on, the spans exported
by the OTel SDK's OTLP/HTTP exporter to a real receiver that decodes the protobuf, and the
metrics exported to it too. Then a dropped broker connection: the restart, the reconnect and
the reconciliations are spans, and the metrics count them."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.brokers.ib import IBPort
from actors.lot_keeper import LedgerState, LoadLedger
from app.compose import SimTrading, sim_trading
from config.lotmap import load_lot_map
from runtime.metrics import Metrics
from runtime.telemetry import Telemetry, Tracer
from sim.engine import Engine
from sim.replay import generated_session
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.otlp_receiver import Receiver, otlp_receiver
from tests.tws_venue import TQQQ, client_protocol_errors

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
LOTS = {"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")}

KINDS = {
    "tick": "consumer",
    "decide": "internal",
    "intent.commit": "client",
    "order.submit": "producer",
    "broker.place": "client",
    "order.accepted": "consumer",
    "order.filled": "consumer",
    "fill.record": "client",
    "order.cancel": "producer",
    "broker.cancel": "client",
    "order.cancelled": "consumer",
    "reconcile": "internal",
    "broker.connect": "client",
}
SELL_CHAIN = ["order.filled", "broker.place", "order.submit", "decide", "order.filled"]
"""From a sell's fill up to the fill of the buy it sells (the follow-up sell, same trace)."""
BUY_CHAIN = ["broker.place", "order.submit", "decide"]
"""From a buy's fill up to the decision that placed it."""


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (sockets, the store's and exporter's threads)."""
    return "asyncio"


def telemetry_for(receiver: Receiver) -> Telemetry:
    return Telemetry(
        Tracer(service_name="actortrade-test", endpoint=receiver.endpoint, version="0-test"),
        Metrics(service_name="actortrade-test", endpoint=receiver.endpoint, export_interval=0.2),
    )


async def test_a_sim_trade_over_the_wire_is_one_trace_from_tick_to_the_sell_fill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every lot's trace runs tick -> decide -> intent.commit + order.submit -> broker.place ->
    order.accepted + order.filled -> fill.record + decide -> the sell's intent and submit ->
    broker.place -> its fill, with the right kinds, parents, attribute types, a link from every
    decision a fill caused, and no span for a tick that decided nothing. The metrics exported
    are the ones ``actorctl status`` reads."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    engine = Engine()
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    with otlp_receiver() as receiver:
        telemetry = telemetry_for(receiver)
        async with anyio.create_task_group() as venue:
            number = await venue.start(server.serve)
            trading = sim_trading(
                data_dir=tmp_path / "ledger",
                bars=bars,
                lots=LOTS,
                engine=engine,
                port=IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0),
                telemetry=telemetry,
            )
            ledger, root = await run(trading, telemetry)
            venue.cancel_scope.cancel()
        status = telemetry.metrics.snapshot()
        telemetry.shutdown()  # flushes: every span and the last metrics are exported
        spans = receiver.spans
    assert root.restarts == 0
    assert server.protocol_errors == []
    assert client_errors() == []

    by_id = {s["span_id"]: s for s in spans}
    assert len(by_id) == len(spans)
    assert all(s["parent_id"] in by_id for s in spans if s["parent_id"]), "orphan spans"
    for span in spans:
        assert span["kind"] == KINDS[span["name"]], span
        assert span["resource"]["service.name"] == "actortrade-test"
        assert span["scope"] == "actortrade"
        assert span["end_ns"] >= span["start_ns"]
        parent = by_id.get(span["parent_id"] or "")
        if parent is not None:
            assert parent["trace_id"] == span["trace_id"]
    names = Counter(s["name"] for s in spans)

    # Each execution is one order.filled span; each order one submit, commit and place.
    assert names["order.filled"] == len(ledger.fills) == len(engine.executions)
    assert names["order.submit"] == names["intent.commit"] == names["broker.place"]
    assert names["order.submit"] == len(ledger.intents) == len(engine.orders)

    # A tick that decided nothing left no span; the decided ones are counted and traced.
    ticks = {r["attributes"]["outcome"]: r["value"] for r in status["counts"]["actortrade.ticks"]}
    assert names["tick"] == ticks["decided"] > 0
    assert ticks["no_decision"] > 50 * ticks["decided"]

    sells = [
        s
        for s in spans
        if s["name"] == "order.filled" and s["attributes"]["trading.side"] == "SELL"
    ]
    assert len(sells) == 3
    for sell in sells:
        chain = ancestry(sell, by_id)
        assert [s["name"] for s in chain[:5]] == SELL_CHAIN
        buy_fill = chain[4]
        assert [s["name"] for s in chain[5:8]] == BUY_CHAIN
        assert chain[3]["events"][0]["name"] == "lot.opened"
        lot = chain[3]["events"][0]["attributes"]["trading.lot"]
        assert buy_fill["attributes"]["trading.lot"] == lot == sell["attributes"]["trading.lot"]
        root_span = chain[-1]
        assert root_span["parent_id"] is None
        if root_span["name"] == "tick":  # a level-0 buy, decided on a tick
            assert len(chain) == 9
            assert isinstance(root_span["attributes"]["trading.price"], float)
        else:  # a ladder buy, decided when another buy filled: a trace of its own, linked
            assert root_span["name"] == "decide"
            (link,) = root_span["links"]
            assert by_id[link["span_id"]]["name"] == "order.filled"
        closing = [s for s in spans if s["parent_id"] == sell["span_id"] and s["name"] == "decide"]
        assert [e["name"] for e in closing[0]["events"]] == ["lot.closed"]
        assert isinstance(closing[0]["events"][0]["attributes"]["trading.realized"], float)

    for submit in (s for s in spans if s["name"] == "order.submit"):
        siblings = [s for s in spans if s["parent_id"] == submit["parent_id"]]
        (commit,) = [
            s
            for s in siblings
            if s["name"] == "intent.commit"
            and s["attributes"]["trading.orderRef"] == submit["attributes"]["trading.orderRef"]
        ]
        assert commit["end_ns"] <= submit["start_ns"]  # no order without a durable intent
        assert commit["attributes"]["db.system.name"] == "lmdb"
        attributes = submit["attributes"]
        assert isinstance(attributes["trading.quantity"], int)
        assert isinstance(attributes["trading.level"], int)
        assert attributes["trading.side"] in ("BUY", "SELL")
        assert attributes["trading.symbol"] == "TQQQ"
        (place,) = [s for s in spans if s["parent_id"] == submit["span_id"]]
        assert place["attributes"]["server.address"] == "127.0.0.1"
        assert place["attributes"]["server.port"] == number
        accepted = [s for s in spans if s["parent_id"] == place["span_id"]]
        assert "order.accepted" in [s["name"] for s in accepted]
        (ack,) = [s for s in accepted if s["name"] == "order.accepted"]
        assert isinstance(ack["attributes"]["trading.orderId"], int)
        # Known to the place span when the acknowledgement came back with the call.
        assert (
            place["attributes"].get("trading.orderId", ack["attributes"]["trading.orderId"])
            == (ack["attributes"]["trading.orderId"])
        )

    assert names["reconcile"] >= 1
    assert names["broker.connect"] == 1

    # The metrics: what `actorctl status` shows is what was exported.
    tick_to_order = status["durations"]["actortrade.tick_to_order.duration"][0]
    assert tick_to_order["count"] == sum(
        1
        for s in spans
        if s["name"] == "order.submit"
        and by_id[s["parent_id"]]["parent_id"]
        and by_id[by_id[s["parent_id"]]["parent_id"]]["name"] == "tick"
    )
    assert tick_to_order["p50_us"] <= tick_to_order["p99_us"] <= tick_to_order["max_us"]
    exported = last_points(receiver)
    assert (
        exported[("actortrade.ticks", (("outcome", "decided"), ("trading.symbol", "TQQQ")))][
            "value"
        ]
        == ticks["decided"]
    )
    assert (
        exported[("actortrade.tick_to_order.duration", (("trading.symbol", "TQQQ"),))]["count"]
        == tick_to_order["count"]
    )
    commits = exported[("actortrade.store.commit.duration", ())]
    assert commits["count"] == status["durations"]["actortrade.store.commit.duration"][0]["count"]
    assert commits["count"] >= 1
    processed = {row["actor"]: row["processed"] for row in status["actors"] if "processed" in row}
    assert processed["symbol.TQQQ"] > 1000
    assert (
        exported[("actortrade.mailbox.processed", (("actor", "symbol.TQQQ"),))]["value"]
        >= processed["symbol.TQQQ"]
    )
    assert ("actortrade.mailbox.depth", (("actor", "broker"),)) in exported
    assert exported[("actortrade.broker.reconnects", ())]["value"] == 0


async def test_a_dropped_broker_connection_is_a_restart_a_reconnect_and_reconciliations(
    tmp_path: Path,
) -> None:
    """The venue drops the broker's connection: the supervisor's restart is a span (with the
    error, and every child rest_for_one restarted), the reconnect is a ``broker.connect`` span
    marked as one, each restarted symbol actor's reconciliation is a span of its second
    incarnation, and the metrics count the reconnect and the restarts."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    with otlp_receiver() as receiver:
        telemetry = telemetry_for(receiver)
        trading = sim_trading(
            data_dir=tmp_path / "ledger", bars=bars, lots=LOTS, telemetry=telemetry
        )

        async def chaos(trading: SimTrading) -> None:
            while len(trading.engine.executions) < 2:  # noqa: ASYNC110 - the venue has no event
                await anyio.sleep(0.001)
            trading.port.link.disconnect()  # type: ignore[attr-defined]

        ledger, _ = await run(trading, telemetry, chaos=chaos)
        status = telemetry.metrics.snapshot()
        telemetry.shutdown()
        spans = receiver.spans
    assert ledger.fills
    restarts = [s for s in spans if s["name"] == "supervisor.restart"]
    broker = [s for s in restarts if s["attributes"]["actortrade.child"] == "broker"]
    assert broker, [s["attributes"] for s in restarts]
    crash = broker[0]
    assert crash["parent_id"] is None
    assert crash["kind"] == "internal"
    assert crash["attributes"]["actortrade.supervisor"] == "root"
    assert crash["attributes"]["actortrade.exit_reason"] == "error"
    assert crash["attributes"]["actortrade.restarted"][:2] == ["broker", "symbols"]
    assert "Disconnected" in crash["error"]
    assert crash["events"][0]["name"] == "exception"
    connects = [s for s in spans if s["name"] == "broker.connect"]
    assert [s["attributes"]["actortrade.reconnect"] for s in connects[:2]] == [False, True]
    incarnations = [
        s["attributes"]["actortrade.incarnation"] for s in spans if s["name"] == "reconcile"
    ]
    assert {1, 2} <= set(incarnations)
    counts = status["counts"]
    assert counts["actortrade.broker.reconnects"][0]["value"] >= 1
    restarted = {row["actor"]: row["restarts"] for row in status["actors"]}
    assert restarted["broker"] >= 1
    assert restarted["symbol.TQQQ"] >= 1
    assert restarted["lot-keeper"] == 0


async def run(
    trading: SimTrading, telemetry: Telemetry, *, chaos: Any = None
) -> tuple[LedgerState, Supervisor]:
    """The tree until the replay ends, flushing spans as the service's companion does."""
    root = Supervisor("root", trading.spec, hooks=telemetry.supervisor_hooks())
    with anyio.fail_after(120):
        async with anyio.create_task_group() as flusher:
            flusher.start_soon(telemetry.run, 0.05)
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                if chaos is not None:
                    tg.start_soon(chaos, trading)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
            flusher.cancel_scope.cancel()
    return ledger, root


def ancestry(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    chain = [span]
    while chain[-1]["parent_id"]:
        chain.append(by_id[chain[-1]["parent_id"]])
    return chain


def last_points(receiver: Receiver) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """The latest exported data point of each metric and attribute set (cumulative)."""
    return {(p["name"], tuple(sorted(p["attributes"].items()))): p for p in receiver.points}
