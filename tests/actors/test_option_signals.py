"""The options bot's signal rules (actors.options.signals): Wilder's RSI against hand-computed
values and an exact re-implementation; the scalp and the whale at their thresholds, their
warm-up and debounce, and against plain re-implementations under Hypothesis."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import Bar
from actors.domain.sessions import NEW_YORK, is_trading_day
from actors.options.signals import (
    Rsi,
    ScalpParams,
    ScalpRule,
    Signal,
    SignalError,
    WhaleParams,
    WhaleRule,
)

SYMBOL = "TQQQ"
MINUTES = datetime(2027, 3, 1, 14, 30, tzinfo=UTC)
"""The first minute bar's start (09:30 New York)."""


def minute_bars(closes: Sequence[int | str], volumes: Sequence[int]) -> list[Bar]:
    return [
        Bar(
            symbol=SYMBOL,
            start=MINUTES + timedelta(minutes=i),
            open=Decimal(close),
            high=Decimal(close),
            low=Decimal(close),
            close=Decimal(close),
            volume=volume,
        )
        for i, (close, volume) in enumerate(zip(closes, volumes, strict=True))
    ]


def hour(day: date, slot: int) -> datetime:
    """The start of the regular session's ``slot``-th 60-minute bar of ``day``, in UTC."""
    clock = time(9, 30) if slot == 0 else time(9 + slot)
    return datetime.combine(day, clock, tzinfo=NEW_YORK).astimezone(UTC)


def hour_bar(start: datetime, volume: int, open_: str = "50", close: str = "51") -> Bar:
    low, high = sorted((Decimal(open_), Decimal(close)))
    return Bar(
        symbol=SYMBOL,
        start=start,
        open=Decimal(open_),
        high=high,
        low=low,
        close=Decimal(close),
        volume=volume,
    )


def replay(rule: WhaleRule, days: Sequence[date], volume: int = 100, live: bool = False) -> None:
    """Seven bars of ``volume`` on each of ``days`` (none may signal)."""
    for day in days:
        for slot in range(7):
            assert rule.update(hour_bar(hour(day, slot), volume), live=live) is None


# -- RSI -----------------------------------------------------------------------------------------


def exact_rsi(closes: Sequence[Decimal], period: int) -> list[Fraction | None]:
    """Wilder's RSI at every close, from the whole series, in exact fractions."""
    values: list[Fraction | None] = [None] * len(closes)
    changes = [Fraction(b) - Fraction(a) for a, b in itertools.pairwise(closes)]
    if len(changes) < period:
        return values
    gains = [max(c, Fraction(0)) for c in changes]
    losses = [max(-c, Fraction(0)) for c in changes]
    gain, loss = (
        sum(gains[:period], Fraction(0)) / period,
        sum(losses[:period], Fraction(0)) / period,
    )
    for i in range(period, len(closes)):
        if i > period:
            gain = (gain * (period - 1) + gains[i - 1]) / period
            loss = (loss * (period - 1) + losses[i - 1]) / period
        if loss == 0:
            values[i] = Fraction(100 if gain else 50)
        else:
            values[i] = 100 - 100 / (1 + gain / loss)
    return values


def test_rsi_matches_a_hand_computed_wilder_series() -> None:
    """Period 3 over 44, 45, 46, 45, 47, 46: 200/3, 250/3, 2000/33 from the fourth close."""
    rsi = Rsi(3)
    got = [rsi.update(Decimal(c)) for c in (44, 45, 46, 45, 47, 46)]
    # gains 1, 1, 0 and losses 0, 0, 1: 2/3 against 1/3; then +2: 10/9 against 2/9; then -1:
    # 20/27 against 13/27
    assert got[:3] == [None, None, None]
    assert got[3:] == [
        pytest.approx(100 * 2 / 3, abs=1e-12),
        pytest.approx(100 * 10 / 12, abs=1e-12),
        pytest.approx(100 * 20 / 33, abs=1e-12),
    ]
    assert rsi.value == got[-1]


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        ((10, 10, 10), 50.0),
        ((10, 11, 12), 100.0),
        ((12, 11, 10), 0.0),
        ((10, 11, 10), 50.0),
    ],
)
def test_rsi_extremes_without_losses_gains_or_changes(
    closes: tuple[int, ...], expected: float
) -> None:
    """No loss is 100, no gain 0, no change at all 50."""
    rsi = Rsi(2)
    for close in closes:
        rsi.update(Decimal(close))
    assert rsi.value == expected


