"""The loaders and corporate actions on the shared real data (skipped without it):
counts, drops, the QQQ split and dividends, and the LEAN-Yahoo cross-check."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sim.data import (
    BarCache,
    BarTable,
    Dividend,
    Split,
    actions_from_factors,
    actions_from_list,
    as_traded,
    check,
    load,
    load_factor_file,
    load_lean,
    load_table,
    load_yahoo_daily,
)
from sim.data.frame import new_york_dates

# PROVENANCE.md: TQQQ's splits, to replay the Yahoo file as traded.
TQQQ_SPLITS = [
    ("2011-02-25", "2:1"),
    ("2012-05-11", "2:1"),
    ("2014-01-24", "2:1"),
    ("2017-01-12", "2:1"),
    ("2018-05-24", "3:1"),
    ("2021-01-21", "2:1"),
    ("2022-01-13", "2:1"),
    ("2025-11-20", "2:1"),
]


def test_every_shared_bar_file_loads_and_passes_the_checks(marketdata: Path) -> None:
    """The counts of PROVENANCE.md; not one zero-volume bar in any of them."""
    expected = {
        "tqqq_1min/TQQQ_60day_1min_data.csv": {"TQQQ": 42_228},
        "tqqq_1min/QQQ_60day_1min_data.csv": {"QQQ": 39_467},
        "tqqq_daily/TQQQ.csv": {"TQQQ": 4_135},
        "tqqq_daily/QQQ.csv": {"QQQ": 6_884},
        "spy_lean/daily/qqq.zip": {"QQQ": 3_964},
        "spy_lean/daily/spy.zip": {"SPY": 5_849},
        "spy_lean/hour/spy.zip": {"SPY": 40_832},
        "spy_lean/minute/spy": {"SPY": 5_786},
    }
    for name, counts in expected.items():
        tables = load(marketdata / name)
        assert {symbol: len(t) for symbol, t in tables.items()} == counts, name
        for table in tables.values():
            assert check(table).zero_volume == 0, name


def test_yahoo_tqqq_keeps_the_real_sessions_but_the_intraday_last_row(marketdata: Path) -> None:
    """4,136 real rows 2010-02-11..2026-07-23 less the last, captured before the close."""
    path = marketdata / "tqqq_daily" / "TQQQ.csv"
    table = load_yahoo_daily(path, "TQQQ")
    days = new_york_dates(table.starts_ns())
    assert (str(days[0]), str(days[-1]), len(table)) == ("2010-02-11", "2026-07-22", 4_135)
    assert table.dropped == (
        f"{path}:2-4227: 4226 rows (1993-05-04..2010-02-10) dropped: is_synthetic True (a "
        "backfill, not trades)",
        f"{path}:8363: 1 row (2026-07-23) dropped: the last row (a download during a session "
        "holds the day before the close)",
    )
    qqq = load_yahoo_daily(marketdata / "tqqq_daily" / "QQQ.csv", "QQQ")
    assert str(new_york_dates(qqq.starts_ns())[0]) == "1999-03-10"
    assert "1477 rows (1993-05-04..1999-03-09)" in qqq.dropped[0]


def test_qqqs_2000_split_and_published_dividends_come_out_of_its_factor_file(
    marketdata: Path,
) -> None:
    """2-for-1 on 2000-03-20; distributions as published (1.4 cents in 2003, 0.3294 with
    ex-date 2017-12-18, 0.2766 on 2018-03-19, 0.4577 on 2019-12-23: the factor file's seven
    digits give them to 0.0001)."""
    lean = marketdata / "spy_lean"
    events = actions_from_factors(
        load_factor_file(lean / "factor_files" / "qqq.csv"), load_lean(lean, "QQQ", "1d")
    )
    splits = [e for e in events if isinstance(e, Split)]
    assert splits == [Split(symbol="QQQ", ex_date=date(2000, 3, 20), ratio=Decimal(2))]
    paid = {e.ex_date: e.amount_per_share for e in events if isinstance(e, Dividend)}
    published = {
        date(2003, 12, 24): Decimal("0.014"),
        date(2017, 12, 18): Decimal("0.3294"),
        date(2018, 3, 19): Decimal("0.2766"),
        date(2019, 12, 23): Decimal("0.4577"),
    }
    for ex_date, amount in published.items():
        assert abs(paid[ex_date] - amount) <= Decimal("0.0001"), ex_date
    assert len(paid) == 66


def relative(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(np.abs(a / b - 1.0), dtype=np.float64)


def overlap(marketdata: Path) -> tuple[BarTable, BarTable]:
    lean = marketdata / "spy_lean"
    raw = load_lean(lean, "QQQ", "1d")
    split = load_factor_file(lean / "factor_files" / "qqq.csv").split_adjusted(raw)
    yahoo = load_yahoo_daily(marketdata / "tqqq_daily" / "QQQ.csv", "QQQ")
    starts = np.intersect1d(split.starts_ns(), yahoo.starts_ns())
    keep_lean = np.isin(split.starts_ns(), starts)
    keep_yahoo = np.isin(yahoo.starts_ns(), starts)
    return (
        BarTable(
            table=split.table.filter(keep_lean),
            symbol="QQQ",
            interval="1d",
            source=split.source,
            digest=split.digest,
        ),
        BarTable(
            table=yahoo.table.filter(keep_yahoo),
            symbol="QQQ",
            interval="1d",
            source=yahoo.source,
            digest=yahoo.digest,
        ),
    )


def test_lean_qqq_split_adjusted_meets_yahoo_on_3964_dates_across_the_2000_split(
    marketdata: Path,
) -> None:
    """Every LEAN QQQ day (1999-03-10..2021-03-31; LEAN has no qqq bars 2004-12..2011-03,
    when the ticker was QQQQ) is a Yahoo day. Measured: the opens agree to 1e-4 on 3,379 of
    the 3,964 dates, all 260 before the split among them; the other 585 differ by a cent or
    a few (at most 0.6%, 83.50 against 84.00 on 2000-04-27). The closes from 2015 on agree to
    1e-4 on 1,570 of 1,572 dates (2020-08-06: 2.0e-4, 2020-08-10: 1.1e-4)."""
    lean, yahoo = overlap(marketdata)
    assert len(lean) == len(yahoo) == 3_964
    opens = relative(lean.column("open"), yahoo.column("open"))
    assert int(np.count_nonzero(opens <= 1e-4)) == 3_379
    assert float(opens.max()) == pytest.approx(0.00595, abs=1e-5)
    days = new_york_dates(lean.starts_ns())
    before_split = days < np.datetime64("2000-03-20")
    assert int(before_split.sum()) == 260
    assert bool(np.all(opens[before_split] <= 1e-4))
    recent = days >= np.datetime64("2015-01-01")
    closes = relative(lean.column("close"), yahoo.column("close"))[recent]
    assert (len(closes), int(np.count_nonzero(closes <= 1e-4))) == (1_572, 1_570)
    assert float(closes.max()) < 2.1e-4


@pytest.mark.xfail(
    strict=True,
    reason="issue 21 says the opens agree to 1e-4 on all 3,964 dates and the closes from "
    "2015 on; measured: 585 opens and 2 closes do not (see the test above)",
)
def test_lean_opens_and_recent_closes_meet_yahoo_to_1e4_on_every_date(marketdata: Path) -> None:
    """The issue's claim as written."""
    lean, yahoo = overlap(marketdata)
    days = new_york_dates(lean.starts_ns())
    recent = days >= np.datetime64("2015-01-01")
    assert bool(np.all(relative(lean.column("open"), yahoo.column("open")) <= 1e-4))
    closes = relative(lean.column("close"), yahoo.column("close"))
    assert bool(np.all(closes[recent] <= 1e-4))


