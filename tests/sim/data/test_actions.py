"""Corporate actions: factor files, adjusted prices, events from factors and from a list."""

from __future__ import annotations

import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from sim.data import (
    DataError,
    Dividend,
    Split,
    actions_from_factors,
    actions_from_list,
    as_traded,
    load_factor_file,
    load_lean,
    load_yahoo_daily,
)

# A 2-for-1 split after 2020-01-03 (ex-date 2020-01-06) and a dividend after 2020-01-07:
# close 100 on 2020-01-07, price factor 0.99 -> 1: 100 x (1 - 0.99) = 1.00 a share.
FACTORS = "20200102,0.99,0.5,1\n20200103,0.99,0.5,200\n20200107,0.99,1,100\n20501231,1,1,0\n"
DAILY = (
    "20200102 00:00,2000000,2020000,1980000,2000000,1000\n"
    "20200103 00:00,2000000,2020000,1980000,2000000,1000\n"
    "20200106 00:00,1000000,1010000,990000,1000000,2000\n"
    "20200107 00:00,1000000,1010000,990000,1000000,2000\n"
    "20200108 00:00,990000,1000000,980000,990000,2000\n"
)


@pytest.fixture
def lean(tmp_path: Path) -> Path:
    (tmp_path / "factor_files").mkdir()
    (tmp_path / "factor_files" / "xyz.csv").write_text(FACTORS)
    (tmp_path / "daily").mkdir()
    with zipfile.ZipFile(tmp_path / "daily" / "xyz.zip", "w") as archive:
        archive.writestr("xyz.csv", DAILY)
    return tmp_path


def test_a_bar_takes_the_first_factor_row_dated_on_or_after_it(lean: Path) -> None:
    """2020-01-03 takes its own row; 2020-01-04 the next one; after the sentinel, none."""
    factors = load_factor_file(lean / "factor_files" / "xyz.csv")
    assert factors.symbol == "XYZ"
    assert factors.factors_on(date(2020, 1, 3)).split_factor == 0.5
    assert factors.factors_on(date(2020, 1, 4)).split_factor == 1.0
    assert factors.factors_on(date(2030, 1, 4)).price_factor == 1.0
    with pytest.raises(DataError, match="no factor row on or after 2051-01-01"):
        factors.factors_on(date(2051, 1, 1))


def test_adjusted_and_split_adjusted_prices_and_volumes(lean: Path) -> None:
    """adjusted = raw x pf x sf, split-only = raw x sf; volume / sf in both."""
    factors = load_factor_file(lean / "factor_files" / "xyz.csv")
    raw = load_lean(lean, "XYZ", "1d")
    split = factors.split_adjusted(raw)
    assert list(split.column("open")) == [100.0, 100.0, 100.0, 100.0, 99.0]
    assert list(split.column("volume")) == [2000.0, 2000.0, 2000.0, 2000.0, 2000.0]
    adjusted = factors.adjusted(raw)
    assert np.allclose(adjusted.column("close"), [99.0, 99.0, 99.0, 99.0, 99.0])
    assert list(raw.column("open")) == [200.0, 200.0, 100.0, 100.0, 99.0]  # raw untouched
    assert "split-adjusted by" in split.source


def test_events_from_factors_are_the_split_and_the_dividend_on_their_ex_dates(lean: Path) -> None:
    """Ex-date: the raw table's next bar after the row; the dividend from the reference price."""
    factors = load_factor_file(lean / "factor_files" / "xyz.csv")
    events = actions_from_factors(factors, load_lean(lean, "XYZ", "1d"))
    assert events == [
        Split(symbol="XYZ", ex_date=date(2020, 1, 6), ratio=Decimal("2")),
        Dividend(symbol="XYZ", ex_date=date(2020, 1, 8), amount_per_share=Decimal("1.0000")),
    ]