def test_rsi_has_no_value_before_period_plus_one_closes() -> None:
    """The first RSI comes with close number period + 1."""
    rsi = Rsi(14)
    values = [rsi.update(Decimal(100 + i % 3)) for i in range(16)]
    assert values[:14] == [None] * 14
    assert values[14] is not None
    assert values[15] is not None


@pytest.mark.parametrize("period", [0, -1, True, 2.5])
def test_rsi_period_must_be_a_whole_number_of_closes(period: Any) -> None:
    """A period that is not a whole number >= 1 is refused, named."""
    with pytest.raises(SignalError, match="period must be a whole number"):
        Rsi(period)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.decimals(min_value=1, max_value=300, places=2), max_size=40),
)
def test_rsi_equals_an_exact_whole_series_implementation(
    period: int, closes: list[Decimal]
) -> None:
    """The incremental float RSI is the exact one's to 1e-9 at every close."""
    rsi = Rsi(period)
    for close, expected in zip(closes, exact_rsi(closes, period), strict=True):
        got = rsi.update(close)
        if expected is None:
            assert got is None
        else:
            assert got == pytest.approx(float(expected), abs=1e-9)


# -- scalp ---------------------------------------------------------------------------------------

SCALP_TIGHT = ScalpParams(rsi_period=2, volume_window=2)
"""RSI over 2 changes, volume over the 2 bars before: a cross can come on the fourth bar."""
DOWN_THEN_UP = (100, 93, 86, 89)
"""RSI(2): none, none, 0, then a gain of 1.5 against a loss of 3.5: exactly 30.0."""
UP_THEN_DOWN = (100, 107, 114, 111)
"""RSI(2): none, none, 100, then a gain of 3.5 against a loss of 1.5: exactly 70.0."""


def test_scalp_is_bullish_when_rsi_reaches_oversold_exactly() -> None:
    """A previous RSI below 30 and this one at exactly 30 crosses up, with the numbers."""
    rule = ScalpRule(SCALP_TIGHT)
    *history, last = minute_bars(DOWN_THEN_UP, (100, 100, 100, 101))
    assert [rule.update(bar) for bar in history] == [None, None, None]
    signal = rule.update(last)
    assert signal == Signal(
        rule="scalp",
        symbol=SYMBOL,
        side="bullish",
        at=last.start,
        reason="RSI 0.00 -> 30.00 crossed up out of 30, volume 101 > 1.0 x 2-bar mean 100.0",
        volume=101,
        mean_volume=100.0,
        rsi=30.0,
        previous_rsi=0.0,
    )
    assert signal.volume_ratio == pytest.approx(1.01)


def test_scalp_does_not_signal_from_an_rsi_exactly_at_oversold() -> None:
    """From exactly 30 up to 41.7 is no cross: the previous RSI was not below 30."""
    rule = ScalpRule(SCALP_TIGHT)
    for bar in minute_bars((*DOWN_THEN_UP, 90), (100, 100, 100, 101, 10_000)):
        signal = rule.update(bar)
    assert rule.rsi == pytest.approx(100 * 1.25 / 3)
    assert signal is None


def test_scalp_is_bearish_when_rsi_falls_to_overbought_exactly() -> None:
    """A previous RSI above 70 and this one at exactly 70 crosses down; from exactly 70 on
    down is no cross."""
    rule = ScalpRule(SCALP_TIGHT)
    signals = [
        rule.update(bar) for bar in minute_bars((*UP_THEN_DOWN, 110), (100, 100, 100, 101, 10_000))
    ]
    assert signals[:3] == [None, None, None]
    assert signals[3] is not None
    assert (signals[3].side, signals[3].rsi, signals[3].previous_rsi) == ("bearish", 70.0, 100.0)
    assert signals[3].reason == (
        "RSI 100.00 -> 70.00 crossed down out of 70, volume 101 > 1.0 x 2-bar mean 100.0"
    )
    assert signals[4] is None


