"""``app.data.fetch`` against the real sim servers: ib_insync over a socket to our TWS API server
(its history the replay's bars), alpaca-py over HTTP to our Alpaca server. The fetched bars
equal the source's exactly, across several requests or pages; the IB requests keep to the
server's pacing, measured on a clock the test moves (never the wall clock); the Parquet file
reads back the same table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pyarrow.parquet as pq
import pytest

from actors.domain import Bar, Instrument
from actors.domain.sessions import NEW_YORK, session_at
from app.data.fetch import (
    FetchError,
    IBPacer,
    IBPacing,
    fetch_alpaca,
    fetch_ib,
    ib_chunks,
    read_fetched,
    read_manifest,
    store_fetched,
)
from sim.alpaca.server import BARS_PATH, AlpacaServer
from sim.data import BarTable, DataError
from sim.data.frame import make_table
from sim.engine import Engine
from sim.replay import generated_days
from sim.tws.pacing import PacingLimits
from sim.tws.server import TwsServer

pytestmark = pytest.mark.anyio

TQQQ = Instrument(symbol="TQQQ", con_id=900001)
FIRST = date(2026, 11, 23)  # a Monday; Thanksgiving (11-26) is skipped by the generator
DAYS = generated_days(seed=14, days=4, first=FIRST)
LAST = DAYS[-1].start.astimezone(NEW_YORK).date()
KEY, SECRET = "AKFETCHTEST", "fetch-secret"
REQ_HISTORICAL_DATA = 20


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync and alpaca-py's servers are asyncio's; real sockets."""
    return "asyncio"


class VirtualTime:
    """Monotonic seconds that move only when the fetch sleeps: the client's pacing and the
    server's are measured on it, so nothing depends on how fast the machine is."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def tws(
    bars: list[Bar], pacing: PacingLimits | None = None, clock: Callable[[], float] | None = None
) -> AsyncIterator[TwsServer]:
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[TQQQ],
        clock=lambda: bars[-1].start,
        history=bars,
        pacing=pacing,
        pacing_clock=clock or (lambda: 0.0),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


@asynccontextmanager
async def alpaca(bars: list[Bar], page_size: int) -> AsyncIterator[AlpacaServer]:
    server = AlpacaServer(credentials={KEY: SECRET}, history=bars, page_size=page_size)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


def regular(bars: list[Bar]) -> list[Bar]:
    return [b for b in bars if session_at(b.start) == "regular"]


def rows(table: BarTable) -> list[tuple[Any, ...]]:
    return [
        (b["start"], b["open"], b["high"], b["low"], b["close"], b["volume"])
        for b in table.table.to_pylist()
    ]


def expected(bars: list[Bar]) -> list[tuple[Any, ...]]:
    return [
        (b.start, float(b.open), float(b.high), float(b.low), float(b.close), float(b.volume))
        for b in bars
    ]


def daily(bars: list[Bar]) -> list[tuple[Any, ...]]:
    # The regular session's bar of each day, started at its 09:30 (the bar table's rule).
    days: dict[date, list[Bar]] = {}
    for b in regular(bars):
        days.setdefault(b.start.astimezone(NEW_YORK).date(), []).append(b)
    out = []
    for group in days.values():
        opening = group[0].start.astimezone(NEW_YORK).replace(hour=9, minute=30)
        out.append(
            (
                opening,
                float(group[0].open),
                float(max(b.high for b in group)),
                float(min(b.low for b in group)),
                float(group[-1].close),
                float(sum(b.volume for b in group)),
            )
        )
    return out


def test_ib_chunks_follow_ibs_longest_duration_per_bar_size() -> None:
    """One trading day per request of minute bars, 20 of hourly, 250 of daily; each ends at
    23:59:59 New York of its last trading day, in UTC."""
    assert ib_chunks("1min", FIRST, LAST) == [
        ("20261124-04:59:59", "1 D"),
        ("20261125-04:59:59", "1 D"),
        ("20261126-04:59:59", "1 D"),
        ("20261128-04:59:59", "1 D"),
    ]
    assert ib_chunks("1h", date(2026, 1, 1), date(2026, 2, 28)) == [
        ("20260131-04:59:59", "20 D"),
        ("20260228-04:59:59", "19 D"),
    ]
    assert ib_chunks("1d", date(2024, 1, 1), date(2026, 12, 31))[0] == (
        "20241228-04:59:59",
        "250 D",
    )


def test_the_pacer_counts_every_request_of_the_login_and_each_contract_apart() -> None:
    """The 60-in-10-minutes rule counts all symbols' requests; the per-contract rule and the
    identical-request rule only the same contract's."""
    time = VirtualTime()
    pacer = IBPacer(IBPacing(requests=6, window=60.0, margin=0.0), time)
    pacer.count("SPY", "a")
    assert pacer.wait_for("SPY", "a") == 15.0  # identical within 15 s
    assert pacer.wait_for("QQQ", "a") == 0.0  # another contract's
    for request in ("b", "c", "d", "e"):
        pacer.count("SPY", request)
    assert pacer.wait_for("SPY", "f") == 2.0  # 5 for SPY in the last 2 s
    assert pacer.wait_for("QQQ", "f") == 0.0
    pacer.count("QQQ", "f")
    assert pacer.wait_for("QQQ", "g") == 60.0  # 6 of the login's in the last 60 s
    time.now += 60.0
    assert pacer.wait_for("QQQ", "g") == 0.0


