"""reqHistoricalData from the unmodified ib_insync client over a loopback socket: TRADES bars
of the venue's own trades and its given history, by value equal to a plain aggregation of
those prints; IB's duration and bar-size strings, useRTH, formatDate 1 and 2; IB's errors for
what it refuses; and the IBHistory warm-up adapter on top of it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import anyio
import pytest
from ib_insync import IB, RequestError, Stock

from actors.brokers.ib import IBHistory
from actors.domain import Bar, epoch_ns
from actors.domain.bars import SessionKind, window
from actors.domain.sessions import NEW_YORK
from actors.history import HistoryError
from sim.engine import Engine
from sim.replay import bar_trades, generated_days
from sim.tws.history import HistoryRefused, check_request
from sim.tws.server import TwsServer
from tests.actors.test_bars import plain_bars
from tests.tws_venue import TQQQ

pytestmark = pytest.mark.anyio

FIRST = date(2026, 11, 23)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_insync is asyncio-native


@asynccontextmanager
async def history_venue(
    version: int = 176,
) -> AsyncIterator[tuple[TwsServer, Engine, list[tuple[int, Decimal, int]]]]:
    """Two days of generated bars: the first is the venue's given history, the second's
    first 200 minutes it trades itself; yields the server, its engine and every print."""
    days = generated_days(seed=3, days=2, first=FIRST)
    given = [b for b in days if b.start.astimezone(NEW_YORK).date() == FIRST]
    traded = days[len(given) : len(given) + 200]
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[TQQQ],
        clock=lambda: engine.last_trade_at or given[-1].start,
        max_version=version,
        history=given,
    )
    for bar in traded:
        for t in bar_trades(bar):
            engine.on_trade(t.symbol, t.price, t.size, t.at)
    prints = [(epoch_ns(t.at), t.price, t.size) for b in given + traded for t in bar_trades(b)]
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server, engine, prints
        tg.cancel_scope.cancel()


async def connect(server: TwsServer, client_id: int = 1) -> IB:
    ib = IB()
    ib.RaiseRequestErrors = True
    assert server.port is not None
    await ib.connectAsync("127.0.0.1", server.port, clientId=client_id, timeout=5)
    return ib


def plain_window(
    prints: list[tuple[int, Decimal, int]], start: datetime, end: datetime
) -> list[tuple[int, Decimal, int]]:
    return [p for p in prints if epoch_ns(start) <= p[0] < epoch_ns(end)]


@pytest.mark.parametrize("version", [157, 176])
@pytest.mark.parametrize(
    ("bar_size", "seconds", "use_rth"),
    [("1 min", 60, False), ("5 mins", 300, True), ("1 hour", 3600, False), ("1 day", 86400, True)],
)
async def test_bars_equal_a_plain_aggregation_of_the_prints(
    version: int,
    bar_size: str,
    seconds: int,
    use_rth: bool,
    client_errors: Callable[[], list[str]],
) -> None:
    """'2 D' ending at the venue's clock: yesterday's given history and today's trades, as
    the plain aggregation of the same prints makes them, with IB's date formats."""
    async with history_venue(version) as (server, engine, prints):
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        rows = await ib.reqHistoricalDataAsync(
            contract, "", "2 D", bar_size, "TRADES", useRTH=use_rth, formatDate=1
        )
        ib.disconnect()
    assert engine.last_trade_at is not None
    start = datetime.combine(FIRST, time(), tzinfo=NEW_YORK)
    expected = plain_bars(plain_window(prints, start, engine.last_trade_at), seconds, use_rth)
    assert expected
    got = [
        (r.date, Decimal(str(r.open)), Decimal(str(r.high)), Decimal(str(r.low)),
         Decimal(str(r.close)), int(r.volume))
        for r in rows
    ]  # fmt: skip
    dated = [b.start.astimezone(NEW_YORK) for b in expected]
    assert got == [
        (d.date() if seconds == 86400 else d, b.open, b.high, b.low, b.close, b.volume)
        for d, b in zip(dated, expected, strict=True)
    ]
    assert all(r.barCount > 0 and r.low <= r.average <= r.high for r in rows)
    assert client_errors() == []
    assert server.protocol_errors == []


async def test_format_date_2_dates_intraday_bars_in_unix_seconds() -> None:
    """formatDate=2: aware UTC datetimes for intraday bars; an end date and a duration in
    seconds pick the window."""
    async with history_venue() as (server, _engine, prints):
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        end = datetime.combine(FIRST, time(10, 0), tzinfo=NEW_YORK)
        rows = await ib.reqHistoricalDataAsync(
            contract, end, "1800 S", "5 mins", "TRADES", useRTH=False, formatDate=2
        )
        ib.disconnect()
    expected = plain_bars(plain_window(prints, end - timedelta(minutes=30), end), 300, False)
    assert [(r.date, r.close) for r in rows] == [
        (b.start.astimezone(UTC), float(b.close)) for b in expected
    ]
    assert len(rows) == 6


@pytest.mark.parametrize(
    ("duration", "bar_size", "what", "keep", "code", "cause"),
    [
        ("2 X", "1 min", "TRADES", False, 321, "duration format is integer{SPACE}unit"),
        ("", "1 min", "TRADES", False, 321, "duration not specified"),
        ("10 S", "1 min", "TRADES", False, 321, "requested duration is invalid"),
        ("400 D", "1 day", "TRADES", False, 321, "longer than 365 days must be made in years"),
        ("1 D", "7 mins", "TRADES", False, 321, "bar size setting is invalid. Legal ones"),
        ("1 D", "1 min", "MIDPOINT", False, 321, "What to show value of MIDPOINT rejected"),
        ("1 D", "1 min", "TRADES", True, 321, "Live updates"),
    ],
)
async def test_what_ib_refuses_is_refused_with_its_code(
    duration: str, bar_size: str, what: str, keep: bool, code: int, cause: str
) -> None:
    """Bad durations, bar sizes, sources and live updates: IB's error over the wire."""
    async with history_venue() as (server, _engine, _prints):
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        with pytest.raises(RequestError) as info:
            await ib.reqHistoricalDataAsync(
                contract, "", duration, bar_size, what, useRTH=False, keepUpToDate=keep
            )
        ib.disconnect()
    assert info.value.code == code
    assert info.value.message.startswith("Error validating request.-'bP' : cause - ")
    assert cause in info.value.message
    assert server.protocol_errors == []


