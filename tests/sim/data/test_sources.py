"""The loaders on small files written here: formats, times, drops, and file:row errors."""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.data import (
    DataError,
    load,
    load_lean,
    load_minute_csv,
    load_table,
    load_yahoo_daily,
    source_digest,
)

MINUTE_HEADER = "Datetime,Symbol,Open,High,Low,Close,Volume\n"
YAHOO_HEADER = "date,open,high,low,close,volume,adj_close,is_synthetic\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_zip(path: Path, member: str, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, text)
    return path


def minute_csv(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "bars.csv", MINUTE_HEADER + body)


def test_a_minute_csv_gives_one_table_per_symbol_with_utc_starts_and_its_digest(
    tmp_path: Path,
) -> None:
    """Two symbols sharing minutes: two tables; the digest is sha256 of the file's bytes."""
    path = minute_csv(
        tmp_path,
        "2025-05-01 13:30:00,TQQQ,51.62,51.70,51.50,51.65,1000\n"
        "2025-05-01 13:30:00,QQQ,450.1,450.5,449.9,450.2,200\n"
        "2025-05-01 13:31:00,TQQQ,51.65,51.80,51.60,51.75,900\n",
    )
    tables = load_minute_csv(path)
    assert sorted(tables) == ["QQQ", "TQQQ"]
    tqqq = tables["TQQQ"]
    assert (len(tqqq), tqqq.interval, tqqq.source) == (2, "1min", str(path))
    assert tqqq.digest == hashlib.sha256(path.read_bytes()).hexdigest() == source_digest(path)
    bar = tqqq.to_bars()[1]
    assert bar.start == datetime(2025, 5, 1, 13, 31, tzinfo=UTC)
    assert (bar.open, bar.close, bar.volume) == (Decimal("51.6500"), Decimal("51.7500"), 900)
    assert list(load_minute_csv(path, "QQQ")) == ["QQQ"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "2025-05-01 13:30:00,X,1,2,0.5,1.5,10\n2025-05-01 13:31:00,X,1,2,0.5,oops,10\n",
            r"bars.csv:3: column Close is not a number: 'oops'",
        ),
        ("2025-05-01 13:30:00,X,1,2,0.5,1.5\n", r"bars.csv:2: expected 7 fields, found 6"),
        ("2025-05-01T13:30:00+00:00,X,1,2,0.5,1.5,10\n", r"bars.csv:2: Datetime must be naive UTC"),
        ("yesterday,X,1,2,0.5,1.5,10\n", r"bars.csv:2: Datetime is not a date and time"),
        ("1900-05-01 13:30:00,X,1,2,0.5,1.5,10\n", r"bars.csv:2: Datetime must be in the years"),
        (
            "2025-05-01 13:30:00,X,1,2,0.5,1.5,10\n2025-05-01 13:31:00,X,12.9,12.3,12.5,12.5,1\n",
            r"bars.csv:3: column high 12\.3 < low 12\.5",
        ),
        (
            "2025-05-01 13:31:00,X,1,2,0.5,1.5,10\n2025-05-01 13:30:00,Y,1,2,0.5,1.5,10\n"
            "2025-05-01 13:30:00,X,1,2,0.5,1.5,10\n",
            r"bars.csv:4: start 2025-05-01 13:30:00 UTC is before the bar before it",
        ),
        ("2025-05-01 13:30:00,X,1,2,0.5,nan,10\n", r"bars.csv:2: column close is nan"),
    ],
)
def test_a_bad_minute_row_is_named_by_file_and_line(tmp_path: Path, body: str, error: str) -> None:
    """The first offending row's line (header = line 1) and what is wrong with it."""
    with pytest.raises(DataError, match=error):
        load_minute_csv(minute_csv(tmp_path, body))


def test_a_minute_csv_with_another_header_or_not_text_is_refused(tmp_path: Path) -> None:
    """The header is exact; bytes that are not UTF-8 name their line."""
    path = write(tmp_path / "b.csv", "time,sym\n")
    with pytest.raises(DataError, match=r"b.csv:1: expected the header Datetime,Symbol"):
        load_minute_csv(path)
    path = tmp_path / "c.csv"
    path.write_bytes(MINUTE_HEADER.encode() + b"2025-05-01 13:30:00,X\xff,1,2,0.5,1.5,10\n")
    with pytest.raises(DataError, match=r"c.csv:2: not UTF-8 text"):
        load_minute_csv(path)


def test_a_missing_file_or_a_folder_is_refused_at_row_0(tmp_path: Path) -> None:
    """Row 0 is the file as a whole."""
    with pytest.raises(DataError, match=r"nope.csv:0: cannot read"):
        load_minute_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r":0: a directory, not a regular file"):
        load_minute_csv(tmp_path)


