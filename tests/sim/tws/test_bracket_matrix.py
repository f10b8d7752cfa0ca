"""Stops, brackets and OCA groups through the TWS face with every client of the matrix
(ib_insync at 157 and 176, ib_async at 176 and 178): the take-profit fills and OCA cancels the
stop; the stop triggers and fills and the take-profit is cancelled; a bracket whose last leg
never arrives never works; a parent cancelled unfilled takes its children; an OCA bracket
survives a reconnect and a restart on the journal with its parentId and group; STP and STP LMT
alone. Zero protocol errors on both sides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sim.engine import Engine
from sim.journal import open_engine
from tests.sim.tws.clients import Api, Client
from tests.tws_venue import trade, until, venue

pytestmark = pytest.mark.anyio
Errors = Callable[[], list[str]]


async def tqqq(ib: Any, client: Client) -> Any:
    [contract] = await ib.qualifyContractsAsync(client.api.Stock("TQQQ", "SMART", "USD"))
    return contract


def codes_of(ib: Any) -> Callable[[int], list[int]]:
    heard: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, _msg, _contract: heard.append((req_id, code))
    return lambda order_id: [code for i, code in heard if i == order_id]


async def placed_bracket(ib: Any, contract: Any) -> list[Any]:
    """``ib.bracketOrder``: parent and take-profit untransmitted, the stop-loss transmitting."""
    legs = [ib.placeOrder(contract, o) for o in ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)]
    await until(lambda: statuses(legs) == ["Submitted", "PreSubmitted", "PreSubmitted"])
    return legs


def statuses(trades: list[Any]) -> list[str]:
    return [t.orderStatus.status for t in trades]


def oca_bracket(ib: Any, api: Api, group: str) -> list[Any]:
    # the options bot's entry: parent limit, take-profit limit, stop-loss stop, one OCA group
    parent_id, tp_id, sl_id = (ib.client.getReqId() for _ in range(3))
    exits = {"parentId": parent_id, "ocaGroup": group, "ocaType": 1, "tif": "GTC"}
    return [
        api.LimitOrder("BUY", 10, 50.00, orderId=parent_id, transmit=False, tif="GTC"),
        api.LimitOrder("SELL", 10, 55.00, orderId=tp_id, transmit=False, **exits),
        api.StopOrder("SELL", 10, 45.00, orderId=sl_id, transmit=True, **exits),
    ]


async def test_take_profit_fills_and_oca_cancels_the_stop(
    client: Client, client_errors: Errors
) -> None:
    """The parent fills, the take-profit works, the stop waits PreSubmitted; a trade through
    the take-profit fills it and the stop is Cancelled with 202; the position is flat."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        parent, take_profit, stop_loss = await placed_bracket(ib, await tqqq(ib, client))
        assert take_profit.orderStatus.parentId == stop_loss.orderStatus.parentId
        assert stop_loss.orderStatus.parentId == parent.order.orderId
        trade(engine, "49.90", 100, 1)
        await until(lambda: statuses([parent, take_profit]) == ["Filled", "Submitted"])
        assert stop_loss.orderStatus.status == "PreSubmitted"
        await until(lambda: [p.position for p in ib.positions()] == [10.0])
        trade(engine, "55.10", 100, 2)
        await until(lambda: stop_loss.orderStatus.status == "Cancelled")
        assert take_profit.orderStatus.status == "Filled"
        assert [f.execution.price for f in take_profit.fills] == [55.10]
        await until(lambda: codes(stop_loss.order.orderId) == [202])  # after the status
        await until(lambda: ib.positions() == [])
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_the_stop_triggers_and_fills_and_the_take_profit_is_cancelled(
    client: Client, client_errors: Errors
) -> None:
    """After the parent's fill, a trade at the stop triggers the stop-loss and fills it at that
    trade; the take-profit is Cancelled with 202."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        parent, take_profit, stop_loss = await placed_bracket(ib, await tqqq(ib, client))
        trade(engine, "50.00", 10, 1)
        await until(lambda: parent.orderStatus.status == "Filled")
        trade(engine, "45.01", 100, 2)
        await ib.reqCurrentTimeAsync()  # the server answers after every earlier event
        assert stop_loss.fills == []
        trade(engine, "44.95", 100, 3)
        await until(lambda: take_profit.orderStatus.status == "Cancelled")
        assert stop_loss.orderStatus.status == "Filled"
        assert [f.execution.price for f in stop_loss.fills] == [44.95]
        await until(lambda: codes(take_profit.order.orderId) == [202])  # after the status
        assert codes(stop_loss.order.orderId) == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_bracket_whose_last_leg_never_arrives_never_works(
    client: Client, client_errors: Errors
) -> None:
    """Parent and take-profit with transmit=False and no transmitting leg: both Inactive,
    listed by reqOpenOrders, nothing fills; cancelling the parent cancels its child (202)."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        contract = await tqqq(ib, client)
        parent_order, tp_order, _ = ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)
        parent = ib.placeOrder(contract, parent_order)
        take_profit = ib.placeOrder(contract, tp_order)
        await until(lambda: statuses([parent, take_profit]) == ["Inactive", "Inactive"])
        for minute, price in enumerate(("49.00", "56.00", "44.00"), start=1):
            trade(engine, price, 1000, minute)
        listed = await ib.reqOpenOrdersAsync()
        assert sorted(t.order.orderId for t in listed) == [
            parent.order.orderId,
            take_profit.order.orderId,
        ]
        assert engine.executions == []
        ib.cancelOrder(parent.order)
        await until(lambda: codes(take_profit.order.orderId) == [202])
        assert codes(parent.order.orderId) == [202]
        assert statuses([parent, take_profit]) == ["Cancelled", "Cancelled"]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_parent_cancelled_unfilled_takes_its_children(
    client: Client, client_errors: Errors
) -> None:
    """The transmitted bracket's parent cancelled before it fills: all three Cancelled, 202
    each; a trade through every price fills nothing."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await client.connect(server)
        codes = codes_of(ib)
        legs = await placed_bracket(ib, await tqqq(ib, client))
        ib.cancelOrder(legs[0].order)
        await until(lambda: statuses(legs) == ["Cancelled"] * 3)
        await until(lambda: all(codes(t.order.orderId) == [202] for t in legs))
        for minute, price in enumerate(("49.00", "56.00", "44.00"), start=1):
            trade(engine, price, 1000, minute)
        await ib.reqCurrentTimeAsync()
        assert engine.executions == []
        assert ib.fills() == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_an_oca_bracket_survives_a_reconnect_and_a_server_restart(
    client: Client, tmp_path: Path, client_errors: Errors
) -> None:
    """A GTC bracket with its own OCA group, parent filled: after a reconnect and after a
    restart on the journaled engine, the exits come back with their parentId and OCA group,
    and the take-profit's fill still cancels the stop."""
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await tqqq(ib, client)
        legs = [ib.placeOrder(contract, o) for o in oca_bracket(ib, client.api, "entry-7")]
        await until(lambda: legs[0].orderStatus.status == "Submitted")
        trade(engine, "49.95", 100, 1)
        await until(lambda: legs[0].orderStatus.status == "Filled")
        expected = [
            (legs[1].order.orderId, "LMT", legs[0].order.orderId, "entry-7", 1, "Submitted"),
            (legs[2].order.orderId, "STP", legs[0].order.orderId, "entry-7", 1, "PreSubmitted"),
        ]
        ib.disconnect()
        await until(lambda: 1 not in server.sessions)
        ib = await client.connect(server)
        assert exits(ib) == expected
        ib.disconnect()
    reopened = open_engine(journal)
    async with venue(reopened) as server:
        ib = await client.connect(server)
        assert exits(ib) == expected
        trade(reopened, "55.00", 100, 2)
        await until(lambda: ib.openTrades() == [])
        assert [f.execution.price for f in ib.fills()] == [49.95, 55.0]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def exits(ib: Any) -> list[tuple[object, ...]]:
    return sorted(
        (
            t.order.orderId,
            t.order.orderType,
            t.order.parentId,
            t.order.ocaGroup,
            t.order.ocaType,
            t.orderStatus.status,
        )
        for t in ib.openTrades()
    )


