"""Option contracts and chains the sim venue lists (docs/options-venue.md, *Chains*).

* Contracts: US equity options, SMART-routed, USD, 100 shares each, trading class = the
  underlying's symbol, OCC local symbols (``TQQQ  261204C00050000``).
* Expiries: every Friday (weeklies), moved to the previous trading day when the Friday is an
  NYSE holiday; the monthly is the week's expiry of the third Friday (same rule).
* Strikes: one fixed ladder for every underlying, 0.50 apart under $25, 1 apart from $25 to
  under $200, 5 apart from $200 (up to ``MAX_STRIKE``); a chain lists N of them each side of the
  one nearest its reference price.
* conIds: ``OPTION_CON_ID_BASE`` and up (a signed 32-bit int, as IB's), disjoint from the stock
  conIds of the sim (900001 and up) and from IB's stock conIds (under 10**9 today).

Pure functions of their arguments: no clock reads, no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

import attrs

from actors.domain.sessions import is_trading_day

OPTION_CON_ID_BASE = 1_000_000_000
"""The smallest option conId: stock conIds (the sim's 900001 + i, IB's real ones) lie below."""
MAX_CON_ID = 2**31 - 1
"""IB's conId is a signed 32-bit int."""
MULTIPLIER = 100
MAX_STRIKE = Decimal(9310)
"""The highest strike of the ladder (index 2047: 11 bits of the conId)."""

# The weeks an expiry may fall in: 12 bits of the conId, from the week of Monday 2000-01-03.
_EPOCH_MONDAY = date(2000, 1, 3)
_WEEKS = 4096
FIRST_EXPIRY_WEEK = _EPOCH_MONDAY
LAST_EXPIRY_WEEK = _EPOCH_MONDAY + timedelta(weeks=_WEEKS - 1)

_SPAN = MAX_CON_ID - OPTION_CON_ID_BASE + 1
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,5}$")
_OCC = re.compile(r"^([A-Z][A-Z0-9. ]{5})(\d{6})([CP])(\d{8})$")
_HALF = Decimal("0.5")
_ONE = Decimal(1)
_FIVE = Decimal(5)
_LOW_BAND = Decimal(25)  # strikes under it are 0.50 apart
_MID_BAND = Decimal(200)  # strikes under it (and >= 25) are 1 apart, 5 from there
_MAX_INDEX = 2047


class OptionError(ValueError):
    """Raised by ``sim.options`` for a bad contract, expiry, strike or pricing input; the
    message names the value and the argument it came in."""


class Right(enum.StrEnum):
    CALL = "C"
    PUT = "P"

    @classmethod
    def parse(cls, value: object, *, where: str = "right") -> Right:
        """``C``/``CALL`` or ``P``/``PUT`` (any case, IB accepts both spellings)."""
        if isinstance(value, Right):
            return value
        if isinstance(value, str):
            spelled = value.strip().upper()
            if spelled in ("C", "CALL"):
                return cls.CALL
            if spelled in ("P", "PUT"):
                return cls.PUT
        raise OptionError(f"{where}: an option right is 'C' or 'P', got {value!r}")


# --- strikes -------------------------------------------------------------------------------


def strike_step(strike: Decimal) -> Decimal:
    """The spacing of the ladder at ``strike``: 0.50 under $25, 1 under $200, 5 from $200."""
    _positive(strike, "strike")
    if strike < _LOW_BAND:
        return _HALF
    if strike < _MID_BAND:
        return _ONE
    return _FIVE


def is_listed_strike(strike: Decimal) -> bool:
    """Whether ``strike`` is on the ladder (positive, on its band's step, at most MAX_STRIKE)."""
    if not isinstance(strike, Decimal) or not strike.is_finite() or strike <= 0:
        return False
    return strike <= MAX_STRIKE and strike % strike_step(strike) == 0


def strike_index(strike: Decimal) -> int:
    """The rank of a listed strike on the ladder: 0.50 is 1, 25 is 50, 200 is 225."""
    if not is_listed_strike(strike):
        raise OptionError(
            f"strike: {strike} is not a listed strike (0.50 apart under 25, 1 under 200, "
            f"5 from 200, at most {MAX_STRIKE})"
        )
    if strike < _LOW_BAND:
        return int(strike * 2)
    if strike < _MID_BAND:
        return 49 + int(strike - 24)
    return 224 + int((strike - 195) / 5)