@pytest.mark.parametrize("closes", [DOWN_THEN_UP, UP_THEN_DOWN])
def test_scalp_cross_without_volume_confirmation_is_no_signal(closes: tuple[int, ...]) -> None:
    """A cross on a bar with less volume than the mean of the bars before is no signal."""
    rule = ScalpRule(SCALP_TIGHT)
    assert [rule.update(bar) for bar in minute_bars(closes, (100, 100, 100, 50))] == [None] * 4


@pytest.mark.parametrize(("volume", "signals"), [(149, False), (150, False), (151, True)])
def test_scalp_volume_must_be_strictly_above_factor_times_mean(volume: int, signals: bool) -> None:
    """With a factor of 1.5 over a mean of 100, a volume of 150 does not confirm, 151 does."""
    rule = ScalpRule(ScalpParams(rsi_period=2, volume_window=2, volume_factor=Decimal("1.5")))
    results = [rule.update(bar) for bar in minute_bars(DOWN_THEN_UP, (100, 100, 100, volume))]
    assert (results[-1] is not None) is signals


def test_scalp_volume_mean_is_of_the_window_before_the_bar() -> None:
    """The mean is of the 2 bars before (100, 100): not the bar itself (125) nor an older one
    (400 over 3)."""
    rule = ScalpRule(ScalpParams(rsi_period=2, volume_window=2, volume_factor=Decimal("1.4")))
    *_, signal = [rule.update(bar) for bar in minute_bars(DOWN_THEN_UP, (1000, 100, 100, 150))]
    assert signal is not None
    assert signal.mean_volume == 100.0


def test_scalp_warmup_is_the_first_bar_that_can_signal() -> None:
    """warmup is max(rsi_period + 2, volume_window + 1); a cross before it is no signal, on
    it is one."""
    assert ScalpRule(ScalpParams()).warmup == 21
    assert ScalpRule(ScalpParams(rsi_period=14, volume_window=5)).warmup == 16
    short = ScalpRule(ScalpParams(rsi_period=2, volume_window=4))
    assert short.warmup == 5
    # The cross on bar 4 has 3 bars before it: not the 4 of the window.
    assert [short.update(b) for b in minute_bars(DOWN_THEN_UP, (100, 100, 100, 1000))] == [None] * 4
    # RSI(2) of 100, 100, 93, 86, 89: 0, 0, then 36.4 on bar 5, the warm-up's.
    rule = ScalpRule(ScalpParams(rsi_period=2, volume_window=4))
    signals = [rule.update(b) for b in minute_bars((100, *DOWN_THEN_UP), (100, 100, 100, 100, 101))]
    assert signals[:4] == [None] * 4
    assert signals[4] is not None
    assert signals[4].side == "bullish"


def test_scalp_history_never_signals_but_warms_up() -> None:
    """With live=False a cross is no signal; the RSI and the volumes still move."""
    rule = ScalpRule(SCALP_TIGHT)
    bars = minute_bars((*DOWN_THEN_UP, 80, 95), (100, 100, 100, 101, 100, 1000))
    assert [rule.update(bar, live=False) for bar in bars[:4]] == [None] * 4
    assert rule.rsi == 30.0
    assert rule.update(bars[4]) is None  # back down to 10.7
    signal = rule.update(bars[5])
    assert signal is not None
    assert signal.previous_rsi == pytest.approx(100 * 0.75 / 7)
    assert signal.mean_volume == 100.5


def test_scalp_ignores_a_repeated_bar() -> None:
    """A bar that does not start after the previous one changes nothing and is counted."""
    rule = ScalpRule(SCALP_TIGHT)
    bars = minute_bars(DOWN_THEN_UP, (100, 100, 100, 101))
    for bar in bars[:3]:
        rule.update(bar)
    assert rule.update(bars[2]) is None
    assert rule.update(bars[1]) is None
    assert rule.repeats == 2
    assert rule.update(bars[3]) is not None


@pytest.mark.parametrize(
    "make", [lambda: ScalpRule(ScalpParams()), lambda: WhaleRule(WhaleParams())]
)
def test_a_rule_follows_one_symbol(make: Any) -> None:
    """A bar of another symbol than the first is refused, both named."""
    rule = make()
    bar = minute_bars((100,), (100,))[0]
    rule.update(bar)
    with pytest.raises(SignalError, match="of TQQQ: given a bar of QQQ"):
        rule.update(attrs.evolve(bar, symbol="QQQ", start=bar.start + timedelta(days=1)))
    assert rule.symbol == SYMBOL


