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
from .messages import BrokerEvent, BrokerSnapshot, CancelOrder, PlaceOrder

log = logging.getLogger("actortrade.broker")


@attrs.frozen(kw_only=True)
class Poll:
    """Collect events that arrived on their own (fills) and forward them."""


@attrs.frozen(kw_only=True)
class Snapshot:
    """Reply with the broker's ``BrokerSnapshot`` (of one symbol, or all), after forwarding
    every event that arrived before it: a symbol actor that asks has seen all of them queued."""

    symbol: str | None = None


BrokerInbox = PlaceOrder | CancelOrder | Poll | Snapshot


class BrokerActor(Actor[BrokerInbox]):
    def __init__(self, port: BrokerPort, routes: Mapping[str, ActorRef[Any]]) -> None:
        self.port = port
        self.routes = routes

    async def on_start(self) -> None:
        await self.port.connect()

    async def background(self) -> None:
        # Events that arrive on their own (fills) are forwarded by a Poll through the mailbox,
        # so that all forwarding happens in order, in ``handle``. A lost connection raises
        # here: the actor crashes and its supervisor restarts (reconnects) it.
        while True:
            await self.port.wait()
            # One Poll at a time: wait for it to be handled, or the events still waiting
            # would send Poll after Poll ahead of the orders in the mailbox.
            await self.context.self_ref.request(Poll(), timeout=60)

    async def on_stop(self) -> None:
        await self.port.close()

    async def handle(self, message: BrokerInbox) -> BrokerSnapshot | None:
        match message:
            case PlaceOrder():
                events = await self.port.place(message)
            case CancelOrder(ref=ref):
                events = await self.port.cancel(ref)
            case Poll():
                events = await self.port.poll()
            case Snapshot(symbol=symbol):
                for event in await self.port.poll():
                    await self._forward(event)
                snapshot = await self.port.snapshot()
                return snapshot if symbol is None else snapshot.for_symbol(symbol)
        for event in events:
            await self._forward(event)
        return None

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