def test_yahoo_tqqq_as_traded_meets_the_polygon_minutes(marketdata: Path) -> None:
    """PROVENANCE's split list undone on the daily file: each full session's first regular
    minute opens at the day's open (to 1e-5, measured at most 3.7e-6; the minute file was
    traded before the 2025-11-20 split); the regular minutes' high and low agree to 1e-4
    (measured at most 9.1e-5, not the ~1e-7 PROVENANCE says)."""
    splits = actions_from_list([{"symbol": "TQQQ", "date": d, "split": r} for d, r in TQQQ_SPLITS])
    daily = as_traded(load_yahoo_daily(marketdata / "tqqq_daily" / "TQQQ.csv", "TQQQ"), splits)
    minutes = load_table(marketdata / "tqqq_1min" / "TQQQ_60day_1min_data.csv", "TQQQ", "1min")
    starts = minutes.starts_ns()
    days = new_york_dates(starts)
    day_starts = dict(zip(new_york_dates(daily.starts_ns()), daily.starts_ns(), strict=True))
    daily_at = {int(s): i for i, s in enumerate(daily.starts_ns())}
    sessions = 0
    for day in np.unique(days)[1:]:  # 2025-04-30 starts at 10:16 New York
        open_ns = int(day_starts[day])
        regular = (days == day) & (starts >= open_ns) & (starts < open_ns + 390 * 60 * 10**9)
        i = daily_at[open_ns]
        first = int(np.argmax(regular))
        assert abs(minutes.column("open")[first] / daily.column("open")[i] - 1) <= 1e-5
        assert abs(minutes.column("high")[regular].max() / daily.column("high")[i] - 1) <= 1e-4
        assert abs(minutes.column("low")[regular].min() / daily.column("low")[i] - 1) <= 1e-4
        sessions += 1
    assert sessions == 44


def test_the_largest_shared_file_is_read_back_from_the_cache(
    marketdata: Path, tmp_path: Path
) -> None:
    """The TQQQ minutes: parsed once, then the same table from Parquet."""
    cache = BarCache(tmp_path)
    path = marketdata / "tqqq_1min" / "TQQQ_60day_1min_data.csv"
    first = cache.load(path, "TQQQ", "1min")
    second = cache.load(path, "TQQQ", "1min")
    assert second.table.equals(first.table)
    assert len(list(tmp_path.iterdir())) == 1


def test_leans_first_hour_bar_starts_at_the_open_with_the_days_open(marketdata: Path) -> None:
    """Every SPY day: its first hour bar starts with its daily bar, at 09:30 New York, and
    opens at the day's open (LEAN labels that bar 09:00)."""
    lean = marketdata / "spy_lean"
    daily, hourly = load_lean(lean, "SPY", "1d"), load_lean(lean, "SPY", "1h")
    first = np.isin(hourly.starts_ns(), daily.starts_ns())
    assert int(first.sum()) == len(daily) - 1  # 2002-09-11 opened at noon
    at = np.searchsorted(daily.starts_ns(), hourly.starts_ns()[first])
    assert bool(np.all(hourly.column("open")[first] == daily.column("open")[at]))
