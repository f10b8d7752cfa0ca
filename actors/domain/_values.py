"""Domain value types shared by actors and the simulated venues: sides, time in force, prices
rounded to the instrument tick, and self-describing order references."""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime, timedelta
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_ns(at: datetime) -> int:
    """Nanoseconds since the epoch of an aware ``at``, exactly (``timestamp() * 1e9`` in floating
    point is off by up to a few hundred ns, and feeds' stamps must compare equal). A naive
    ``at`` is refused (``TypeError``): it names no moment."""
    return (at - _EPOCH) // _MICROSECOND * 1000


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


_SEGMENT = r"[A-Za-z0-9._-]+"
_REF = re.compile(
    r"^(?P<strategy>[a-z][a-z0-9_]*):(?P<symbol>[A-Z][A-Z0-9.]*):"
    rf"(?P<tag>{_SEGMENT}(?::{_SEGMENT})*):(?P<attempt>\d+)$"
)
_TAG = re.compile(rf"^{_SEGMENT}(?::{_SEGMENT})*$")
MAX_REF_LENGTH = 120
"""IB keeps an orderRef of any length; ours stay short enough to read in TWS."""


@attrs.frozen(kw_only=True)
class OrderRef:
    """What every order we place carries in IB's ``orderRef``, so that any order found at the
    broker maps back to the ledger and to the symbol actor that placed it, even one whose intent
    never reached disk: ``strategy:symbol:tag:attempt``.

    The ``tag`` is the strategy's own name for the decision (letters, digits, ``.``, ``_``,
    ``-``, in ``:``-separated segments): the grid's ``L3:BUY:42`` is lot 42 bought at level 3,
    so ``grid:TQQQ:L3:BUY:42:1`` is the first attempt to buy it (the format the grid has always
    written: the orders it left at the broker read the same). ``attempt`` counts the orders
    placed for one decision: a re-placed sell is attempt 2. ``route`` names the symbol actor
    (one per strategy and symbol).
    """

    strategy: str
    symbol: str
    tag: str
    attempt: int = 1

    def __attrs_post_init__(self) -> None:
        text = str(self)
        if _REF.match(text) is None or self.attempt < 1 or len(text) > MAX_REF_LENGTH:
            raise DomainError(f"not a valid orderRef: {text!r}")

    def __str__(self) -> str:
        return f"{self.strategy}:{self.symbol}:{self.tag}:{self.attempt}"

    @property
    def route(self) -> str:
        """``strategy:symbol``: the symbol actor this order belongs to."""
        return route(self.strategy, self.symbol)

    @classmethod
    def parse(cls, text: str) -> OrderRef:
        """Parse an orderRef; ``DomainError`` names it when it is not one of ours."""
        match = _REF.match(text)
        if match is None or len(text) > MAX_REF_LENGTH:
            raise DomainError(f"not an actortrade orderRef: {text!r}")
        return cls(
            strategy=match["strategy"],
            symbol=match["symbol"],
            tag=match["tag"],
            attempt=int(match["attempt"]),
        )


def route(strategy: str, symbol: str) -> str:
    """The key a symbol actor is known by: ``strategy:symbol`` (its orders' refs start so)."""
    return f"{strategy}:{symbol}"


def valid_tag(tag: str) -> bool:
    """Whether ``tag`` may be an orderRef's tag."""
    return _TAG.match(tag) is not None
