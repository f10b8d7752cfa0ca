"""The unmodified ib_insync client against our TWS API server, over a real loopback socket:
connect, qualify, market data, orders with partial fills, conditions, cancels, errors,
reconnects and a server restart; zero protocol errors on both sides in every test."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from ib_insync import IB, LimitOrder, MarketOrder, Order, PriceCondition, Stock

from sim.engine import Engine
from sim.journal import open_engine
from sim.tws.server import TwsServer
from tests.tws_venue import MONDAY, TQQQ, connect, trade, until, venue

pytestmark = pytest.mark.anyio
VERSIONS = [157, 176]


@pytest.mark.parametrize("version", VERSIONS)
async def test_connect_qualify_and_a_limit_order_filled_in_two_parts(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """The grid's level-0 buy: GTC LMT with orderRef and outsideRth rests, fills 60 then 40,
    with execDetails and commissionReports; positions and account values follow."""
    engine = Engine()
    async with venue(engine, version) as server:
        ib = await connect(server)
        assert ib.client.serverVersion() == version
        assert ib.managedAccounts() == ["DU1234567"]
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        assert contract.conId == TQQQ.con_id
        assert await ib.qualifyContractsAsync(Stock("NOPE", "SMART", "USD")) == []
        order = LimitOrder(
            "BUY", 100, 50.10, tif="GTC", outsideRth=True, orderRef="grid:TQQQ:L0:BUY:1:1"
        )
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "Submitted")
        trade(engine, "50.05", 60, 1)
        await until(lambda: placed.orderStatus.filled == 60)
        trade(engine, "50.02", 500, 2)
        await until(lambda: placed.orderStatus.status == "Filled")
        await until(lambda: all(f.commissionReport.execId for f in placed.fills))
        assert [(f.execution.shares, f.execution.price) for f in placed.fills] == [
            (60.0, 50.05),
            (40.0, 50.02),
        ]
        assert [f.commissionReport.commission for f in placed.fills] == [1.0, 0.0]
        assert placed.orderStatus.avgFillPrice == pytest.approx(50.038)
        assert {f.execution.orderRef for f in placed.fills} == {"grid:TQQQ:L0:BUY:1:1"}
        await until(lambda: ib.positions() and ib.positions()[0].position == 100)

        def cash() -> Decimal | None:
            values = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
            return Decimal(values["TotalCashValue"]) if "TotalCashValue" in values else None

        # Account values are a stream of their own: the update after the second fill may land
        # after the position's (CI saw the first fill's cash under load).
        expected = Decimal("1000000") - Decimal("5003.80") - 1
        await until(lambda: cash() == expected)
        assert cash() == expected
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_conditional_buy_waits_presubmitted_until_its_trigger_then_fills(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """The grid's conditional buy: LMT at the trigger with a PriceCondition (last <= trigger)
    is PreSubmitted until a trade reaches the trigger, then fills there."""
    engine = Engine()
    async with venue(engine, version) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        order = LimitOrder(
            "BUY", 95, 49.50, tif="GTC", outsideRth=True, orderRef="grid:TQQQ:L1:BUY:2:1"
        )
        order.conditions = [
            PriceCondition(
                isMore=False, price=49.50, conId=contract.conId, exch="SMART", triggerMethod=0
            )
        ]
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        trade(engine, "49.80", 100, 1)
        await anyio.sleep(0.05)
        assert placed.orderStatus.status == "PreSubmitted"
        trade(engine, "49.50", 100, 2)
        await until(lambda: placed.orderStatus.status == "Filled")
        assert placed.fills[0].execution.price == 49.50
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize(
    ("conjunction", "fills_at"),
    [("o", "52.00"), ("a", "49.95")],
    ids=["or", "and"],
)
async def test_price_conditions_chain_with_and_or(
    conjunction: str, fills_at: str, client_errors: Callable[[], list[str]]
) -> None:
    """Two price conditions: with OR (last <= 49 or last >= 52) the order triggers when either
    holds; with AND (last <= 50.00 and last >= 49.90) only inside the band."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        low = 49.0 if conjunction == "o" else 50.0
        high = 52.0 if conjunction == "o" else 49.90
        first = PriceCondition(isMore=False, price=low, conId=contract.conId, exch="SMART")
        first.conjunction = conjunction
        second = PriceCondition(isMore=True, price=high, conId=contract.conId, exch="SMART")
        order = LimitOrder("BUY", 10, 60.00, tif="GTC", outsideRth=True)
        order.conditions = [first, second]
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        trade(engine, "50.50", 100, 1)  # OR: neither holds; AND: only the second
        trade(engine, "49.80", 100, 2)  # OR: neither holds; AND: only the first
        await anyio.sleep(0.05)
        assert placed.orderStatus.status == "PreSubmitted"
        trade(engine, fills_at, 100, 3)  # OR: the second holds; AND: both do
        await until(lambda: placed.orderStatus.status == "Filled")
        assert placed.fills[0].execution.price == float(fills_at)
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_cancel_reject_and_error_codes(client_errors: Callable[[], list[str]]) -> None:
    """Cancel (202), a price off the tick (110: ib_insync leaves it PendingSubmit), a
    duplicate order id (103), a rejected order type (201), cancel of an unknown order (10147)."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        codes: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, _msg, _contract: codes.append((req_id, code))
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        resting = ib.placeOrder(contract, LimitOrder("BUY", 10, 40.00, tif="GTC"))
        await until(lambda: resting.orderStatus.status == "Submitted")
        ib.cancelOrder(resting.order)
        await until(lambda: resting.orderStatus.status == "Cancelled")
        off_tick = ib.placeOrder(contract, LimitOrder("BUY", 1, 50.005))
        stop = ib.placeOrder(
            contract, Order(action="BUY", totalQuantity=1, orderType="TRAIL", auxPrice=60.0)
        )
        ib.client.placeOrder(resting.order.orderId, contract, LimitOrder("BUY", 1, 40.0))
        ib.client.placeOrder(resting.order.orderId - 1, contract, MarketOrder("BUY", 1))
        ib.client.cancelOrder(99_999)
        await until(lambda: (99_999, 10147) in codes)
        assert (stop.order.orderId, 201) in codes
        assert stop.orderStatus.status == "Cancelled"
        assert (resting.order.orderId - 1, 103) in codes
        assert (resting.order.orderId, 202) in codes
        assert (off_tick.order.orderId, 110) in codes
        assert off_tick.orderStatus.status == "PendingSubmit"
        assert (resting.order.orderId, 104) in codes
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_market_data_streams_the_venue_trades_live_and_delayed(
    client_errors: Callable[[], list[str]],
) -> None:
    """reqMktData streams every trade the venue matches; with market data type 3 the ticks
    come as delayed ones, which ib_insync maps to the same fields."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        ib.reqMarketDataType(3)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        ticker = ib.reqMktData(contract)
        await until(lambda: ticker.last == 50.0)
        trade(engine, "50.07", 300, 1)
        await until(lambda: ticker.last == 50.07)
        assert (ticker.bid, ticker.ask) == (50.06, 50.08)
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_duplicate_client_id_is_refused_with_326(
    client_errors: Callable[[], list[str]],
) -> None:
    """A second connection with a clientId in use gets 326 and is closed."""
    engine = Engine()
    async with venue(engine) as server:
        first = await connect(server, client_id=7)
        second = IB()
        with pytest.raises((TimeoutError, ConnectionError)):
            await second.connectAsync("127.0.0.1", server.port or 0, clientId=7, timeout=1)
        assert first.isConnected()
        first.disconnect()
    assert server.protocol_errors == []


