"""Orders and what a broker says about them: the commands an actor sends to a venue, the events
it gets back, and a broker's snapshot of its books (the source of truth, SPEC 6).

Frozen attrs classes, data only. Commands are VerbNoun (``PlaceOrder``), events NounPastTense
(``OrderFilled``). Prices are ``Decimal`` already rounded to the instrument tick
(``round_to_tick``); quantities are whole shares.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from ._values import Side, TimeInForce


@attrs.frozen(kw_only=True)
class PriceCondition:
    """IB's PriceCondition on the last price: true when last <= trigger (``is_more=False``)."""

    trigger: Decimal
    is_more: bool = False


@attrs.frozen(kw_only=True)
class PlaceOrder:
    """Send an order whose intent is already committed. ``ref`` is its self-describing orderRef."""

    ref: str
    symbol: str
    side: Side
    quantity: int
    limit: Decimal | None
    """The limit price; None for a market order."""
    tif: TimeInForce
    outside_rth: bool = True
    condition: PriceCondition | None = None


@attrs.frozen(kw_only=True)
class CancelOrder:
    ref: str
    reason: str


@attrs.frozen(kw_only=True)
class OrderAccepted:
    """The broker acknowledged the order (it is working, or waiting for its condition)."""

    ref: str
    order_id: int | None = None
    perm_id: int | None = None


@attrs.frozen(kw_only=True)
class OrderFilled:
    """One execution. ``exec_id`` is unique per execution: a repeated one is a duplicate."""

    ref: str
    exec_id: str
    quantity: int
    price: Decimal
    commission: Decimal | None = None


@attrs.frozen(kw_only=True)
class OrderCancelled:
    """The order is no longer working; what it filled before stays filled."""

    ref: str
    reason: str = ""


@attrs.frozen(kw_only=True)
class OrderRejected:
    ref: str
    reason: str
    code: int | None = None


BrokerEvent = OrderAccepted | OrderFilled | OrderCancelled | OrderRejected


@attrs.frozen(kw_only=True)
class BrokerOrder:
    """An order as the broker reports it, working or finished. ``order.ref`` may be foreign
    (not one of our orderRefs): an order the operator placed by hand, say."""

    order: PlaceOrder
    filled: int
    working: bool
    order_id: int | None = None
    perm_id: int | None = None


@attrs.frozen(kw_only=True)
class BrokerExecution:
    ref: str
    exec_id: str
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    commission: Decimal | None = None

    def as_fill(self) -> OrderFilled:
        return OrderFilled(
            ref=self.ref,
            exec_id=self.exec_id,
            quantity=self.quantity,
            price=self.price,
            commission=self.commission,
        )


@attrs.frozen(kw_only=True)
class BrokerPosition:
    symbol: str
    quantity: int
    average_cost: Decimal


@attrs.frozen(kw_only=True)
class BrokerSnapshot:
    """What the broker holds, the source of truth: its orders (working ones and those it
    still reports as completed), every execution it reports, and positions."""

    orders: tuple[BrokerOrder, ...] = ()
    executions: tuple[BrokerExecution, ...] = ()
    positions: tuple[BrokerPosition, ...] = ()

    def for_symbol(self, symbol: str) -> BrokerSnapshot:
        return BrokerSnapshot(
            orders=tuple(o for o in self.orders if o.order.symbol == symbol),
            executions=tuple(e for e in self.executions if e.symbol == symbol),
            positions=tuple(p for p in self.positions if p.symbol == symbol),
        )

    def position(self, symbol: str) -> BrokerPosition:
        for position in self.positions:
            if position.symbol == symbol:
                return position
        return BrokerPosition(symbol=symbol, quantity=0, average_cost=Decimal(0))
