"""Helpers of the engine's option tests: a week of TQQQ options, orders on them, and the
events an engine emits."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from actors.domain import (
    BrokerEvent,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    Side,
    TimeInForce,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.options import OptionContract, OptionQuote, PricingParams, quote_option

D = Decimal
MONDAY = "2026-12-07"
FRIDAY = date(2026, 12, 11)
"""The week's expiry."""


def at(clock: str, day: str = MONDAY) -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=NEW_YORK)


def option(strike: str | int = 50, right: str = "C", expiry: date = FRIDAY) -> OptionContract:
    return OptionContract(underlying="TQQQ", expiry=expiry, strike=D(strike), right=right)


def order(
    ref: str,
    symbol: str,
    side: Side = Side.BUY,
    qty: int = 1,
    limit: str | Decimal | None = None,
    stop: str | Decimal | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    **kw: Any,
) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol=symbol,
        side=side,
        quantity=qty,
        limit=D(limit) if limit is not None else None,
        stop=D(stop) if stop is not None else None,
        tif=tif,
        **kw,
    )


def recording() -> tuple[Engine, list[BrokerEvent]]:
    engine = Engine()
    events: list[BrokerEvent] = []
    engine.listeners.append(events.append)
    return engine, events


def quote_at(
    contract: OptionContract, price: str, when: datetime, *, opened: str | None = None
) -> OptionQuote:
    """The venue's quote of ``contract`` with TQQQ last at ``price`` at ``when`` and first
    traded that day at ``opened`` (``price`` if None): computed by the pricing model, apart
    from the engine, to know before a trade what it will quote."""
    return quote_option(
        contract, D(price), when, PricingParams(), reference=D(opened if opened else price)
    )


def fills(events: list[BrokerEvent]) -> list[tuple[str, int, Decimal]]:
    return [(e.ref, e.quantity, e.price) for e in events if isinstance(e, OrderFilled)]


def cancels(events: list[BrokerEvent]) -> list[tuple[str, str]]:
    return [(e.ref, e.reason) for e in events if isinstance(e, OrderCancelled)]


def rejects(events: list[BrokerEvent]) -> list[tuple[str, str]]:
    return [(e.ref, e.reason) for e in events if isinstance(e, OrderRejected)]
