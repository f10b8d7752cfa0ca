"""Replay: the strict bar loader, the intra-bar path, the generated session, the real data."""

from __future__ import annotations

import itertools
import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import Bar
from actors.domain.sessions import NEW_YORK, Session, session_at
from sim.replay import (
    MAX_FILE_BYTES,
    MAX_PRICE,
    ReplayError,
    bar_trades,
    generated_days,
    generated_session,
    load_bars,
    trades,
)

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
        # Interleaved symbols: the venue's clock would run back from 14:05 to 14:00.
        (
            "2025-05-01 14:05:00,TQQQ,1,2,0.5,1.5,10\n2025-05-01 14:00:00,SPY,1,2,0.5,1.5,10\n"
            "2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n",
            3,
            "bars out of order ('2025-05-01 14:00:00' after 2025-05-01 14:05:00",
        ),
        (
            "2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n2025-05-01 14:00:00,SPY,1,2,0.5,1.5,10\n"
            "2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n",
            4,
            "a second 'TQQQ' bar at 2025-05-01 14:00:00",
        ),
        ("2025-04-30 14:16:00,TQQQ,1,1e999999,0.5,1.5,10\n", 2, "below 10000000"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,Infinity\n", 2, "volume must be a whole number"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,1e10000\n", 2, "below 1,000,000,000,000"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,-1\n", 2, "volume must be a whole number >= 0"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,nan\n", 2, "volume must be a whole number"),
        ("2025-04-30 14:16:00,TQQQ,nan,2,0.5,1.5,1\n", 2, "prices must be positive numbers"),
        ("0001-04-30 14:16:00,TQQQ,1,2,0.5,1.5,10\n", 2, "in the years 1970 to 2100"),
        ("2101-01-01 00:00:00,TQQQ,1,2,0.5,1.5,10\n", 2, "in the years 1970 to 2100"),
        ('"2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,10\n', 2, "not CSV: unexpected end of data"),
        ("2025-04-30 14:16:00,TQQQ,1,2,0.5,1.5,1" + "0" * 2000 + "\n", 2, "longer than 1024"),
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


def test_two_symbols_may_share_a_minute_in_one_time_ordered_file(tmp_path: Path) -> None:
    """The file is one clock: same minute for two symbols is fine, in either order."""
    path = write(
        tmp_path,
        "2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n2025-05-01 14:00:00,SPY,1,2,0.5,1.5,10\n"
        "2025-05-01 14:01:00,SPY,1,2,0.5,1.5,10\n2025-05-01 14:01:00,TQQQ,1,2,0.5,1.5,10\n",
    )
    assert [(b.symbol, b.start.minute) for b in load_bars(path)] == [
        ("TQQQ", 0),
        ("SPY", 0),
        ("SPY", 1),
        ("TQQQ", 1),
    ]


def test_with_ticks_only_the_traded_symbols_are_kept_and_all_are_checked(
    tmp_path: Path,
) -> None:
    """Another symbol's bars are dropped, but a defect in them is still an error."""
    body = "2025-05-01 14:00:00,SPY,1,2,0.5,1.5,10\n2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n"
    ticks = {"TQQQ": Decimal("0.01")}
    assert [b.symbol for b in load_bars(write(tmp_path, body), ticks=ticks)] == ["TQQQ"]
    bad = write(tmp_path, body + "2025-05-01 13:59:00,SPY,1,2,0.5,1.5,10\n")
    with pytest.raises(ReplayError, match=r":4: bars out of order"):
        load_bars(bad, ticks=ticks)


def test_regression_a_price_below_the_tick_is_refused_naming_file_and_line(
    tmp_path: Path,
) -> None:
    """A low of 0.004 with a 0.01 tick was loaded, and its order rejected and retried forever."""
    path = write(
        tmp_path,
        "2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n2025-05-01 14:01:00,TQQQ,0.005,0.006,0.004,"
        "0.005,10\n",
    )
    assert len(load_bars(path)) == 2
    with pytest.raises(ReplayError) as info:
        load_bars(path, ticks={"TQQQ": Decimal("0.01")})
    assert str(info.value) == f"{path}:3: price 0.004 is below the tick 0.01 of TQQQ"


def test_regression_binary_garbage_is_refused_naming_its_line(tmp_path: Path) -> None:
    """Not UTF-8 was a UnicodeDecodeError traceback; the error names the line."""
    path = tmp_path / "bars.csv"
    path.write_bytes(HEADER.encode() + b"2025-05-01 14:00:00,TQQQ,1,2,0.5,1.5,10\n\xff\xfe\x00\n")
    with pytest.raises(ReplayError) as info:
        load_bars(path)
    assert str(info.value) == f"{path}:3: not UTF-8 text (byte 0)"


def test_regression_a_50_mb_field_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    """A 50 MB quoted field was a _csv.Error traceback; the line is refused at 1 KiB."""
    path = tmp_path / "bars.csv"
    with path.open("wb") as file:
        file.write(HEADER.encode() + b'"')
        file.write(b"x" * (50 << 20))
    with pytest.raises(ReplayError) as info:
        load_bars(path)
    assert str(info.value) == f"{path}:2: a line longer than 1024 bytes"


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_regression_a_bar_file_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO blocked the start for ever; a device or a directory is refused too."""
    path = {"fifo": tmp_path / "bars.csv", "directory": tmp_path, "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(ReplayError) as info:
        load_bars(path)
    expected = {"fifo": "a FIFO", "directory": "a directory", "device": "a device"}[kind]
    assert str(info.value) == f"{path}:0: {expected}, not a regular file"


def test_a_bar_file_over_the_size_cap_is_refused_before_reading(tmp_path: Path) -> None:
    """Its bars would take ten times its size in memory."""
    path = tmp_path / "bars.csv"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ReplayError) as info:
        load_bars(path)
    assert str(info.value) == f"{path}:0: larger than 256 MiB"


_ROW = st.tuples(
    st.sampled_from(["2025-05-01 14:00:00", "2025-05-01 13:59:00", "0001-01-01 00:00", "x", ""]),
    st.sampled_from(["TQQQ", "SPY", ""]),
    *[st.sampled_from(["1", "2", "0.5", "0", "-1", "1e999999", "nan", "0.004", "x"])] * 4,
    st.sampled_from(["10", "1e10000", "-1", "10.5", "Infinity", ""]),
).map(",".join)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400)
    | st.lists(_ROW | st.sampled_from(['"', "\x00", ",", "\r"]), max_size=6).map(
        lambda rows: (HEADER + "\n".join(rows) + "\n").encode()
    )
)
def test_any_bytes_as_a_bar_file_give_bars_or_a_replay_error(data: bytes) -> None:
    """Whatever the file holds, the loader answers checked bars or a ReplayError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bars.csv"
        path.write_bytes(data)
        try:
            bars = load_bars(path, ticks={"TQQQ": Decimal("0.01"), "SPY": Decimal("0.01")})
        except ReplayError:
            return
    assert all(Decimal("0.01") <= b.low and b.high < MAX_PRICE for b in bars)
    assert [b.start for b in bars] == sorted(b.start for b in bars)


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
