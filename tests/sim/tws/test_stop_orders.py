"""STP and STP LMT through the TWS face, with ib_insync over a real socket: the stop is
``auxPrice`` (on the tick, else 110), the order waits PreSubmitted until a trade reaches it,
then works as a market (STP) or limit (STP LMT) order; the trigger method reaches the engine; a
modify moves the stop and the quantity but not the trigger method (105)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from ib_insync import IB, Contract, Order, Stock, StopLimitOrder, StopOrder, Trade

from sim.engine import Engine
from sim.tws.server import TwsServer
from tests.tws_venue import connect, trade, until, venue

pytestmark = pytest.mark.anyio


async def _tqqq(ib: IB) -> Contract:
    [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
    return contract


def _codes(ib: IB) -> list[tuple[int, int]]:
    codes: list[tuple[int, int]] = []

    def on_error(req_id: int, code: int, _message: str, _contract: Any) -> None:
        codes.append((req_id, code))

    ib.errorEvent += on_error
    return codes


def _ref(server: TwsServer, placed: Trade) -> str:
    return server.by_client_order[(1, placed.order.orderId)]


@pytest.mark.parametrize("version", [157, 176])
async def test_a_stop_waits_presubmitted_then_fills_at_the_trade_that_reaches_it(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """A sell stop at 45: trades above it leave it PreSubmitted; the first trade at or below
    triggers it and fills it there, as a market order."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine, version) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        stop = ib.placeOrder(contract, StopOrder("SELL", 10, 45.00, tif="GTC"))
        await until(lambda: stop.orderStatus.status == "PreSubmitted")
        sim = engine.orders[_ref(server, stop)]
        assert (sim.stop, sim.limit, sim.trigger_method) == (Decimal("45.0"), None, 0)
        trade(engine, "45.01", 100, 1)
        assert engine.executions == []
        trade(engine, "44.90", 100, 2)
        await until(lambda: stop.orderStatus.status == "Filled")
        assert [(f.execution.price, f.execution.shares) for f in stop.fills] == [(44.90, 10.0)]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_stop_limit_triggers_on_its_stop_and_fills_at_its_limit(
    client_errors: Callable[[], list[str]],
) -> None:
    """A buy stop limit (stop 52, limit 52.10): a trade at 52.20 triggers it (Submitted) but is
    above its limit; it then fills at the next trade within the limit."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        placed = ib.placeOrder(contract, StopLimitOrder("BUY", 10, 52.10, 52.00))
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        sim = engine.orders[_ref(server, placed)]
        assert (sim.stop, sim.limit) == (Decimal("52.0"), Decimal("52.1"))
        trade(engine, "51.90", 100, 1)
        trade(engine, "52.20", 100, 2)
        assert engine.executions == []
        assert sim.triggered
        await until(lambda: placed.orderStatus.status == "Submitted")
        trade(engine, "52.05", 100, 3)
        await until(lambda: placed.orderStatus.status == "Filled")
        assert [f.execution.price for f in placed.fills] == [52.05]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("method", [0, 1, 2, 3, 4, 7, 8])
async def test_every_trigger_method_of_ib_reaches_the_engine(
    method: int, client_errors: Callable[[], list[str]]
) -> None:
    """IB's triggerMethod values are taken and kept with the engine's order (and journaled
    with it); their semantics are the engine's."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        placed = ib.placeOrder(contract, StopOrder("SELL", 10, 45.00, triggerMethod=method))
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        assert engine.orders[_ref(server, placed)].trigger_method == method
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_stop_off_the_tick_is_refused_with_110(
    client_errors: Callable[[], list[str]],
) -> None:
    """A stop price of 45.005 on a cent-tick stock: 110, no order."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        codes = _codes(ib)
        contract = await _tqqq(ib)
        placed = ib.placeOrder(contract, StopOrder("SELL", 10, 45.005))
        await until(lambda: (placed.order.orderId, 110) in codes)
        assert engine.orders == {}
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_modify_moves_the_stop_and_quantity_but_not_the_trigger_method(
    client_errors: Callable[[], list[str]],
) -> None:
    """A working stop modified to 46 and 20 shares fills at a trade of 45.90 for 20; a modify
    of its triggerMethod is refused with 105 and changes nothing."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        codes = _codes(ib)
        contract = await _tqqq(ib)
        order = StopOrder("SELL", 10, 45.00, tif="GTC")
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "PreSubmitted")
        sim = engine.orders[_ref(server, placed)]
        order.auxPrice = 46.00
        order.totalQuantity = 20
        ib.placeOrder(contract, order)
        await until(lambda: sim.stop == Decimal("46.0"))
        assert sim.quantity == 20
        changed = Order(**{**order.__dict__, "triggerMethod": 2})
        ib.client.placeOrder(order.orderId, contract, changed)
        await until(lambda: (order.orderId, 105) in codes)
        assert (sim.trigger_method, sim.stop) == (0, Decimal("46.0"))
        trade(engine, "45.90", 100, 1)
        assert [(e.price, e.quantity) for e in engine.executions] == [(Decimal("45.90"), 20)]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
