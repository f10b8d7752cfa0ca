"""A small StrategyKind for tests of what a host gives a strategy (ticks, bars, warm-up): it
records every event into a ``Journal`` that outlives its restores, and buys one share at the
close of every ``buy_every``-th live bar of its smallest size, so bar decisions take the
host's order path (intent, broker, venue)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal

import attrs

from actors.domain import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
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
    TimerFired,
)


@attrs.define
class Journal:
    """What the strategies of one kind saw, in order, across restores: ``("warm", bars)``,
    ``("bar", BarClosed)``, ``("tick", PriceTick)``."""

    entries: list[tuple[str, object]] = attrs.Factory(list)

    def ticks(self) -> list[PriceTick]:
        return [item for kind, item in self.entries if isinstance(item, PriceTick)]

    def bars(self, seconds: int | None = None) -> list[BarClosed]:
        return [
            item
            for _, item in self.entries
            if isinstance(item, BarClosed) and seconds in (None, item.seconds)
        ]

    def warmups(self) -> list[tuple[BarClosed, ...]]:
        return [item for kind, item in self.entries if kind == "warm"]  # type: ignore[misc]


@attrs.frozen
class _Order:
    ref: str
    side: Side
    quantity: int
    filled: int = 0


@attrs.frozen(kw_only=True)
class RecorderView:
    kind: str
    bars: int


class RecorderStrategy:
    def __init__(self, kind: RecorderKind, facts: Facts) -> None:
        self.kind = kind
        self.halted: str | None = None
        self.last_price: Decimal | None = None
        self.realized = Decimal(0)
        self.bars = 0
        self.placed = len(facts.intents)
        self.working = {
            i.ref: _Order(i.ref, i.order.side, i.order.quantity)
            for i in facts.intents
            if i.ref in facts.working
        }

    def warm(self, bars: Sequence[BarClosed]) -> None:
        self.kind.journal.entries.append(("warm", tuple(bars)))

    def decide(self, event: StrategyEvent, now: float) -> list[Command]:
        match event:
            case PriceTick():
                self.last_price = event.price
                self.kind.journal.entries.append(("tick", event))
            case BarClosed():
                self.kind.journal.entries.append(("bar", event))
                if event.seconds == min(self.kind.needs.bars):
                    self.bars += 1
                    if self.kind.buy_every and self.bars % self.kind.buy_every == 0:
                        return [self._buy(event)]
            case OrderFilled() | OrderCancelled() | OrderRejected():
                self.working.pop(event.ref, None)
            case OrderAccepted() | TimerFired():
                pass
        return []

    def _buy(self, closed: BarClosed) -> PlaceOrder:
        self.placed += 1
        ref = str(OrderRef(strategy=self.kind.name, symbol=self.kind.symbol, tag=f"B{self.placed}"))
        self.working[ref] = _Order(ref, Side.BUY, 1)
        return PlaceOrder(
            ref=ref,
            symbol=self.kind.symbol,
            side=Side.BUY,
            quantity=1,
            limit=closed.bar.close * 2,
            tif=TimeInForce.GTC,
        )

    def halt(self, reason: str) -> list[Command]:
        self.halted = reason
        return []

    def resume(self, now: float) -> list[Command]:
        self.halted = None
        return []

    def resync(self, now: float) -> list[Command]:
        return []

    def live_orders(self) -> list[_Order]:
        return list(self.working.values())

    def positions(self) -> list[PositionLine]:
        return []

    def view(self) -> RecorderView:
        return RecorderView(kind=self.kind.name, bars=self.bars)


@attrs.frozen(kw_only=True)
class RecorderKind:
    name: str
    symbol: str
    needs: Needs
    journal: Journal = attrs.field(factory=Journal, eq=False)
    buy_every: int = 0
    """Buy one share at every n-th live bar of the smallest size (0: never)."""

    def restore(self, facts: Facts) -> RecorderStrategy:
        return RecorderStrategy(self, facts)

    def adopt(self, shares: int, average_cost: Decimal, taken: Collection[str]) -> PlaceOrder:
        return PlaceOrder(
            ref=str(OrderRef(strategy=self.name, symbol=self.symbol, tag=f"A{len(taken)}")),
            symbol=self.symbol,
            side=Side.BUY,
            quantity=shares,
            limit=average_cost,
            tif=TimeInForce.GTC,
        )
