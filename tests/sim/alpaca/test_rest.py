"""Minute bars and the historical bars endpoint without a socket: bars built from trades and
from replay bars, the query parsed strictly, pages and their tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain.sessions import NEW_YORK
from sim import replay
from sim.alpaca.bars import MinuteBar, MinuteBars, from_replay
from sim.alpaca.rest import BarsQuery, RestError, bars_page, parse_bars_query

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def bar(symbol: str, minute: int, price: str = "50") -> MinuteBar:
    p = Decimal(price)
    return MinuteBar(
        symbol=symbol,
        start=T0 + timedelta(minutes=minute),
        open=p,
        high=p,
        low=p,
        close=p,
        volume=100,
        trades=1,
        vwap=p,
    )


def test_a_trade_of_a_new_minute_completes_the_previous_bar() -> None:
    """OHLC, volume, trade count and VWAP of the minute; the bar starts on the UTC minute."""
    bars = MinuteBars("TQQQ")
    at = datetime(2026, 11, 23, 10, 0, 5, tzinfo=NEW_YORK)
    assert bars.add(Decimal("50.00"), 100, at) is None
    assert bars.add(Decimal("50.40"), 300, at + timedelta(seconds=20)) is None
    assert bars.add(Decimal("49.90"), 100, at + timedelta(seconds=40)) is None
    completed = bars.add(Decimal("50.10"), 10, at + timedelta(seconds=60))
    assert completed == MinuteBar(
        symbol="TQQQ",
        start=T0,
        open=Decimal("50.00"),
        high=Decimal("50.40"),
        low=Decimal("49.90"),
        close=Decimal("49.90"),
        volume=500,
        trades=3,
        vwap=Decimal("50.22"),
    )
    assert bars.complete() == MinuteBar(
        symbol="TQQQ",
        start=T0 + timedelta(minutes=1),
        open=Decimal("50.10"),
        high=Decimal("50.10"),
        low=Decimal("50.10"),
        close=Decimal("50.10"),
        volume=10,
        trades=1,
        vwap=Decimal("50.10"),
    )
    assert bars.complete() is None


def test_a_replay_bar_is_served_with_the_count_and_vwap_of_its_four_trades() -> None:
    """alpaca-py's Bar needs n and vw; a replay bar has neither, its four trades have both."""
    source = replay.Bar(
        symbol="TQQQ",
        start=T0,
        open=Decimal("50"),
        high=Decimal("52"),
        low=Decimal("49"),
        close=Decimal("51"),
        volume=400,
    )
    served = from_replay(source)
    assert (served.trades, served.vwap, served.volume) == (4, Decimal("50.5"), 400)
    assert served.rest() == {
        "t": "2026-11-23T15:00:00Z",
        "o": 50.0,
        "h": 52.0,
        "l": 49.0,
        "c": 51.0,
        "v": 400,
        "n": 4,
        "vw": 50.5,
    }
    assert from_replay(attrs.evolve(source, volume=0)).trades == 0


def params(**values: str) -> dict[str, list[str]]:
    return {name: [value] for name, value in values.items()}


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        (params(timeframe="1Min"), 400, "symbols"),
        (params(symbols="TQQQ"), 400, "timeframe"),
        (params(symbols="TQQQ", timeframe="7Min"), 422, "divide a day"),
        (params(symbols="TQQQ", timeframe="1Week"), 422, "1Day"),
        (params(symbols="TQQQ", timeframe="60Min"), 422, "1-59Min"),
        (params(symbols="TQQQ", timeframe="1Min", limit="0"), 400, "limit"),
        (params(symbols="TQQQ", timeframe="1Min", limit="x"), 400, "limit"),
        (params(symbols="TQQQ", timeframe="1Min", start="yesterday"), 400, "start"),
        (
            params(symbols="TQQQ", timeframe="1Min", start="2026-11-24", end="2026-11-23"),
            400,
            "end",
        ),
        (params(symbols="TQQQ", timeframe="1Min", sort="up"), 400, "sort"),
        (params(symbols="TQQQ", timeframe="1Min", feed="nyse"), 400, "feed"),
        (params(symbols="TQQQ", timeframe="1Min", page_token="%%%"), 400, "page_token"),
        (params(symbols="TQQQ", timeframe="1Min", colour="red"), 400, "colour"),
    ],
)
def test_a_bad_query_is_refused_with_a_status_and_a_reason(
    query: dict[str, list[str]], status: int, words: str
) -> None:
    """Each refusal names what was wrong."""
    with pytest.raises(RestError) as caught:
        parse_bars_query(query)
    assert caught.value.status == status
    assert words in caught.value.message