def test_events_outside_the_tables_span_are_left_out(lean: Path) -> None:
    """A table ending 2020-01-07 gets only the split."""
    factors = load_factor_file(lean / "factor_files" / "xyz.csv")
    raw = load_lean(lean, "XYZ", "1d")
    short = raw.slice(end=raw.to_bars()[4].start)
    assert [type(e) for e in actions_from_factors(factors, short)] == [Split]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("2020010,1,1,1\n", r"xyz.csv:1: date is not YYYYMMDD: '2020010'"),
        ("20200102,1,1,1\n20200102,1,1,1\n", r"xyz.csv:2: date 2020-01-02 is not after"),
        ("20200102,1,0,1\n", r"xyz.csv:1: split_factor must be finite and > 0"),
        ("20200102,inf,1,1\n", r"xyz.csv:1: price_factor must be finite and > 0"),
        ("20200102,x,1,1\n", r"xyz.csv:1: price_factor is not a number: 'x'"),
        ("20200102,1\n", r"xyz.csv:1: expected 3 or 4 fields, found 2"),
        ("", r"xyz.csv:0: no factor rows"),
    ],
)
def test_a_bad_factor_file_names_its_row(tmp_path: Path, text: str, error: str) -> None:
    """file:row and what is wrong."""
    (tmp_path / "xyz.csv").write_text(text)
    with pytest.raises(DataError, match=error):
        load_factor_file(tmp_path / "xyz.csv")


def test_actions_from_a_list_in_date_order() -> None:
    """Splits as numbers or N:M, dividends as amounts; sorted by date."""
    events = actions_from_list(
        [
            {"symbol": "TQQQ", "date": "2021-01-21", "split": "2:1"},
            {"symbol": "TQQQ", "date": date(2018, 5, 24), "split": 3},
            {"symbol": "SPY", "date": "2019-12-20", "dividend": "1.57"},
        ]
    )
    assert events == [
        Split(symbol="TQQQ", ex_date=date(2018, 5, 24), ratio=Decimal(3)),
        Dividend(symbol="SPY", ex_date=date(2019, 12, 20), amount_per_share=Decimal("1.57")),
        Split(symbol="TQQQ", ex_date=date(2021, 1, 21), ratio=Decimal(2)),
    ]


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (
            {"symbol": "X", "date": "2020-01-02"},
            r"cfg.toml: corporate_actions\[0\]: expected one of split or dividend",
        ),
        (
            {"symbol": "X", "date": "2020-01-02", "split": 2, "dividend": 1},
            r"\[0\]: expected one of split or dividend, found 2",
        ),
        ({"symbol": "X", "date": "2020-01-02", "splt": 2}, r"\[0\]\.splt: unknown key"),
        ({"date": "2020-01-02", "split": 2}, r"\[0\]\.symbol: missing"),
        (
            {"symbol": "X", "date": "02/01/2020", "split": 2},
            r"\[0\]\.date: expected a date YYYY-MM-DD",
        ),
        (
            {"symbol": "X", "date": "2020-01-02", "split": 0},
            r"\[0\]\.split: expected a positive number",
        ),
        ({"symbol": "X", "date": "2020-01-02", "split": "0:1"}, r"\[0\]\.split: expected N:M"),
        (
            {"symbol": "X", "date": "2020-01-02", "dividend": True},
            r"\[0\]\.dividend: expected a positive number",
        ),
    ],
)
def test_a_bad_action_names_the_file_and_key(row: dict[str, object], error: str) -> None:
    """`source: where[i].key: problem`."""
    with pytest.raises(DataError, match=error):
        actions_from_list([row], source="cfg.toml", where="corporate_actions")


def test_as_traded_undoes_the_splits_after_each_bar(tmp_path: Path) -> None:
    """A split-adjusted file back at the traded prices: x2 before a 2:1 split, volume / 2."""
    path = tmp_path / "X.csv"
    path.write_text(
        "date,open,high,low,close,volume\n"
        "2020-01-02,50,51,49,50,200\n2020-01-03,50,51,49,50,200\n2020-01-06,50,51,49,50,200\n"
    )
    table = load_yahoo_daily(path, "X", drop_last=False)
    splits = actions_from_list([{"symbol": "X", "date": "2020-01-03", "split": "2:1"}])
    traded = as_traded(table, splits)
    assert list(traded.column("open")) == [100.0, 50.0, 50.0]
    assert list(traded.column("volume")) == [100.0, 200.0, 200.0]