async def test_stop_and_stop_limit_orders_wait_then_trigger_on_the_last_price(
    client: Client, client_errors: Errors
) -> None:
    """A sell STP and a sell STP LMT (stop 48, limit 47.50) rest PreSubmitted; a trade at 47.40
    triggers both: the stop fills there as a market order, the stop-limit works (Submitted),
    below its limit, and fills at the next trade within it."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await client.connect(server)
        contract = await tqqq(ib, client)
        buy = ib.placeOrder(contract, client.api.LimitOrder("BUY", 20, 50.00))
        await until(lambda: buy.orderStatus.status == "Submitted")
        trade(engine, "50.00", 100, 1)
        await until(lambda: buy.orderStatus.status == "Filled")
        stop = ib.placeOrder(contract, client.api.StopOrder("SELL", 10, 48.00))
        stop_limit = ib.placeOrder(contract, client.api.StopLimitOrder("SELL", 10, 47.50, 48.00))
        await until(lambda: statuses([stop, stop_limit]) == ["PreSubmitted"] * 2)
        assert (stop_limit.order.orderType, stop_limit.order.auxPrice) == ("STP LMT", 48.0)
        trade(engine, "48.10", 100, 2)
        await ib.reqCurrentTimeAsync()
        assert ib.fills()[1:] == []
        trade(engine, "47.40", 100, 3)
        await until(lambda: statuses([stop, stop_limit]) == ["Filled", "Submitted"])
        trade(engine, "47.60", 100, 4)
        await until(lambda: stop_limit.orderStatus.status == "Filled")
        assert [f.execution.price for f in stop.fills + stop_limit.fills] == [47.4, 47.6]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