@pytest.mark.parametrize(
    "make", [lambda: ScalpRule(ScalpParams()), lambda: WhaleRule(WhaleParams())]
)
def test_a_rule_refuses_a_naive_bar_start(make: Any) -> None:
    """A naive start has no New York date and no place in time: refused."""
    bar = minute_bars((100,), (100,))[0]
    with pytest.raises(SignalError, match="naive start"):
        make().update(attrs.evolve(bar, start=bar.start.replace(tzinfo=None)))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"rsi_period": 0}, "rsi_period must be a whole number >= 1, got 0"),
        ({"rsi_period": True}, "rsi_period must be a whole number >= 1, got True"),
        ({"volume_window": 0}, "volume_window must be a whole number >= 1, got 0"),
        ({"oversold": 0}, "oversold must be an RSI level strictly between 0 and 100, got 0"),
        ({"overbought": 100}, "overbought must be an RSI level"),
        ({"oversold": math.nan}, "oversold must be an RSI level"),
        (
            {"oversold": 70, "overbought": 70},
            r"oversold \(70\) must be less than overbought \(70\)",
        ),
        ({"oversold": 75}, r"oversold \(75\) must be less than overbought \(70\)"),
        ({"volume_factor": Decimal(0)}, r"volume_factor must be a Decimal > 0, got Decimal\('0'\)"),
        ({"volume_factor": Decimal("NaN")}, "volume_factor must be a Decimal > 0"),
        ({"volume_factor": 1.5}, "volume_factor must be a Decimal > 0, got 1.5"),
    ],
)
def test_scalp_params_name_the_field_they_refuse(fields: dict[str, Any], named: str) -> None:
    """Each refused setting's error names the field and the value."""
    with pytest.raises(SignalError, match=named):
        ScalpParams(**fields)


def plain_rsi(closes: Sequence[Decimal], period: int) -> list[float | None]:
    """The documented float RSI at every close, from the whole series."""
    values: list[float | None] = [None] * len(closes)
    changes = [float(b - a) for a, b in itertools.pairwise(closes)]
    gains = [c if c > 0 else 0.0 for c in changes]
    losses = [-c if c < 0 else 0.0 for c in changes]
    if len(changes) < period:
        return values
    gain, loss = sum(gains[:period]) / period, sum(losses[:period]) / period
    for i in range(period, len(closes)):
        if i > period:
            gain = (gain * (period - 1) + gains[i - 1]) / period
            loss = (loss * (period - 1) + losses[i - 1]) / period
        values[i] = 50.0 if gain + loss == 0 else 100.0 * gain / (gain + loss)
    return values


def plain_scalp(bars: Sequence[Bar], params: ScalpParams) -> list[tuple[int, str]]:
    """The scalp's signals as (bar index, side), from the whole series."""
    rsis = plain_rsi([b.close for b in bars], params.rsi_period)
    window = params.volume_window
    signals = []
    for i, bar in enumerate(bars):
        previous, now = rsis[i - 1] if i else None, rsis[i]
        if previous is None or now is None or i < window:
            continue
        mean = Fraction(sum(b.volume for b in bars[i - window : i]), window)
        if not bar.volume > Fraction(params.volume_factor) * mean:
            continue
        if previous < params.oversold <= now:
            signals.append((i, "bullish"))
        elif previous > params.overbought >= now:
            signals.append((i, "bearish"))
    return signals


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        ScalpParams,
        rsi_period=st.integers(min_value=1, max_value=5),
        oversold=st.sampled_from([20.0, 30.0, 40.0]),
        overbought=st.sampled_from([60.0, 70.0, 80.0]),
        volume_window=st.integers(min_value=1, max_value=5),
        volume_factor=st.sampled_from([Decimal("0.5"), Decimal("1.0"), Decimal("1.5")]),
    ),
    st.lists(
        st.tuples(st.integers(min_value=-4, max_value=4), st.integers(min_value=0, max_value=6)),
        max_size=50,
    ),
)
def test_scalp_equals_a_plain_whole_series_rule(
    params: ScalpParams, steps: list[tuple[int, int]]
) -> None:
    """The incremental scalp signals where a plain loop over the series does, never before its
    warm-up."""
    closes = [250 + sum(step for step, _ in steps[: i + 1]) for i in range(len(steps))]
    bars = minute_bars(closes, [volume * 50 for _, volume in steps])
    rule = ScalpRule(params)
    got = [(i, s.side) for i, bar in enumerate(bars) if (s := rule.update(bar)) is not None]
    assert got == plain_scalp(bars, params)
    assert all(i + 1 >= rule.warmup for i, _ in got)


