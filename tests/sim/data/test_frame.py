"""The bar table: its schema, slices, the vocabulary's bars, and when daily bars start."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from actors.domain import Bar
from actors.domain.sessions import NEW_YORK
from sim.data import SCHEMA, BarTable
from sim.data.frame import daily_starts, make_table, new_york_dates, new_york_to_utc_ns

MINUTE = 60 * 10**9


def table(n: int = 3, *, interval: str = "1min") -> BarTable:
    starts = np.datetime64("2025-05-01T13:30", "ns").astype(np.int64) + np.arange(n) * MINUTE
    prices = np.array([51.62 + i for i in range(n)])
    columns = [prices, prices + 0.5, prices - 0.25, prices + 0.1, np.full(n, 100.0)]
    return BarTable(
        table=make_table(starts, columns),
        symbol="TQQQ",
        interval=interval,
        source="test",
        digest="0" * 64,
    )


def test_a_table_has_the_schema_and_its_length() -> None:
    """The columns are exactly SCHEMA; len() counts the bars."""
    bars = table(3)
    assert bars.table.schema.equals(SCHEMA)
    assert len(bars) == 3


def test_a_table_of_another_schema_or_an_unknown_interval_is_refused() -> None:
    """A float start column or a '5min' interval is not a bar table."""
    other = pa.table({"start": [1.0], "open": [1.0]})
    with pytest.raises(TypeError, match="schema"):
        BarTable(table=other, symbol="X", interval="1min", source="t", digest="")
    with pytest.raises(ValueError, match="interval must be one of 1min, 1h, 1d"):
        table(1, interval="5min")


def test_to_bars_gives_decimal_prices_to_four_places_and_whole_volumes() -> None:
    """51.62 as float64 comes back as Decimal('51.6200'), the start aware UTC."""
    first = table(1).to_bars()[0]
    assert first == Bar(
        symbol="TQQQ",
        start=datetime(2025, 5, 1, 13, 30, tzinfo=UTC),
        open=Decimal("51.6200"),
        high=Decimal("52.1200"),
        low=Decimal("51.3700"),
        close=Decimal("51.7200"),
        volume=100,
    )


def test_slice_keeps_the_bars_starting_in_the_half_open_span() -> None:
    """[13:31, 13:32) holds one bar; an open side keeps everything on that side."""
    bars = table(3)
    one = bars.slice(
        datetime(2025, 5, 1, 13, 31, tzinfo=UTC), datetime(2025, 5, 1, 13, 32, tzinfo=UTC)
    )
    assert [b.start.minute for b in one.to_bars()] == [31]
    assert len(bars.slice(datetime(2025, 5, 1, 13, 31, tzinfo=UTC))) == 2
    assert len(bars.slice(end=datetime(2025, 5, 1, 13, 31, tzinfo=UTC))) == 1
    assert (one.symbol, one.interval, one.source) == ("TQQQ", "1min", "test")
    with pytest.raises(ValueError, match="aware"):
        bars.slice(datetime(2025, 5, 1))


def test_a_daily_bar_starts_at_the_new_york_open_in_utc() -> None:
    """09:30 New York: 14:30 UTC in winter, 13:30 UTC in summer."""
    days = np.array(["2025-01-02", "2025-07-01"], dtype="datetime64[D]")
    starts = daily_starts(days).astype("datetime64[ns]")
    assert [str(s) for s in starts] == [
        "2025-01-02T14:30:00.000000000",
        "2025-07-01T13:30:00.000000000",
    ]
    assert [str(d) for d in new_york_dates(daily_starts(days))] == ["2025-01-02", "2025-07-01"]


instants = st.integers(
    min_value=int(datetime(1990, 1, 1, tzinfo=UTC).timestamp()) // 60,
    max_value=int(datetime(2040, 1, 1, tzinfo=UTC).timestamp()) // 60,
).map(lambda minute: minute * 60 * 10**9)


@given(st.lists(instants, min_size=1, max_size=50))
@example(starts=[638942400000000000])  # 1990-04-01 04:00 UTC: 23:00 EST, hours before DST began
@example(starts=[1173585600000000000, 1194148800000000000])  # 2007-03-11 and 11-04, 04:00 UTC
def test_new_york_dates_and_times_agree_with_zoneinfo(starts: list[int]) -> None:
    """Each start's New York date, and its local time back to UTC, as zoneinfo says; a local
    time a clock change skips or repeats is refused."""
    array = np.array(starts, dtype=np.int64)
    moments = [datetime.fromtimestamp(ns // 10**9, UTC).astimezone(NEW_YORK) for ns in starts]
    assert [str(d) for d in new_york_dates(array)] == [m.date().isoformat() for m in moments]
    local = np.array(
        [int(m.replace(tzinfo=UTC).timestamp()) * 10**9 for m in moments], dtype=np.int64
    )
    clean = [
        m.replace(tzinfo=None, fold=0).replace(tzinfo=NEW_YORK).utcoffset()
        == m.replace(tzinfo=None, fold=1).replace(tzinfo=NEW_YORK).utcoffset()
        for m in moments
    ]
    if all(clean):
        assert list(new_york_to_utc_ns(local)) == starts
    else:
        with pytest.raises(ValueError, match="is not one New York time"):
            new_york_to_utc_ns(local)


def test_the_hours_a_clock_change_skips_or_repeats_are_refused() -> None:
    """02:30 on 2025-03-09 never happened in New York; 01:30 on 2025-11-02 happened twice."""
    for local in ("2025-03-09T02:30", "2025-11-02T01:30"):
        with pytest.raises(ValueError, match="is not one New York time"):
            new_york_to_utc_ns(np.array([np.datetime64(local, "ns").astype(np.int64)]))
    after = np.array([np.datetime64("2025-11-02T02:30", "ns").astype(np.int64)])
    assert (
        str(new_york_to_utc_ns(after).astype("datetime64[ns]")[0])
        == "2025-11-02T07:30:00.000000000"
    )
