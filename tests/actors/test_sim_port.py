"""The in-process broker port (SimPort): brackets and modifies through its Link to the engine."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from actors.brokers.sim import SimPort
from actors.domain import (
    BrokerEvent,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    Side,
    TimeInForce,
    Trade,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.link import VenueDisconnected

pytestmark = pytest.mark.anyio

D = Decimal
TEN = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)


def leg(ref: str, side: Side, **kw: Any) -> PlaceOrder:
    fields: dict[str, Any] = {"limit": None, "tif": TimeInForce.GTC, **kw}
    return PlaceOrder(ref=ref, symbol="TQQQ", side=side, quantity=100, **fields)


def bracket(take: str = "102.00", stop: str = "98.00") -> PlaceBracket:
    return PlaceBracket(
        entry=leg("e", Side.BUY, limit=D("100.00")),
        take_profit=leg("tp", Side.SELL, limit=D(take), parent="e", oca="g"),
        stop_loss=leg("sl", Side.SELL, stop=D(stop), parent="e", oca="g"),
    )


def trade(port: SimPort, price: str, size: int, minute: int) -> None:
    port.trade(Trade(symbol="TQQQ", price=D(price), size=size, at=TEN + timedelta(minutes=minute)))


def kinds(events: list[BrokerEvent]) -> list[tuple[str, str]]:
    return [(type(x).__name__, x.ref) for x in events]


def working(port: SimPort) -> list[str]:
    return [o.ref for o in port.engine.open_orders()]


async def test_a_bracket_is_placed_leg_by_leg_and_trades_at_the_venue() -> None:
    """Three acknowledgements; the entry fills, the take-profit fills, the stop goes by OCA;
    the snapshot reports each leg with its stop, parent and group."""
    port = SimPort(Engine(), TEN)
    legs = bracket()
    events = await port.place_bracket(legs)
    assert kinds(events) == [
        ("OrderAccepted", "e"),
        ("OrderAccepted", "tp"),
        ("OrderAccepted", "sl"),
    ]
    snapshot = await port.snapshot()
    assert [o.order for o in snapshot.orders] == list(legs.legs)
    trade(port, "99.50", 500, 1)
    trade(port, "102.00", 500, 2)
    events = await port.poll()
    assert kinds(events) == [
        ("OrderFilled", "e"),
        ("OrderFilled", "tp"),
        ("OrderCancelled", "sl"),
    ]
    snapshot = await port.snapshot()
    assert snapshot.position("TQQQ").quantity == 0
    assert not any(o.working for o in snapshot.orders)


@pytest.mark.parametrize(
    ("legs", "expected"),
    [
        # The stop-loss is refused (a zero stop): the entry and the take-profit are cancelled.
        (
            bracket(stop="0"),
            [
                ("OrderAccepted", "e"),
                ("OrderAccepted", "tp"),
                ("OrderRejected", "sl"),
                ("OrderCancelled", "e"),
                ("OrderCancelled", "tp"),
            ],
        ),
        # The take-profit is refused: the entry is cancelled, the stop-loss never sent.
        (
            bracket(take="-1.00"),
            [
                ("OrderAccepted", "e"),
                ("OrderRejected", "tp"),
                ("OrderCancelled", "e"),
                ("OrderRejected", "sl"),
            ],
        ),
    ],
)
async def test_a_rejected_leg_leaves_nothing_of_the_bracket_working(
    legs: PlaceBracket, expected: list[tuple[str, str]]
) -> None:
    """Every leg gets an answer; nothing works, nothing fills on a trade that would fill it."""
    port = SimPort(Engine(), TEN)
    events = await port.place_bracket(legs)
    assert kinds(events) == expected
    assert working(port) == []
    trade(port, "97.00", 500, 1)
    assert await port.poll() == []


async def test_an_entry_the_venue_rejects_answers_for_the_legs_not_sent() -> None:
    """The venue's reject of the entry, then the port's for the two children, naming it."""
    port = SimPort(Engine(), TEN)
    port.engine.reject_next("no trading permissions")
    events = await port.place_bracket(bracket())
    assert kinds(events) == [
        ("OrderRejected", "e"),
        ("OrderRejected", "tp"),
        ("OrderRejected", "sl"),
    ]
    assert all(isinstance(x, OrderRejected) for x in events)
    assert "leg e was rejected" in events[1].reason  # type: ignore[union-attr]  # checked above
    assert list(port.engine.orders) == []


@pytest.mark.parametrize(("lost_at", "placed"), [(1, ["e"]), (2, ["e", "tp"])])
async def test_a_link_lost_between_legs_leaves_no_half_bracket_working(
    lost_at: int, placed: list[str]
) -> None:
    """The link drops after the n-th acknowledgement: the call raises VenueDisconnected, the
    legs already at the venue are cancelled there, and after reconnecting the books show them
    finished and the rest never placed."""
    port = SimPort(Engine(), TEN)
    port.link.disconnect_after(lost_at)
    with pytest.raises(VenueDisconnected):
        await port.place_bracket(bracket())
    assert list(port.engine.orders) == placed
    assert working(port) == []
    await port.connect()
    snapshot = await port.snapshot()
    assert [(o.order.ref, o.working) for o in snapshot.orders] == [(r, False) for r in placed]
    trade(port, "97.00", 500, 1)
    assert await port.poll() == []


async def test_a_link_lost_on_the_last_legs_acknowledgement_leaves_the_bracket_whole() -> None:
    """Every leg is at the venue: the events before the drop are read, the bracket works."""
    port = SimPort(Engine(), TEN)
    port.link.disconnect_after(3)
    events = await port.place_bracket(bracket())
    assert kinds(events) == [("OrderAccepted", "e"), ("OrderAccepted", "tp")]
    assert working(port) == ["e", "tp", "sl"]
    with pytest.raises(VenueDisconnected):
        await port.poll()


async def test_a_bracket_is_not_sent_over_a_dropped_link() -> None:
    """Refused before any leg reaches the venue."""
    port = SimPort(Engine(), TEN)
    port.link.disconnect()
    with pytest.raises(VenueDisconnected):
        await port.place_bracket(bracket())
    assert port.engine.orders == {}


async def test_modify_moves_the_stop_loss_at_the_venue() -> None:
    """Re-acknowledged; the moved stop triggers where the old one would not."""
    port = SimPort(Engine(), TEN)
    await port.place_bracket(bracket())
    trade(port, "99.50", 500, 1)
    await port.poll()
    events = await port.modify(ModifyOrder(ref="sl", quantity=100, limit=None, stop=D("99.00")))
    assert kinds(events) == [("OrderAccepted", "sl")]
    assert isinstance(events[0], OrderAccepted)
    trade(port, "98.90", 500, 2)
    events = await port.poll()
    assert [(type(x), x.ref) for x in events] == [(OrderFilled, "sl"), (OrderCancelled, "tp")]
    snapshot = await port.snapshot()
    (stop_loss,) = [o for o in snapshot.orders if o.order.ref == "sl"]
    assert stop_loss.order.stop == D("99.00")


async def test_modify_refusals_come_back_as_rejections() -> None:
    """A child above its parent's quantity (the venue's 104) and an unknown ref (the port's)."""
    port = SimPort(Engine(), TEN)
    await port.place_bracket(bracket())
    events = await port.modify(ModifyOrder(ref="tp", quantity=200, limit=D("102.00")))
    assert [(type(x), x.ref, getattr(x, "code", None)) for x in events] == [
        (OrderRejected, "tp", 104)
    ]
    events = await port.modify(ModifyOrder(ref="nope", quantity=1, limit=D("1.00")))
    assert events == [OrderRejected(ref="nope", reason="no order nope to modify", code=104)]
    port.link.disconnect()
    with pytest.raises(VenueDisconnected):
        await port.modify(ModifyOrder(ref="tp", quantity=100, limit=D("103.00")))
    assert port.engine.orders["tp"].limit == D("102.00")
