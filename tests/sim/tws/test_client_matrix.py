"""The TWS face's wire flows with every client of the matrix (ib_insync at 157 and 176, ib_async
at 176 and 178), over a real loopback socket: the startup sequence, contract details, market
data, orders with executions and commission reports, positions, account values, conditions,
modifies, cancels and IB's errors, completed orders, reconnects, a restart on the journal, and
history; zero protocol errors on both sides in every test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from sim.engine import Engine
from sim.journal import open_engine
from sim.tws.orders import HIGHEST_SERVER_VERSION
from tests.sim.tws.clients import CLIENTS, Client, api
from tests.tws_venue import MONDAY, TQQQ, trade, until, venue

pytestmark = pytest.mark.anyio
Errors = Callable[[], list[str]]


async def qualified(ib: Any, client: Client) -> Any:
    [contract] = await ib.qualifyContractsAsync(client.api.Stock("TQQQ", "SMART", "USD"))
    return contract


def codes_of(ib: Any) -> list[tuple[int, int]]:
    codes: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, _msg, _contract: codes.append((req_id, code))
    return codes


def test_the_matrix_is_both_libraries_at_their_versions() -> None:
    """ib_insync at 157 and 176, ib_async at 176 and its highest; each library offers exactly
    the range the matrix assumes, and the server speaks all of it."""
    assert [c.id for c in CLIENTS] == [
        "ib_insync-157",
        "ib_insync-176",
        "ib_async-176",
        "ib_async-178",
    ]
    for library, highest in [("ib_insync", 176), ("ib_async", HIGHEST_SERVER_VERSION)]:
        client_class = api(library).module.client.Client
        assert (client_class.MinClientVersion, client_class.MaxClientVersion) == (157, highest)
    with pytest.raises(ValueError, match=r"offers server versions 157\.\.176, not 178"):
        Client("ib_insync", 178).ib()
    with pytest.raises(ValueError, match="unknown client library"):
        api("ibapi")


async def test_startup_sequence_accounts_ids_time_and_nothing_open(
    client: Client, client_errors: Errors
) -> None:
    """The handshake settles on the client's highest version; startApi gives the account and
    the next order id; the client's startup requests (positions, orders, completed orders,
    executions, account updates) are all answered; current time is the venue's."""
    engine = Engine()
    async with venue(engine, HIGHEST_SERVER_VERSION) as server:
        ib = await client.connect(server)
        assert ib.client.serverVersion() == client.version
        assert ib.managedAccounts() == ["DU1234567"]
        assert ib.client.getReqId() >= 1
        assert (ib.positions(), ib.openTrades(), ib.fills()) == ([], [], [])
        assert await ib.reqCurrentTimeAsync() == MONDAY
        values = {v.tag for v in ib.accountValues()}
        assert {"TotalCashValue", "NetLiquidation"} <= values
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_contract_details_and_an_unknown_contract(
    client: Client, client_errors: Errors
) -> None:
    """Qualify fills in the conId and exchange; the details carry the venue's names and tick;
    a symbol the venue does not list is error 200 and no contract."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        contract = await qualified(ib, client)
        assert (contract.conId, contract.symbol, contract.primaryExchange) == (
            TQQQ.con_id,
            "TQQQ",
            "NASDAQ",
        )
        [details] = await ib.reqContractDetailsAsync(client.api.Stock("TQQQ", "SMART", "USD"))
        assert details.longName == TQQQ.long_name
        assert details.minTick == 0.01
        assert await ib.qualifyContractsAsync(client.api.Stock("NOPE", "SMART", "USD")) == []
        assert [code for _, code in codes] == [200]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_market_data_live_delayed_and_a_snapshot(
    client: Client, client_errors: Errors
) -> None:
    """reqMktData streams every trade the venue matches; with market data type 3 the ticks come
    as delayed ones, mapped to the same fields; a snapshot gives the last trade and ends."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await qualified(ib, client)
        ticker = ib.reqMktData(contract)
        await until(lambda: ticker.last == 50.0)
        trade(engine, "50.07", 300, 1)
        await until(lambda: ticker.last == 50.07)
        assert (ticker.bid, ticker.ask) == (50.06, 50.08)
        ib.cancelMktData(contract)
        ib.reqMarketDataType(3)
        [snapshot] = await ib.reqTickersAsync(contract)
        assert snapshot.last == 50.07
        delayed = ib.reqMktData(contract)
        trade(engine, "50.11", 200, 2)
        await until(lambda: delayed.last == 50.11)
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_limit_order_fills_in_two_parts_with_positions_and_account_values(
    client: Client, client_errors: Errors
) -> None:
    """A GTC limit with orderRef rests, fills 60 then 40, with execDetails (at 178 with their
    pendingPriceRevision) and commissionReports; positions and cash follow."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await qualified(ib, client)
        order = client.api.LimitOrder(
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
        assert [f.execution.cumQty for f in placed.fills] == [60.0, 100.0]
        assert [f.commissionReport.commission for f in placed.fills] == [1.0, 0.0]
        assert {f.execution.orderRef for f in placed.fills} == {"grid:TQQQ:L0:BUY:1:1"}
        if client.library == "ib_async":
            assert [f.execution.pendingPriceRevision for f in placed.fills] == [False, False]
        assert placed.orderStatus.avgFillPrice == pytest.approx(50.038)
        await until(lambda: [p.position for p in ib.positions()] == [100.0])

        def cash() -> Decimal | None:
            values = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
            return Decimal(values["TotalCashValue"]) if "TotalCashValue" in values else None

        await until(lambda: cash() == Decimal("1000000") - Decimal("5003.80") - 1)
        [summary] = [v for v in await ib.accountSummaryAsync() if v.tag == "TotalCashValue"]
        assert Decimal(summary.value) == Decimal("1000000") - Decimal("5003.80") - 1
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_conditional_order_waits_presubmitted_then_fills(
    client: Client, client_errors: Errors
) -> None:
    """A limit with a PriceCondition (last <= trigger) is PreSubmitted until a trade reaches
    the trigger, then fills there."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await qualified(ib, client)
        order = client.api.LimitOrder("BUY", 95, 49.50, tif="GTC", outsideRth=True)
        order.conditions = [
            client.api.PriceCondition(
                isMore=False, price=49.50, conId=contract.conId, exch="SMART", triggerMethod=0
            )
        ]
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        trade(engine, "49.80", 100, 1)
        # the server answers a request after every event before it: a barrier, no sleep
        await ib.reqCurrentTimeAsync()
        assert placed.orderStatus.status == "PreSubmitted"
        assert placed.fills == []
        trade(engine, "49.50", 100, 2)
        await until(lambda: placed.orderStatus.status == "Filled")
        assert placed.fills[0].execution.price == 49.50
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_modify_cancel_and_ibs_error_codes(client: Client, client_errors: Errors) -> None:
    """A modify re-prices a working order, which then fills at the new price; a cancel is 202;
    a refused field is 201 naming it; a duplicate id 103; a modify of a finished order 104; a
    cancel of an unknown order 10147; completed orders come on request."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        contract = await qualified(ib, client)
        order = client.api.LimitOrder("BUY", 10, 49.00, tif="GTC", outsideRth=True)
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "Submitted")
        order.lmtPrice = 49.80
        ib.placeOrder(contract, order)
        ref = server.by_client_order[(1, order.orderId)]
        await until(lambda: engine.orders[ref].limit == Decimal("49.8"))
        trade(engine, "49.75", 100, 1)
        await until(lambda: placed.orderStatus.status == "Filled")
        assert placed.fills[0].execution.price == 49.75
        resting = ib.placeOrder(contract, client.api.LimitOrder("BUY", 10, 40.00, tif="GTC"))
        await until(lambda: resting.orderStatus.status == "Submitted")
        ib.cancelOrder(resting.order)
        await until(lambda: resting.orderStatus.status == "Cancelled")
        hidden = ib.placeOrder(contract, client.api.LimitOrder("BUY", 1, 40.00, hidden=True))
        ib.client.placeOrder(order.orderId, contract, client.api.LimitOrder("BUY", 1, 40.0))
        ib.client.placeOrder(order.orderId - 1, contract, client.api.LimitOrder("BUY", 1, 1.0))
        ib.client.cancelOrder(99_999)
        await until(lambda: (99_999, 10147) in codes)
        assert (resting.order.orderId, 202) in codes
        assert (hidden.order.orderId, 201) in codes
        assert hidden.orderStatus.status == "Cancelled"
        assert "hidden" in hidden.log[-1].message
        assert (order.orderId, 104) in codes
        assert (order.orderId - 1, 103) in codes
        completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
        assert sorted(t.orderStatus.status for t in completed) == ["Cancelled", "Filled"]
        [filled] = [t for t in completed if t.orderStatus.status == "Filled"]
        assert (filled.order.lmtPrice, filled.order.totalQuantity) == (49.8, 10.0)
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_orders_executions_and_positions_after_a_reconnect_and_a_restart(
    client: Client, tmp_path: Path, client_errors: Errors
) -> None:
    """After the client reconnects, and again after the server restarts on its journaled
    engine, the working orders come back with every field (orderRef, tif, outsideRth, the
    condition), and the executions and the position are reported."""
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await qualified(ib, client)
        buy = ib.placeOrder(
            contract, client.api.LimitOrder("BUY", 94, 50.10, tif="DAY", outsideRth=True)
        )
        await until(lambda: buy.orderStatus.status == "Submitted")
        trade(engine, "50.05", 500, 1)
        await until(lambda: buy.orderStatus.status == "Filled")
        sell = client.api.LimitOrder(
            "SELL", 94, 50.56, tif="GTC", outsideRth=True, orderRef="grid:TQQQ:L0:SELL:1:1"
        )
        conditional = client.api.LimitOrder("BUY", 5, 48.0, tif="GTC", outsideRth=True)
        conditional.conditions = [
            client.api.PriceCondition(isMore=False, price=48.0, conId=contract.conId, exch="SMART")
        ]
        ib.placeOrder(contract, sell)
        placed = ib.placeOrder(contract, conditional)
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        ib.disconnect()
        await until(lambda: 1 not in server.sessions)
        ib = await client.connect(server)
        assert working_orders(ib) == EXPECTED_WORKING
        ib.disconnect()
    reopened = open_engine(journal)
    async with venue(reopened) as server:
        ib = await client.connect(server)
        assert working_orders(ib) == EXPECTED_WORKING
        assert [f.execution.shares for f in ib.fills()] == [94.0]
        assert [(p.contract.symbol, p.position) for p in ib.positions()] == [("TQQQ", 94.0)]
        assert ib.client.getReqId() > placed.order.orderId
        trade(reopened, "48.00", 100, 2)
        trade(reopened, "50.60", 100, 3)
        await until(lambda: [t.orderStatus.status for t in ib.trades()] == ["Filled"] * 3)
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


EXPECTED_WORKING = [
    ("SELL", 94.0, 50.56, "GTC", True, "grid:TQQQ:L0:SELL:1:1", [], "Submitted"),
    ("BUY", 5.0, 48.0, "GTC", True, "", [(False, 48.0)], "PreSubmitted"),
]


def working_orders(ib: Any) -> list[tuple[object, ...]]:
    return [
        (
            t.order.action,
            t.order.totalQuantity,
            t.order.lmtPrice,
            t.order.tif,
            t.order.outsideRth,
            t.order.orderRef,
            [(c.isMore, c.price) for c in t.order.conditions],
            t.orderStatus.status,
        )
        for t in sorted(ib.openTrades(), key=lambda t: t.order.orderId)
    ]


async def test_another_client_sees_the_orders_as_its_own_version_encodes_them(
    tmp_path: Path, client_errors: Errors
) -> None:
    """Orders placed at 178 by ib_async are shown at 157 to ib_insync's master client (0) and
    the other way round: openOrder is built for the reader's version, not the placer's."""
    engine = Engine()
    newest, oldest = CLIENTS[-1], CLIENTS[0]
    async with venue(engine) as server:
        placer = await newest.connect(server, client_id=3)
        contract = await qualified(placer, newest)
        order = newest.api.LimitOrder("BUY", 7, 45.0, tif="GTC", orderRef="from-178")
        placed = placer.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "Submitted")
        master = await oldest.connect(server, client_id=0)
        await master.reqAllOpenOrdersAsync()
        assert [(t.order.orderRef, t.order.lmtPrice) for t in master.openTrades()] == [
            ("from-178", 45.0)
        ]
        other = oldest.api.LimitOrder("SELL", 2, 55.0, tif="GTC", orderRef="from-157")
        mine = master.placeOrder(await qualified(master, oldest), other)
        await until(lambda: mine.orderStatus.status == "Submitted")
        master.disconnect()
        placer.disconnect()
        await until(lambda: not server.sessions)
        again = await newest.connect(server, client_id=0)
        await again.reqAllOpenOrdersAsync()
        refs = sorted(t.order.orderRef for t in again.openTrades())
        assert refs == ["from-157", "from-178"]
        again.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_historical_bars_of_the_venue_trades(client: Client, client_errors: Errors) -> None:
    """reqHistoricalData gives one-minute TRADES bars of the venue's own prints."""
    engine = Engine()
    async with venue(engine) as server:
        for minute, price in enumerate(["50.00", "50.20", "49.90"]):
            trade(engine, price, 100, minute)
            trade(engine, "50.05", 50, minute)
        engine.on_trade("TQQQ", Decimal("50.10"), 1, MONDAY + timedelta(minutes=5))
        ib = await client.connect(server)
        contract = await qualified(ib, client)
        bars = await ib.reqHistoricalDataAsync(
            contract,
            endDateTime="",
            durationStr="1800 S",
            barSizeSetting="1 min",
            whatToShow="TRADES",
            useRTH=True,
            formatDate=2,
        )
        assert [(b.open, b.high, b.low, b.close, b.volume) for b in bars[:3]] == [
            (50.0, 50.05, 50.0, 50.05, 150.0),
            (50.2, 50.2, 50.05, 50.05, 150.0),
            (49.9, 50.05, 49.9, 50.05, 150.0),
        ]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_duplicate_client_id_is_refused_with_326(client: Client) -> None:
    """A second connection with a clientId in use is told 326 and closed; the first goes on."""
    engine = Engine()
    async with venue(engine) as server:
        first = await client.connect(server, client_id=7)
        with pytest.raises((TimeoutError, ConnectionError)):
            await client.connect(server, client_id=7, deadline=1)
        assert first.isConnected()
        assert await first.reqCurrentTimeAsync() == MONDAY
        first.disconnect()
        await until(lambda: not server.sessions)
    assert server.protocol_errors == []


