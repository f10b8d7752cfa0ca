"""The bar builder (actors.domain.bars) against a plain aggregation: group trades by the
floor of their New York wall-clock time with dicts, by value."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import Bar, epoch_ns
from actors.domain.bars import (
    DAY,
    BarBuilder,
    BarError,
    ClosedBar,
    Window,
    check_size,
    compose,
    window,
)
from actors.domain.sessions import NEW_YORK, nyse_holidays

SIZES = (60, 120, 300, 900, 1800, 3600, 14400, DAY)
DAYS = (
    date(2026, 11, 20),  # a Friday
    date(2026, 11, 21),  # Saturday: no bar
    date(2026, 11, 23),
    date(2026, 11, 26),  # Thanksgiving: no bar
    date(2026, 11, 27),
    date(2026, 3, 9),  # the Monday after the clocks went forward
    date(2026, 3, 8),  # the Sunday they did
    date(2026, 11, 2),  # the Monday after they went back
)


def plain_bars(
    trades: list[tuple[int, Decimal, int]], seconds: int, regular: bool, symbol: str = "TQQQ"
) -> list[Bar]:
    """The bars of the trades, written out as the docs define them, independently of the
    builder: the session by the wall clock, the bar's start as the floor of the wall clock."""
    opening, closing = (time(9, 30), time(16, 0)) if regular else (time(4, 0), time(20, 0))
    groups: dict[datetime, list[tuple[Decimal, int]]] = {}
    for ts, price, size in trades:
        local = datetime.fromtimestamp(ts / 1e9, UTC).astimezone(NEW_YORK)
        day = local.date()
        if day.weekday() >= 5 or day in nyse_holidays(day.year):
            continue
        if not opening <= local.time() < closing:
            continue
        if seconds == DAY:
            start = datetime.combine(day, opening)
        else:
            of_day = local.hour * 3600 + local.minute * 60 + local.second
            start = datetime.combine(day, time()) + timedelta(seconds=of_day // seconds * seconds)
            start = max(start, datetime.combine(day, opening))
        groups.setdefault(start.replace(tzinfo=NEW_YORK), []).append((price, size))
    return [
        Bar(
            symbol=symbol,
            start=start,
            open=prints[0][0],
            high=max(p for p, _ in prints),
            low=min(p for p, _ in prints),
            close=prints[-1][0],
            volume=sum(s for _, s in prints),
        )
        for start, prints in sorted(groups.items())
    ]


@st.composite
def trade_lists(draw: st.DrawFn) -> list[tuple[int, Decimal, int]]:
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))
    trades = []
    for day in sorted(days):
        midnight = epoch_ns(datetime.combine(day, time(), tzinfo=NEW_YORK))
        # Seconds of the day: anywhere, and often near the sessions' edges.
        edges = st.sampled_from([4 * 3600, 9 * 3600 + 1800, 16 * 3600, 20 * 3600]).flatmap(
            lambda edge: st.integers(edge - 90, edge + 90)
        )
        seconds = draw(st.lists(st.one_of(st.integers(0, DAY - 1), edges), min_size=0, max_size=40))
        for second in sorted(seconds):
            cents = draw(st.integers(1, 20_000))
            size = draw(st.integers(0, 1_000))
            trades.append((midnight + second * 1_000_000_000, Decimal(cents) / 100, size))
    trades.sort(key=lambda t: t[0])
    return trades


@settings(max_examples=300, deadline=None)
@given(
    trades=trade_lists(),
    sizes=st.lists(st.sampled_from(SIZES), min_size=1, max_size=4, unique=True),
    regular=st.booleans(),
)
def test_builder_bars_equal_a_plain_aggregation(
    trades: list[tuple[int, Decimal, int]], sizes: list[int], regular: bool
) -> None:
    """Every size's bars, closed by the next interval's trades and a final flush, are the
    plain grouping's, in order, and each closes in order of its end."""
    builder = BarBuilder("TQQQ", sizes, "regular" if regular else "extended")
    closed: list[ClosedBar] = []
    for ts, price, size in trades:
        closed.extend(builder.add(price, size, ts))
    closed.extend(builder.flush())
    for seconds in sizes:
        assert [c.bar for c in closed if c.seconds == seconds] == plain_bars(
            trades, seconds, regular
        )
    ends = [(c.end_ns, c.seconds) for c in closed]
    assert ends == sorted(ends)