def test_an_absent_symbol_is_named_with_the_symbols_held(tmp_path: Path) -> None:
    """Asking a file for a symbol it does not hold says which it holds."""
    path = minute_csv(tmp_path, "2025-05-01 13:30:00,X,1,2,0.5,1.5,10\n")
    with pytest.raises(DataError, match=r"bars.csv:0: no 'Y' bars \(the file holds X\)"):
        load_minute_csv(path, "Y")


def yahoo(tmp_path: Path, rows: list[str], name: str = "TQQQ.csv") -> Path:
    return write(tmp_path / name, YAHOO_HEADER + "".join(r + "\n" for r in rows))


def test_yahoo_drops_synthetic_rows_and_the_last_row_and_says_so(tmp_path: Path) -> None:
    """is_synthetic True rows and the last row are left out; `dropped` names them by line."""
    path = yahoo(
        tmp_path,
        [
            "2010-02-09,1,1,1,1,10,1,True",
            "2010-02-10,1,1,1,1,10,1,True",
            "2010-02-11,2,3,1.5,2.5,10,2.5,False",
            "2010-02-12,2.5,3,2,2.75,0,2.75,False",
            "2010-02-16,2.75,3,2,2.8,10,2.8,False",
        ],
    )
    bars = load_yahoo_daily(path, "TQQQ")
    assert [b.start for b in bars.to_bars()] == [
        datetime(2010, 2, 11, 14, 30, tzinfo=UTC),
        datetime(2010, 2, 12, 14, 30, tzinfo=UTC),
    ]
    assert bars.dropped == (
        f"{path}:2-3: 2 rows (2010-02-09..2010-02-10) dropped: is_synthetic True (a backfill, "
        "not trades)",
        f"{path}:6: 1 row (2010-02-16) dropped: the last row (a download during a session "
        "holds the day before the close)",
    )
    assert len(load_yahoo_daily(path, "TQQQ", drop_last=False)) == 3


def test_yahoo_drops_rows_before_the_symbols_first_trading_day(tmp_path: Path) -> None:
    """QQQ's rows before 1999-03-10 are a backfill (REAL_FROM); real_from overrides."""
    path = yahoo(
        tmp_path,
        [
            "1999-03-09,1,1,1,1,10,1,False",
            "1999-03-10,1,1,1,1,10,1,False",
            "1999-03-11,1,1,1,1,1,1,False",
        ],
        "QQQ.csv",
    )
    bars = load_yahoo_daily(path, "QQQ", drop_last=False)
    assert len(bars) == 2
    assert "before QQQ's first day of trading 1999-03-10" in bars.dropped[0]
    assert len(load_yahoo_daily(path, "QQQ", drop_last=False, real_from=date(1999, 3, 11))) == 1


def test_a_bad_yahoo_row_is_named_by_line_even_among_kept_rows(tmp_path: Path) -> None:
    """A low above the open on line 3; a date that is not YYYY-MM-DD on line 2."""
    path = yahoo(
        tmp_path,
        [
            "2020-01-02,1,2,0.5,1,1,1,False",
            "2020-01-03,1,2,1.5,1.8,1,1,False",
            "2020-01-06,1,1,1,1,1,1,False",
        ],
    )
    with pytest.raises(DataError, match=r"TQQQ.csv:3: column open 1\.0 < low 1\.5"):
        load_yahoo_daily(path, "TQQQ")
    path = yahoo(tmp_path, ["20200102,1,2,0.5,1,1,1,False"])
    with pytest.raises(DataError, match=r"TQQQ.csv:2: date is not YYYY-MM-DD: '20200102'"):
        load_yahoo_daily(path, "TQQQ")
    path = yahoo(tmp_path, ["2020-01-02,1,2,0.5,1,1,1,maybe"])
    with pytest.raises(DataError, match=r"TQQQ.csv:2: is_synthetic is not True or False"):
        load_yahoo_daily(path, "TQQQ")


def lean_root(tmp_path: Path) -> Path:
    root = tmp_path / "equity"
    write_zip(
        root / "daily" / "spy.zip",
        "spy.csv",
        "19980102 00:00,973100,975300,965300,973600,2150000\n"
        "19980105 00:00,978400,984400,967800,977500,4030800\n",
    )
    write_zip(
        root / "hour" / "spy.zip",
        "spy.csv",
        "20130701 09:00,973100,975300,970300,970300,384500\n"
        "20130701 10:00,970200,971300,965300,970500,585900\n",
    )
    for day, first in (("20131004", "14400000"), ("20131007", "34200000")):
        write_zip(
            root / "minute" / "spy" / f"{day}_trade.zip",
            f"{day}_spy_minute_trade.csv",
            f"{first},1676500,1676600,1676400,1676500,20000\n"
            f"{int(first) + 60000},1676200,1676200,1676200,1676200,300\n",
        )
    write_zip(root / "minute" / "spy" / "20131004_quote.zip", "x.csv", "quotes\n")
    return root


