"""Replay: the strict bar loader, the intra-bar path, the generated session, the real data."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.replay import (
    Bar,
    ReplayError,
    bar_trades,
    generated_days,
    generated_session,
    load_bars,
    trades,
)
from sim.sessions import NEW_YORK, Session, session_at

REAL = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "marketdata"
    / "tqqq_1min"
    / "TQQQ_60day_1min_data.csv"
)
HEADER = "Datetime,Symbol,Open,High,Low,Close,Volume\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + body)
    return path


@pytest.mark.skipif(not REAL.exists(), reason="../shared/marketdata is not on this machine")
def test_the_real_tqqq_minutes_load_as_45_sessions_of_utc_bars() -> None:
    """42,228 bars from 2025-04-30 14:16 UTC to 2025-07-03 20:59 UTC, 45 New York days."""
    bars = load_bars(REAL)
    assert len(bars) == 42_228
    assert bars[0].start == datetime(2025, 4, 30, 14, 16, tzinfo=UTC)
    assert (bars[0].open, bars[0].low, bars[0].volume) == (
        Decimal("51.62"),
        Decimal("51.47"),
        443_724,
    )
    assert bars[-1].start == datetime(2025, 7, 3, 20, 59, tzinfo=UTC)
    assert len({bar.start.astimezone(NEW_YORK).date() for bar in bars}) == 45
    assert all(session_at(bar.start) is not Session.CLOSED for bar in bars)


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5\n", 2, "expected 7 fields"),
        ("yesterday,TQQQ,1,2,0.5,1.5,10\n", 2, "Datetime is not a date and time"),
        ("2025-04-30 14:16:00+00:00,TQQQ,1,2,0.5,1.5,10\n", 2, "must be naive UTC"),
        ("2025-04-30 14:16:00,TQQQ,1,x,0.5,1.5,10\n", 2, "must be numbers"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0,1.5,10\n", 2, "must be positive"),
        ("2025-04-30 14:16:00,TQQQ,1,2,1.2,1.5,10\n", 2, "inconsistent bar"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,10.5\n", 2, "volume must be a whole number"),
        (
            "2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,10\n2025-04-30 14:15:00,TQQQ,1,2,0.5,1.5,10\n",
            3,
            "out of order",
        ),
    ],
)
def test_a_bad_bar_file_is_refused_naming_file_and_line(
    tmp_path: Path, body: str, line: int, problem: str
) -> None:
    """Every defect names where it is."""
    path = write(tmp_path, body)
    with pytest.raises(ReplayError) as info:
        load_bars(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert problem in str(info.value)


def test_a_bar_with_the_high_nearer_the_open_goes_open_high_low_close() -> None:
    """The documented path, 15 s apart, volume in quarters with the remainder on the close."""
    start = datetime(2025, 5, 1, 14, 0, tzinfo=UTC)
    bar = Bar(
        symbol="TQQQ",
        start=start,
        open=Decimal("10.00"),
        high=Decimal("10.05"),
        low=Decimal("9.90"),
        close=Decimal("9.95"),
        volume=10,
    )
    got = [(t.price, t.size, t.at - start) for t in bar_trades(bar)]
    assert got == [
        (Decimal("10.00"), 2, timedelta(0)),
        (Decimal("10.05"), 2, timedelta(seconds=15)),
        (Decimal("9.90"), 2, timedelta(seconds=30)),
        (Decimal("9.95"), 4, timedelta(seconds=45)),
    ]
    low_first = Bar(
        symbol="TQQQ",
        start=start,
        open=Decimal("10.00"),
        high=Decimal("10.20"),
        low=Decimal("9.95"),
        close=Decimal("10.1"),
        volume=0,
    )
    assert [t.price for t in bar_trades(low_first)] == [
        Decimal("10.00"),
        Decimal("9.95"),
        Decimal("10.20"),
        Decimal("10.1"),
    ]


@given(
    st.decimals(min_value=1, max_value=500, places=2),
    st.decimals(min_value=0, max_value=5, places=2),
    st.decimals(min_value=0, max_value=5, places=2),
    st.floats(min_value=0, max_value=1),
    st.integers(min_value=0, max_value=10**7),
)
def test_every_bar_path_visits_its_extremes_and_keeps_its_volume(
    open_: Decimal, up: Decimal, down: Decimal, where: float, volume: int
) -> None:
    """Starts at the open, ends at the close, touches high and low, sizes sum to the volume."""
    high, low = open_ + up, max(open_ - down, Decimal("0.01"))
    close = low + (high - low) * Decimal(str(round(where, 4)))
    bar = Bar(
        symbol="X",
        start=datetime(2025, 5, 1, tzinfo=UTC),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )
    path = bar_trades(bar)
    assert (path[0].price, path[-1].price) == (open_, close)
    assert max(t.price for t in path) == high
    assert min(t.price for t in path) == low
    assert sum(t.size for t in path) == volume
    assert [t.at for t in path] == sorted(t.at for t in path)


def test_the_generated_session_is_a_deterministic_full_trading_day() -> None:
    """Same seed, same bars; 04:00-20:00 New York, one bar a minute, consistent and positive."""
    bars = generated_session(seed=7, day=date(2026, 11, 23))
    assert bars == generated_session(seed=7, day=date(2026, 11, 23))
    assert bars != generated_session(seed=8, day=date(2026, 11, 23))
    assert len(bars) == 16 * 60
    assert bars[0].start.astimezone(NEW_YORK).strftime("%H:%M") == "04:00"
    assert bars[-1].start.astimezone(NEW_YORK).strftime("%H:%M") == "19:59"
    assert all(
        b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high and b.low > 0 for b in bars
    )
    assert all(session_at(t.at) is not Session.CLOSED for t in trades(bars))


def test_generated_days_skip_weekends_and_holidays_and_chain_prices() -> None:
    """Several generated days: trading days only (Thanksgiving 2026-11-26 and the weekend
    skipped), each opening at the previous close; one day equals generated_session."""
    bars = generated_days(seed=3, days=4, first=date(2026, 11, 25))
    days = sorted({b.start.astimezone(NEW_YORK).date() for b in bars})
    assert days == [date(2026, 11, 25), date(2026, 11, 27), date(2026, 11, 30), date(2026, 12, 1)]
    for before, after in itertools.pairwise(days):
        last = max((b for b in bars if b.start.astimezone(NEW_YORK).date() == before), key=_start)
        first = min((b for b in bars if b.start.astimezone(NEW_YORK).date() == after), key=_start)
        assert first.open == last.close
    assert generated_days(seed=3, days=1) == generated_session(seed=3)


def _start(bar: Bar) -> datetime:
    return bar.start
