"""A backtest's figures, computed from its equity curve and its round-trip trades.

Every definition is written out in ``docs/backtest.md`` (section *Metrics*) exactly as computed
here. Inputs are plain columns (numpy arrays or sequences); a figure that is undefined for the
given curve (a ratio over a zero spread, a rate over no elapsed time) is ``None``, never NaN,
and ``docs/backtest.md`` says when.

* ``Curve(ts_ns, value)``: a curve sampled at every bar close (UTC epoch nanoseconds).
* ``compute(equity, trades, exposure=..., traded_notional=...)`` -> ``Metrics``.
* ``buy_and_hold(prices, initial_cash)`` -> the benchmark's ``Curve``.
* ``daily_returns(curve)``, ``monthly_returns(curve)``, ``drawdown(curve)``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import numpy as np
import numpy.typing as npt

__all__ = [
    "NEW_YORK",
    "CurveError",
    "Curve",
    "RoundTrip",
    "Metrics",
    "compute",
    "buy_and_hold",
    "daily_returns",
    "monthly_returns",
    "drawdown",
]

NEW_YORK = ZoneInfo("America/New_York")
"""The exchange's time zone: a trading day (daily returns) and a month are New York's."""

NS_PER_DAY = 86_400 * 10**9
DAYS_PER_YEAR = 365.25

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class CurveError(ValueError):
    """Raised by ``Curve`` and the functions of this module when a curve (or the columns that go
    with it) cannot be measured: empty, unequal lengths, times going back, a value not finite."""


def _column(column: npt.ArrayLike, dtype: type[Any]) -> Any:
    array = np.array(column, dtype=dtype, copy=True)
    if array.ndim != 1:
        raise CurveError(f"a curve column must be one-dimensional, not of shape {array.shape}")
    array.setflags(write=False)
    return array


def _times(column: npt.ArrayLike) -> Ints:
    times: Ints = _column(column, np.int64)
    return times


def _values(column: npt.ArrayLike) -> Floats:
    values: Floats = _column(column, np.float64)
    return values


@attrs.frozen(eq=False)
class Curve:
    """A curve sampled at every bar close: ``ts_ns`` (UTC epoch ns, never decreasing) and
    ``value``, of equal length, at least one point, every value finite. Both are read-only
    copies of what was given."""

    ts_ns: Ints = attrs.field(converter=_times)
    value: Floats = attrs.field(converter=_values)

    def __attrs_post_init__(self) -> None:
        if len(self.ts_ns) != len(self.value):
            raise CurveError(
                f"a curve's times and values differ in length: {len(self.ts_ns)} times, "
                f"{len(self.value)} values"
            )
        if len(self.ts_ns) == 0:
            raise CurveError("a curve needs at least one point")
        back = np.flatnonzero(np.diff(self.ts_ns) < 0)
        if len(back):
            raise CurveError(f"a curve's times go back at point {int(back[0]) + 1}")
        bad = np.flatnonzero(~np.isfinite(self.value))
        if len(bad):
            raise CurveError(f"a curve's value at point {int(bad[0])} is {self.value[bad[0]]}")

    def __len__(self) -> int:
        return len(self.ts_ns)


@attrs.frozen(kw_only=True)
class RoundTrip:
    """One position opened and closed: a grid lot (its buy and its sell), an MA-crossover entry
    and its exit. ``pnl`` is net of both sides' commissions; times are UTC epoch ns."""

    symbol: str
    entry_ns: int
    exit_ns: int
    quantity: float
    entry_price: float
    exit_price: float
    pnl: float