async def test_gtc_orders_executions_and_positions_survive_a_reconnect_and_a_server_restart(
    tmp_path: Path, client_errors: Callable[[], list[str]]
) -> None:
    """After the client reconnects, and again after the server restarts on its journaled
    engine, the working GTC sell comes back with every field (orderRef, tif, outsideRth),
    and the executions and the position are reported."""
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    async with venue(engine) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        buy = ib.placeOrder(contract, LimitOrder("BUY", 94, 50.10, tif="DAY", outsideRth=True))
        await until(lambda: buy.orderStatus.status == "Submitted")
        trade(engine, "50.05", 500, 1)
        await until(lambda: buy.orderStatus.status == "Filled")
        sell = LimitOrder(
            "SELL", 94, 50.56, tif="GTC", outsideRth=True, orderRef="grid:TQQQ:L0:SELL:1:1"
        )
        placed = ib.placeOrder(contract, sell)
        await until(lambda: placed.orderStatus.status == "Submitted")
        ib.disconnect()
        await until(lambda: 1 not in server.sessions)  # the server has seen the close
        ib = await connect(server)
        [working] = ib.openTrades()
        assert (working.order.orderRef, working.order.tif, working.order.outsideRth) == (
            "grid:TQQQ:L0:SELL:1:1",
            "GTC",
            True,
        )
        ib.disconnect()
    reopened = open_engine(journal)
    async with venue(reopened) as server:
        ib = await connect(server)
        [working] = ib.openTrades()
        assert working.order.orderRef == "grid:TQQQ:L0:SELL:1:1"
        assert working.order.lmtPrice == 50.56
        assert [f.execution.shares for f in ib.fills()] == [94.0]
        assert [(p.contract.symbol, p.position) for p in ib.positions()] == [("TQQQ", 94.0)]
        assert ib.client.getReqId() > placed.order.orderId
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_modify_outside_rth_warning_and_completed_orders_on_request(
    client_errors: Callable[[], list[str]],
) -> None:
    """A modify re-prices a working order (then it fills at the new price); an order without
    outsideRth placed before the open gets warning 399; completed orders come on request."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        codes: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, _msg, _contract: codes.append((req_id, code))
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        order = LimitOrder("BUY", 10, 49.00, tif="GTC", outsideRth=True)
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "Submitted")
        order.lmtPrice = 49.80
        ib.placeOrder(contract, order)
        await until(lambda: engine.orders[placed_ref(server, placed)].limit == Decimal("49.8"))
        trade(engine, "49.75", 100, 1)
        await until(lambda: placed.orderStatus.status == "Filled")
        assert placed.fills[0].execution.price == 49.75
        engine.on_trade("TQQQ", Decimal("49.70"), 10, MONDAY.replace(hour=8))
        early = ib.placeOrder(contract, LimitOrder("BUY", 1, 40.00, tif="DAY"))
        await until(lambda: (early.order.orderId, 399) in codes)
        completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
        assert [t.orderStatus.status for t in completed] == ["Filled"]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def placed_ref(server: TwsServer, placed: Any) -> str:
    return server.by_client_order[(1, placed.order.orderId)]


async def test_connectivity_notices_and_a_nightly_restart_drop_clients_and_keep_gtc(
    client_errors: Callable[[], list[str]],
) -> None:
    """1100 then 1102 reach every client; the nightly restart says 1100, cancels DAY orders,
    keeps GTC ones and drops every connection; a client reconnecting hears 1102 and finds the
    GTC order working."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        codes: list[int] = []
        ib.errorEvent += lambda _req, code, _msg, _contract: codes.append(code)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        day = ib.placeOrder(contract, LimitOrder("BUY", 5, 40.00, tif="DAY", outsideRth=True))
        gtc = ib.placeOrder(contract, LimitOrder("BUY", 5, 41.00, tif="GTC", outsideRth=True))
        await until(lambda: gtc.orderStatus.status == "Submitted")
        server.connectivity_lost()
        server.connectivity_restored()
        await until(lambda: 1102 in codes)
        assert codes[-2:] == [1100, 1102]
        server.nightly_restart()
        await until(lambda: not ib.isConnected())
        assert codes[-1] == 1100
        assert day.orderStatus.status == "Cancelled"
        await until(lambda: 1 not in server.sessions)
        ib = IB()
        again: list[int] = []
        ib.errorEvent += lambda _req, code, _msg, _contract: again.append(code)
        await ib.connectAsync("127.0.0.1", server.port or 0, clientId=1, timeout=5)
        assert 1102 in again
        assert [t.order.lmtPrice for t in ib.openTrades()] == [41.0]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_faults_commission_before_execution_delay_and_a_drop_mid_fill(
    client_errors: Callable[[], list[str]],
) -> None:
    """A commissionReport sent before its execDetails (as real TWS sometimes does) is absorbed;
    delayed events arrive in order on release; a connection dropped in the middle of a fill
    loses that fill's messages, and a reconnect's reqExecutions brings the execution back."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        first = ib.placeOrder(contract, LimitOrder("BUY", 10, 50.00, tif="GTC", outsideRth=True))
        await until(lambda: first.orderStatus.status == "Submitted")
        server.sessions[1].commission_first_next = True
        trade(engine, "50.00", 100, 1)
        await until(lambda: first.orderStatus.status == "Filled")
        assert first.fills[0].execution.shares == 10
        session = server.sessions[1]
        session.link.hold()
        second = ib.placeOrder(contract, LimitOrder("BUY", 10, 50.00, tif="GTC", outsideRth=True))
        await until(lambda: (1, second.order.orderId) in server.by_client_order)
        trade(engine, "50.00", 100, 2)
        await anyio.sleep(0.05)
        assert second.orderStatus.status == "PendingSubmit"
        session.link.release()
        session.wake()
        await until(lambda: second.orderStatus.status == "Filled")
        third = ib.placeOrder(contract, LimitOrder("BUY", 10, 50.00, tif="GTC", outsideRth=True))
        await until(lambda: third.orderStatus.status == "Submitted")
        server.sessions[1].link.disconnect_after(1)
        trade(engine, "50.00", 100, 3)
        await until(lambda: not ib.isConnected())
        assert third.fills == []
        await until(lambda: 1 not in server.sessions)
        ib = await connect(server)
        assert len(ib.fills()) == 3
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_dying_connection_never_breaks_the_market_that_moves_the_engine(
    client_errors: Callable[[], list[str]],
) -> None:
    """Regression: a session whose writer had ended (the client going away) raised
    BrokenResourceError out of the engine's trade listeners, into whoever moved the market."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        ticker = ib.reqMktData(contract)
        await until(lambda: ticker.last == 50.0)
        session = server.sessions[1]
        session._outbox.close()  # the writer is gone; the reader has not noticed yet
        trade(engine, "50.07", 300, 1)  # must not raise
        await until(lambda: not ib.isConnected())
    assert server.protocol_errors == []