def strike_at(index: int) -> Decimal:
    """The listed strike of rank ``index`` (1 .. 2047), the inverse of ``strike_index``."""
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= _MAX_INDEX:
        raise OptionError(f"strike index: {index!r} is not in 1..{_MAX_INDEX}")
    if index < 50:
        return Decimal(index) / 2
    if index < 225:
        return Decimal(index - 49 + 24)
    return Decimal(195 + 5 * (index - 224))


def strike_near(price: Decimal, offset: int = 0, *, right: Right | str | None = None) -> Decimal:
    """The listed strike nearest ``price`` (a tie goes to the lower strike), then ``offset``
    strikes along the ladder: out of the money for ``right`` (up for a call, down for a put;
    a negative offset goes into the money), or up the ladder when no right is given."""
    _positive(price, "price")
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise OptionError(f"offset: a whole number of strikes, got {offset!r}")
    side = Right.parse(right) if right is not None else None
    index = _nearest_index(price)
    steps = -offset if side is Right.PUT else offset
    target = index + steps
    if not 1 <= target <= _MAX_INDEX:
        raise OptionError(
            f"offset: {offset} strikes from {strike_at(index)} (nearest {price}) runs off the "
            f"ladder (0.50 .. {MAX_STRIKE})"
        )
    return strike_at(target)


def strike_grid(reference: Decimal, *, each_side: int) -> tuple[Decimal, ...]:
    """The listed strikes around ``reference``: the nearest one and ``each_side`` above and
    below it (fewer below near the bottom of the ladder, fewer above at its top), ascending."""
    _positive(reference, "reference price")
    if isinstance(each_side, bool) or not isinstance(each_side, int) or each_side < 0:
        raise OptionError(f"each_side: a number of strikes >= 0, got {each_side!r}")
    middle = _nearest_index(reference)
    low = max(1, middle - each_side)
    high = min(_MAX_INDEX, middle + each_side)
    return tuple(strike_at(i) for i in range(low, high + 1))


def _nearest_index(price: Decimal) -> int:
    if price > MAX_STRIKE:
        raise OptionError(f"price: {price} is beyond the highest strike {MAX_STRIKE}")
    below = _floor_index(price)
    if below == 0:
        return 1
    if strike_at(below) == price or below == _MAX_INDEX:
        return below
    lower, upper = strike_at(below), strike_at(below + 1)
    return below if price - lower <= upper - price else below + 1


# The rank of the highest listed strike at or below ``price`` (0 under the lowest strike).
def _floor_index(price: Decimal) -> int:
    if price < _LOW_BAND:
        return int((price * 2).to_integral_value(rounding=ROUND_FLOOR))
    if price < _MID_BAND:
        return 49 + int((price - 24).to_integral_value(rounding=ROUND_FLOOR))
    steps = ((price - 195) / 5).to_integral_value(rounding=ROUND_FLOOR)
    return min(_MAX_INDEX, 224 + int(steps))


# --- expiries ------------------------------------------------------------------------------


def weekly_expiry(day: date) -> date | None:
    """The expiry of ``day``'s week (Monday to Sunday): its Friday, or the trading day before
    it when the Friday is an NYSE holiday; None in a week without a trading day."""
    _date(day, "day")
    friday = day + timedelta(days=4 - day.weekday())
    return _on_or_before(friday)


def monthly_expiry(year: int, month: int) -> date:
    """The monthly expiry: the third Friday of the month, or the trading day before it when
    that Friday is an NYSE holiday (as Good Friday may be, e.g. 2025-04-18 moves to Thursday)."""
    if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
        raise OptionError(f"month: 1..12, got {month!r}")
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2078:
        raise OptionError(f"year: {year!r} is outside the years listed (2000..2078)")
    first = date(year, month, 1)
    third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
    moved = _on_or_before(third_friday)
    if moved is None:
        raise OptionError(f"no trading day in the week of {third_friday} ({year}-{month:02})")
    return moved


def is_expiry(day: date) -> bool:
    """Whether options expire on ``day`` (a weekly expiry; every monthly is one too)."""
    _date(day, "day")
    return weekly_expiry(day) == day


def is_monthly(expiry: date) -> bool:
    """Whether ``expiry`` is its month's monthly expiry."""
    _date(expiry, "expiry")
    return 2000 <= expiry.year <= 2078 and monthly_expiry(expiry.year, expiry.month) == expiry


