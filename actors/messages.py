"""The messages actors exchange: market data, order commands, broker events and alerts.

Frozen attrs classes, data only. Commands are VerbNoun (``PlaceOrder``), events NounPastTense
(``OrderFilled``). Prices are ``Decimal`` already rounded to the instrument tick
(``domain.round_to_tick``); quantities are whole shares.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from .domain import Side, TimeInForce


@attrs.frozen(kw_only=True)
class PriceTick:
    """A trade (last) price observed for a symbol."""

    symbol: str
    price: Decimal
    size: int = 0
    ts_event_ns: int = 0
    """When the exchange says it happened (Unix ns)."""


@attrs.frozen(kw_only=True)
class Quote:
    """The best bid and ask for a symbol."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: int = 0
    ask_size: int = 0
    ts_event_ns: int = 0


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


@attrs.frozen(kw_only=True)
class Alert:
    """Something the operator must be told about."""

    symbol: str
    kind: str
    message: str


@attrs.frozen(kw_only=True)
class LotOpened:
    """A lot is complete (its buy is done) and its sell is being placed."""

    symbol: str
    lot: int
    level: int
    shares: int
    purchase_price: Decimal
    sell_price: Decimal


@attrs.frozen(kw_only=True)
class LotClosed:
    """A lot's sell filled: the lot is closed with its realized P&L."""

    symbol: str
    lot: int
    level: int
    shares: int
    cost: Decimal
    proceeds: Decimal
    realized: Decimal


LotEvent = LotOpened | LotClosed
Command = PlaceOrder | CancelOrder | Alert | LotOpened | LotClosed
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
