"""Brackets through the TWS face, with ib_insync over a real socket: ``ib.bracketOrder`` (parent
and take-profit untransmitted, the stop-loss transmitting them) and a bracket with its own OCA
group, as the options bot places it. The parent fills, then the take-profit or the stop, and
the other exit is cancelled with 202; a bracket whose last leg never comes never works; a parent
cancelled unfilled takes its children; the legs survive a reconnect and a server restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ib_insync import IB, Contract, LimitOrder, Stock, StopOrder, Trade

from sim.engine import Engine
from sim.journal import open_engine
from sim.tws.server import BRACKET_OCA_PREFIX, TwsServer
from tests.tws_venue import connect, trade, until, venue

pytestmark = pytest.mark.anyio


class Heard:
    """What the client heard about its orders, in order: (what, order id, detail)."""

    def __init__(self, ib: IB) -> None:
        self.items: list[tuple[str, int, Any]] = []
        self.texts: dict[int, list[str]] = {}
        ib.execDetailsEvent += lambda t, f: self.items.append(("exec", t.order.orderId, None))
        ib.orderStatusEvent += lambda t: self.items.append(
            ("status", t.order.orderId, t.orderStatus.status)
        )
        ib.openOrderEvent += lambda t: self.items.append(("open", t.order.orderId, None))
        ib.commissionReportEvent += lambda t, f, r: self.items.append(
            ("commission", t.order.orderId, None)
        )
        ib.errorEvent += self._error

    def _error(self, req_id: int, code: int, message: str, _contract: Any) -> None:
        self.items.append(("error", req_id, code))
        self.texts.setdefault(req_id, []).append(message)

    def codes(self, order_id: int) -> list[int]:
        return [d for what, i, d in self.items if what == "error" and i == order_id]


async def _tqqq(ib: IB) -> Contract:
    [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
    return contract


def _refs(server: TwsServer, *trades: Trade) -> list[str]:
    return [server.by_client_order[(1, t.order.orderId)] for t in trades]


async def _placed_bracket(
    ib: IB, server: TwsServer, contract: Contract
) -> tuple[Trade, Trade, Trade]:
    parent, take_profit, stop_loss = (
        ib.placeOrder(contract, o) for o in ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)
    )
    await until(
        lambda: (
            (
                parent.orderStatus.status,
                take_profit.orderStatus.status,
                stop_loss.orderStatus.status,
            )
            == ("Submitted", "PreSubmitted", "PreSubmitted")
        )
    )
    return parent, take_profit, stop_loss


@pytest.mark.parametrize("version", [157, 176])
async def test_bracket_take_profit_fills_and_the_stop_is_cancelled_by_oca(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """The parent fills on a trade, its exits go Submitted (the stop stays PreSubmitted until
    reached), the take-profit fills (execDetails, orderStatus, openOrder, commissionReport) and
    then the stop is Cancelled with 202; the position is flat."""
    engine = Engine()
    async with venue(engine, version) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        parent, take_profit, stop_loss = await _placed_bracket(ib, server, contract)
        parent_ref, tp_ref, sl_ref = _refs(server, parent, take_profit, stop_loss)
        assert list(engine.orders) == [parent_ref, tp_ref, sl_ref]
        assert engine.orders[tp_ref].parent == parent_ref
        assert (
            engine.orders[sl_ref].oca
            == engine.orders[tp_ref].oca
            == (f"{BRACKET_OCA_PREFIX}{parent_ref}")
        )
        assert stop_loss.orderStatus.parentId == parent.order.orderId
        trade(engine, "54.00", 100, 1)  # through no price: nothing
        assert engine.executions == []
        trade(engine, "49.90", 100, 2)
        await until(lambda: parent.orderStatus.status == "Filled")
        await until(lambda: take_profit.orderStatus.status == "Submitted")
        assert stop_loss.orderStatus.status == "PreSubmitted"
        await until(lambda: [p.position for p in ib.positions()] == [10.0])
        heard = Heard(ib)
        trade(engine, "55.10", 100, 3)
        await until(lambda: stop_loss.orderStatus.status == "Cancelled")
        assert take_profit.orderStatus.status == "Filled"
        assert [f.execution.price for f in take_profit.fills] == [55.10]
        tp_id, sl_id = take_profit.order.orderId, stop_loss.order.orderId
        await until(lambda: heard.codes(sl_id) == [202])  # it follows the status
        assert [(what, i) for what, i, _ in heard.items if what != "error"][:5] == [
            ("exec", tp_id),
            ("status", tp_id),
            ("open", tp_id),
            ("commission", tp_id),
            ("status", sl_id),
        ]
        assert heard.codes(sl_id) == [202]
        assert heard.items.index(("error", sl_id, 202)) > heard.items.index(
            ("status", sl_id, "Cancelled")
        )
        await until(lambda: ib.positions() == [])  # ib_insync drops a flat position
        trade(engine, "44.00", 100, 4)  # the stop is gone: nothing sells again
        assert [e.ref for e in engine.executions] == [parent_ref, tp_ref]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_bracket_stop_triggers_and_fills_and_the_take_profit_is_cancelled(
    client_errors: Callable[[], list[str]],
) -> None:
    """After the parent's fill, a trade at the stop triggers the stop-loss (on the last price)
    and fills it at that trade; the take-profit is Cancelled with 202."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        heard = Heard(ib)
        contract = await _tqqq(ib)
        parent, take_profit, stop_loss = await _placed_bracket(ib, server, contract)
        trade(engine, "50.00", 10, 1)
        await until(lambda: parent.orderStatus.status == "Filled")
        trade(engine, "45.01", 100, 2)
        assert [e.quantity for e in engine.executions] == [10]  # above the stop: nothing
        trade(engine, "44.95", 100, 3)
        await until(lambda: take_profit.orderStatus.status == "Cancelled")
        assert stop_loss.orderStatus.status == "Filled"
        assert [f.execution.price for f in stop_loss.fills] == [44.95]
        await until(lambda: heard.codes(take_profit.order.orderId) == [202])  # after the status
        assert heard.codes(stop_loss.order.orderId) == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_bracket_whose_last_leg_never_arrives_never_works(
    client_errors: Callable[[], list[str]],
) -> None:
    """Parent and take-profit sent with transmit=False and no transmitting leg: both are
    Inactive, listed by reqOpenOrders, nothing reaches the engine or fills; cancelling the
    held parent cancels its held child too (Cancelled, 202 each)."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        heard = Heard(ib)
        contract = await _tqqq(ib)
        parent_order, tp_order, _ = ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)
        parent = ib.placeOrder(contract, parent_order)
        take_profit = ib.placeOrder(contract, tp_order)
        await until(lambda: take_profit.orderStatus.status == "Inactive")
        assert parent.orderStatus.status == "Inactive"
        assert take_profit.orderStatus.parentId == parent.order.orderId
        for minute, price in enumerate(("49.00", "56.00", "44.00"), start=1):
            trade(engine, price, 1000, minute)
        listed = await ib.reqOpenOrdersAsync()
        assert sorted(t.order.orderId for t in listed) == [
            parent.order.orderId,
            take_profit.order.orderId,
        ]
        assert engine.orders == {}
        assert engine.executions == []
        assert [h.order_id for h in server.held.of(1)] == [
            parent.order.orderId,
            take_profit.order.orderId,
        ]
        ib.cancelOrder(parent.order)
        await until(lambda: heard.codes(take_profit.order.orderId) == [202])
        assert heard.codes(parent.order.orderId) == [202]
        assert take_profit.orderStatus.status == "Cancelled"
        assert server.held.of() == []
        assert engine.orders == {}
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_parent_cancelled_unfilled_takes_its_children(
    client_errors: Callable[[], list[str]],
) -> None:
    """The transmitted bracket's parent cancelled before it fills: all three Cancelled, each
    with 202; a trade through every price fills nothing."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        heard = Heard(ib)
        contract = await _tqqq(ib)
        legs = await _placed_bracket(ib, server, contract)
        ib.cancelOrder(legs[0].order)
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in legs))
        await until(lambda: all(heard.codes(t.order.orderId) == [202] for t in legs))
        for minute, price in enumerate(("49.00", "56.00", "44.00"), start=1):
            trade(engine, price, 1000, minute)
        assert engine.executions == []
        assert all(o.done for o in engine.orders.values())
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_child_of_an_unknown_or_finished_parent_is_rejected(
    client_errors: Callable[[], list[str]],
) -> None:
    """parentId naming no order of this client, or a cancelled one: 201 naming parentId."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        heard = Heard(ib)
        contract = await _tqqq(ib)
        orphan = ib.placeOrder(contract, LimitOrder("SELL", 10, 55.0, parentId=999))
        await until(lambda: orphan.orderStatus.status == "Cancelled")
        gone = ib.placeOrder(contract, LimitOrder("BUY", 10, 40.0))
        await until(lambda: gone.orderStatus.status == "Submitted")
        ib.cancelOrder(gone.order)
        await until(lambda: gone.orderStatus.status == "Cancelled")
        late = ib.placeOrder(contract, LimitOrder("SELL", 10, 55.0, parentId=gone.order.orderId))
        await until(lambda: late.orderStatus.status == "Cancelled")
        assert heard.codes(orphan.order.orderId) == [201]
        assert heard.codes(late.order.orderId) == [201]
        assert heard.texts[orphan.order.orderId] == [
            "Order rejected - reason:parentId 999 is not an order of client 1"
        ]
        assert heard.texts[late.order.orderId] == [
            f"Order rejected - reason:parentId {gone.order.orderId}: the parent order is cancelled"
        ]
        assert [o.ref for o in engine.orders.values()] == _refs(server, gone)
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def _oca_bracket(ib: IB, group: str) -> list[Any]:
    # The options bot's entry: parent limit, take-profit limit, stop-loss stop, one OCA group.
    parent_id, tp_id, sl_id = (ib.client.getReqId() for _ in range(3))
    return [
        LimitOrder("BUY", 10, 50.00, orderId=parent_id, transmit=False, tif="GTC"),
        LimitOrder(
            "SELL",
            10,
            55.00,
            orderId=tp_id,
            parentId=parent_id,
            ocaGroup=group,
            ocaType=1,
            transmit=False,
            tif="GTC",
        ),
        StopOrder(
            "SELL",
            10,
            45.00,
            orderId=sl_id,
            parentId=parent_id,
            ocaGroup=group,
            ocaType=1,
            transmit=True,
            tif="GTC",
        ),
    ]


async def test_an_oca_bracket_survives_a_reconnect_and_a_server_restart(
    tmp_path: Path, client_errors: Callable[[], list[str]]
) -> None:
    """A GTC bracket with its own OCA group, parent filled: after a reconnect and after a
    restart on the journaled engine, the exits come back with their parentId and OCA group,
    and the take-profit's fill still cancels the stop."""
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    async with venue(engine) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        legs = [ib.placeOrder(contract, o) for o in _oca_bracket(ib, "entry-7")]
        await until(lambda: legs[0].orderStatus.status == "Submitted")
        parent_ref, tp_ref, sl_ref = _refs(server, *legs)
        assert (engine.orders[tp_ref].oca, engine.orders[tp_ref].oca_type) == ("entry-7", 1)
        assert engine.orders[sl_ref].parent == parent_ref
        trade(engine, "49.95", 100, 1)
        await until(lambda: legs[0].orderStatus.status == "Filled")
        ib.disconnect()
        await until(lambda: 1 not in server.sessions)
        ib = await connect(server)
        assert _exits(ib) == _expected_exits(legs)
        ib.disconnect()
    reopened = open_engine(journal)
    async with venue(reopened) as server:
        ib = await connect(server)
        assert _exits(ib) == _expected_exits(legs)
        trade(reopened, "55.00", 100, 2)
        await until(lambda: len(ib.openTrades()) == 0)
        assert [e.ref for e in reopened.executions] == [parent_ref, tp_ref]
        assert reopened.orders[sl_ref].done
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def _exits(ib: IB) -> list[tuple[int, str, int, str, int, str]]:
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


