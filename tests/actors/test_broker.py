"""The broker actor: events that arrive on their own are forwarded through its own mailbox,
one Poll at a time, so orders are never queued behind a flood of Polls."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import pytest

from actors.broker import BrokerActor
from actors.brokers.sim import SimPort
from actors.domain import (
    BrokerEvent,
    BrokerSnapshot,
    OrderAccepted,
    OrderRejected,
    PlaceOrder,
    Side,
    TimeInForce,
    Trade,
)
from actors.domain.sessions import NEW_YORK
from actors.risk_rules import MarketHours
from runtime import Actor, ActorCell
from sim.engine import Engine

pytestmark = pytest.mark.anyio


class SlowPollPort:
    """A port whose events stay pending until a poll (which takes a while) collects them."""

    def __init__(self) -> None:
        self.events: list[BrokerEvent] = []
        self.polls = 0
        self.polls_before_place: int | None = None
        self.changed = anyio.Event()

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def wait(self) -> None:
        while not self.events:
            await self.changed.wait()
            self.changed = anyio.Event()

    async def poll(self) -> list[BrokerEvent]:
        self.polls += 1
        await anyio.sleep(0.01)  # a round trip to the venue
        events, self.events = self.events, []
        return events

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.polls_before_place = self.polls
        return []

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        return []

    async def snapshot(self) -> BrokerSnapshot:
        return BrokerSnapshot()


class Sink(Actor[Any]):
    def handle(self, message: Any) -> None:
        return None


async def test_an_order_is_not_queued_behind_a_flood_of_polls() -> None:
    """Regression: the background loop sent Poll after Poll while events were pending, and a
    PlaceOrder waited behind hundreds of them (a quarter of a second over the wire)."""
    port = SlowPollPort()
    sink: ActorCell[Any] = ActorCell("symbol.TQQQ", Sink)
    broker: ActorCell[Any] = ActorCell("broker", lambda: BrokerActor(port, {"grid:TQQQ": sink.ref}))
    order = PlaceOrder(
        ref="grid:TQQQ:L0:BUY:1:1",
        symbol="TQQQ",
        side=Side.BUY,
        quantity=1,
        limit=Decimal("50.00"),
        tif=TimeInForce.DAY,
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink.run)
            await tg.start(broker.run)
            port.events.append(OrderAccepted(ref="grid:TQQQ:L0:BUY:9:1"))
            port.changed.set()
            await anyio.sleep(0.005)  # the background loop has noticed the event
            await broker.ref.send(order)
            while port.polls_before_place is None:  # noqa: ASYNC110 - the port records it
                await anyio.sleep(0.005)
            tg.cancel_scope.cancel()
    assert port.polls_before_place <= 2


class Events(Actor[Any]):
    """A symbol actor's stand-in that keeps the broker events it is sent."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    def handle(self, message: Any) -> None:
        self.seen.append(message)


def _order(ref: str, side: Side) -> PlaceOrder:
    return PlaceOrder(
        ref=ref, symbol="TQQQ", side=side, quantity=10, limit=Decimal("50.00"), tif=TimeInForce.DAY
    )


async def test_a_buy_that_reaches_the_broker_after_the_session_is_rejected_unsent() -> None:
    """A buy allowed at 15:59 that waited (a broker down, restarting) until 16:05 of the
    venue's time is not sent under ``market_hours = "regular"``: the symbol actor is told it is
    rejected and the venue never sees it; a protective sell still goes, and inside the session a
    buy goes as before. The time is the venue's (virtual), never the wall clock."""
    engine = Engine()
    before = datetime(2026, 11, 24, 15, 59, tzinfo=NEW_YORK)
    port = SimPort(engine, before)
    port.trade(Trade(symbol="TQQQ", price=Decimal("50.00"), size=100, at=before))
    seen: list[Any] = []
    sink: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Events(seen))
    broker: ActorCell[Any] = ActorCell(
        "broker",
        lambda: BrokerActor(
            port,
            {"grid:TQQQ": sink.ref},
            market_hours=MarketHours.REGULAR,
            venue_time=lambda: port.now,
        ),
    )
    inside, late, exit_ = (
        _order("grid:TQQQ:L0:BUY:1:1", Side.BUY),
        _order("grid:TQQQ:L1:BUY:2:1", Side.BUY),
        _order("grid:TQQQ:L0:SELL:3:1", Side.SELL),
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink.run)
            await tg.start(broker.run)
            await broker.ref.send(inside)
            while inside.ref not in engine.orders:  # noqa: ASYNC110 - the venue records it
                await anyio.sleep(0.005)
            after = datetime(2026, 11, 24, 16, 5, tzinfo=NEW_YORK)
            port.trade(Trade(symbol="TQQQ", price=Decimal("50.10"), size=100, at=after))
            await broker.ref.send(late)
            await broker.ref.send(exit_)
            while len(seen) < 3:  # noqa: ASYNC110 - the sink records them
                await anyio.sleep(0.005)
            tg.cancel_scope.cancel()
    assert inside.ref in engine.orders
    assert late.ref not in engine.orders
    assert exit_.ref in engine.orders
    rejected = [e for e in seen if isinstance(e, OrderRejected)]
    assert [e.ref for e in rejected] == [late.ref]
    assert "market_hours" in rejected[0].reason