# -- whale ---------------------------------------------------------------------------------------

MONDAY = date(2027, 3, 1)
WEEK = [MONDAY + timedelta(days=i) for i in range(5)]


@pytest.mark.parametrize(("volume", "side"), [(299, None), (300, "bullish")])
def test_whale_spike_is_volume_at_least_multiple_times_mean(volume: int, side: str | None) -> None:
    """Over a mean of 100, 3 x the mean is a spike (>=), one share less is not."""
    rule = WhaleRule(WhaleParams(lookback_days=2))
    replay(rule, WEEK[:2])
    signal = rule.update(hour_bar(hour(WEEK[2], 0), volume))
    assert (signal and signal.side) == side
    if signal is not None:
        assert signal == Signal(
            rule="whale",
            symbol=SYMBOL,
            side="bullish",
            at=hour(WEEK[2], 0),
            reason=(
                "volume 300 >= 3 x mean 100.0 of the 14 60-minute bars of 2 trading dates "
                "from 2027-03-01, close 51 > open 50"
            ),
            volume=300,
            mean_volume=100.0,
        )
        assert rule.last_signal == hour(WEEK[2], 0)


@pytest.mark.parametrize(
    ("open_", "close", "side"), [("50", "49.99", "bearish"), ("50", "50.00", None)]
)
def test_whale_side_is_the_bars_direction_and_a_doji_is_none(
    open_: str, close: str, side: str | None
) -> None:
    """A spike closing below its open is bearish; one closing at its open is no signal and
    does not debounce."""
    rule = WhaleRule(WhaleParams(lookback_days=1))
    replay(rule, WEEK[:1])
    signal = rule.update(hour_bar(hour(WEEK[1], 0), 10_000, open_, close))
    assert (signal and signal.side) == side
    if side is None:
        assert rule.last_signal is None
        assert rule.update(hour_bar(hour(WEEK[1], 1), 10_000)) is not None


def test_whale_needs_lookback_days_earlier_dates() -> None:
    """With one earlier date of two no bar is a spike, its own date's bars not counting; with
    two it is."""
    rule = WhaleRule(WhaleParams(lookback_days=2))
    replay(rule, WEEK[:1])
    assert [rule.update(hour_bar(hour(WEEK[1], slot), 10_000)) for slot in range(7)] == [None] * 7
    assert rule.update(hour_bar(hour(WEEK[2], 0), 1_000_000)) is not None


def test_whale_lookback_counts_dates_with_bars_across_a_weekend_and_holiday() -> None:
    """Tuesday after a weekend and Martin Luther King Jr. Day looks back to Thursday and
    Friday, not to the Wednesday before them nor to the empty calendar days."""
    wednesday, thursday, friday, tuesday = (date(2027, 1, d) for d in (13, 14, 15, 19))
    assert not is_trading_day(date(2027, 1, 18))
    rule = WhaleRule(WhaleParams(lookback_days=2))
    replay(rule, [wednesday], volume=1000)
    replay(rule, [thursday, friday], volume=100)
    signal = rule.update(hour_bar(hour(tuesday, 0), 300))
    assert signal is not None
    assert signal.mean_volume == 100.0
    assert "of the 14 60-minute bars of 2 trading dates from 2027-01-14" in signal.reason