@attrs.frozen(kw_only=True)
class Metrics:
    """The figures of one equity curve (``docs/backtest.md``, *Metrics*). Rates and returns are
    fractions (0.12 is 12 %); ``max_drawdown`` is at most 0; ``None`` is an undefined figure."""

    start: dt.datetime
    end: dt.datetime
    start_value: float
    end_value: float
    points: int
    trading_days: int
    total_return: float | None
    cagr: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    max_drawdown_peak: dt.datetime | None
    max_drawdown_trough: dt.datetime | None
    max_drawdown_recovery: dt.datetime | None
    max_drawdown_days: float
    calmar: float | None
    trades: int
    hit_rate: float | None
    profit_factor: float | None
    average_win: float | None
    average_loss: float | None
    win_loss_ratio: float | None
    exposure: float
    turnover: float | None
    average_holding_days: float | None
    risk_free: float
    periods: int

    def to_dict(self) -> dict[str, float | int | str | None]:
        """The figures as JSON-ready values (for ``summary.json``): datetimes as ISO 8601 UTC
        strings ending in ``Z``, ``None`` kept."""
        out: dict[str, float | int | str | None] = {}
        for field in attrs.fields(Metrics):
            value = getattr(self, field.name)
            out[field.name] = _iso(value) if isinstance(value, dt.datetime) else value
        return out


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _utc(ts_ns: int) -> dt.datetime:
    seconds, ns = divmod(int(ts_ns), 10**9)
    return dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(microseconds=ns // 1000)


def _finite(x: float) -> float | None:
    # The last guard of "NaN-free": any figure that came out not finite is undefined.
    return float(x) if math.isfinite(x) else None


def _ratio(num: float, den: float) -> float | None:
    return _finite(num / den) if den != 0 else None


def _cagr(first: float, last: float, years: float) -> float | None:
    if years <= 0 or first <= 0 or last < 0:
        return None
    try:
        return _finite(math.pow(last / first, 1.0 / years) - 1.0)
    except OverflowError:
        # A gain compounded over a span of minutes: too large for a float.
        return None


def _new_york_days(ts_ns: Ints) -> Ints:
    # New York's UTC offset is constant within any UTC hour (the DST changes fall on whole
    # hours), so one zoneinfo lookup per distinct hour converts a whole curve.
    hours = ts_ns // (3600 * 10**9)
    starts = np.flatnonzero(np.concatenate([[True], hours[1:] != hours[:-1]]))
    counts = np.diff(np.append(starts, len(hours)))
    offsets = np.array(
        [_offset_seconds(int(hour) * 3600) for hour in hours[starts].tolist()], dtype=np.int64
    )
    local: Ints = ts_ns + np.repeat(offsets * 10**9, counts)
    days: Ints = local // NS_PER_DAY
    return days


def _offset_seconds(epoch_seconds: int) -> int:
    offset = dt.datetime.fromtimestamp(epoch_seconds, NEW_YORK).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _last_of_each(keys: Ints) -> Ints:
    # Index of the last point of each run of equal keys (keys never decrease).
    last: Ints = np.flatnonzero(np.append(keys[1:] != keys[:-1], True)).astype(np.int64)
    return last


def _marks(curve: Curve, keys: Ints) -> tuple[Ints, Floats]:
    # The value closing each period, preceded by the curve's first value when that is not itself
    # a period's close: the returns then chain over the whole curve.
    last = _last_of_each(keys)
    if last[0] != 0:
        last = np.concatenate([np.zeros(1, dtype=np.int64), last])
    return last, curve.value[last]


def _simple_returns(values: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        returns: Floats = values[1:] / values[:-1] - 1.0
    return returns


def daily_returns(curve: Curve) -> Floats:
    """The curve's daily returns: the value at each New York trading day's last point over the
    one before it (the first day's over the curve's first value when the first day holds more
    than one point). Their compounded product is the curve's total return."""
    _, values = _marks(curve, _new_york_days(curve.ts_ns))
    return _simple_returns(values)


def monthly_returns(curve: Curve) -> list[tuple[int, int, float | None]]:
    """``(year, month, return)`` for each New York calendar month holding a point: the month's
    last value over the previous month's last value (the first month's over the curve's first
    value); ``None`` where that base is not positive."""
    days = _new_york_days(curve.ts_ns)
    months = _month_keys(days)
    last = _last_of_each(months)
    out: list[tuple[int, int, float | None]] = []
    base = float(curve.value[0])
    for index in last.tolist():
        key = int(months[index])
        value = float(curve.value[index])
        out.append((key // 12, key % 12 + 1, _finite(value / base - 1.0) if base > 0 else None))
        base = value
    return out


def _month_keys(days: Ints) -> Ints:
    # year * 12 + (month - 1), from days since the epoch, through numpy's calendar.
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    keys: Ints = months + 1970 * 12
    return keys


def drawdown(curve: Curve) -> Curve:
    """The underwater curve: at each point, the value over the highest value so far, minus one
    (0 at a new high, -0.25 a quarter below it); 0 while the highest value so far is not
    positive."""
    peak = np.maximum.accumulate(curve.value)
    with np.errstate(divide="ignore", invalid="ignore"):
        under = np.where(peak > 0, curve.value / peak - 1.0, 0.0)
    return Curve(curve.ts_ns, under)


@attrs.frozen
class _Drawdown:
    depth: float
    peak: int | None
    trough: int | None
    recovery: int | None
    days: float


def _max_drawdown(curve: Curve) -> _Drawdown:
    under = drawdown(curve).value
    trough = int(np.argmin(under))
    depth = float(under[trough])
    if depth >= 0.0:
        return _Drawdown(0.0, None, None, None, 0.0)
    peak_value = np.maximum.accumulate(curve.value)[trough]
    # The peak: the last point before the trough at the running high (the drawdown's start).
    peak = int(np.flatnonzero(curve.value[: trough + 1] == peak_value)[-1])
    back = np.flatnonzero(curve.value[trough:] >= peak_value)
    recovery = trough + int(back[0]) if len(back) else None
    until = curve.ts_ns[recovery] if recovery is not None else curve.ts_ns[-1]
    days = float(until - curve.ts_ns[peak]) / NS_PER_DAY
    return _Drawdown(depth, peak, trough, recovery, days)


def compute(
    equity: Curve,
    trades: Sequence[RoundTrip],
    *,
    exposure: npt.ArrayLike,
    traded_notional: float,
    risk_free: float = 0.0,
    periods: int = 252,
) -> Metrics:
    """The figures of ``equity`` and its round trips (``docs/backtest.md``, *Metrics*).

    ``exposure`` is one bool per equity point (a position held at that close);
    ``traded_notional`` the sum of ``|quantity x price|`` over every fill, buys and sells;
    ``risk_free`` an annual rate, compounded to ``periods`` (trading days a year) per day.
    Raises ``CurveError`` if ``exposure`` is not one bool per point.
    """
    held = np.asarray(exposure, dtype=np.bool_)
    if held.shape != (len(equity),):
        raise CurveError(
            f"exposure must hold one bool per equity point ({len(equity)}), "
            f"not an array of shape {held.shape}"
        )
    values = equity.value
    first, last = float(values[0]), float(values[-1])
    years = float(equity.ts_ns[-1] - equity.ts_ns[0]) / NS_PER_DAY / DAYS_PER_YEAR
    total = _ratio(last, first) if first > 0 else None
    total_return = None if total is None else total - 1.0
    cagr = _cagr(first, last, years)

    daily = daily_returns(equity)
    finite_daily = bool(np.all(np.isfinite(daily)))
    rf_period = math.pow(1.0 + risk_free, 1.0 / periods) - 1.0
    volatility = sharpe = sortino = None
    if finite_daily and len(daily) >= 2:
        # Equal returns have no spread, whatever residue of rounding std() leaves (~1e-18).
        constant = float(daily.max()) == float(daily.min())
        spread = 0.0 if constant else float(np.std(daily, ddof=1))
        volatility = _finite(spread * math.sqrt(periods))
        excess = daily - rf_period
        excess_spread = 0.0 if constant else float(np.std(excess, ddof=1))
        mean_excess = float(np.mean(excess))
        sharpe = _ratio(mean_excess, excess_spread)
        sharpe = None if sharpe is None else _finite(sharpe * math.sqrt(periods))
        downside = math.sqrt(float(np.mean(np.square(np.minimum(excess, 0.0)))))
        sortino = _ratio(mean_excess * periods, downside * math.sqrt(periods))

    dd = _max_drawdown(equity)
    calmar = _ratio(cagr, abs(dd.depth)) if cagr is not None and dd.depth < 0 else None

    pnl = np.array([t.pnl for t in trades], dtype=np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_win, gross_loss = float(wins.sum()), float(-losses.sum())
    average_win = _finite(float(wins.mean())) if len(wins) else None
    average_loss = _finite(float(losses.mean())) if len(losses) else None
    held_days = np.array([(t.exit_ns - t.entry_ns) / NS_PER_DAY for t in trades])

    mean_equity = float(np.mean(values))
    turnover = (
        _finite(traded_notional / mean_equity / years) if years > 0 and mean_equity > 0 else None
    )
    return Metrics(
        start=_utc(int(equity.ts_ns[0])),
        end=_utc(int(equity.ts_ns[-1])),
        start_value=first,
        end_value=last,
        points=len(equity),
        trading_days=len(_last_of_each(_new_york_days(equity.ts_ns))),
        total_return=total_return,
        cagr=cagr,
        annual_volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=dd.depth,
        max_drawdown_peak=None if dd.peak is None else _utc(int(equity.ts_ns[dd.peak])),
        max_drawdown_trough=None if dd.trough is None else _utc(int(equity.ts_ns[dd.trough])),
        max_drawdown_recovery=(
            None if dd.recovery is None else _utc(int(equity.ts_ns[dd.recovery]))
        ),
        max_drawdown_days=dd.days,
        calmar=calmar,
        trades=len(trades),
        hit_rate=_ratio(float(len(wins)), float(len(pnl))),
        profit_factor=_ratio(gross_win, gross_loss),
        average_win=average_win,
        average_loss=average_loss,
        win_loss_ratio=(
            _ratio(average_win, abs(average_loss))
            if average_win is not None and average_loss is not None
            else None
        ),
        exposure=float(np.mean(held)),
        turnover=turnover,
        average_holding_days=_finite(float(held_days.mean())) if len(held_days) else None,
        risk_free=risk_free,
        periods=periods,
    )


def buy_and_hold(prices: Mapping[str, Curve], initial_cash: float) -> Curve:
    """The value of ``initial_cash`` split equally between the symbols at the first time every
    symbol has a price, in fractional shares, held to the end: on the union of the symbols' times
    from then on, each symbol at its last price at or before that time. Pass total-return
    (adjusted) closes when there are, so that dividends count. Raises ``CurveError`` for no
    symbols or a price that is not positive."""
    if not prices:
        raise CurveError("buy and hold needs at least one symbol's prices")
    for symbol, curve in prices.items():
        if not np.all(curve.value > 0):
            raise CurveError(f"buy and hold needs positive prices; {symbol} has one that is not")
    start = max(int(curve.ts_ns[0]) for curve in prices.values())
    times = np.sort(np.concatenate([curve.ts_ns for curve in prices.values()]))
    times = times[times >= start]
    times = times[np.concatenate([[True], times[1:] != times[:-1]])]
    total = np.zeros(len(times), dtype=np.float64)
    share = initial_cash / len(prices)
    for curve in prices.values():
        # The last price at or before each time (every symbol has one from `start` on).
        at = np.searchsorted(curve.ts_ns, times, side="right") - 1
        at_start = int(np.searchsorted(curve.ts_ns, start, side="right")) - 1
        total += share / float(curve.value[at_start]) * curve.value[at]
    return Curve(times, total)
