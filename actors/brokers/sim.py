"""The broker port onto the in-process sim venue (``sim.engine.Engine``) through one
``sim.link.Link``, where delivery faults (lost, late, doubled, reordered events) happen.

The engine matches on the replay's trades; the market data side feeds them with ``trade``.

A bracket (``place_bracket``) is sent leg by leg, as IB's client sends one (the last leg
transmits), and the venue holds it as one: if a leg is rejected, or the connection drops before
the last leg is sent, the legs already placed are cancelled at the venue, as a venue discards a
bracket whose last leg never arrived. Nothing of a bracket keeps working half-placed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import anyio

from sim.engine import Engine
from sim.link import Link, VenueDisconnected

from ..domain import (
    BrokerEvent,
    BrokerExecution,
    BrokerOrder,
    BrokerPosition,
    BrokerSnapshot,
    ModifyOrder,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    Trade,
)


class SimPort:
    def __init__(self, engine: Engine, start: datetime, *, name: str = "sim") -> None:
        self.engine = engine
        self.now = engine.last_trade_at or start
        """The venue's time: that of the last trade."""
        self.link = Link(engine, name)

    def trade(self, trade: Trade) -> None:
        self.now = trade.at
        self.engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)

    def prints(
        self, symbol: str, first: Decimal, first_at: datetime, last: Decimal, last_at: datetime
    ) -> bool:
        """Trades that can reach no order, taken at once (``Engine.prints``; False: none
        taken, each must be a ``trade``)."""
        if not self.engine.prints(symbol, first, first_at, last, last_at):
            return False
        self.now = last_at
        return True

    async def connect(self) -> None:
        if not self.link.connected:
            self.link.connect()

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.link.require()
        self.engine.place(order, self.now)
        return self.link.take()

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        """Place the legs in order; on a rejected leg, cancel the legs placed before it and
        answer for the legs not sent (``OrderRejected`` naming the rejected leg), so every
        leg's intent gets an answer. ``VenueDisconnected`` if the link drops before the last
        leg: the placed legs are cancelled at the venue first. (Once the last leg is placed the
        bracket is whole: a link that drops on its acknowledgement loses events, not legs.)"""
        placed: list[str] = []
        legs = bracket.legs
        for number, leg in enumerate(legs):
            try:
                self.link.require()
            except VenueDisconnected:
                self._discard(placed, f"bracket {bracket.entry.ref}: the connection dropped")
                raise
            if self.engine.place(leg, self.now) is None:
                self._discard(placed, f"bracket {bracket.entry.ref}: leg {leg.ref} rejected")
                events = self.link.take()
                events += [
                    OrderRejected(
                        ref=unsent.ref,
                        reason=f"bracket {bracket.entry.ref}: not sent, leg {leg.ref} was rejected",
                    )
                    for unsent in legs[number + 1 :]
                ]
                return events
            placed.append(leg.ref)
        return self.link.take()

    def _discard(self, refs: list[str], reason: str) -> None:
        # The entry first: its cancel takes its (unfilled) children along.
        for ref in refs:
            if not self.engine.orders[ref].done:
                self.engine.cancel(ref, reason)

    async def modify(self, change: ModifyOrder) -> list[BrokerEvent]:
        """Modify at the venue; a ref the venue does not know is refused (``OrderRejected``,
        code 104) without reaching it."""
        self.link.require()
        if change.ref not in self.engine.orders:
            return [
                *self.link.take(),
                OrderRejected(ref=change.ref, reason=f"no order {change.ref} to modify", code=104),
            ]
        self.engine.modify(
            change.ref, quantity=change.quantity, limit=change.limit, stop=change.stop
        )
        return self.link.take()

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        self.link.require()
        order = self.engine.orders.get(ref)
        if order is not None and not order.done:
            self.engine.cancel(ref, "cancelled by request")
        return self.link.take()

    async def poll(self) -> list[BrokerEvent]:
        return self.link.take()

    async def wait(self) -> None:
        # In-process, the replay feed polls after every trade (in lockstep or not): nothing
        # arrives on its own.
        await anyio.sleep_forever()

    async def snapshot(self) -> BrokerSnapshot:
        self.link.require()
        engine = self.engine
        return BrokerSnapshot(
            orders=tuple(
                BrokerOrder(
                    order=o.as_placed(),
                    filled=o.filled,
                    working=not o.done,
                    order_id=o.order_id,
                    perm_id=o.perm_id,
                )
                for o in engine.orders.values()
            ),
            executions=tuple(
                BrokerExecution(
                    ref=e.ref,
                    exec_id=e.exec_id,
                    symbol=e.symbol,
                    side=e.side,
                    quantity=e.quantity,
                    price=e.price,
                    commission=e.commission,
                )
                for e in engine.executions
            ),
            positions=tuple(
                BrokerPosition(symbol=s, quantity=p.quantity, average_cost=p.average_cost)
                for s, p in engine.positions.items()
            ),
        )

    async def close(self) -> None:
        """Nothing to release: the link belongs to the port, which outlives broker actors."""