def test_whale_debounce_is_days_of_24_hours_from_the_last_signal() -> None:
    """After a signal Tuesday 10:00, spikes on Wednesday and on Friday 09:59 (3 days less a
    minute) are none and do not move it; Friday 10:00, 3 days on, signals."""
    rule = WhaleRule(WhaleParams(lookback_days=1, debounce_days=3))
    replay(rule, WEEK[:1])
    first = hour(WEEK[1], 1)
    assert rule.update(hour_bar(first, 10_000)) is not None
    assert rule.last_signal == first
    assert rule.update(hour_bar(hour(WEEK[2], 1), 1_000_000)) is None
    assert rule.update(hour_bar(first + timedelta(days=3, minutes=-1), 10_000_000)) is None
    assert rule.last_signal == first
    signal = rule.update(hour_bar(first + timedelta(days=3), 10_000_000))
    assert signal is not None
    assert rule.last_signal == signal.at == first + timedelta(days=3)


def test_whale_debounce_counts_hours_across_a_clock_change() -> None:
    """From Friday 10:00 EST to Monday 10:00 EDT (New York times) is 71 hours: debounced;
    Monday 11:00 EDT is 72 hours on: a signal."""
    friday, monday = date(2027, 3, 12), date(2027, 3, 15)
    last = datetime.combine(friday, time(10), tzinfo=NEW_YORK)
    rule = WhaleRule(WhaleParams(lookback_days=1), last_signal=last)
    for slot in range(7):
        start = hour(friday, slot).astimezone(NEW_YORK)
        rule.update(hour_bar(start, 100), live=False)
    ten, eleven = (datetime.combine(monday, time(h), tzinfo=NEW_YORK) for h in (10, 11))
    assert rule.update(hour_bar(ten, 10_000)) is None
    assert rule.update(hour_bar(eleven, 10_000)) is not None


def test_whale_restores_its_debounce_from_the_host() -> None:
    """A rule built with the last signal's time debounces from it, after a history replay."""
    last = hour(WEEK[0], 3)
    rule = WhaleRule(WhaleParams(lookback_days=1), last_signal=last)
    assert rule.last_signal == last
    replay(rule, WEEK[:3])
    assert rule.update(hour_bar(last + timedelta(days=3, minutes=-1), 10_000)) is None
    assert rule.update(hour_bar(last + timedelta(days=3), 10_000)) is not None
    assert rule.last_signal == last + timedelta(days=3)


def test_whale_history_replay_neither_signals_nor_debounces() -> None:
    """Spikes replayed with live=False are no signals and leave the last signal where the
    host put it; the first live spike then signals."""
    for last in (None, hour(WEEK[0], 0) - timedelta(days=5)):
        rule = WhaleRule(WhaleParams(lookback_days=1), last_signal=last)
        replay(rule, WEEK[:1])
        assert rule.update(hour_bar(hour(WEEK[1], 0), 10_000), live=False) is None
        assert rule.last_signal == last
        assert rule.update(hour_bar(hour(WEEK[1], 1), 10_000)) is not None


def test_whale_warmup_bars_are_seven_a_date_and_the_bar_itself() -> None:
    """lookback_days x 7 + 1; with whole regular sessions the bar after them can signal."""
    assert WhaleRule(WhaleParams()).warmup_bars == 141
    rule = WhaleRule(WhaleParams(lookback_days=2))
    assert rule.warmup_bars == 15
    replay(rule, WEEK[:2])
    assert rule.update(hour_bar(hour(WEEK[2], 0), 300)) is not None


def test_whale_ignores_a_repeated_bar() -> None:
    """A repeated bar counts neither towards the mean nor as a spike."""
    rule = WhaleRule(WhaleParams(lookback_days=1))
    replay(rule, WEEK[:1])
    assert rule.update(hour_bar(hour(WEEK[0], 6), 1_000_000)) is None
    assert rule.repeats == 1
    signal = rule.update(hour_bar(hour(WEEK[1], 0), 300))
    assert signal is not None
    assert signal.mean_volume == 100.0


def test_whale_bar_without_volume_is_no_spike() -> None:
    """Over a mean of 0 a bar with no volume is no spike, one with volume is."""
    rule = WhaleRule(WhaleParams(lookback_days=1))
    replay(rule, WEEK[:1], volume=0)
    assert rule.update(hour_bar(hour(WEEK[1], 0), 0)) is None
    signal = rule.update(hour_bar(hour(WEEK[1], 1), 1))
    assert signal is not None
    assert signal.volume_ratio == math.inf