async def test_a_download_of_many_orders_reaches_the_client_in_few_reads(
    client_errors: Callable[[], list[str]],
) -> None:
    """What a request is answered with goes out in as few writes as the batch allows (about
    64 KiB each), not a write per message: 150 working orders (an openOrder and an
    orderStatus each) reach a second client in a handful of reads, whole and in order."""
    engine = Engine()
    count = 150
    async with venue(engine) as server:
        placer = await connect(server, client_id=1)
        [contract] = await placer.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        refs = [f"grid:TQQQ:L{k}:SELL:{k}:1" for k in range(count)]
        for k, ref in enumerate(refs):
            placer.placeOrder(
                contract, LimitOrder("SELL", 1, 60 + k / 100, tif="GTC", orderRef=ref)
            )
        await until(lambda: len(server.orders) == count, deadline=60)
        reader = await connect(server, client_id=2)
        connection = reader.client.conn
        reads = []
        received = connection.data_received

        def counted(data: bytes) -> None:
            reads.append(len(data))
            received(data)

        connection.data_received = counted  # type: ignore[method-assign]
        with anyio.fail_after(30):
            trades = await reader.reqAllOpenOrdersAsync()
        assert [t.order.orderRef for t in trades] == refs
        assert [t.order.lmtPrice for t in trades] == [60 + k / 100 for k in range(count)]
        # A write per message would take at least one read per message (2 x count).
        assert 1 <= len(reads) <= count // 10, reads
        placer.disconnect()
        reader.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
