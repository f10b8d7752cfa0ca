"""The broker actor: events that arrive on their own are forwarded through its own mailbox,
one Poll at a time, so orders are never queued behind a flood of Polls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from actors.broker import BrokerActor
from actors.domain import BrokerEvent, BrokerSnapshot, OrderAccepted, PlaceOrder, Side, TimeInForce
from runtime import Actor, ActorCell

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
