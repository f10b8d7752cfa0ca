"""A backtest's figures: against empyrical-reloaded on the same daily returns, by hand on small
curves and trade lists, and never NaN or a crash on the degenerate ones."""

from __future__ import annotations

import datetime as dt
import json
import math

import attrs
import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backtest.metrics import (
    Curve,
    CurveError,
    Metrics,
    RoundTrip,
    buy_and_hold,
    compute,
    daily_returns,
    drawdown,
    monthly_returns,
)
from tests.app.backtest.curves import NS, daily_curve, minute_curve

DAY = 86_400 * NS
YEAR_DAYS = 365.25


def _metrics(
    curve: Curve, risk_free: float = 0.0, trades: list[RoundTrip] | None = None
) -> Metrics:
    return compute(
        curve,
        trades or [],
        exposure=np.ones(len(curve), dtype=bool),
        traded_notional=0.0,
        risk_free=risk_free,
    )


def _same(ours: float | None, theirs: float) -> bool:
    if ours is None:
        return not math.isfinite(theirs)
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)


def _returns_of(values: np.ndarray) -> pd.Series:
    # The test's own daily returns (one point a day), not our daily_returns().
    return pd.Series(values[1:] / values[:-1] - 1.0)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    days=st.integers(3, 700),
    drift=st.sampled_from([-0.001, 0.0, 0.0004, 0.002]),
    vol=st.sampled_from([0.002, 0.01, 0.03]),
    risk_free=st.sampled_from([0.0, 0.02, 0.05]),
)
def test_daily_figures_match_empyrical_on_the_same_returns(
    seed: int, days: int, drift: float, vol: float, risk_free: float
) -> None:
    """Sharpe, Sortino, volatility, max drawdown, CAGR and Calmar equal empyrical's on a daily
    curve, the annual risk-free rate compounded to a daily one."""
    curve = daily_curve(seed, days, drift, vol)
    ours = _metrics(curve, risk_free)
    returns = _returns_of(curve.value)
    rf_daily = (1.0 + risk_free) ** (1.0 / 252) - 1.0
    # empyrical counts years as returns / 252; ours are calendar years: tell it ours.
    years = (curve.ts_ns[-1] - curve.ts_ns[0]) / DAY / YEAR_DAYS
    per_year = len(returns) / years
    assert _same(ours.sharpe, empyrical.sharpe_ratio(returns, risk_free=rf_daily))
    assert _same(ours.sortino, empyrical.sortino_ratio(returns, required_return=rf_daily))
    assert _same(ours.annual_volatility, empyrical.annual_volatility(returns))
    assert _same(ours.max_drawdown, empyrical.max_drawdown(returns))
    assert _same(ours.cagr, empyrical.annual_return(returns, annualization=per_year))
    assert _same(ours.calmar, empyrical.calmar_ratio(returns, annualization=per_year))


@pytest.mark.parametrize("risk_free", [0.0, 0.04])
def test_minute_curve_daily_figures_are_each_new_york_days_last_point(risk_free: float) -> None:
    """On minute points across a DST change, Sharpe and Sortino are empyrical's on the returns
    of each New York day's last value (pandas' time zones, not ours), the first day measured
    from the first point; the drawdown of every point is at least as deep as the daily one."""
    curve = minute_curve(3, 390 * 60, start="2024-02-01")
    ours = _metrics(curve, risk_free)
    stamps = pd.to_datetime(curve.ts_ns, utc=True).tz_convert("America/New_York")
    closes = pd.Series(curve.value, index=stamps).groupby(stamps.date).last()
    values = np.concatenate([[curve.value[0]], closes.to_numpy()])
    returns = _returns_of(values)
    rf_daily = (1.0 + risk_free) ** (1.0 / 252) - 1.0
    assert ours.trading_days == len(closes) == 60
    assert _same(ours.sharpe, empyrical.sharpe_ratio(returns, risk_free=rf_daily))
    assert _same(ours.sortino, empyrical.sortino_ratio(returns, required_return=rf_daily))
    assert _same(ours.annual_volatility, empyrical.annual_volatility(returns))
    assert ours.max_drawdown <= empyrical.max_drawdown(returns)