async def test_ib_minute_bars_come_in_one_request_a_day_equal_to_the_venues() -> None:
    """Four days of minute bars: four requests, and every regular-hours bar the venue holds,
    OHLCV exactly; a progress line per request."""
    lines: list[str] = []
    async with tws(DAYS) as server:
        assert server.port is not None
        table = await fetch_ib(
            "127.0.0.1", server.port, 7, "TQQQ", "1min", FIRST, LAST, progress=lines.append
        )
    assert server.requests[REQ_HISTORICAL_DATA] == 4
    assert (table.symbol, table.interval) == ("TQQQ", "1min")
    assert rows(table) == expected(regular(DAYS))
    assert len(table) == 4 * 390
    assert sum("request" in line for line in lines) == 4


async def test_ib_daily_bars_are_the_regular_sessions_started_at_0930() -> None:
    """Daily TRADES bars: one per session, the session's open, extremes, close and volume,
    each starting at 09:30 New York."""
    async with tws(DAYS) as server:
        assert server.port is not None
        table = await fetch_ib("127.0.0.1", server.port, 7, "TQQQ", "1d", FIRST, LAST)
    assert rows(table) == daily(DAYS)


async def test_ib_requests_keep_to_a_tight_pacing_and_no_violation_reaches_the_user() -> None:
    """The venue paces every bar size (at most 2 requests in 60 s, 1 per contract in 2 s):
    the client keeps to the same limits on the shared virtual clock, so the venue refuses none
    (each chunk asked once) and the requests are spaced by the waits."""
    time = VirtualTime()
    limits = PacingLimits(
        historical_requests=2,
        historical_window=60.0,
        same_contract_requests=1,
        same_contract_window=2.0,
        small_bar_seconds=86_400,
        messages_per_second=10_000,
    )
    pacing = IBPacing(requests=2, window=60.0, same_contract=1, same_contract_window=2.0)
    async with tws(DAYS, limits, time) as server:
        assert server.port is not None
        table = await fetch_ib(
            "127.0.0.1", server.port, 7, "TQQQ", "1min", FIRST, LAST,
            pacer=IBPacer(pacing, time), sleep=time.sleep,
        )  # fmt: skip
    assert server.requests[REQ_HISTORICAL_DATA] == 4  # none refused and asked again
    assert rows(table) == expected(regular(DAYS))
    # Sent at 1000, 1002.1 (1 per contract in 2 s), 1060.1 (the 60 s window of the first
    # two) and 1062.2 (both rules), each wait 0.1 s over the limit.
    assert time.sleeps == [pytest.approx(2.1), pytest.approx(58.0), pytest.approx(2.1)]


async def test_a_pacing_violation_is_waited_out_and_asked_again() -> None:
    """A client whose own limits are looser than the venue's meets error 162 "pacing
    violation": it waits and asks again, and the user gets every bar, no error."""
    time = VirtualTime()
    limits = PacingLimits(
        historical_requests=2,
        historical_window=30.0,
        small_bar_seconds=86_400,
        messages_per_second=10_000,
    )
    lines: list[str] = []
    async with tws(DAYS, limits, time) as server:
        assert server.port is not None
        table = await fetch_ib(
            "127.0.0.1", server.port, 7, "TQQQ", "1min", FIRST, LAST,
            pacer=IBPacer(IBPacing(violation_wait=20.0), time), sleep=time.sleep,
            progress=lines.append,
        )  # fmt: skip
    assert rows(table) == expected(regular(DAYS))
    assert server.requests[REQ_HISTORICAL_DATA] > 4
    assert any("pacing violation" in line for line in lines)


async def test_ib_days_without_bars_are_no_bars_and_an_unknown_symbol_is_an_error() -> None:
    """Days before the venue's history answer "no data" (162): no bars, no error. A symbol
    the venue does not list is a FetchError naming it."""
    async with tws(DAYS) as server:
        assert server.port is not None
        table = await fetch_ib(
            "127.0.0.1", server.port, 7, "TQQQ", "1min", date(2026, 11, 16), FIRST
        )
        with pytest.raises(FetchError, match="IB knows no SQQQ"):
            await fetch_ib("127.0.0.1", server.port, 7, "SQQQ", "1d", FIRST, LAST)
    assert rows(table) == expected(regular(DAYS)[:390])