def test_lean_daily_bars_are_deci_cents_starting_at_the_new_york_open(tmp_path: Path) -> None:
    """973100 deci-cents is $97.31; 1998-01-02 starts 09:30 New York = 14:30 UTC."""
    bars = load_lean(lean_root(tmp_path), "SPY", "1d")
    first = bars.to_bars()[0]
    assert (bars.symbol, bars.interval) == ("SPY", "1d")
    assert first.start == datetime(1998, 1, 2, 14, 30, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("97.3100"),
        Decimal("97.5300"),
        Decimal("96.5300"),
        Decimal("97.3600"),
    )
    assert first.volume == 2_150_000


def test_lean_hour_bars_start_at_their_hour_but_the_first_at_the_open(tmp_path: Path) -> None:
    """LEAN's 20130701 09:00 bar holds 09:30-10:00: it starts 13:30 UTC; 10:00 is 14:00 UTC."""
    bars = load_lean(lean_root(tmp_path), "spy", "1h").to_bars()
    assert [b.start for b in bars] == [
        datetime(2013, 7, 1, 13, 30, tzinfo=UTC),
        datetime(2013, 7, 1, 14, 0, tzinfo=UTC),
    ]


def test_lean_minutes_are_ms_since_new_york_midnight_over_every_trade_zip(tmp_path: Path) -> None:
    """14,400,000 ms is 04:00 New York (08:00 UTC); quote zips are not read."""
    root = lean_root(tmp_path)
    bars = load_lean(root, "SPY", "1min")
    assert [b.start for b in bars.to_bars()] == [
        datetime(2013, 10, 4, 8, 0, tzinfo=UTC),
        datetime(2013, 10, 4, 8, 1, tzinfo=UTC),
        datetime(2013, 10, 7, 13, 30, tzinfo=UTC),
        datetime(2013, 10, 7, 13, 31, tzinfo=UTC),
    ]
    assert bars.digest == source_digest(root / "minute" / "spy")


@pytest.mark.parametrize(
    ("interval", "member_text", "error"),
    [
        (
            "1d",
            "19980102 00:00,973100,975300,965300,973600,1\n19980105 09:00,1,1,1,1,1\n",
            r"daily/spy.zip:spy.csv:2: time is not YYYYMMDD 00:00: '19980105 09:00'",
        ),
        (
            "1d",
            "19980102 00:00,973100,975300,965300,973600,1\n19980105 00:00,1.5,2,1,1,1\n",
            r"daily/spy.zip:spy.csv:2: column open is not a whole number of deci-cents: '1.5'",
        ),
        (
            "1h",
            "19980102 09:00,973100,975300,965300,973600,1\n1998-01-02 10:00,1,1,1,1,1\n",
            r"hour/spy.zip:spy.csv:2: time is not YYYYMMDD HH:MM",
        ),
        (
            "1h",
            "19980102 09:00,973100,975300,965300,973600,1\n19980102 16:00,1,1,1,1,1\n",
            r"hour/spy.zip:spy.csv:2: not an hour of the regular session \(09:00 to 15:00\)",
        ),
        (
            "1h",
            "19980102 09:00,973100,975300,965300,973600,-1\n",
            r"hour/spy.zip:spy.csv:1: column volume -1\.0 < 0",
        ),
    ],
)
def test_a_bad_lean_row_is_named_by_zip_member_and_row(
    tmp_path: Path, interval: str, member_text: str, error: str
) -> None:
    """file.zip:member:row, rows from 1 (LEAN's CSVs have no header)."""
    folder = "daily" if interval == "1d" else "hour"
    write_zip(tmp_path / folder / "spy.zip", "spy.csv", member_text)
    with pytest.raises(DataError, match=error):
        load_lean(tmp_path, "SPY", interval)


def test_a_bad_lean_minute_row_names_its_days_zip(tmp_path: Path) -> None:
    """The second day's second row is out of order: named in that day's zip."""
    root = lean_root(tmp_path)
    write_zip(
        root / "minute" / "spy" / "20131007_trade.zip",
        "20131007_spy_minute_trade.csv",
        "34200000,1,1,1,1,1\n34200000,1,1,1,1,1\n",
    )
    with pytest.raises(
        DataError, match=r"20131007_trade.zip:20131007_spy_minute_trade.csv:2: start"
    ):
        load_lean(root, "SPY", "1min")