def _expected_exits(legs: list[Trade]) -> list[tuple[int, str, int, str, int, str]]:
    parent_id = legs[0].order.orderId
    return [
        (legs[1].order.orderId, "LMT", parent_id, "entry-7", 1, "Submitted"),
        (legs[2].order.orderId, "STP", parent_id, "entry-7", 1, "PreSubmitted"),
    ]


async def test_a_held_order_can_be_modified_before_its_group_is_transmitted(
    client_errors: Callable[[], list[str]],
) -> None:
    """A held parent re-priced (still untransmitted) goes to the engine at its new price when
    its child transmits; a modify of a working child's parentId is refused with 105 and the
    child works on."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        heard = Heard(ib)
        contract = await _tqqq(ib)
        parent_order, tp_order, sl_order = ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)
        parent = ib.placeOrder(contract, parent_order)
        await until(lambda: parent.orderStatus.status == "Inactive")
        parent_order.lmtPrice = 49.50
        ib.placeOrder(contract, parent_order)
        await until(lambda: server.held.of(1)[0].wire.lmt_price == 49.5)
        assert engine.orders == {}
        ib.placeOrder(contract, tp_order)
        stop = ib.placeOrder(contract, sl_order)
        await until(lambda: stop.orderStatus.status == "PreSubmitted")
        [parent_ref] = _refs(server, parent)
        assert str(engine.orders[parent_ref].limit) == "49.5"
        sl_order.parentId = 0
        ib.placeOrder(contract, sl_order)
        await until(lambda: heard.codes(sl_order.orderId) == [105])
        [sl_ref] = _refs(server, stop)
        assert engine.orders[sl_ref].parent == parent_ref
        assert not engine.orders[sl_ref].done
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_held_orders_stay_over_a_reconnect_and_are_lost_with_a_server_restart(
    tmp_path: Path, client_errors: Callable[[], list[str]]
) -> None:
    """An untransmitted parent is the face's, not the engine's: the client reconnecting finds
    it Inactive; a server restarted on the journal has nothing of it, and the journal nothing."""
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    async with venue(engine) as server:
        ib = await connect(server)
        contract = await _tqqq(ib)
        parent_order = ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)[0]
        parent = ib.placeOrder(contract, parent_order)
        await until(lambda: parent.orderStatus.status == "Inactive")
        ib.disconnect()
        await until(lambda: 1 not in server.sessions)
        ib = await connect(server)
        assert [(t.order.orderId, t.orderStatus.status) for t in ib.trades()] == [
            (parent.order.orderId, "Inactive")
        ]
        ib.disconnect()
    assert b"place" not in journal.read_bytes()
    reopened = open_engine(journal)
    async with venue(reopened) as server:
        ib = await connect(server)
        assert ib.trades() == []
        assert reopened.orders == {}
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_global_cancel_takes_held_and_working_orders(
    client_errors: Callable[[], list[str]],
) -> None:
    """reqGlobalCancel: a held parent and a working order both Cancelled with 202; nothing
    held, nothing working."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        heard = Heard(ib)
        contract = await _tqqq(ib)
        held = ib.placeOrder(contract, ib.bracketOrder("BUY", 10, 50.00, 55.00, 45.00)[0])
        working = ib.placeOrder(contract, LimitOrder("BUY", 10, 40.00))
        await until(lambda: working.orderStatus.status == "Submitted")
        assert held.orderStatus.status == "Inactive"
        ib.reqGlobalCancel()
        await until(lambda: working.orderStatus.status == "Cancelled")
        await until(lambda: heard.codes(held.order.orderId) == [202])
        await until(lambda: heard.codes(working.order.orderId) == [202])
        assert held.orderStatus.status == "Cancelled"
        assert server.held.of() == []
        assert engine.open_orders() == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
