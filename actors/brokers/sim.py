"""The broker port onto the in-process sim venue (``sim.engine.Engine``) through one
``sim.link.Link``, where delivery faults (lost, late, doubled, reordered events) happen.

The engine matches on the replay's trades; the market data side feeds them with ``trade``.
"""

from __future__ import annotations

from datetime import datetime

import anyio

from sim.engine import Engine
from sim.link import Link

from ..domain import (
    BrokerEvent,
    BrokerExecution,
    BrokerOrder,
    BrokerPosition,
    BrokerSnapshot,
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

    async def connect(self) -> None:
        if not self.link.connected:
            self.link.connect()

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.link.require()
        self.engine.place(order, self.now)
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
                    order=PlaceOrder(
                        ref=o.ref,
                        symbol=o.symbol,
                        side=o.side,
                        quantity=o.quantity,
                        limit=o.limit,
                        tif=o.tif,
                        outside_rth=o.outside_rth,
                        condition=o.condition,
                    ),
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
