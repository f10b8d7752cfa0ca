"""Options in the trading vocabulary: an option's symbol (OCC's), a chain as
``reqSecDefOptParams`` describes it, and a quote of one option with what a liquidity filter
and a sizing rule read from it.

An option order is a ``PlaceOrder`` whose ``symbol`` is an OCC symbol (``OptionSymbol.occ``,
21 characters: the root padded to 6, ``YYMMDD``, ``C``/``P``, the strike x 1000 in 8 digits,
``SPY   261211C00600000``); its quantity is in contracts and its prices are per share (one
contract is ``MULTIPLIER`` shares). Stock symbols have 1 to 6 characters, so no stock is ever
taken for an option (``is_option_symbol``). The sim venue's ``OptionContract.local_symbol``
writes the same text (a test checks both ways).
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal

import attrs

from ._values import DomainError

MULTIPLIER = 100
"""Shares per contract of a standard US equity option: what its premium is multiplied by."""
OCC_LENGTH = 21
_OCC = re.compile(r"^([A-Z][A-Z0-9.]{0,5}) *(\d{6})([CP])(\d{8})$")

Right = Literal["C", "P"]


def is_option_symbol(symbol: str) -> bool:
    """Whether ``symbol`` has the shape of an OCC symbol (an option order's symbol)."""
    return len(symbol) == OCC_LENGTH and symbol[6:12].isdigit() and symbol[13:].isdigit()


def underlying_of(symbol: str) -> str:
    """The underlying of an option's OCC symbol; a stock's own symbol for any other."""
    return symbol[:6].rstrip() if is_option_symbol(symbol) else symbol


def _strike(value: object) -> Decimal:
    try:
        strike = Decimal(str(value))
    except InvalidOperation:
        raise DomainError(f"strike: {value!r} is not a number") from None
    if not strike.is_finite() or strike <= 0 or strike != strike.quantize(Decimal("0.001")):
        raise DomainError(f"strike: {value!r} must be positive with at most 3 decimals")
    return Decimal(int(strike)) if strike == strike.to_integral_value() else strike.normalize()


@attrs.frozen(kw_only=True)
class OptionSymbol:
    """One listed option: ``underlying``, ``expiry`` (its last trading day), ``right`` (``C``
    a call, ``P`` a put) and ``strike``. Raises ``DomainError`` naming the bad field."""

    underlying: str
    expiry: date
    right: Right
    strike: Decimal = attrs.field(converter=_strike)

    def __attrs_post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z][A-Z0-9.]{0,5}", self.underlying):
            raise DomainError(f"underlying: {self.underlying!r} is not a stock symbol")
        if self.right not in ("C", "P"):
            raise DomainError(f"right: {self.right!r} is neither C nor P")
        if not 2000 <= self.expiry.year <= 2099:
            raise DomainError(f"expiry: {self.expiry} is outside the years OCC symbols can name")
        if self.strike >= 100_000:
            raise DomainError(f"strike: {self.strike} does not fit an OCC symbol")

    @property
    def occ(self) -> str:
        """The OCC symbol (IB's ``localSymbol``): the symbol an option order is placed under."""
        return f"{self.underlying:<6}{self.expiry:%y%m%d}{self.right}{int(self.strike * 1000):08d}"

    @property
    def last_trade_date(self) -> str:
        """IB's ``lastTradeDateOrContractMonth``: ``YYYYMMDD``."""
        return f"{self.expiry:%Y%m%d}"

    @property
    def call(self) -> bool:
        return self.right == "C"

    @classmethod
    def parse(cls, text: str) -> OptionSymbol:
        """The option an OCC symbol names; ``DomainError`` naming what is wrong otherwise."""
        match = _OCC.match(text)
        if match is None or len(text) != OCC_LENGTH:
            raise DomainError(
                f"not an OCC option symbol: {text!r} (root padded to 6, YYMMDD, C or P, "
                "strike x 1000 in 8 digits)"
            )
        root, day, right, strike = match.groups()
        try:
            expiry = date(2000 + int(day[:2]), int(day[2:4]), int(day[4:]))
        except ValueError:
            raise DomainError(f"not an OCC option symbol: {text!r} ({day} is no date)") from None
        return cls(
            underlying=root,
            expiry=expiry,
            right="C" if right == "C" else "P",
            strike=Decimal(int(strike)) / 1000,
        )

    def __str__(self) -> str:
        return self.occ


def _dates(values: object) -> tuple[date, ...]:
    return tuple(sorted(set(values)))  # type: ignore[call-overload]


def _strikes(values: object) -> tuple[Decimal, ...]:
    return tuple(sorted({_strike(v) for v in values}))  # type: ignore[attr-defined]


@attrs.frozen(kw_only=True)
class OptionChain:
    """An underlying's listed options as ``reqSecDefOptParams`` describes them: the expiries
    and the strikes of one exchange and trading class (every strike at every expiry, as IB
    answers: qualifying a contract is what tells whether it is listed)."""

    underlying: str
    exchange: str
    trading_class: str
    multiplier: int
    expirations: tuple[date, ...] = attrs.field(converter=_dates)
    strikes: tuple[Decimal, ...] = attrs.field(converter=_strikes)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


@attrs.frozen(kw_only=True)
class OptionQuote:
    """What the venue quotes for one option, parsed at the edge: prices per share (None when
    the venue sent none, or sent IB's "no price"), the day's volume and the open interest
    (None: not sent), the model's implied volatility and delta (NaN arrives as None)."""

    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None = None
    bid_size: int | None = None
    ask_size: int | None = None
    volume: int | None = None
    open_interest: int | None = None
    implied_vol: float | None = attrs.field(default=None, converter=_finite)
    delta: float | None = attrs.field(default=None, converter=_finite)
    underlying_price: Decimal | None = None

    @property
    def mid(self) -> Decimal | None:
        """The middle of bid and ask when both are there and not crossed (a zero bid is a
        bid: a worthless option's mid is half its ask); None otherwise."""
        if self.bid is None or self.ask is None or self.bid < 0 or self.ask <= 0:
            return None
        if self.ask < self.bid:
            return None
        return (self.bid + self.ask) / 2