def test_a_new_york_day_is_new_yorks_on_both_sides_of_a_dst_change() -> None:
    """04:30 UTC is the evening before in New York in winter (UTC-5: 23:30) and after midnight in
    summer (UTC-4: 00:30): daily returns group the points as pandas' time zones do."""
    moments = [
        "2024-03-07T21:00",
        "2024-03-08T04:30",  # 23:30 on the 7th in New York
        "2024-03-08T21:00",
        "2024-03-12T21:00",
        "2024-03-13T04:30",  # 00:30 on the 13th in New York
        "2024-03-13T21:00",
        "2024-11-01T03:59",  # 23:59 on 31 October
        "2024-11-01T04:00",  # 00:00 on 1 November
        "2024-11-04T04:59",  # 23:59 on 3 November (UTC-5 now)
        "2024-11-04T05:00",
    ]
    ts = np.array([np.datetime64(m, "ns").astype(np.int64) for m in moments])
    curve = Curve(ts, 100.0 + np.arange(len(ts), dtype=np.float64) ** 2)
    stamps = pd.to_datetime(ts, utc=True).tz_convert("America/New_York")
    closes = pd.Series(curve.value, index=stamps).groupby(stamps.date).last().to_numpy()
    values = np.concatenate([[curve.value[0]], closes])
    np.testing.assert_allclose(daily_returns(curve), values[1:] / values[:-1] - 1.0, rtol=1e-15)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), points=st.integers(2, 3_000))
def test_daily_returns_compound_to_the_total_return(seed: int, points: int) -> None:
    """The daily returns chain over the whole curve, first point to last."""
    curve = minute_curve(seed, points)
    ours = _metrics(curve)
    assert ours.total_return is not None
    assert math.isclose(
        float(np.prod(1.0 + daily_returns(curve))) - 1.0, ours.total_return, abs_tol=1e-12
    )


def test_round_trip_figures_by_hand() -> None:
    """Hit rate, profit factor, average win and loss per round trip; a zero P&L counts as a
    trade and neither a win nor a loss."""
    pnls = [100.0, -50.0, 0.0, 30.0, -20.0]
    trades = [
        RoundTrip(
            symbol="TQQQ",
            entry_ns=i * DAY,
            exit_ns=i * DAY + (i + 1) * DAY // 2,
            quantity=10.0,
            entry_price=50.0,
            exit_price=50.0 + pnl / 10.0,
            pnl=pnl,
        )
        for i, pnl in enumerate(pnls)
    ]
    ours = _metrics(daily_curve(1, 10), trades=trades)
    assert ours.trades == 5
    assert ours.hit_rate == pytest.approx(2 / 5)
    assert ours.profit_factor == pytest.approx(130 / 70)
    assert ours.average_win == pytest.approx(65.0)
    assert ours.average_loss == pytest.approx(-35.0)
    assert ours.win_loss_ratio == pytest.approx(65 / 35)
    assert ours.average_holding_days == pytest.approx((0.5 + 1.0 + 1.5 + 2.0 + 2.5) / 5)


def test_only_winning_trades_leave_the_loss_figures_undefined() -> None:
    """No losing trade: the profit factor and the win/loss ratio have no denominator."""
    trade = RoundTrip(
        symbol="SPY", entry_ns=0, exit_ns=DAY, quantity=1, entry_price=1, exit_price=2, pnl=1.0
    )
    ours = _metrics(daily_curve(1, 5), trades=[trade, trade])
    assert (ours.hit_rate, ours.average_win) == (1.0, 1.0)
    assert ours.profit_factor is ours.average_loss is ours.win_loss_ratio is None


def test_exposure_is_the_fraction_of_points_in_the_market() -> None:
    """One bool per point; the fraction of them true."""
    curve = daily_curve(1, 4)
    ours = compute(curve, [], exposure=[True, False, True, True], traded_notional=0.0)
    assert ours.exposure == 0.75