@settings(max_examples=200, deadline=None)
@given(trades=trade_lists(), seconds=st.sampled_from(SIZES), regular=st.booleans())
def test_a_bar_closes_when_the_clock_passes_its_end(
    trades: list[tuple[int, Decimal, int]], seconds: int, regular: bool
) -> None:
    """Driven by a timer after every trade, no bar closes before its end, and every bar is
    closed by the time the clock passes its end; the bars are the same as without it."""
    builder = BarBuilder("TQQQ", [seconds], "regular" if regular else "extended")
    closed: list[ClosedBar] = []
    for ts, price, size in trades:
        for bar in builder.add(price, size, ts):
            assert bar.end_ns <= ts
            closed.append(bar)
        for bar in builder.close_due(ts + 1):
            assert bar.end_ns <= ts + 1
            closed.append(bar)
    if trades:
        closed.extend(builder.close_due(trades[-1][0] + 2 * DAY * 1_000_000_000))
    assert builder.close_due(2**62) == []
    assert [c.bar for c in closed] == plain_bars(trades, seconds, regular)


def test_the_regular_daily_bar_closes_at_four_pm_new_york() -> None:
    """A daily bar of the regular session closes when the clock reaches 16:00 New York."""
    day = date(2026, 11, 23)
    at = epoch_ns(datetime.combine(day, time(15, 59, 30), tzinfo=NEW_YORK))
    four = epoch_ns(datetime.combine(day, time(16), tzinfo=NEW_YORK))
    builder = BarBuilder("TQQQ", [DAY, 60], "regular")
    assert builder.add(Decimal("50.10"), 7, at) == []
    assert builder.close_due(four - 1) == []
    closed = builder.close_due(four)
    assert [(c.seconds, c.bar.start, c.end_ns) for c in closed] == [
        (60, datetime(2026, 11, 23, 20, 59, tzinfo=UTC), four),
        (DAY, datetime(2026, 11, 23, 14, 30, tzinfo=UTC), four),
    ]


def test_an_hourly_regular_bar_starts_at_the_open_and_the_last_extended_ends_at_eight() -> None:
    """Bars are cut to their session: 09:30-10:00 is the first regular hour, 19:00-20:00
    the last extended one; pre-market trades are in no regular bar."""
    day = date(2026, 11, 23)

    def at(hour: int, minute: int) -> int:
        return epoch_ns(datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK))

    assert window(at(9, 45), 3600, "regular") == window(at(9, 30), 3600, "regular")
    assert window(at(9, 45), 3600, "regular") == Window(at(9, 30), at(10, 0))
    assert window(at(9, 29), 3600, "regular") is None
    assert window(at(19, 59), 4 * 3600, "extended") == Window(at(16, 0), at(20, 0))
    assert window(at(20, 0), 60, "extended") is None


def test_a_late_trade_is_dropped_and_counted() -> None:
    """A trade of a bar that has closed does not reopen it."""
    day = date(2026, 11, 23)
    ten = epoch_ns(datetime.combine(day, time(10), tzinfo=NEW_YORK))
    builder = BarBuilder("TQQQ", [60], "extended")
    builder.add(Decimal(50), 1, ten)
    (closed,) = builder.add(Decimal(51), 1, ten + 61 * 10**9)
    assert closed.bar.close == Decimal(50)
    assert builder.add(Decimal(49), 1, ten + 5 * 10**9) == []
    assert builder.late == 1
    (closed,) = builder.flush()
    assert (closed.bar.low, closed.bar.high) == (Decimal(51), Decimal(51))


def test_minute_bars_compose_into_larger_bars_like_their_trades() -> None:
    """Composing minute bars gives the bars of the trades inside them."""
    day = date(2026, 11, 23)
    start = datetime.combine(day, time(9, 28), tzinfo=NEW_YORK)
    minutes = [
        Bar(
            symbol="TQQQ",
            start=start + timedelta(minutes=i),
            open=Decimal(50 + i),
            high=Decimal(52 + i),
            low=Decimal(49 + i),
            close=Decimal(51 + i),
            volume=10 * i,
        )
        for i in range(12)
    ]
    assert compose(minutes, 300, "regular") == [
        Bar(symbol="TQQQ", start=start + timedelta(minutes=2), open=Decimal(52),
            high=Decimal(58), low=Decimal(51), close=Decimal(57), volume=20 + 30 + 40 + 50 + 60),
        Bar(symbol="TQQQ", start=start + timedelta(minutes=7), open=Decimal(57),
            high=Decimal(63), low=Decimal(56), close=Decimal(62), volume=70 + 80 + 90 + 100 + 110),
    ]  # fmt: skip


@pytest.mark.parametrize("seconds", [0, -60, 7, 7200 * 5, DAY * 2, 3.5, True])
def test_a_size_no_bar_can_have_is_refused_by_name(seconds: object) -> None:
    """Bar sizes divide a day, or are a day."""
    with pytest.raises(BarError, match="bar size"):
        check_size(seconds)  # type: ignore[arg-type]  # the point of the test
