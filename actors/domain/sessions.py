"""New York trading sessions and NYSE holidays, computed by rule (no calendar file to go stale).

Sessions (America/New_York): pre-market 04:00-09:30, regular 09:30-16:00, after-hours
16:00-20:00, closed otherwise, at weekends and on exchange holidays. Early closes (13:00 on some
half days) are not modelled: the session runs to its usual end.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

PRE_OPEN = time(4, 0)
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
AFTER_CLOSE = time(20, 0)


class Session(enum.StrEnum):
    PRE = "pre"
    REGULAR = "regular"
    AFTER = "after"
    CLOSED = "closed"

    @property
    def trading(self) -> bool:
        return self is not Session.CLOSED


def session_at(moment: datetime) -> Session:
    """The session in force at ``moment`` (an aware datetime, any zone)."""
    if moment.tzinfo is None:
        raise ValueError(f"session_at needs an aware datetime, got naive {moment.isoformat()}")
    local = moment.astimezone(NEW_YORK)
    if not is_trading_day(local.date()):
        return Session.CLOSED
    clock = local.time()
    if PRE_OPEN <= clock < REGULAR_OPEN:
        return Session.PRE
    if REGULAR_OPEN <= clock < REGULAR_CLOSE:
        return Session.REGULAR
    if REGULAR_CLOSE <= clock < AFTER_CLOSE:
        return Session.AFTER
    return Session.CLOSED


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in nyse_holidays(day.year)


@lru_cache(maxsize=64)
def nyse_holidays(year: int) -> frozenset[date]:
    """Full-day NYSE closures in ``year`` under the exchange's current rules (since 2022,
    Juneteenth included; Saturday holidays observed on Friday except New Year's Day)."""
    days = {
        _observed(date(year, 1, 1), saturday_moves=False),
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day: 3rd Monday of January
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday: 3rd Monday of February
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day: last Monday of May
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day: 1st Monday of September
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving: 4th Thursday of November
        _observed(date(year, 12, 25)),
    }
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))
    return frozenset(day for day in days if day is not None)


def _observed(day: date, *, saturday_moves: bool = True) -> date | None:
    if day.weekday() == 5:
        return day - timedelta(days=1) if saturday_moves else None
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)
