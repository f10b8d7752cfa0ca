"""Market data: bars, trades, ticks and quotes, and the instruments they are of."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs


@attrs.frozen(kw_only=True)
class Instrument:
    """A contract traded (US stocks and ETFs, SMART-routed, USD): what a venue needs to know of
    it and an order to be priced in it."""

    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    long_name: str = ""
    min_tick: Decimal = Decimal("0.01")
    trading_class: str = "NMS"


@attrs.frozen(kw_only=True)
class Bar:
    """One bar of ``symbol`` starting at ``start`` (aware)."""

    symbol: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@attrs.frozen(kw_only=True)
class Trade:
    """One trade printed at ``at`` (aware)."""

    symbol: str
    price: Decimal
    size: int
    at: datetime


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
