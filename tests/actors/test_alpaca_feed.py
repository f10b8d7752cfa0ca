"""The Alpaca feed adapter: the real alpaca-py (StockDataStream, StockHistoricalDataClient)
against the sim venue's Alpaca server on loopback, through every fault the issue names: bad
keys, a plan without the feed (409), the connection limit (406), a slow client (407), a server
close and a TCP reset, a mute connection, malformed points, and REST history in pages."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import anyio.lowlevel
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import Bar, PriceTick, epoch_ns
from actors.domain.bars import SessionKind, window
from actors.feeds.alpaca import (
    AlpacaHistory,
    AlpacaStream,
    FeedRefused,
    MalformedPoint,
    parse_trade,
)
from actors.market_data import LiveFeed, Subscriber
from runtime import Actor, ActorCell
from sim.alpaca.server import AlpacaServer
from sim.replay import generated_days, trades
from supervisors import ChildSpec, ChildUnrecoverable, Strategy, Supervisor, SupervisorSpec
from tests.actors.test_bars import plain_bars

pytestmark = pytest.mark.anyio

KEY, SECRET = "PKTEST1234", "not-a-real-secret-0123456789"
AT = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
FAST = (0.02, 0.1)  # the SDK's reconnect backoff, min and max seconds


@pytest.fixture
def anyio_backend() -> str:
    """alpaca-py and websockets' server are asyncio-native; real sockets need real clocks."""
    return "asyncio"


def ns(at: datetime) -> int:
    return int(at.replace(microsecond=0).timestamp()) * 1_000_000_000 + at.microsecond * 1000


@asynccontextmanager
async def venue(**options: Any) -> AsyncIterator[AlpacaServer]:
    server = AlpacaServer(credentials={KEY: SECRET}, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


@asynccontextmanager
async def streaming(
    server: AlpacaServer, symbols: tuple[str, ...] = ("TQQQ",), **options: Any
) -> AsyncIterator[AlpacaStream]:
    """A connected stream whose SDK loop runs beside the test."""
    options.setdefault("reconnect_backoff", FAST)
    stream = AlpacaStream(key=KEY, secret=SECRET, url=server.url("iex"), **options)
    await stream.connect(list(symbols))
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.run)
        await until(lambda: stream.statistics.subscriptions >= 1)
        yield stream
        tg.cancel_scope.cancel()
    await stream.close()


async def until(predicate: Any, deadline: float = 10.0) -> None:
    with anyio.fail_after(deadline):
        while not predicate():  # noqa: ASYNC110 - the SDK's effects are all there is to wait on
            await anyio.sleep(0.005)


async def take(stream: AlpacaStream, count: int, deadline: float = 10.0) -> list[PriceTick]:
    ticks: list[PriceTick] = []
    with anyio.fail_after(deadline):
        while len(ticks) < count:
            ticks.extend(await stream.next())
    return ticks


def publish(server: AlpacaServer, price: str, second: int, size: int = 100) -> None:
    server.publish_trade("TQQQ", Decimal(price), size, AT + timedelta(seconds=second))


# -- parsing ------------------------------------------------------------------------------------


def test_a_trade_point_parses_to_a_tick_with_alpacas_nanoseconds() -> None:
    """Price to the 1/100 cent from the float, size, and the Timestamp's exact nanoseconds."""
    stamp = msgpack.Timestamp(1_795_000_000, 123_456_789)
    point = {"T": "t", "S": "TQQQ", "i": 7, "p": 71.07000000000001, "s": 200, "t": stamp}
    assert parse_trade(point) == PriceTick(
        symbol="TQQQ",
        price=Decimal("71.07"),
        size=200,
        ts_event_ns=1_795_000_000_123_456_789,
    )


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.builds(msgpack.Timestamp, st.integers(0, 2**33), st.integers(0, 999_999_999)),
)


