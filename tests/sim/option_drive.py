"""A Monday of option trading fed to an engine, for the SIGKILL test: importable by file path
from a child process (it imports nothing of ``tests``, whose name an installed package takes)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from actors.domain import PlaceOrder, Side, TimeInForce
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.options import OptionContract

FRIDAY = date(2026, 12, 11)
CALL = OptionContract(underlying="TQQQ", expiry=FRIDAY, strike=Decimal(50), right="C")
PUT = OptionContract(underlying="TQQQ", expiry=FRIDAY, strike=Decimal(49), right="P")
FAR_CALL = OptionContract(underlying="TQQQ", expiry=FRIDAY, strike=Decimal(52), right="C")


def at(clock: str, day: str = "2026-12-07") -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=NEW_YORK)


def _order(
    ref: str, symbol: str, side: Side, qty: int, limit: str | None = None, **kw: object
) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol=symbol,
        side=side,
        quantity=qty,
        limit=Decimal(limit) if limit is not None else None,
        tif=TimeInForce.GTC,
        **kw,  # type: ignore[arg-type]
    )


def drive(e: Engine) -> None:
    """The bracket's entry fills and its exits (one OCA group of type 1, the stop on double
    bid/ask) work; a put is written; a far call is bid under the market."""
    e.on_trade("TQQQ", Decimal("50.00"), 100, at("10:00"))
    symbol = CALL.local_symbol
    e.place(_order("entry", symbol, Side.BUY, 3, "2.00"), at("10:00:10"))
    e.place(
        _order("tp", symbol, Side.SELL, 3, "3.00", parent="entry", oca="x"),
        at("10:00:11"),
        oca_type=1,
    )
    e.place(
        _order("sl", symbol, Side.SELL, 3, stop=Decimal("0.80"), parent="entry", oca="x"),
        at("10:00:12"),
        oca_type=1,
    )
    e.place(_order("w", PUT.local_symbol, Side.SELL, 2), at("10:00:13"))
    e.place(_order("bid", FAR_CALL.local_symbol, Side.BUY, 1, "0.05"), at("10:00:14"))
    for minute, price in enumerate(("50.00", "49.70", "50.10"), start=1):
        e.on_trade("TQQQ", Decimal(price), 100, at(f"10:{minute:02d}"))
