"""A test-only strategy that places what a test scripts: brackets and modifications through
the real host (``actors.symbol``), lot-keeper, risk, broker and venue.

``ProbeKind(symbol, script)``: ``script(probe, price, n)`` is called on the ``n``-th tick (1, 2,
...) with its price and returns the commands to send; ``probe`` keeps every event the host
delivered (``seen``), the orders it believes work, and its position from its fills. It is a
full ``StrategyKind`` (restore from the facts, adopt, positions, view), so the host treats it
as any strategy; it decides nothing by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from decimal import Decimal

import attrs

from actors.domain import (
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    PriceTick,
    Side,
    TimeInForce,
)
from actors.messages import Command
from actors.strategies.protocol import (
    BarClosed,
    Facts,
    Needs,
    PositionLine,
    StrategyEvent,
)

NAME = "probe"

Script = Callable[["Probe", Decimal, int], list[Command]]


@attrs.define
class ProbeOrder:
    ref: str
    side: Side
    quantity: int
    filled: int = 0
    done: bool = False


@attrs.frozen
class ProbeView:
    kind: str
    orders: int


class Probe:
    def __init__(self, symbol: str, script: Script) -> None:
        self.symbol = symbol
        self.script = script
        self.halted: str | None = None
        self.last_price: Decimal | None = None
        self.realized = Decimal(0)
        self.ticks = 0
        self.orders: dict[str, ProbeOrder] = {}
        self.position = 0
        self.seen: list[StrategyEvent] = []

    def ref(self, tag: str) -> str:
        return str(OrderRef(strategy=NAME, symbol=self.symbol, tag=tag))

    def order(
        self,
        tag: str,
        side: Side,
        quantity: int,
        limit: Decimal | None,
        *,
        stop: Decimal | None = None,
        parent: str | None = None,
        oca: str | None = None,
    ) -> PlaceOrder:
        return PlaceOrder(
            ref=self.ref(tag),
            symbol=self.symbol,
            side=side,
            quantity=quantity,
            limit=limit,
            tif=TimeInForce.GTC,
            stop=stop,
            parent=parent,
            oca=oca,
        )

    def bracket(
        self, tag: str, quantity: int, entry: Decimal, take: Decimal, stop: Decimal
    ) -> PlaceBracket:
        """A long bracket: buy at ``entry``, sell at ``take`` or on a stop at ``stop``."""
        parent = self.ref(f"{tag}.entry")
        return PlaceBracket(
            entry=self.order(f"{tag}.entry", Side.BUY, quantity, entry),
            take_profit=self.order(
                f"{tag}.tp", Side.SELL, quantity, take, parent=parent, oca=f"oca.{tag}"
            ),
            stop_loss=self.order(
                f"{tag}.sl", Side.SELL, quantity, None, stop=stop, parent=parent, oca=f"oca.{tag}"
            ),
        )

    def _track(self, commands: list[Command]) -> list[Command]:
        for command in commands:
            legs = command.legs if isinstance(command, PlaceBracket) else (command,)
            for leg in legs:
                if isinstance(leg, PlaceOrder):
                    self.orders[leg.ref] = ProbeOrder(
                        ref=leg.ref, side=leg.side, quantity=leg.quantity
                    )
            if isinstance(command, ModifyOrder) and command.ref in self.orders:
                # The strategy believes its change (the host checks it against this view).
                self.orders[command.ref].quantity = command.quantity
        return commands

    def decide(self, event: StrategyEvent, now: float) -> list[Command]:
        self.seen.append(event)
        match event:
            case PriceTick(price=price):
                self.last_price = price
                self.ticks += 1
                return self._track(self.script(self, price, self.ticks))
            case OrderFilled(ref=ref, quantity=quantity):
                order = self.orders.get(ref)
                if order is not None:
                    order.filled += quantity
                    order.done = order.filled >= order.quantity
                    self.position += quantity if order.side is Side.BUY else -quantity
            case OrderAccepted(ref=ref):
                pass
            case OrderCancelled(ref=ref) | OrderRejected(ref=ref):
                order = self.orders.get(ref)
                if order is not None:
                    order.done = True
            case _:
                pass
        return []

    def warm(self, bars: Sequence[BarClosed]) -> None:
        pass

    def halt(self, reason: str) -> list[Command]:
        self.halted = reason
        return []

    def resume(self, now: float) -> list[Command]:
        self.halted = None
        return []

    def resync(self, now: float) -> list[Command]:
        return []

    def live_orders(self) -> Sequence[ProbeOrder]:
        return [order for order in self.orders.values() if not order.done]

    def positions(self) -> Sequence[PositionLine]:
        if not self.position:
            return []
        return [
            PositionLine(id=1, shares=self.position, purchase_price=Decimal(0), sell_price=None)
        ]

    def view(self) -> object:
        return ProbeView(kind=NAME, orders=len(self.live_orders()))


@attrs.define
class ProbeKind:
    symbol: str
    script: Script
    name: str = NAME
    built: list[Probe] = attrs.Factory(list)
    """Every live probe ``restore`` made, latest last."""

    @property
    def needs(self) -> Needs:
        return Needs(ticks=True, timer=False)

    def restore(self, facts: Facts) -> Probe:
        probe = Probe(self.symbol, self.script)
        if self.built:
            probe.ticks = self.built[-1].ticks
            probe.seen = self.built[-1].seen
        for intent in facts.intents:
            if intent.ref.startswith(f"{NAME}:{self.symbol}:"):
                order = intent.order
                probe.orders[order.ref] = ProbeOrder(
                    ref=order.ref,
                    side=order.side,
                    quantity=order.quantity,
                    done=order.ref not in facts.working,
                )
        for fill in facts.fills:
            order = probe.orders.get(fill.ref)
            if order is not None:
                order.filled += fill.quantity
                probe.position += fill.quantity if order.side is Side.BUY else -fill.quantity
        self.built.append(probe)
        return probe

    def adopt(self, shares: int, average_cost: Decimal, taken: Collection[str]) -> PlaceOrder:
        n = sum(1 for ref in taken if ref.startswith(f"{NAME}:{self.symbol}:adopt")) + 1
        return PlaceOrder(
            ref=str(OrderRef(strategy=NAME, symbol=self.symbol, tag=f"adopt{n}")),
            symbol=self.symbol,
            side=Side.BUY,
            quantity=shares,
            limit=average_cost,
            tif=TimeInForce.GTC,
        )

    @property
    def live(self) -> Probe:
        return self.built[-1]