@given(st.dictionaries(st.sampled_from(["T", "S", "p", "s", "t", "x"]), values) | values)
def test_any_point_parses_or_raises_malformed_point_only(point: Any) -> None:
    """Whatever comes off the wire: a tick, or MalformedPoint saying why, never another error."""
    try:
        tick = parse_trade(point)
    except MalformedPoint:
        return
    assert isinstance(tick, PriceTick)
    assert tick.price.is_finite()
    assert math.isfinite(point["p"])


# -- the stream ---------------------------------------------------------------------------------


async def test_trades_arrive_with_the_venues_prices_and_stamps() -> None:
    """What the server publishes is what the feed hands on: prices exact, stamps exact."""
    async with venue() as server, streaming(server) as stream:
        for second, price in enumerate(["71.03", "71.07", "70.9901"]):
            publish(server, price, second)
        ticks = await take(stream, 3)
    assert [(t.price, t.size, t.ts_event_ns) for t in ticks] == [
        (Decimal(p), 100, ns(AT + timedelta(seconds=s)))
        for s, p in enumerate(["71.03", "71.07", "70.9901"])
    ]
    assert stream.statistics.malformed == 0


async def test_bad_keys_are_refused_for_good_after_the_configured_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """402 auth failed, retried by the SDK; after auth_failures in a row the stream raises
    FeedRefused (unrecoverable) naming the keys' variables, never their values."""
    caplog.set_level(logging.DEBUG)
    async with venue() as server:
        stream = AlpacaStream(
            key="WRONG", secret=SECRET, url=server.url(), auth_failures=2, reconnect_backoff=FAST
        )
        await stream.connect(["TQQQ"])
        with anyio.fail_after(20), pytest.raises(FeedRefused, match="ALPACA_KEY") as info:
            await stream.run()
        await stream.close()
        assert [e["code"] for e in server.events_of("error")] == [402, 402]
    assert stream.statistics.refusals["auth failed"] == 2
    assert SECRET not in str(info.value)
    assert not any(SECRET in r.getMessage() for r in caplog.records)


async def test_a_plan_without_the_feed_is_refused_for_good() -> None:
    """409 insufficient subscription: alpaca-py's loop returns silently; the stream raises."""
    async with venue() as server:
        stream = AlpacaStream(key=KEY, secret=SECRET, feed="sip", url=server.url("sip"))
        await stream.connect(["TQQQ"])
        with anyio.fail_after(20), pytest.raises(FeedRefused, match="insufficient subscription"):
            await stream.run()
        await stream.close()
        assert [e["code"] for e in server.events_of("error")] == [409]


async def test_a_refused_feed_stops_the_tree_instead_of_restarting() -> None:
    """The market-data actor crashes with FeedRefused: no restart, the root escalates."""

    class Sink(Actor[PriceTick]):
        def handle(self, message: PriceTick) -> None:
            return None

    async with venue() as server:
        stream = AlpacaStream(key=KEY, secret=SECRET, feed="sip", url=server.url("sip"))
        sink: ActorCell[PriceTick] = ActorCell("symbol.TQQQ", Sink)
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca", lambda: LiveFeed(stream, {"TQQQ": [Subscriber(ref=sink.ref)]})
        )
        root = Supervisor(
            "root",
            SupervisorSpec(
                strategy=Strategy.REST_FOR_ONE,
                children=[
                    ChildSpec(id="symbol.TQQQ", start=sink),
                    ChildSpec(id="market-data.alpaca", start=feed),
                ],
            ),
        )
        with anyio.fail_after(20), pytest.raises(ChildUnrecoverable) as info:
            await root.run()
    error = info.value
    assert error.child == "market-data.alpaca"
    assert isinstance(error.__cause__, FeedRefused)
    assert root.restarts == 0


