"""A bar's four trades counted at once leave the bars and the venue exactly as the trades one
by one would: ``BarBuilder.plan``/``take`` against ``add`` (closed bars equal to the last
digit, counters, the bar given closing as itself), ``Fanout.plan`` refusing when another
symbol's bar is due, and ``Engine.prints`` against ``on_trade``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import Bar, PlaceOrder, Side, TimeInForce, epoch_ns
from actors.domain.bars import (
    DAY,
    TRADE_STEP,
    BarBuilder,
    ClosedBar,
    Window,
    bar_path,
    bar_trades,
    window,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine

SIZES = (15, 60, 300, 3600, DAY)


@st.composite
def bar_runs(draw: st.DrawFn) -> list[Bar]:
    """Bars of one symbol in time order: minute starts (now and then off the minute, so that
    a bar's trades straddle a window), gaps of a minute to a day, around the sessions' edges,
    OHLC consistent or not, prices written with one or two decimals."""
    day = draw(st.sampled_from([date(2026, 11, 23), date(2026, 11, 25), date(2026, 3, 6)]))
    at = datetime.combine(day, draw(st.sampled_from([time(3, 58), time(9, 28), time(15, 58)])))
    at = at.replace(tzinfo=NEW_YORK).astimezone(UTC)
    bars = []
    for _ in range(draw(st.integers(1, 14))):
        # Few prices, most with a trailing zero: equal prices written two ways are common.
        cents = draw(
            st.lists(st.sampled_from([9_000, 9_010, 9_050, 9_090, 9_003]), min_size=4, max_size=4)
        )
        if draw(st.booleans()):
            open_, close = cents[0], cents[3]
            cents = [open_, max(cents), min(cents), close]
        prices = [Decimal(c).scaleb(-2) for c in cents]  # "90.50", never "90.5"
        prices = [p.normalize() if draw(st.booleans()) else p for p in prices]  # "90.5", "90.50"
        bars.append(
            Bar(
                symbol="TQQQ",
                start=at,
                open=prices[0],
                high=prices[1],
                low=prices[2],
                close=prices[3],
                volume=draw(st.integers(0, 2_000)),
            )
        )
        step = draw(st.sampled_from([60, 60, 60, 120, 30, 3600, 86_400]))
        at += timedelta(seconds=step)
    return bars


def _one_by_one(builder: BarBuilder, bars: list[Bar]) -> list[ClosedBar]:
    closed: list[ClosedBar] = []
    for bar in bars:
        for trade in bar_trades(bar):
            ts = epoch_ns(trade.at)
            closed += builder.close_due(ts)
            closed += builder.add(trade.price, trade.size, ts)
    return closed + builder.flush()


def _at_once(builder: BarBuilder, bars: list[Bar]) -> tuple[list[ClosedBar], int]:
    closed: list[ClosedBar] = []
    taken = 0
    for bar in bars:
        prices, sizes = bar_path(bar)
        first = epoch_ns(bar.start)
        closed += builder.close_due(first)
        planned = builder.plan(first, first + 45_000_000_000)
        if planned is not None:
            builder.take(planned, prices, sum(sizes), len(prices), bar)
            taken += 1
            continue
        trades = bar_trades(bar)
        closed += builder.add(trades[0].price, trades[0].size, first)
        for trade in trades[1:]:
            ts = epoch_ns(trade.at)
            closed += builder.close_due(ts)
            closed += builder.add(trade.price, trade.size, ts)
    return closed + builder.flush(), taken


@settings(max_examples=300, deadline=None)
@given(bars=bar_runs(), sizes=st.sets(st.sampled_from(SIZES), min_size=1, max_size=3))
@pytest.mark.parametrize("sessions", ["regular", "extended"])
def test_a_bar_taken_at_once_makes_the_bars_its_trades_make(
    sessions: str, bars: list[Bar], sizes: set[int]
) -> None:
    stepped = BarBuilder("TQQQ", sizes, sessions)  # type: ignore[arg-type]
    whole = BarBuilder("TQQQ", sizes, sessions)  # type: ignore[arg-type]
    expected = _one_by_one(stepped, bars)
    got, _ = _at_once(whole, bars)
    assert got == expected
    # To the last digit: the same Decimals as written (a bar given whole closes as itself
    # only when it is exactly the bar its trades make).
    assert [repr(c) for c in got] == [repr(c) for c in expected]
    assert (whole.late, whole.outside) == (stepped.late, stepped.outside)
    for c in got:  # every window as ``window`` finds it, however the builder found it
        found = window(epoch_ns(c.bar.start), c.seconds, sessions)  # type: ignore[arg-type]
        assert found == Window(epoch_ns(c.bar.start), c.end_ns)


def test_minute_bars_are_taken_whole_and_close_as_themselves() -> None:
    start = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 09:30 New York
    bars = [
        Bar(
            symbol="TQQQ",
            start=start + timedelta(minutes=i),
            open=Decimal("90.00"),
            high=Decimal("90.50"),
            low=Decimal("89.75"),
            close=Decimal("90.25"),
            volume=400,
        )
        for i in range(5)
    ]
    closed, taken = _at_once(BarBuilder("TQQQ", [60, 300], "regular"), bars)
    assert taken == 5
    assert [c.bar for c in closed if c.seconds == 60] == bars
    assert all(c.bar is b for c, b in zip(closed, bars, strict=False))
    five = [c.bar for c in closed if c.seconds == 300]
    assert len(five) == 1
    assert (five[0].volume, five[0].high, five[0].low) == (2000, Decimal("90.50"), Decimal("89.75"))


def test_the_trades_are_not_taken_at_once_across_a_minute_or_a_closing_bar() -> None:
    builder = BarBuilder("TQQQ", [60], "extended")
    first = epoch_ns(datetime(2026, 11, 23, 15, 0, 30, tzinfo=UTC))
    assert builder.plan(first, first + 45_000_000_000) is None  # into the next minute
    builder.add(Decimal(90), 1, first)
    assert builder.plan(first + 40_000_000_000, first + 85_000_000_000) is None


def test_engine_prints_move_what_each_trade_would_and_refuse_when_an_order_works() -> None:
    bar = Bar(
        symbol="TQQQ",
        start=datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
        open=Decimal("90.10"),
        high=Decimal("90.40"),
        low=Decimal("89.90"),
        close=Decimal("90.20"),
        volume=100,
    )
    trades = bar_trades(bar)
    one, other = Engine(), Engine()
    for trade in trades:
        one.on_trade(trade.symbol, trade.price, trade.size, trade.at)
    last = trades[-1]
    assert other.prints("TQQQ", trades[0].price, trades[0].at, last.price, last.at)
    assert (other.last, other.opens) == (one.last, one.opens)
    assert other.last_trade_at == one.last_trade_at
    assert other.last_trade_at is not None
    assert other.last_trade_at.tzinfo is NEW_YORK
    assert other.last_trade_given == last.at
    # A working order of the symbol: each trade must go through on_trade.
    other.place(
        PlaceOrder(
            ref="t:TQQQ:E.1:1",
            symbol="TQQQ",
            side=Side.BUY,
            quantity=1,
            limit=Decimal("50.00"),
            tif=TimeInForce.GTC,
        ),
        last.at,
    )
    later = bar.start + timedelta(minutes=1)
    assert not other.prints("TQQQ", bar.open, later, bar.close, later + TRADE_STEP * 3)
    assert other.last_trade_at == one.last_trade_at  # nothing moved
    # Across New York's midnight: refused too.
    night = datetime(2026, 11, 24, 4, 59, 30, tzinfo=UTC)  # 23:59:30 New York
    assert not Engine().prints("TQQQ", bar.open, night, bar.close, night + TRADE_STEP * 3)