def test_whale_refuses_a_naive_last_signal() -> None:
    """The host's last signal must be aware: refused, named."""
    with pytest.raises(SignalError, match="last_signal must be an aware datetime"):
        WhaleRule(WhaleParams(), last_signal=datetime(2027, 3, 1, 10))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"volume_multiple": Decimal(0)}, "volume_multiple must be a Decimal > 0, got Decimal"),
        ({"volume_multiple": Decimal("-3")}, "volume_multiple must be a Decimal > 0"),
        ({"volume_multiple": 3}, "volume_multiple must be a Decimal > 0, got 3"),
        ({"lookback_days": 0}, "lookback_days must be a whole number >= 1, got 0"),
        ({"lookback_days": 1.5}, "lookback_days must be a whole number >= 1, got 1.5"),
        ({"debounce_days": 0}, "debounce_days must be a whole number >= 1, got 0"),
    ],
)
def test_whale_params_name_the_field_they_refuse(fields: dict[str, Any], named: str) -> None:
    """Each refused setting's error names the field and the value."""
    with pytest.raises(SignalError, match=named):
        WhaleParams(**fields)


def new_york_date(bar: Bar) -> date:
    return bar.start.astimezone(NEW_YORK).date()


def plain_whale(
    bars: Sequence[Bar], lives: Sequence[bool], params: WhaleParams, last: datetime | None
) -> tuple[list[tuple[int, str]], datetime | None]:
    """The whale's signals as (bar index, side) and its last signal, from the whole series."""
    signals = []
    dates = [new_york_date(b) for b in bars]
    for i, (bar, live) in enumerate(zip(bars, lives, strict=True)):
        earlier = sorted(set(dates[:i]) - {dates[i]})
        if not live or len(earlier) < params.lookback_days:
            continue
        chosen = set(earlier[-params.lookback_days :])
        volumes = [b.volume for b, d in zip(bars[:i], dates, strict=False) if d in chosen]
        mean = Fraction(sum(volumes), len(volumes))
        if bar.volume == 0 or bar.volume < Fraction(params.volume_multiple) * mean:
            continue
        if bar.close == bar.open:
            continue
        if last is not None and bar.start - last < timedelta(hours=24 * params.debounce_days):
            continue
        last = bar.start
        signals.append((i, "bullish" if bar.close > bar.open else "bearish"))
    return signals, last


WHALE_BARS = st.sampled_from(
    [
        (volume, close, live)
        for volume in (0, 50, 100, 150, 200, 300, 600, 2000)
        for close in ("49", "50", "51")
        for live in (True, True, False)
    ]
)
"""A bar's volume, close (its open is 50) and whether it is live (history one time in three)."""


@st.composite
def whale_days(draw: st.DrawFn) -> list[tuple[Bar, bool]]:
    """Dates 1 to 4 days apart, each with some of the session's seven bars, live or not."""
    bars = []
    day = MONDAY
    for _ in range(draw(st.integers(min_value=0, max_value=9))):
        day += timedelta(days=draw(st.integers(min_value=1, max_value=4)))
        slots = draw(st.integers(min_value=1, max_value=127))
        for slot in range(7):
            if slots >> slot & 1:
                volume, close, live = draw(WHALE_BARS)
                bars.append((hour_bar(hour(day, slot), volume, "50", close), live))
    return bars


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        WhaleParams,
        volume_multiple=st.sampled_from([Decimal(1), Decimal("1.5"), Decimal(2), Decimal(3)]),
        lookback_days=st.integers(min_value=1, max_value=3),
        debounce_days=st.integers(min_value=1, max_value=3),
    ),
    whale_days(),
    st.one_of(st.none(), st.integers(min_value=0, max_value=300)),
)
def test_whale_equals_a_plain_whole_series_rule(
    params: WhaleParams, days: list[tuple[Bar, bool]], hours_before: int | None
) -> None:
    """The incremental whale signals, and debounces, where a plain loop over the series does,
    history (live=False) mixed in anywhere."""
    last = None if hours_before is None else hour(MONDAY, 0) + timedelta(hours=hours_before)
    bars, lives = [bar for bar, _ in days], [live for _, live in days]
    rule = WhaleRule(params, last_signal=last)
    got = [
        (i, s.side)
        for i, (bar, live) in enumerate(days)
        if (s := rule.update(bar, live=live)) is not None
    ]
    assert (got, rule.last_signal) == plain_whale(bars, lives, params, last)
