"""The schema checks: each rule, the first offending row, zero volumes counted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.data import BarTable, DataError, check
from sim.data.frame import make_table

MINUTE = 60 * 10**9
START = int(np.datetime64("2025-05-01T13:30", "ns").astype(np.int64))


def bars(
    rows: list[tuple[float, float, float, float, float]], starts: list[int] | None = None
) -> BarTable:
    columns = [np.array(column, dtype=np.float64) for column in zip(*rows, strict=True)]
    at = np.array(starts if starts is not None else [START + i * MINUTE for i in range(len(rows))])
    return BarTable(
        table=make_table(at.astype(np.int64), columns),
        symbol="X",
        interval="1min",
        source="f.csv",
        digest="",
    )


GOOD = (10.0, 11.0, 9.0, 10.5, 100.0)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ((10.0, 12.3, 12.5, 12.4, 1.0), "column high 12.3 < low 12.5"),
        ((13.0, 12.9, 12.5, 12.6, 1.0), "column open 13.0 > high 12.9"),
        ((12.6, 12.9, 12.5, 12.4, 1.0), "column close 12.4 < low 12.5"),
        ((float("nan"), 12.9, 12.5, 12.6, 1.0), "column open is nan"),
        ((12.6, float("inf"), 12.5, 12.6, 1.0), "column high is inf"),
        ((-1.0, 12.9, -2.0, 12.6, 1.0), "column open -1.0 is not positive"),
        ((0.0, 0.0, 0.0, 0.0, 1.0), "column open 0.0 is not positive"),
        ((12.6, 12.9, 12.5, 12.6, -5.0), "column volume -5.0 < 0"),
    ],
)
def test_each_rule_names_the_row_and_what_is_wrong(
    bad: tuple[float, float, float, float, float], error: str
) -> None:
    """The second bar is bad: the message is `where: what`."""
    with pytest.raises(DataError) as caught:
        check(bars([GOOD, bad, bad]), locate=lambda i: f"f.csv:{i + 2}")
    assert str(caught.value) == f"f.csv:3: {error}"


def test_starts_must_strictly_increase() -> None:
    """A repeated start and a start going back are both refused, the first one named."""
    same = bars([GOOD, GOOD], [START, START])
    with pytest.raises(
        DataError, match=r"f.csv:bar 2: start 2025-05-01 13:30:00 UTC is the same start as"
    ):
        check(same)
    back = bars([GOOD, GOOD, GOOD], [START, START + MINUTE, START])
    with pytest.raises(DataError, match=r"f.csv:bar 3: start .* is before the bar before it"):
        check(back)


def test_zero_volume_is_accepted_and_counted() -> None:
    """A bar with nothing traded passes; the report counts it."""
    report = check(bars([GOOD, (10.0, 10.0, 10.0, 10.0, 0.0)]))
    assert (report.bars, report.zero_volume) == (2, 1)
    assert check(bars([GOOD])).zero_volume == 0


prices = st.floats(min_value=0.01, max_value=1e6)


@st.composite
def good_rows(draw: st.DrawFn) -> tuple[float, float, float, float, float]:
    points = sorted(draw(st.lists(prices, min_size=4, max_size=4)))
    low, high = points[0], points[3]
    open_, close = draw(st.permutations([points[1], points[2]]))
    return (open_, high, low, close, draw(st.floats(min_value=0, max_value=1e9)))


@given(st.lists(good_rows(), min_size=1, max_size=30), st.data())
def test_the_first_corrupted_row_is_the_one_named(
    rows: list[tuple[float, float, float, float, float]], data: st.DataObject
) -> None:
    """Good bars pass; after corrupting some, the error names the earliest corrupted one."""
    assert check(bars(rows)).bars == len(rows)
    hit = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=1)))
    broken = list(rows)
    for i in hit:
        open_, _, low, close, volume = broken[i]
        broken[i] = (open_, low / 2, low, close, volume)  # high below low
    with pytest.raises(DataError, match=rf"^at {hit[0]}: "):
        check(bars(broken), locate=lambda i: f"at {i}")