def test_turnover_is_traded_notional_over_mean_equity_a_year() -> None:
    """Two points 365.25 days apart, equity 100 then 300 (mean 200), 1,000 traded: 5 a year;
    the same over two years: 2.5."""
    for years, expected in ((1, 5.0), (2, 2.5)):
        curve = Curve([0, int(years * YEAR_DAYS * DAY)], [100.0, 300.0])
        ours = compute(curve, [], exposure=[False, True], traded_notional=1_000.0)
        assert ours.turnover == pytest.approx(expected)


def _days(values: list[float]) -> Curve:
    return Curve([i * DAY for i in range(len(values))], values)


def _utc_day(i: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=i)


def test_max_drawdown_peak_trough_and_recovery_by_hand() -> None:
    """From the high of day 1 (120) to day 2 (90): -25 %, back at 120 on day 4, 3 days long."""
    ours = _metrics(_days([100.0, 120.0, 90.0, 110.0, 120.0, 130.0]))
    assert ours.max_drawdown == pytest.approx(-0.25)
    assert ours.max_drawdown_peak == _utc_day(1)
    assert ours.max_drawdown_trough == _utc_day(2)
    assert ours.max_drawdown_recovery == _utc_day(4)
    assert ours.max_drawdown_days == 3.0
    assert ours.calmar is not None
    assert ours.cagr is not None
    assert ours.calmar == pytest.approx(ours.cagr / 0.25)


def test_a_drawdown_never_recovered_lasts_to_the_end() -> None:
    """No recovery: the recovery date is None and the length runs from the peak (the last point
    at the high before the trough) to the last point."""
    ours = _metrics(_days([100.0, 120.0, 120.0, 90.0, 110.0, 100.0]))
    assert ours.max_drawdown == pytest.approx(-0.25)
    assert ours.max_drawdown_peak == _utc_day(2)
    assert ours.max_drawdown_trough == _utc_day(3)
    assert ours.max_drawdown_recovery is None
    assert ours.max_drawdown_days == 3.0


def test_drawdown_curve_is_the_value_under_the_running_high() -> None:
    """0 at each new high, value / high - 1 under it."""
    under = drawdown(_days([100.0, 120.0, 90.0, 150.0, 120.0]))
    np.testing.assert_allclose(under.value, [0.0, 0.0, -0.25, 0.0, -0.2])


def _no_nan(metrics: Metrics) -> None:
    # summary.json must be strict JSON: json refuses NaN and infinities with allow_nan=False.
    json.dumps(metrics.to_dict(), allow_nan=False)


def test_a_flat_curve_has_no_spread_and_no_drawdown() -> None:
    """Constant equity: zero return and volatility; Sharpe, Sortino and Calmar undefined."""
    ours = _metrics(_days([100.0] * 30), risk_free=0.0)
    _no_nan(ours)
    assert (ours.total_return, ours.cagr, ours.annual_volatility) == (0.0, 0.0, 0.0)
    assert ours.sharpe is ours.sortino is ours.calmar is None
    assert (ours.max_drawdown, ours.max_drawdown_days) == (0.0, 0.0)
    assert ours.max_drawdown_peak is ours.max_drawdown_trough is None


def test_a_flat_curve_against_a_risk_free_rate() -> None:
    """Constant equity under a 5 % rate: every excess return is the same negative number, so
    Sharpe is undefined (no spread) and Sortino is -sqrt(252)."""
    ours = _metrics(_days([100.0] * 30), risk_free=0.05)
    _no_nan(ours)
    assert ours.sharpe is None
    assert ours.sortino == pytest.approx(-math.sqrt(252))


def test_one_point_and_no_trades() -> None:
    """One point: no time has passed, so no rate, ratio or turnover; nothing crashes."""
    ours = compute(_days([100.0]), [], exposure=[False], traded_notional=0.0)
    _no_nan(ours)
    assert ours.total_return == 0.0
    assert ours.cagr is ours.annual_volatility is ours.sharpe is ours.turnover is None
    assert ours.hit_rate is ours.profit_factor is ours.average_holding_days is None
    assert (ours.trades, ours.exposure, ours.points, ours.trading_days) == (0, 0.0, 1, 1)


def test_a_rate_too_large_for_a_float_is_undefined() -> None:
    """+10 % in one minute compounds to a CAGR no float holds: None, not a crash."""
    ours = _metrics(Curve([0, 60 * NS], [100.0, 110.0]))
    _no_nan(ours)
    assert ours.cagr is None
    assert ours.total_return == pytest.approx(0.1)


