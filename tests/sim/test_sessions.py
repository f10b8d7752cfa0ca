"""New York sessions and NYSE holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain.sessions import NEW_YORK, Session, is_trading_day, nyse_holidays, session_at

# The exchange's published full-day closures.
PUBLISHED = {
    2025: {
        date(2025, 1, 1),
        date(2025, 1, 20),
        date(2025, 2, 17),
        date(2025, 4, 18),
        date(2025, 5, 26),
        date(2025, 6, 19),
        date(2025, 7, 4),
        date(2025, 9, 1),
        date(2025, 11, 27),
        date(2025, 12, 25),
    },
    2026: {
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 4, 3),
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 3),
        date(2026, 9, 7),
        date(2026, 11, 26),
        date(2026, 12, 25),
    },
    2027: {
        date(2027, 1, 1),
        date(2027, 1, 18),
        date(2027, 2, 15),
        date(2027, 3, 26),
        date(2027, 5, 31),
        date(2027, 6, 18),
        date(2027, 7, 5),
        date(2027, 9, 6),
        date(2027, 11, 25),
        date(2027, 12, 24),
    },
}


@pytest.mark.parametrize("year", sorted(PUBLISHED))
def test_holidays_match_the_published_nyse_calendar(year: int) -> None:
    """Computed by rule, equal to the exchange's list (observed days included)."""
    assert nyse_holidays(year) == PUBLISHED[year]


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-20 03:59", Session.CLOSED),
        ("2026-11-20 04:00", Session.PRE),
        ("2026-11-20 09:29", Session.PRE),
        ("2026-11-20 09:30", Session.REGULAR),
        ("2026-11-20 15:59", Session.REGULAR),
        ("2026-11-20 16:00", Session.AFTER),
        ("2026-11-20 19:59", Session.AFTER),
        ("2026-11-20 20:00", Session.CLOSED),
        ("2026-11-21 12:00", Session.CLOSED),  # Saturday
        ("2026-11-26 12:00", Session.CLOSED),  # Thanksgiving
        ("2026-07-03 10:00", Session.CLOSED),  # Independence Day observed
    ],
)
def test_sessions_by_new_york_wall_clock(local: str, expected: Session) -> None:
    """Pre, regular, after, closed, including weekends and holidays."""
    moment = datetime.fromisoformat(local).replace(tzinfo=NEW_YORK)
    assert session_at(moment) is expected


def test_sessions_follow_daylight_saving_time() -> None:
    """09:30 New York is 14:30 UTC in winter and 13:30 UTC in summer."""
    assert session_at(datetime(2026, 1, 12, 14, 30, tzinfo=UTC)) is Session.REGULAR
    assert session_at(datetime(2026, 1, 12, 13, 30, tzinfo=UTC)) is Session.PRE
    assert session_at(datetime(2026, 7, 13, 13, 30, tzinfo=UTC)) is Session.REGULAR


def test_a_naive_datetime_is_refused() -> None:
    """Times without a zone are ambiguous: refused, naming the value."""
    with pytest.raises(ValueError, match="needs an aware datetime"):
        session_at(datetime(2026, 1, 12, 10, 0))


@given(st.dates(min_value=date(2022, 1, 1), max_value=date(2100, 12, 31)))
def test_ten_holidays_a_year_on_weekdays_and_none_on_weekends(day: date) -> None:
    """Every year since Juneteenth has 9 or 10 full closures, all on weekdays."""
    holidays = nyse_holidays(day.year)
    assert len(holidays) in (9, 10)
    assert all(h.weekday() < 5 for h in holidays)
    if day.weekday() >= 5:
        assert not is_trading_day(day)