async def test_an_unreachable_tws_is_a_fetch_error_naming_it() -> None:
    """Nothing listens on the port: FetchError "cannot reach TWS at host:port"."""
    with pytest.raises(FetchError, match=r"cannot reach TWS at 127\.0\.0\.1:1"):
        await fetch_ib("127.0.0.1", 1, 7, "TQQQ", "1d", FIRST, LAST, connect_timeout=2)


async def test_alpaca_minute_bars_follow_every_page_and_equal_the_venues() -> None:
    """Pages of 500 bars: alpaca-py follows next_page_token over every page, asking for raw
    prices; the bars are the venue's, OHLCV exactly, extended hours included."""
    async with alpaca(DAYS, page_size=500) as server:
        table = await anyio.to_thread.run_sync(
            lambda: fetch_alpaca(server.rest_url, KEY, SECRET, "TQQQ", "1min", FIRST, LAST)
        )
    asked = [e for e in server.events_of("rest") if e["path"] == BARS_PATH]
    assert len(asked) == -(-len(DAYS) // 500) > 3
    assert all(e["status"] == 200 for e in asked)
    assert [("page_token" in e["params"]) for e in asked] == [False] + [True] * (len(asked) - 1)
    assert {e["params"]["adjustment"] for e in asked} == {"raw"}
    assert rows(table) == expected(DAYS)


async def test_alpaca_daily_bars_start_at_0930_and_refused_keys_are_a_fetch_error() -> None:
    """Alpaca's daily bars (the venue composes the whole 04:00-20:00 day) re-dated to start at
    09:30 New York; keys the venue refuses are a FetchError with the HTTP status."""
    async with alpaca(DAYS, page_size=10_000) as server:
        table = await anyio.to_thread.run_sync(
            lambda: fetch_alpaca(server.rest_url, KEY, SECRET, "TQQQ", "1d", FIRST, LAST)
        )
        with pytest.raises(FetchError, match="HTTP 401"):
            await anyio.to_thread.run_sync(
                lambda: fetch_alpaca(server.rest_url, KEY, "wrong", "TQQQ", "1d", FIRST, LAST)
            )
    starts = [r[0].astimezone(NEW_YORK) for r in rows(table)]
    assert [(s.hour, s.minute) for s in starts] == [(9, 30)] * 4
    by_day: dict[date, list[Bar]] = {}
    for b in DAYS:
        by_day.setdefault(b.start.astimezone(NEW_YORK).date(), []).append(b)
    assert [r[1:] for r in rows(table)] == [
        (
            float(g[0].open),
            float(max(b.high for b in g)),
            float(min(b.low for b in g)),
            float(g[-1].close),
            float(sum(b.volume for b in g)),
        )
        for g in by_day.values()
    ]


async def test_a_fetched_table_is_stored_listed_and_read_back(tmp_path: Path) -> None:
    """store_fetched writes <cache>/fetched/<source>-<SYM>-<interval>-<from>-<to>.parquet and
    lists it in the manifest; read_fetched gives the same table back; a second fetch of the
    same request replaces both."""
    async with tws(DAYS) as server:
        assert server.port is not None
        table = await fetch_ib("127.0.0.1", server.port, 7, "TQQQ", "1d", FIRST, LAST)
    path = store_fetched(tmp_path, "ib", table, FIRST, LAST)
    assert path == tmp_path / "fetched" / "ib-TQQQ-1d-2026-11-23-2026-11-27.parquet"
    back = read_fetched(path)
    assert back.table.equals(table.table)
    assert (back.symbol, back.interval, back.digest) == ("TQQQ", "1d", table.digest)
    store_fetched(tmp_path, "ib", table, FIRST, LAST)
    [entry] = read_manifest(tmp_path / "fetched")
    assert entry["file"] == path.name
    assert (entry["source"], entry["symbol"], entry["interval"]) == ("ib", "TQQQ", "1d")
    assert (entry["from"], entry["to"], entry["bars"]) == ("2026-11-23", "2026-11-27", 4)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".manifest.json.lock",
        "ib-TQQQ-1d-2026-11-23-2026-11-27.parquet",
        "manifest.json",
    ]
    assert json.loads((path.parent / "manifest.json").read_text())["fetched"] == [entry]


def test_read_fetched_refuses_a_file_that_is_not_a_fetched_table(tmp_path: Path) -> None:
    """A Parquet file without the bars' metadata, and a file that is not Parquet at all, are
    DataErrors naming the file."""
    plain = tmp_path / "plain.parquet"
    pq.write_table(make_table(np.array([0], dtype=np.int64), [np.array([1.0])] * 5), plain)
    with pytest.raises(DataError, match=r"plain\.parquet:0: no actortrade\.bars metadata"):
        read_fetched(plain)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DataError, match=r"junk\.parquet:0: not a Parquet file"):
        read_fetched(junk)