async def test_a_second_connection_on_the_same_keys_waits_for_its_turn() -> None:
    """406 connection limit exceeded is retried, not fatal; the slot frees, the second gets in."""
    async with venue() as server:
        first = AlpacaStream(key=KEY, secret=SECRET, url=server.url(), reconnect_backoff=FAST)
        second = AlpacaStream(key=KEY, secret=SECRET, url=server.url(), reconnect_backoff=FAST)
        await first.connect(["TQQQ"])
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            await until(lambda: first.statistics.subscriptions == 1)
            await second.connect(["TQQQ"])
            tg.start_soon(second.run)
            await until(lambda: second.statistics.refusals["connection limit exceeded"] >= 2)
            assert second.statistics.connects == 0
            await first.close()
            await until(lambda: second.statistics.subscriptions == 1)
            publish(server, "71.50", 1)
            (tick,) = await take(second, 1)
            tg.cancel_scope.cancel()
        await second.close()
    assert tick.price == Decimal("71.50")


async def test_the_handler_only_enqueues_so_a_burst_is_never_a_slow_client() -> None:
    """20,000 trades while nobody drains the feed: the socket keeps being read (no 407), and
    the buffer keeps the latest tick per symbol beyond its backlog."""
    async with venue() as server, streaming(server, backlog=500) as stream:
        for n in range(20_000):
            publish(server, f"{70 + n / 10_000:.4f}", n)
            if n % 100 == 99:
                await anyio.lowlevel.checkpoint()
        await until(lambda: stream.statistics.received == 20_000, deadline=30)
        ticks = await stream.next()
        assert server.events_of("error") == []
    assert len(ticks) <= 501
    assert ticks[-1].price == Decimal("71.9999")
    assert stream.statistics.coalesced >= 19_000
    assert stream.statistics.connects == 1


async def test_a_slow_client_dropped_by_the_server_reconnects_and_resubscribes() -> None:
    """407 slow client, then the server closes: the SDK reconnects and subscribes again."""
    async with venue(max_backlog=50) as server, streaming(server) as stream:
        for n in range(1_000):  # at once: more than the server will queue for anyone
            publish(server, "71.00", n)
        await until(lambda: stream.statistics.subscriptions >= 2)
        assert [e["code"] for e in server.events_of("error")] == [407]
        assert stream.statistics.refusals["slow client (407)"] == 1
        publish(server, "72.00", 2_000)
        await until(lambda: any(t.price == Decimal("72.00") for t in stream._buffer))
    assert len(server.events_of("subscribe")) == 2


@pytest.mark.parametrize("fault", ["close", "reset"])
async def test_a_dropped_connection_reconnects_and_resubscribes(fault: str) -> None:
    """A close frame (1011) or a TCP reset: the SDK reconnects, subscribes to the same set
    again, and trades flow."""
    async with venue() as server, streaming(server) as stream:
        publish(server, "71.00", 0)
        await take(stream, 1)
        server.drop_all(1011) if fault == "close" else server.abort_all()
        await until(lambda: stream.statistics.subscriptions == 2)
        publish(server, "71.25", 1)
        (tick,) = await take(stream, 1)
    assert tick.price == Decimal("71.25")
    assert stream.statistics.connects == 2
    assert stream.statistics.reconnects >= 1
    subscriptions = server.events_of("subscribe")
    assert len(subscriptions) == 2
    assert subscriptions[0]["trades"] == subscriptions[1]["trades"] == ["TQQQ"]


async def test_a_mute_connection_is_reconnected_after_the_data_timeout() -> None:
    """Connected, subscribed, silent: after data_timeout the SDK reconnects."""
    async with venue() as server, streaming(server, data_timeout=0.3) as stream:
        publish(server, "71.00", 0)
        await take(stream, 1)
        server.mute(True)
        await until(lambda: stream.statistics.reconnects >= 1)
        server.mute(False)
        await until(lambda: stream.statistics.subscriptions >= 2)
        publish(server, "71.10", 1)
        await until(lambda: any(t.price == Decimal("71.10") for t in stream._buffer))


