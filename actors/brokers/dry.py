"""Dry-run (SPEC 11, 12): a broker port that sends nothing to the venue.

``DryPort`` wraps the port the service would trade through (the sim venue, the embedded TWS API
server, a real TWS or IB Gateway) and passes through only what reads: connecting, the venue's
own events (``poll``, ``wait``) and its snapshot. An order is answered as a broker that works it
would answer (``OrderAccepted``) and stays working until the strategy cancels it: it never
fills, so the strategy shows what it would have placed and waits, as it would for a limit that
is not reached. A cancel is answered ``OrderCancelled`` and not sent either, whether the order
is a dry one or one the venue really works (a real order stays working at the venue; the dry
run's snapshot shows it done).

The snapshot is the venue's, with the dry run's own orders added as working and the orders it
cancelled shown done, so reconciliation sees the world the dry run made: it never retires,
adopts or cancels anything because an order was dry. What would have been sent is kept for
``actorctl status`` (``orders``: the working ones; ``placed``: the latest ones sent).
"""

from __future__ import annotations

import collections

import attrs

from ..domain import (
    BrokerEvent,
    BrokerOrder,
    BrokerSnapshot,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
)
from .port import BrokerPort

__all__ = ["DryPort"]


class DryPort:
    """See the module doc. ``port`` is the venue's connection, used only to read."""

    def __init__(self, port: BrokerPort, *, keep: int = 200) -> None:
        self.port = port
        self.orders: dict[str, PlaceOrder] = {}
        """The dry orders working (not cancelled), by orderRef."""
        self.placed: collections.deque[PlaceOrder] = collections.deque(maxlen=keep)
        """The latest orders that would have been sent, oldest first."""
        self.sent = 0
        """Orders that would have been sent, in all."""
        self.cancelled = 0
        self.withheld: set[str] = set()
        """The venue's own orders the dry run cancelled (the venue still works them)."""

    async def connect(self) -> None:
        await self.port.connect()

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.orders[order.ref] = order
        self.placed.append(order)
        self.sent += 1
        return [OrderAccepted(ref=order.ref)]

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        events: list[BrokerEvent] = []
        for leg in bracket.legs:
            events.extend(await self.place(leg))
        return events

    async def modify(self, change: ModifyOrder) -> list[BrokerEvent]:
        order = self.orders.get(change.ref)
        if order is None:
            # A dry run never sends a change, to its own orders or to the venue's.
            return [
                OrderRejected(
                    ref=change.ref, reason=f"dry run: {change.ref} is not a dry order working"
                )
            ]
        changed = attrs.evolve(
            order, quantity=change.quantity, limit=change.limit, stop=change.stop
        )
        self.orders[change.ref] = changed
        self.placed.append(changed)
        return [OrderAccepted(ref=change.ref)]

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        self.cancelled += 1
        if self.orders.pop(ref, None) is None:
            self.withheld.add(ref)
        return [OrderCancelled(ref=ref, reason="dry run: not sent to the venue")]

    async def poll(self) -> list[BrokerEvent]:
        return await self.port.poll()

    async def wait(self) -> None:
        await self.port.wait()

    async def snapshot(self) -> BrokerSnapshot:
        real = await self.port.snapshot()
        orders = [
            attrs.evolve(order, working=False) if order.order.ref in self.withheld else order
            for order in real.orders
            if order.order.ref not in self.orders
        ]
        orders.extend(
            BrokerOrder(order=order, filled=0, working=True) for order in self.orders.values()
        )
        return attrs.evolve(real, orders=tuple(orders))

    async def close(self) -> None:
        await self.port.close()
