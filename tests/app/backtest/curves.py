"""Generated equity curves and report views for the backtest tests (fixed seeds)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.backtest.metrics import Curve, RoundTrip, buy_and_hold, compute
from app.backtest.report import ReportView, SymbolPrices, TradeMarker

NS = 10**9
CLOSE_UTC = 21 * 3600 * NS
"""21:00 UTC: 16:00 or 17:00 in New York, the same New York day all year."""


def business_days(start: str, count: int) -> npt.NDArray[np.int64]:
    """``count`` weekdays from ``start`` at 21:00 UTC, as epoch ns."""
    days = np.arange(np.datetime64(start), np.datetime64(start) + count * 2 + 10)
    days = days[np.is_busday(days)][:count]
    stamps: npt.NDArray[np.int64] = days.astype("datetime64[ns]").astype(np.int64) + CLOSE_UTC
    return stamps


def random_walk(seed: int, n: int, drift: float, vol: float) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    walk: npt.NDArray[np.float64] = 100_000.0 * np.cumprod(1.0 + rng.normal(drift, vol, n))
    return walk


def daily_curve(seed: int, n: int, drift: float = 0.0004, vol: float = 0.01) -> Curve:
    """One point a weekday (each New York day's last point is the day's only one)."""
    return Curve(business_days("2015-01-02", n), random_walk(seed, n, drift, vol))


def minute_curve(seed: int, n: int, start: str = "2010-01-04") -> Curve:
    """Regular-session minute points, 09:31 to 16:00 New York (UTC 14:31-21:00, so an hour
    later than New York's session in summer: still one New York day), ``n`` of them."""
    per_day = 390
    days = business_days(start, -(-n // per_day)) - CLOSE_UTC + (14 * 3600 + 31 * 60) * NS
    ts = (days[:, None] + np.arange(per_day)[None, :] * 60 * NS).reshape(-1)[:n]
    return Curve(ts, random_walk(seed, n, 0.00001, 0.0008))


def sample_view(points: int = 5_000, fills: int = 60, rows: int = 40) -> ReportView:
    """A complete report view: a minute equity curve, its buy-and-hold, one symbol's prices
    with ``fills`` fills, and order and fill tables of ``rows`` rows."""
    prices = minute_curve(11, points)
    equity = Curve(prices.ts_ns, 50_000.0 + 400.0 * prices.value / prices.value[0] * 100.0)
    rng = np.random.default_rng(5)
    at = np.sort(rng.choice(points, fills - fills % 2, replace=False))
    markers: list[TradeMarker] = []
    trips: list[RoundTrip] = []
    for entry, exit_ in zip(at[::2].tolist(), at[1::2].tolist(), strict=True):
        buy, sell = float(prices.value[entry]), float(prices.value[exit_])
        t_in, t_out = int(prices.ts_ns[entry]), int(prices.ts_ns[exit_])
        markers.append(TradeMarker(ts_ns=t_in, side="BUY", price=buy, quantity=5.0))
        markers.append(TradeMarker(ts_ns=t_out, side="SELL", price=sell, quantity=5.0))
        trips.append(
            RoundTrip(
                symbol="SPY",
                entry_ns=t_in,
                exit_ns=t_out,
                quantity=5.0,
                entry_price=buy,
                exit_price=sell,
                pnl=5.0 * (sell - buy) - 2.0,
            )
        )
    held = np.zeros(points, dtype=bool)
    for entry, exit_ in zip(at[::2].tolist(), at[1::2].tolist(), strict=True):
        held[entry:exit_] = True
    benchmark = buy_and_hold({"SPY": prices}, float(equity.value[0]))
    table = [
        {"ts_ns": 1_600_000_000 * NS + i, "ref": f"ma:SPY:e:{i}", "side": "BUY", "qty": 5.0}
        for i in range(rows)
    ]
    return ReportView(
        title="MA-crossover on SPY",
        run_id="20261205T010203Z-1a2b3c4d",
        metrics=compute(
            equity, trips, exposure=held, traded_notional=sum(m.price * 5.0 for m in markers)
        ),
        benchmark_metrics=compute(
            benchmark,
            [],
            exposure=np.ones(len(benchmark), dtype=bool),
            traded_notional=float(equity.value[0]),
        ),
        equity=equity,
        benchmark=benchmark,
        symbols=[SymbolPrices(symbol="SPY", prices=prices, fills=markers)],
        orders=table,
        fills=table,
        config_text='[strategy]\nkind = "ma-cross"\nfast = 10\nslow = 30\n',
        provenance={"git_sha": "0123abcd", "dirty": False, "config_hash": "1a2b3c4d"},
    )