async def test_malformed_points_are_counted_and_dropped_alone() -> None:
    """A trade without a price, with a string for a time, or a NaN price, in one frame with good
    ones: the bad are counted and dropped, the good arrive."""
    async with venue() as server, streaming(server) as stream:
        stamp = msgpack.Timestamp.from_unix_nano(ns(AT))
        good = {"T": "t", "S": "TQQQ", "i": 1, "x": "V", "s": 100, "c": ["@"], "z": "C"}
        publish(server, "71.00", 0)
        server.publish_raw("TQQQ", {**good, "t": stamp})  # no price
        server.publish_raw("TQQQ", {**good, "p": 71.0, "t": "2026-11-23T14:30:00Z"})
        server.publish_raw("TQQQ", {**good, "p": float("nan"), "t": stamp})
        publish(server, "71.01", 1)
        ticks = await take(stream, 2)
    assert [t.price for t in ticks] == [Decimal("71.00"), Decimal("71.01")]
    assert stream.statistics.malformed == 3


async def test_a_frame_alpaca_py_cannot_handle_is_counted_and_the_stream_reads_on() -> None:
    """A point that is not an object makes alpaca-py drop the rest of its frame (it raises
    inside its read loop): counted, no reconnect, still subscribed, later frames arrive."""
    async with venue() as server, streaming(server) as stream:
        publish(server, "71.00", 0)
        server.publish_raw("TQQQ", 5)
        publish(server, "71.01", 1)  # same frame, after the bad point: lost by the SDK
        await take(stream, 1)
        await until(lambda: stream.statistics.malformed_frames == 1)
        publish(server, "71.02", 2)
        (tick,) = await take(stream, 1)
        with anyio.fail_after(1):
            await stream.ready()
    assert tick.price == Decimal("71.02")
    assert (stream.statistics.connects, stream.statistics.reconnects) == (1, 0)
    assert stream.statistics.refusals == {}


# -- history -----------------------------------------------------------------------------------


async def test_history_comes_back_whole_through_pages() -> None:
    """StockHistoricalDataClient follows next_page_token: 7 bars in pages of 3."""
    bars = [
        Bar(
            symbol="TQQQ",
            start=AT + timedelta(minutes=i),
            open=Decimal("70.00") + i,
            high=Decimal("70.50") + i,
            low=Decimal("69.75") + i,
            close=Decimal("70.25") + i,
            volume=1_000 + i,
        )
        for i in range(7)
    ]
    async with venue(history=bars, page_size=3) as server:
        history = AlpacaHistory(key=KEY, secret=SECRET, url=server.rest_url)
        got = await anyio.to_thread.run_sync(lambda: history.bars("TQQQ", AT))
        assert len(server.events_of("rest")) == 3
    assert got == bars


@pytest.mark.parametrize(("seconds", "sessions"), [(300, "regular"), (3600, "extended")])
async def test_alpaca_history_answers_the_last_complete_bars_across_pages(
    seconds: int, sessions: SessionKind
) -> None:
    """The warm-up port on alpaca-py's get_stock_bars: minute bars over many pages, composed;
    by value the last 4 complete bars of a plain aggregation of the venue's prints."""
    days = generated_days(seed=9, days=2, first=date(2026, 11, 23))[: 960 + 400]
    now = days[-1].start + timedelta(seconds=59)
    async with venue(history=days, page_size=500) as server:
        history = AlpacaHistory(key=KEY, secret=SECRET, url=server.rest_url, clock=lambda: now)
        got = await history.recent("TQQQ", seconds=seconds, count=4, sessions=sessions)
        assert len(server.events_of("rest")) >= 3
    prints = [(epoch_ns(t.at), t.price, t.size) for t in trades(days)]
    plain = plain_bars(prints, seconds, sessions == "regular")

    def ended(bar: Bar) -> bool:
        span = window(epoch_ns(bar.start), seconds, sessions)
        return span is not None and span.end_ns <= epoch_ns(now)

    assert got == [b for b in plain if ended(b)][-4:]
    assert len(got) == 4
