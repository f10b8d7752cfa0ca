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


Command = PlaceOrder | CancelOrder | Alert
BrokerEvent = OrderAccepted | OrderFilled | OrderCancelled | OrderRejected