async def test_a_window_without_prints_is_hmds_no_data() -> None:
    """A Saturday has no bars: 162, as IB says it."""
    async with history_venue() as (server, _engine, _prints):
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        saturday = datetime(2026, 11, 21, 12, 0, tzinfo=NEW_YORK)
        with pytest.raises(RequestError) as info:
            await ib.reqHistoricalDataAsync(contract, saturday, "3600 S", "1 min", "TRADES", False)
        ib.disconnect()
    assert info.value.code == 162
    assert "HMDS query returned no data: TQQQ@SMART Trades" in info.value.message


@pytest.mark.parametrize(
    ("end", "duration", "bar", "fmt", "keep", "code"),
    [
        ("yesterday", "1 D", "1 min", 1, False, 10314),
        ("20261123 10:00:00 Not/AZone", "1 D", "1 min", 1, False, 10314),
        ("", "53 W", "1 day", 1, False, 321),
        ("", "13 M", "1 day", 1, False, 321),
        ("", "86401 S", "1 min", 1, False, 321),
        ("", "1 D", "1 min", 3, False, 321),
        ("20261123 10:00:00", "1 D", "1 min", 1, True, 321),
    ],
)
def test_the_checks_refuse_with_ibs_code(
    end: str, duration: str, bar: str, fmt: int, keep: bool, code: int
) -> None:
    """The request's checks alone, in IB's order."""
    with pytest.raises(HistoryRefused) as info:
        check_request(
            symbol="TQQQ",
            end_text=end,
            duration=duration,
            bar_size=bar,
            what_to_show="TRADES",
            use_rth=False,
            format_date=fmt,
            keep_up_to_date=keep,
            now=datetime(2026, 11, 23, 15, tzinfo=UTC),
        )
    assert info.value.code == code


@pytest.mark.parametrize(
    ("seconds", "sessions"),
    [(300, "regular"), (60, "extended"), (360, "extended"), (86400, "extended")],
)
async def test_ib_history_answers_the_last_complete_bars(
    seconds: int, sessions: SessionKind, caplog: pytest.LogCaptureFixture
) -> None:
    """The warm-up adapter through ib_insync: the last 5 complete bars, by value equal to
    the plain aggregation of the venue's prints (a 6-minute size composed of IB's 2-minute
    bars; today's daily bar is in progress, so it is left out)."""
    caplog.set_level(logging.WARNING, logger="ib_insync")
    async with history_venue() as (server, engine, prints):
        assert server.port is not None
        source = IBHistory(host="127.0.0.1", port=server.port, client_id=7, max_requests=0)
        got = await source.recent("TQQQ", seconds=seconds, count=5, sessions=sessions)
    now = engine.last_trade_at
    assert now is not None
    plain = plain_bars(
        plain_window(prints, now - timedelta(days=30), now), seconds, sessions == "regular"
    )

    def ended(bar: Bar) -> bool:
        span = window(epoch_ns(bar.start), seconds, sessions)
        return span is not None and span.end_ns <= epoch_ns(now)

    complete = [b for b in plain if ended(b)]
    assert len(complete) >= 1
    assert got == complete[-5:]


async def test_ib_history_names_the_venue_it_cannot_reach() -> None:
    """No TWS at the port: HistoryError naming where."""
    source = IBHistory(host="127.0.0.1", port=9, client_id=7, timeout=2)
    with pytest.raises(HistoryError, match=r"127\.0\.0\.1:9"):
        await source.recent("TQQQ", seconds=60, count=3, sessions="extended")


async def test_history_cut_inside_a_minute_is_not_printed_twice_when_the_venue_resumes() -> None:
    """A venue resumed inside a minute (``history_until`` its last print) serves that minute
    once: the given history's prints after the cut are dropped, and the rest of the minute,
    printed when the replay resumes, completes the bar as a plain aggregation of every print."""
    day = generated_days(seed=5, days=1, first=FIRST)[:30]
    prints = [t for b in day for t in bar_trades(b)]
    cut = prints[41]  # the second print of the eleventh minute
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[TQQQ],
        clock=lambda: engine.last_trade_at or cut.at,
        history=day,
        history_until=cut.at,
    )
    for t in prints[42:]:
        engine.on_trade(t.symbol, t.price, t.size, t.at)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        ib = await connect(server)
        try:
            rows = await ib.reqHistoricalDataAsync(
                Stock("TQQQ", "SMART", "USD"),
                endDateTime="",
                durationStr="1 D",
                barSizeSetting="1 min",
                whatToShow="TRADES",
                useRTH=False,
                formatDate=2,
            )
        finally:
            ib.disconnect()
            tg.cancel_scope.cancel()
    got = [(r.date, Decimal(str(r.open)), Decimal(str(r.close)), int(r.volume)) for r in rows]
    assert got[:-1] == [(b.start, b.open, b.close, b.volume) for b in day[:-1]]
    # The last bar is in progress at the venue's clock, its last print (the window's end,
    # exclusive): sent as far as it goes.
    assert got[-1][3] == sum(t.size for t in bar_trades(day[-1])[:-1])