async def test_the_client_error_check_sees_each_librarys_decode_errors(
    client: Client, client_errors: Errors
) -> None:
    """The check every test ends with is live for both libraries: a message the client cannot
    decode is reported, under that library's logger."""
    ib = client.ib()
    assert client_errors() == []
    ib.client.decoder.interpret(["11", "not an execution"])
    [error] = client_errors()
    assert error.startswith(f"{client.library}.Decoder: Error handling fields")


async def test_a_client_offering_more_than_the_server_gets_the_servers_highest(
    client_errors: Errors,
) -> None:
    """ib_async offers 157..178: a server capped at 176 settles on 176, and talks it."""
    engine = Engine()
    async with venue(engine, 176) as server:
        ib = CLIENTS[-1].ib()
        assert server.port is not None
        await ib.connectAsync("127.0.0.1", server.port, clientId=1, timeout=5)
        assert ib.client.serverVersion() == 176
        contract = await qualified(ib, CLIENTS[-1])
        placed = ib.placeOrder(contract, CLIENTS[-1].api.LimitOrder("BUY", 1, 50.0))
        await until(lambda: placed.orderStatus.status == "Submitted")
        trade(engine, "50.00", 10, 1)
        await until(lambda: placed.orderStatus.status == "Filled")
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_executions_by_filter_positions_and_account_updates_on_request(
    client: Client, client_errors: Errors
) -> None:
    """reqExecutions with a filter (side, symbol), reqPositions, reqAccountUpdatesMulti and
    a global cancel, each answered to the end."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await qualified(ib, client)
        buy = ib.placeOrder(contract, client.api.LimitOrder("BUY", 30, 50.10, orderRef="b"))
        await until(lambda: buy.orderStatus.status == "Submitted")
        trade(engine, "50.05", 100, 1)
        await until(lambda: buy.orderStatus.status == "Filled")
        sell = ib.placeOrder(contract, client.api.LimitOrder("SELL", 10, 50.00, orderRef="s"))
        await until(lambda: sell.orderStatus.status == "Submitted")
        trade(engine, "50.00", 100, 2)
        await until(lambda: sell.orderStatus.status == "Filled")
        buys = await ib.reqExecutionsAsync(client.api.ExecutionFilter(side="BUY"))
        sells = await ib.reqExecutionsAsync(client.api.ExecutionFilter(side="SELL"))
        other = await ib.reqExecutionsAsync(client.api.ExecutionFilter(symbol="SQQQ"))
        assert [(f.execution.orderRef, f.execution.shares) for f in buys] == [("b", 30.0)]
        assert [(f.execution.orderRef, f.execution.shares) for f in sells] == [("s", 10.0)]
        assert other == []
        [position] = await ib.reqPositionsAsync()
        assert (position.contract.conId, position.position) == (TQQQ.con_id, 20.0)
        # the answer goes to accountValues(); the request returns on accountUpdateMultiEnd
        with anyio.fail_after(5):
            await ib.reqAccountUpdatesMultiAsync("DU1234567")
        cash = Decimal("1000000") - Decimal("1501.50") + Decimal("500.00") - 2  # $1 an order
        values = ib.accountValues()
        assert [Decimal(v.value) for v in values if v.tag == "TotalCashValue"] == [cash]
        resting = [
            ib.placeOrder(contract, client.api.LimitOrder("BUY", 1, price, tif="GTC"))
            for price in (40.0, 41.0)
        ]
        await until(lambda: all(t.orderStatus.status == "Submitted" for t in resting))
        ib.reqGlobalCancel()
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in resting))
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_connectivity_notices_and_a_nightly_restart_keep_gtc_orders(
    client: Client, client_errors: Errors
) -> None:
    """1100 then 1102 reach the client; the nightly restart cancels DAY orders, keeps GTC
    ones and drops the connection; reconnecting, the client hears 1102 and finds the GTC."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        contract = await qualified(ib, client)
        day = ib.placeOrder(contract, client.api.LimitOrder("BUY", 5, 40.0, outsideRth=True))
        gtc = ib.placeOrder(
            contract, client.api.LimitOrder("BUY", 5, 41.0, tif="GTC", outsideRth=True)
        )
        await until(lambda: gtc.orderStatus.status == "Submitted")
        server.connectivity_lost()
        server.connectivity_restored()
        await until(lambda: (-1, 1102) in codes)
        assert [code for _, code in codes][-2:] == [1100, 1102]
        server.nightly_restart()
        await until(lambda: not ib.isConnected())
        assert day.orderStatus.status == "Cancelled"
        await until(lambda: 1 not in server.sessions)
        ib = client.ib()
        again = codes_of(ib)
        assert server.port is not None
        await ib.connectAsync("127.0.0.1", server.port, clientId=1, timeout=5)
        assert (-1, 1102) in again
        assert [(t.order.lmtPrice, t.order.tif) for t in ib.openTrades()] == [(41.0, "GTC")]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_contract_by_conid_alone_and_one_that_contradicts_the_venue(
    client: Client, client_errors: Errors
) -> None:
    """A contract given by conId alone resolves everywhere (details, market data, an order);
    one whose fields contradict the listing (an option on TQQQ the venue does not list) is
    200 for details, market data and orders alike."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        by_id = client.api.Contract(conId=TQQQ.con_id, exchange="SMART")
        [details] = await ib.reqContractDetailsAsync(by_id)
        assert details.contract.symbol == "TQQQ"
        ticker = ib.reqMktData(by_id)
        await until(lambda: ticker.last == 50.0)
        placed = ib.placeOrder(by_id, client.api.LimitOrder("BUY", 1, 49.0))
        await until(lambda: placed.orderStatus.status == "Submitted")
        unknown = client.api.Option("TQQQ", "20261127", 20.5, "C", "SMART")
        assert await ib.reqContractDetailsAsync(unknown) == []
        ib.reqMktData(unknown)
        refused = ib.placeOrder(unknown, client.api.LimitOrder("BUY", 1, 1.0))
        await until(lambda: (refused.order.orderId, 200) in codes)
        assert [code for _, code in codes].count(200) == 3
        assert refused.orderStatus.status == "Cancelled"
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