def test_times_parse_as_rfc3339_or_dates_and_naive_means_utc() -> None:
    """What alpaca-py sends (isoformat with an offset) and what people type."""
    query = parse_bars_query(
        params(
            symbols="TQQQ, SQQQ",
            timeframe="1Min",
            start="2026-11-23T10:00:00-05:00",
            end="2026-11-24",
            limit="5",
            sort="desc",
            feed="iex",
            adjustment="raw",
        )
    )
    assert query == BarsQuery(
        symbols=("TQQQ", "SQQQ"),
        start=T0,
        end=datetime(2026, 11, 24, tzinfo=UTC),
        limit=5,
        descending=True,
    )
    naive = parse_bars_query(params(symbols="TQQQ", timeframe="1T", start="2026-11-23T15:00:00"))
    assert naive.start == T0


def all_pages(bars: list[MinuteBar], query: BarsQuery, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token = None
    while True:
        body = bars_page(bars, attrs.evolve(query, page_token=token), page_size)
        pages.append([f"{s}@{b['t']}" for s, bs in body["bars"].items() for b in bs])
        token = body["next_page_token"]
        if token is None:
            return pages


@given(
    st.lists(st.tuples(st.sampled_from(["TQQQ", "SQQQ", "SPY"]), st.integers(0, 30)), unique=True),
    st.integers(1, 7),
    st.booleans(),
)
def test_paging_with_tokens_returns_every_wanted_bar_once_in_order(
    keys: list[tuple[str, int]], page_size: int, descending: bool
) -> None:
    """Bars of the asked symbols within [start, end], by symbol then time, each page full
    but the last, whatever the page size."""
    bars = [bar(symbol, minute) for symbol, minute in keys]
    query = BarsQuery(
        symbols=("TQQQ", "SQQQ"),
        start=T0 + timedelta(minutes=5),
        end=T0 + timedelta(minutes=25),
        descending=descending,
    )
    pages = all_pages(bars, query, page_size)
    wanted = sorted(
        ((s, -mi if descending else mi) for s, mi in keys if s != "SPY" and 5 <= mi <= 25),
    )
    expected = [f"{s}@{T0 + timedelta(minutes=abs(k)):%Y-%m-%dT%H:%M:%S}Z" for s, k in wanted]
    assert [item for page in pages for item in page] == expected
    assert all(len(page) == page_size for page in pages[:-1])
    assert len(pages[-1]) <= page_size


def test_limit_caps_the_page_and_a_token_survives_new_bars() -> None:
    """The page is min(limit, page size); a bar added meanwhile does not shift the pages."""
    bars = [bar("TQQQ", minute) for minute in range(5)]
    query = BarsQuery(symbols=("TQQQ",), limit=2)
    first = bars_page(bars, query, page_size=10)
    assert [b["t"][11:16] for b in first["bars"]["TQQQ"]] == ["15:00", "15:01"]
    bars.insert(0, bar("TQQQ", 10))
    token = first["next_page_token"]
    second = bars_page(bars, BarsQuery(symbols=("TQQQ",), limit=10, page_token=token), 3)
    assert [b["t"][11:16] for b in second["bars"]["TQQQ"]] == ["15:02", "15:03", "15:04"]
    assert bars_page([], query, 10) == {"bars": {}, "next_page_token": None}