def test_a_zip_with_another_member_or_not_a_zip_is_refused(tmp_path: Path) -> None:
    """A LEAN zip holds exactly the member its name says."""
    write_zip(tmp_path / "daily" / "spy.zip", "SPY.CSV", "")
    with pytest.raises(DataError, match=r"spy.zip:0: expected one member 'spy.csv'"):
        load_lean(tmp_path, "SPY", "1d")
    write(tmp_path / "daily" / "spy.zip", "not a zip")
    with pytest.raises(DataError, match=r"spy.zip:0: not a zip file"):
        load_lean(tmp_path, "SPY", "1d")


def test_load_dispatches_by_the_shape_of_the_path(tmp_path: Path) -> None:
    """LEAN zips and folders by their place, CSVs by their header."""
    root = lean_root(tmp_path)
    assert load(root / "daily" / "spy.zip")["SPY"].interval == "1d"
    assert load(root / "hour" / "spy.zip")["SPY"].interval == "1h"
    assert len(load(root / "minute" / "spy")["SPY"]) == 4
    assert len(load(root / "minute" / "spy" / "20131007_trade.zip")["SPY"]) == 2
    assert load(root, symbol="SPY", interval="1h")["SPY"].interval == "1h"
    assert load_table(root, "SPY", "1d").interval == "1d"
    path = minute_csv(tmp_path, "2025-05-01 13:30:00,X,1,2,0.5,1.5,10\n")
    assert list(load(path)) == ["X"]
    qqq = yahoo(
        tmp_path, ["2020-01-02,1,2,0.5,1,1,1,False", "2020-01-03,1,2,0.5,1,1,1,False"], "qqq.csv"
    )
    assert len(load(qqq)["QQQ"]) == 1
    with pytest.raises(DataError, match=r"a LEAN root: name the symbol and the interval"):
        load(root)
    with pytest.raises(DataError, match=r"holds 1d bars, not 1h"):
        load(root / "daily" / "spy.zip", interval="1h")
    with pytest.raises(DataError, match=r"other.csv:1: not a bar file this loader knows"):
        load(write(tmp_path / "other.csv", "a,b\n"))


@st.composite
def minute_rows(draw: st.DrawFn) -> list[tuple[str, str, int, int, int, int, int]]:
    symbols = draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True))
    minutes = draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=20, unique=True))
    rows = []
    for minute in sorted(minutes):
        for symbol in symbols:
            cents = sorted(draw(st.lists(st.integers(1, 10**7), min_size=4, max_size=4)))
            open_, close = draw(st.permutations([cents[1], cents[2]]))
            moment = datetime(2025, 5, 1, tzinfo=UTC) + timedelta(minutes=minute)
            stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
            rows.append(
                (stamp, symbol, open_, cents[3], cents[0], close, draw(st.integers(0, 10**9)))
            )
    return rows


@settings(max_examples=50, deadline=None)
@given(minute_rows())
def test_a_written_minute_csv_loads_back_to_the_same_bars(
    rows: list[tuple[str, str, int, int, int, int, int]],
) -> None:
    """Prices in cents and whole volumes come back exactly, each symbol in its own table."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        lines = [
            f"{t},{s},{o / 100},{h / 100},{lo / 100},{c / 100},{v}\n"
            for t, s, o, h, lo, c, v in rows
        ]
        path.write_text(MINUTE_HEADER + "".join(lines))
        tables = load_minute_csv(path)
    for symbol, table in tables.items():
        expected = [r for r in rows if r[1] == symbol]
        bars = table.to_bars()
        assert [b.start.strftime("%Y-%m-%d %H:%M:%S") for b in bars] == [r[0] for r in expected]
        assert [
            (b.open * 100, b.high * 100, b.low * 100, b.close * 100, b.volume) for b in bars
        ] == [(*(Decimal(x) for x in r[2:6]), r[6]) for r in expected]


def test_a_quoted_field_over_two_lines_or_an_open_quote_is_named(tmp_path: Path) -> None:
    """Rows are lines: a field that spans lines, or a quote never closed, names its line."""
    path = minute_csv(tmp_path, '2025-05-01 13:30:00,"X\nY",1,2,0.5,1.5,10\n')
    with pytest.raises(DataError, match=r"bars.csv:2: a quoted field runs over several lines"):
        load_minute_csv(path)
    path = minute_csv(tmp_path, '2025-05-01 13:30:00,X,1,2,0.5,1.5,10\n2025-05-01 13:31:00,"X')
    with pytest.raises(DataError, match=r"bars.csv:3: not CSV"):
        load_minute_csv(path)
