"""The broker actor: the only user of the venue connection (a ``BrokerPort``).

Symbol actors send it ``PlaceOrder`` (only after the intent is committed) and ``CancelOrder``;
it forwards every broker event to the symbol actor named in the order's orderRef, with
backpressure (events are never dropped). Events for orders that are not ours are alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from runtime import Actor, ActorRef

from .brokers.port import BrokerPort
from .domain import DomainError, OrderRef
from .messages import BrokerEvent, CancelOrder, PlaceOrder

log = logging.getLogger("actortrade.broker")


@attrs.frozen(kw_only=True)
class Poll:
    """Collect events that arrived on their own (fills) and forward them."""


BrokerInbox = PlaceOrder | CancelOrder | Poll


class BrokerActor(Actor[BrokerInbox]):
    def __init__(self, port: BrokerPort, routes: Mapping[str, ActorRef[Any]]) -> None:
        self.port = port
        self.routes = routes

    async def handle(self, message: BrokerInbox) -> None:
        match message:
            case PlaceOrder():
                events = await self.port.place(message)
            case CancelOrder(ref=ref):
                events = await self.port.cancel(ref)
            case Poll():
                events = await self.port.poll()
        for event in events:
            await self._forward(event)

    async def _forward(self, event: BrokerEvent) -> None:
        try:
            symbol = OrderRef.parse(event.ref).symbol
        except DomainError:
            log.warning("event for an order that is not ours: %r", event)
            return
        target = self.routes.get(symbol)
        if target is None:
            log.warning("event for %s, which no symbol actor trades: %r", symbol, event)
            return
        await self.context.send(target, event)
