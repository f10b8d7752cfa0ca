"""The broker port onto the in-process sim venue (``sim.engine.Engine``).

The engine matches on the replay's trades; the market data side feeds them with ``trade``.
Events the engine emits are collected and handed to the broker actor by the port's calls.
"""

from __future__ import annotations

from datetime import datetime

from sim.engine import Engine
from sim.replay import Trade

from ..messages import BrokerEvent, PlaceOrder


class SimPort:
    def __init__(self, engine: Engine, start: datetime) -> None:
        self.engine = engine
        self.now = start
        """The venue's time: that of the last trade."""
        self._events: list[BrokerEvent] = []
        engine.listeners.append(self._events.append)

    def trade(self, trade: Trade) -> None:
        self.now = trade.at
        self.engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.engine.place(order, self.now)
        return self._take()

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        if ref in self.engine.orders:
            self.engine.cancel(ref, "cancelled by request")
        return self._take()

    async def poll(self) -> list[BrokerEvent]:
        return self._take()

    def _take(self) -> list[BrokerEvent]:
        events = list(self._events)
        self._events.clear()
        return events