def test_equity_that_reaches_zero_gives_no_nan() -> None:
    """A wiped-out account: -100 %, and the daily figures are undefined past a zero value."""
    ours = _metrics(_days([100.0, 50.0, 0.0, 0.0]))
    _no_nan(ours)
    assert ours.total_return == -1.0
    assert ours.cagr == -1.0
    assert ours.max_drawdown == -1.0
    assert ours.sharpe is ours.annual_volatility is None


def test_to_dict_is_json_with_utc_dates() -> None:
    """Dates as ISO 8601 UTC strings ending in Z; every field present."""
    ours = _metrics(_days([100.0, 120.0, 90.0, 130.0]))
    figures = json.loads(json.dumps(ours.to_dict(), allow_nan=False))
    assert figures["start"] == "1970-01-01T00:00:00Z"
    assert figures["max_drawdown_recovery"] == "1970-01-04T00:00:00Z"
    assert list(figures) == [field.name for field in attrs.fields(Metrics)]


def test_buy_and_hold_by_hand() -> None:
    """1,000 split between A (10, then 20) and B (50, 25, 50): 50 and 10 shares; A's last price
    carries to the time only B has."""
    a = Curve([0, DAY], [10.0, 20.0])
    b = Curve([0, DAY, 2 * DAY], [50.0, 25.0, 50.0])
    held = buy_and_hold({"A": a, "B": b}, 1_000.0)
    assert held.ts_ns.tolist() == [0, DAY, 2 * DAY]
    np.testing.assert_allclose(held.value, [1_000.0, 1_250.0, 1_500.0])


def test_buy_and_hold_starts_when_every_symbol_has_a_price() -> None:
    """B starts a day late: the cash is split on day 1, at A's last price then (20)."""
    a = Curve([0, DAY, 2 * DAY], [10.0, 20.0, 40.0])
    b = Curve([DAY, 2 * DAY], [50.0, 100.0])
    held = buy_and_hold({"A": a, "B": b}, 1_000.0)
    assert held.ts_ns.tolist() == [DAY, 2 * DAY]
    np.testing.assert_allclose(held.value, [1_000.0, 2_000.0])


def test_monthly_returns_use_new_york_months() -> None:
    """1 February 03:00 UTC is still 31 January in New York: it closes January."""
    moments = ["2024-01-15T21:00", "2024-02-01T03:00", "2024-02-28T21:00", "2024-04-02T21:00"]
    ts = [int(np.datetime64(m, "ns").astype(np.int64)) for m in moments]
    months = monthly_returns(Curve(ts, [100.0, 110.0, 99.0, 99.0]))
    assert [(y, m) for y, m, _ in months] == [(2024, 1), (2024, 2), (2024, 4)]
    assert [r for _, _, r in months] == pytest.approx([0.1, -0.1, 0.0])


@pytest.mark.parametrize(
    ("ts", "values", "message"),
    [
        ([], [], "at least one point"),
        ([0, 1], [1.0], "differ in length"),
        ([0, 2, 1], [1.0, 1.0, 1.0], "go back at point 2"),
        ([0, 1], [1.0, math.nan], "value at point 1 is nan"),
    ],
)
def test_a_curve_that_cannot_be_measured_is_refused(
    ts: list[int], values: list[float], message: str
) -> None:
    """Curve checks its columns and says what is wrong and where."""
    with pytest.raises(CurveError, match=message):
        Curve(ts, values)


def test_exposure_must_have_one_bool_per_point() -> None:
    """A mismatched exposure column is refused, not broadcast."""
    with pytest.raises(CurveError, match="one bool per equity point"):
        compute(_days([1.0, 2.0]), [], exposure=[True], traded_notional=0.0)


def test_a_curve_is_a_read_only_copy() -> None:
    """Changing the array a curve was made from changes nothing; the curve's arrays refuse
    writes."""
    values = np.array([1.0, 2.0])
    curve = Curve([0, 1], values)
    values[0] = 5.0
    assert curve.value[0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        curve.value[0] = 3.0
