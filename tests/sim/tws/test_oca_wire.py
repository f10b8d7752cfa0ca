"""OCA groups through the TWS face, with ib_insync over a real socket (``ib.oneCancelsAll``):
the group and its type reach the engine (ocaType 0, ib_insync's unset, as 1); with type 2 a
partial fill of one order reduces the other (the client sees the new quantity) and a full fill
cancels it with 202; an order's group cannot be changed by a modify (105)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ib_insync import IB, Contract, LimitOrder, Stock

from sim.engine import Engine
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


@pytest.mark.parametrize(("sent", "kept"), [(1, 1), (2, 2), (3, 3), (0, 1)])
async def test_the_oca_group_and_type_reach_the_engine(
    sent: int, kept: int, client_errors: Callable[[], list[str]]
) -> None:
    """Each order of the group is the engine's with its group and type."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        orders = [LimitOrder("BUY", 10, 49.50), LimitOrder("BUY", 10, 49.00)]
        if sent:
            ib.oneCancelsAll(orders, "entry-1", sent)
        else:
            for order in orders:
                order.ocaGroup = "entry-1"
        placed = [ib.placeOrder(contract, o) for o in orders]
        await until(lambda: all(t.orderStatus.status == "Submitted" for t in placed))
        assert [(o.oca, o.oca_type) for o in engine.orders.values()] == [("entry-1", kept)] * 2
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("version", [157, 176])
async def test_type_2_reduces_the_other_order_then_cancels_it_with_202(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """Two buys in a type 2 group: 4 filled on the first leave the second at 6 (the client's
    trade shows it); the first's last 6 cancel the second (Cancelled, 202); 10 bought in all."""
    engine = Engine()
    async with venue(engine, version) as server:
        ib = await connect(server)
        codes = _codes(ib)
        contract = await _tqqq(ib)
        orders = ib.oneCancelsAll(
            [LimitOrder("BUY", 10, 49.50), LimitOrder("BUY", 10, 49.00)], "entry-2", 2
        )
        first, second = (ib.placeOrder(contract, o) for o in orders)
        await until(lambda: second.orderStatus.status == "Submitted")
        trade(engine, "49.40", 4, 1)
        await until(lambda: second.order.totalQuantity == 6)
        assert first.orderStatus.filled == 4
        assert second.orderStatus.status == "Submitted"
        trade(engine, "48.90", 100, 2)
        await until(lambda: second.orderStatus.status == "Cancelled")
        assert first.orderStatus.status == "Filled"
        await until(lambda: (second.order.orderId, 202) in codes)  # it follows the status
        assert sum(e.quantity for e in engine.executions) == 10
        assert second.fills == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_modify_cannot_change_an_orders_oca_group(
    client_errors: Callable[[], list[str]],
) -> None:
    """A working order of group A modified into group B: 105, and the engine's order stays in
    A, working."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        codes = _codes(ib)
        contract = await _tqqq(ib)
        [order] = ib.oneCancelsAll([LimitOrder("BUY", 10, 49.50)], "group-a", 2)
        placed = ib.placeOrder(contract, order)
        await until(lambda: placed.orderStatus.status == "Submitted")
        order.ocaGroup = "group-b"
        ib.placeOrder(contract, order)
        await until(lambda: (order.orderId, 105) in codes)
        [sim] = engine.orders.values()
        assert (sim.oca, sim.done) == ("group-a", False)
        trade(engine, "49.50", 100, 1)
        assert [e.quantity for e in engine.executions] == [10]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
