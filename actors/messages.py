"""The messages actors exchange beyond the trading vocabulary (``actors.domain``): what a
strategy tells its operator (alerts, lots opened and closed) and the commands it returns.

Frozen attrs classes, data only.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from .domain import CancelOrder, PlaceOrder


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
