"""Domain value types shared by actors and the simulated venues: sides, time in force, prices
rounded to the instrument tick, and self-describing order references."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import attrs


class DomainError(ValueError):
    """Raised for a malformed domain value (a price, a tick size, an orderRef); says which."""


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class TimeInForce(enum.StrEnum):
    DAY = "DAY"
    GTC = "GTC"


def epoch_ns(at: datetime) -> int:
    """Nanoseconds since the epoch of an aware ``at``, exactly (``timestamp() * 1e9`` in floating
    point is off by up to a few hundred ns, and feeds' stamps must compare equal)."""
    return int(at.replace(microsecond=0).timestamp()) * 1_000_000_000 + at.microsecond * 1000


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """``value`` rounded half-up to a multiple of ``tick``: the one place prices are rounded.

    >>> round_to_tick(Decimal("99.00") * Decimal("0.99"), Decimal("0.01"))
    Decimal('98.01')
    """
    if not tick.is_finite() or tick <= 0:
        raise DomainError(f"tick size must be a positive number, got {tick}")
    if not value.is_finite():
        raise DomainError(f"cannot round a non-finite price {value}")
    try:
        steps = (value / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise DomainError(f"cannot round {value} to tick {tick}") from exc
    return steps * tick


_REF = re.compile(
    r"^(?P<strategy>[a-z][a-z0-9_]*):(?P<symbol>[A-Z][A-Z0-9.]*):L(?P<level>\d+):"
    r"(?P<side>BUY|SELL):(?P<lot>\d+):(?P<attempt>\d+)$"
)


@attrs.frozen(kw_only=True)
class OrderRef:
    """What every order we place carries in IB's ``orderRef``, so that any order found at the
    broker maps back to the ledger, even one whose intent never reached disk.

    ``grid:TQQQ:L3:BUY:42:1`` is the first attempt to buy lot 42 at level 3 of the TQQQ grid.
    """

    strategy: str
    symbol: str
    level: int
    side: Side
    lot: int
    attempt: int = 1

    def __str__(self) -> str:
        return (
            f"{self.strategy}:{self.symbol}:L{self.level}:{self.side.value}:"
            f"{self.lot}:{self.attempt}"
        )

    @classmethod
    def parse(cls, text: str) -> OrderRef:
        """Parse an orderRef; ``DomainError`` names it when it is not one of ours."""
        match = _REF.match(text)
        if match is None:
            raise DomainError(f"not an actortrade orderRef: {text!r}")
        return cls(
            strategy=match["strategy"],
            symbol=match["symbol"],
            level=int(match["level"]),
            side=Side(match["side"]),
            lot=int(match["lot"]),
            attempt=int(match["attempt"]),
        )