def expiries(as_of: date, *, weeks: int) -> tuple[date, ...]:
    """The next ``weeks`` weekly expiries on or after ``as_of``, ascending, one a week (an
    expiry on ``as_of`` itself is listed: it trades until that day's close)."""
    _date(as_of, "as_of")
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise OptionError(f"weeks: a number of weeks >= 1, got {weeks!r}")
    found: list[date] = []
    day = as_of
    while len(found) < weeks:
        expiry = weekly_expiry(day)
        if expiry is not None and expiry >= as_of:
            found.append(expiry)
        day += timedelta(days=7 - day.weekday())  # the next Monday
    return tuple(found)


def monthly_expiries(as_of: date, *, months: int) -> tuple[date, ...]:
    """The next ``months`` monthly expiries on or after ``as_of``, ascending."""
    _date(as_of, "as_of")
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise OptionError(f"months: a number of months >= 1, got {months!r}")
    found: list[date] = []
    year, month = as_of.year, as_of.month
    while len(found) < months:
        expiry = monthly_expiry(year, month)
        if expiry >= as_of:
            found.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(found)


def nearest_expiry(as_of: date, *, min_days: int) -> date:
    """The first weekly expiry at least ``min_days`` calendar days after ``as_of`` (0: today's
    expiry if there is one)."""
    _date(as_of, "as_of")
    if isinstance(min_days, bool) or not isinstance(min_days, int) or min_days < 0:
        raise OptionError(f"min_days: a number of days >= 0, got {min_days!r}")
    day = as_of + timedelta(days=min_days)
    while True:
        expiry = weekly_expiry(day)
        if expiry is not None and expiry >= day:
            return expiry
        day += timedelta(days=7 - day.weekday())


def _on_or_before(friday: date) -> date | None:
    day = friday
    while not is_trading_day(day):
        day -= timedelta(days=1)
        if day.weekday() == 6:  # back past Monday: the whole week is closed
            return None
    return day


# --- contracts -----------------------------------------------------------------------------


def _to_right(value: object) -> Right:
    return Right.parse(value)


def _to_strike(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise OptionError(f"strike: a Decimal, int or numeric string, got {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise OptionError(f"strike: not a number: {value!r}") from exc


@attrs.frozen(kw_only=True)
class OptionContract:
    """One listed option: ``right`` on ``multiplier`` shares of ``underlying`` at ``strike``,
    expiring at the close of ``expiry``. Only contracts the sim lists can be built (a listed
    expiry, a ladder strike), which is what makes ``con_id`` unique within a chain."""

    underlying: str
    expiry: date
    strike: Decimal = attrs.field(converter=_to_strike)
    right: Right = attrs.field(converter=_to_right)
    multiplier: int = MULTIPLIER
    trading_class: str = ""
    exchange: str = "SMART"
    currency: str = "USD"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.underlying, str) or not _SYMBOL.match(self.underlying):
            raise OptionError(
                f"underlying: a symbol of 1 to 6 capitals, digits or dots, got {self.underlying!r}"
            )
        _date(self.expiry, "expiry")
        if not FIRST_EXPIRY_WEEK <= self.expiry <= LAST_EXPIRY_WEEK + timedelta(days=6):
            raise OptionError(
                f"expiry: {self.expiry} is outside the listed range "
                f"({FIRST_EXPIRY_WEEK} .. {LAST_EXPIRY_WEEK + timedelta(days=6)})"
            )
        if not is_expiry(self.expiry):
            raise OptionError(
                f"expiry: {self.expiry} ({self.expiry:%A}) is not an expiry: options expire on "
                "Fridays, or the trading day before a Friday holiday"
            )
        # raises for a strike off the ladder, naming it; 50.0 and 50 become one strike
        object.__setattr__(self, "strike", strike_at(strike_index(self.strike)))
        if self.multiplier != MULTIPLIER:
            raise OptionError(f"multiplier: the sim lists {MULTIPLIER}, got {self.multiplier!r}")
        if self.trading_class == "":
            object.__setattr__(self, "trading_class", self.underlying)
        elif self.trading_class != self.underlying:
            raise OptionError(
                f"trading_class: {self.trading_class!r}, the sim lists {self.underlying!r} "
                f"for {self.underlying}"
            )
        if self.exchange != "SMART":
            raise OptionError(f"exchange: the sim lists options on SMART, got {self.exchange!r}")
        if self.currency != "USD":
            raise OptionError(f"currency: the sim lists USD options, got {self.currency!r}")

    @property
    def sec_type(self) -> str:
        return "OPT"

    @property
    def last_trade_date(self) -> str:
        """``YYYYMMDD``, IB's ``lastTradeDateOrContractMonth``."""
        return f"{self.expiry:%Y%m%d}"

    @property
    def local_symbol(self) -> str:
        """The OCC symbol: root padded to 6, YYMMDD, C/P, strike x 1000 in 8 digits."""
        return (
            f"{self.underlying:<6}{self.expiry:%y%m%d}{self.right.value}"
            f"{int(self.strike * 1000):08d}"
        )

    @classmethod
    def from_local_symbol(cls, text: str) -> OptionContract:
        """The contract an OCC symbol names (``local_symbol`` read back); an OptionError
        naming what is wrong with it otherwise."""
        match = _OCC.match(text) if isinstance(text, str) else None
        if match is None:
            raise OptionError(
                f"local symbol: an OCC symbol (root padded to 6, YYMMDD, C or P, strike x 1000 "
                f"in 8 digits), got {text!r}"
            )
        root, day, right, strike = match.groups()
        try:
            expiry = date(2000 + int(day[:2]), int(day[2:4]), int(day[4:]))
        except ValueError:
            raise OptionError(f"local symbol: {text!r} has no date {day}") from None
        return cls(
            underlying=root.rstrip(),
            expiry=expiry,
            strike=Decimal(int(strike)) / 1000,
            right=right,
        )

    @property
    def con_id(self) -> int:
        """Deterministic from the fields: an offset hashed from the underlying plus a code
        unique per (expiry week, strike, right), wrapped into [OPTION_CON_ID_BASE, 2**31)."""
        week = (self.expiry - _EPOCH_MONDAY).days // 7
        code = ((week << 11) | strike_index(self.strike)) << 1 | (self.right is Right.PUT)
        return OPTION_CON_ID_BASE + (_root_offset(self.underlying) + code) % _SPAN


def _root_offset(underlying: str) -> int:
    digest = hashlib.blake2b(underlying.encode(), digest_size=8, person=b"sim-opt-conid").digest()
    return int.from_bytes(digest, "big") % _SPAN


def is_option_con_id(con_id: int) -> bool:
    """Whether ``con_id`` is in the range option conIds are drawn from."""
    return OPTION_CON_ID_BASE <= con_id <= MAX_CON_ID


# --- chains --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OptionChain:
    """What ``reqSecDefOptParams`` answers for an underlying: its expiries and strikes (every
    pair listed, calls and puts)."""

    underlying: str
    expiries: tuple[date, ...]
    strikes: tuple[Decimal, ...]
    multiplier: int = MULTIPLIER
    exchange: str = "SMART"

    @property
    def trading_class(self) -> str:
        return self.underlying

    def contract(self, expiry: date, strike: Decimal, right: Right | str) -> OptionContract:
        """The listed contract, or an OptionError naming what the chain does not list."""
        side = Right.parse(right)
        if expiry not in self.expiries:
            raise OptionError(f"expiry: {self.underlying} lists no expiry {expiry}")
        if strike not in self.strikes:
            raise OptionError(f"strike: {self.underlying} lists no strike {strike}")
        return OptionContract(underlying=self.underlying, expiry=expiry, strike=strike, right=side)

    def contracts(self) -> Iterator[OptionContract]:
        """Every contract, by expiry, then strike, calls before puts."""
        for expiry in self.expiries:
            for strike in self.strikes:
                for right in Right:
                    yield OptionContract(
                        underlying=self.underlying, expiry=expiry, strike=strike, right=right
                    )


def option_chain(
    underlying: str, reference: Decimal, as_of: date, *, weeks: int, each_side: int
) -> OptionChain:
    """The chain of ``underlying`` on ``as_of``: the weekly expiries of ``weeks`` weeks and
    the strikes ``each_side`` of the one nearest ``reference`` (the underlying's last price)."""
    if not isinstance(underlying, str) or not _SYMBOL.match(underlying):
        raise OptionError(
            f"underlying: a symbol of 1 to 6 capitals, digits or dots, got {underlying!r}"
        )
    return OptionChain(
        underlying=underlying,
        expiries=expiries(as_of, weeks=weeks),
        strikes=strike_grid(reference, each_side=each_side),
    )


def _positive(value: Decimal, where: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise OptionError(f"{where}: a positive finite Decimal, got {value!r}")


def _date(value: date, where: str) -> None:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise OptionError(f"{where}: a date (not a datetime), got {value!r}")
