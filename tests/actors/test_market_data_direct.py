"""A live feed's ticks go from the client's callback straight into the symbol actors'
mailboxes (``market_data``'s sink): the real alpaca-py against the sim venue's Alpaca server
and ib_insync against its TWS API server, and a pushed source for the cases a connection
cannot stage on cue (a bar's mailbox full in the middle of a fan-out, a stopped actor)."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import msgpack
import pytest

from actors.brokers.ib import IBMarketData
from actors.domain import PriceTick, epoch_ns
from actors.feeds.alpaca import AlpacaStream
from actors.market_data import (
    DescribeFeed,
    DirectSource,
    FeedView,
    LiveFeed,
    Sink,
    Subscriber,
    Subscribers,
    WaitSubscribed,
)
from actors.strategies.protocol import BarClosed, Needs
from runtime import Actor, ActorCell, ActorRef, Coalesce, MailboxClosed, MailboxConfig
from sim.alpaca.server import AlpacaServer
from sim.engine import Engine
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec
from tests.tws_venue import MONDAY, until
from tests.tws_venue import venue as tws_venue

pytestmark = pytest.mark.anyio

KEY, SECRET = "PKTEST1234", "not-a-real-secret-0123456789"
AT = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in New York
COALESCING = MailboxConfig(
    capacity=4, policies={PriceTick: Coalesce(key=operator.attrgetter("symbol"))}
)
"""A symbol actor's mailbox (app.compose's SYMBOL_MAILBOX), small enough to fill."""

Got = list[PriceTick | BarClosed]


@pytest.fixture
def anyio_backend() -> str:
    """alpaca-py, ib_insync and the venue's servers are asyncio-native."""
    return "asyncio"


class Recorder(Actor[PriceTick | BarClosed]):
    """A symbol actor that records what it gets; while ``gate`` is not set, it holds on to the
    message it is handling (a slow strategy), so its mailbox fills."""

    def __init__(self, got: Got, gate: anyio.Event | None = None) -> None:
        self.got = got
        self.gate = gate

    async def handle(self, message: PriceTick | BarClosed) -> None:
        self.got.append(message)
        if self.gate is not None:
            await self.gate.wait()


class ObservedStream(AlpacaStream):
    """Alpaca's stream, noting after each call of the SDK's handler how many messages the
    watched symbol actor's mailbox has taken in, and how many ticks ``next`` handed the
    market-data actor's loop."""

    def __init__(self, watched: ActorRef[Any], **options: Any) -> None:
        super().__init__(**options)
        self.watched = watched
        self.enqueued: list[int] = []
        self.taken = 0

    async def _on_trade(self, point: Any) -> None:
        await super()._on_trade(point)
        self.enqueued.append(self.watched.statistics().enqueued)

    async def next(self) -> list[PriceTick]:
        ticks = await super().next()
        self.taken += len(ticks)
        return ticks


@asynccontextmanager
async def alpaca() -> AsyncIterator[AlpacaServer]:
    server = AlpacaServer(credentials={KEY: SECRET})
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


def publish(server: AlpacaServer, price: str, second: int) -> None:
    server.publish_trade("TQQQ", Decimal(price), 100, AT + timedelta(seconds=second))


def tick(price: str, second: int) -> PriceTick:
    at = AT + timedelta(seconds=second)
    return PriceTick(symbol="TQQQ", price=Decimal(price), size=100, ts_event_ns=epoch_ns(at))


async def describe(feed: ActorCell[Any]) -> FeedView:
    view = await feed.ref.request(DescribeFeed(), timeout=10)
    assert isinstance(view, FeedView)
    return view


def prices(got: Got) -> list[str]:
    return [f"{m.price:.2f}" if isinstance(m, PriceTick) else f"bar {m.bar.close:.2f}" for m in got]


# -- Alpaca -------------------------------------------------------------------------------------


async def test_alpacas_handler_puts_each_tick_into_the_symbol_actors_mailbox_itself() -> None:
    """When the SDK's handler returns, the tick is in the symbol actor's mailbox: the
    market-data actor's loop took none of them (one hop fewer), and its counts stay right."""
    got: Got = []
    symbol: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Recorder(got), mailbox=COALESCING)
    async with alpaca() as server, anyio.create_task_group() as tg:
        stream = ObservedStream(symbol.ref, key=KEY, secret=SECRET, url=server.url("iex"))
        assert isinstance(stream, DirectSource)
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca", lambda: LiveFeed(stream, {"TQQQ": [Subscriber(ref=symbol.ref)]})
        )
        await tg.start(symbol.run)
        await tg.start(feed.run)
        await feed.ref.request(WaitSubscribed(), timeout=10)
        for n in range(5):
            publish(server, f"50.{n}0", n)
            await until(lambda n=n: len(got) == n + 1)
        view = await describe(feed)
        tg.cancel_scope.cancel()
    assert prices(got) == ["50.00", "50.10", "50.20", "50.30", "50.40"]
    assert stream.enqueued == [1, 2, 3, 4, 5]
    assert stream.taken == 0
    assert (view.ticks, view.direct) == (5, 5)


async def test_a_bar_goes_out_before_the_tick_that_completes_it() -> None:
    """A strategy of ticks and minute bars: the 10:01 trade completes the 10:00 bar, which
    reaches the symbol actor before that trade, both from the SDK's handler."""
    got: Got = []
    symbol: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Recorder(got), mailbox=COALESCING)
    needs = Needs(ticks=True, bars=(60,))
    async with alpaca() as server, anyio.create_task_group() as tg:
        stream = ObservedStream(symbol.ref, key=KEY, secret=SECRET, url=server.url("iex"))
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca",
            lambda: LiveFeed(
                stream, {"TQQQ": [Subscriber(ref=symbol.ref, needs=needs)]}, bar_timer=3600
            ),
        )
        await tg.start(symbol.run)
        await tg.start(feed.run)
        await feed.ref.request(WaitSubscribed(), timeout=10)
        for n, (price, second) in enumerate((("50.10", 10), ("50.30", 50), ("50.20", 65))):
            publish(server, price, second)
            await until(lambda n=n: stream.statistics.received == n + 1)
        await until(lambda: len(got) == 4)
        view = await describe(feed)
        tg.cancel_scope.cancel()
    assert prices(got) == ["50.10", "50.30", "bar 50.30", "50.20"]
    bar = got[2]
    assert isinstance(bar, BarClosed)
    assert (bar.seconds, bar.bar.start, bar.bar.open, bar.bar.high) == (
        60,
        AT,
        Decimal("50.1"),
        Decimal("50.3"),
    )
    assert stream.enqueued == [1, 2, 4]  # the bar and the tick, in that order, at once
    assert stream.taken == 0
    assert (view.ticks, view.direct, view.bars) == (3, 3, 1)


async def test_a_busy_symbol_actors_ticks_coalesce_without_holding_up_the_handler() -> None:
    """While the symbol actor is busy, a burst of 40 trades coalesces in its mailbox into the
    latest one, each put from the SDK's handler (nothing waits, nothing buffers)."""
    got: Got = []
    gate = anyio.Event()
    symbol: ActorCell[Any] = ActorCell(
        "symbol.TQQQ", lambda: Recorder(got, gate), mailbox=COALESCING
    )
    async with alpaca() as server, anyio.create_task_group() as tg:
        stream = ObservedStream(symbol.ref, key=KEY, secret=SECRET, url=server.url("iex"))
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca", lambda: LiveFeed(stream, {"TQQQ": [Subscriber(ref=symbol.ref)]})
        )
        await tg.start(symbol.run)
        await tg.start(feed.run)
        await feed.ref.request(WaitSubscribed(), timeout=10)
        publish(server, "50.00", 0)
        await until(lambda: len(got) == 1)  # the symbol actor holds on to it
        for n in range(1, 41):
            publish(server, f"{50 + n / 100:.2f}", n)
        await until(lambda: stream.statistics.received == 41)
        queued = symbol.ref.statistics()
        gate.set()
        await until(lambda: len(got) == 2)
        view = await describe(feed)
        tg.cancel_scope.cancel()
    assert (queued.depth, queued.coalesced, queued.dropped) == (1, 39, 0)
    assert prices(got) == ["50.00", "50.40"]
    assert stream.taken == 0
    assert stream.statistics.coalesced == 0
    assert (view.ticks, view.direct) == (41, 41)


async def test_a_full_mailbox_that_does_not_coalesce_gets_every_tick_in_order() -> None:
    """A subscriber whose mailbox never drops (capacity 4) and is busy: the handler puts what
    fits, the market-data actor sends the rest as room appears, and the ticks that arrive
    meanwhile wait in the stream, so all 20 arrive, in order."""
    got: Got = []
    gate = anyio.Event()
    symbol: ActorCell[Any] = ActorCell(
        "symbol.TQQQ", lambda: Recorder(got, gate), mailbox=MailboxConfig(capacity=4)
    )
    async with alpaca() as server, anyio.create_task_group() as tg:
        stream = ObservedStream(symbol.ref, key=KEY, secret=SECRET, url=server.url("iex"))
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca", lambda: LiveFeed(stream, {"TQQQ": [Subscriber(ref=symbol.ref)]})
        )
        await tg.start(symbol.run)
        await tg.start(feed.run)
        await feed.ref.request(WaitSubscribed(), timeout=10)
        publish(server, "50.00", 0)
        await until(lambda: len(got) == 1)
        for n in range(1, 20):
            publish(server, f"{50 + n / 100:.2f}", n)
        await until(lambda: stream.statistics.received == 20)
        gate.set()
        await until(lambda: len(got) == 20)
        view = await describe(feed)
        tg.cancel_scope.cancel()
    assert prices(got) == [f"{50 + n / 100:.2f}" for n in range(20)]
    assert symbol.ref.statistics().dropped == 0
    assert view.ticks == 20
    assert view.direct == 1 + 4  # the first, then what fitted; the actor sent the rest
    assert stream.taken == 20 - 6  # all but those, and the one the handler left it to send


async def test_a_killed_feed_leaves_no_sink_and_its_next_incarnation_installs_its_own() -> None:
    """The market-data actor killed (no on_stop, the stream left open): a trade the SDK's
    handler gets then waits in the stream, the symbol actor gets nothing; the next
    incarnation reconnects and delivers from the handler again."""
    got: Got = []
    symbol: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Recorder(got), mailbox=COALESCING)
    async with alpaca() as server, anyio.create_task_group() as tg:
        stream = ObservedStream(symbol.ref, key=KEY, secret=SECRET, url=server.url("iex"))
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca", lambda: LiveFeed(stream, {"TQQQ": [Subscriber(ref=symbol.ref)]})
        )
        await tg.start(symbol.run)
        async with anyio.create_task_group() as life:
            await life.start(feed.run)
            await feed.ref.request(WaitSubscribed(), timeout=10)
            publish(server, "50.00", 0)
            await until(lambda: len(got) == 1)
            life.cancel_scope.cancel()
        await stream._on_trade(server_point("50.01", 1))  # as the SDK would, had it read on
        with anyio.fail_after(5):
            assert await stream.next() == [tick("50.01", 1)]
        assert symbol.ref.statistics().enqueued == 1
        await tg.start(feed.run)
        await feed.ref.request(WaitSubscribed(), timeout=10)
        publish(server, "50.02", 2)
        await until(lambda: len(got) == 2)
        view = await describe(feed)
        tg.cancel_scope.cancel()
    assert prices(got) == ["50.00", "50.02"]
    assert (view.ticks, view.direct) == (1, 1)
    assert stream.enqueued[-1] == 2


def server_point(price: str, second: int) -> dict[str, Any]:
    """A trade point as alpaca-py hands it to the handler with ``raw_data``."""
    at = AT + timedelta(seconds=second)
    return {
        "T": "t",
        "S": "TQQQ",
        "p": float(price),
        "s": 100,
        "t": msgpack.Timestamp.from_unix_nano(epoch_ns(at)),
    }


# -- IB -----------------------------------------------------------------------------------------


async def test_ib_ticker_events_put_ticks_into_the_mailbox_until_the_feed_is_killed() -> None:
    """ib_insync's ticker event hands the tick to the symbol actor itself; once the
    market-data actor is killed, the connection still reads (ib_insync reads on the loop by
    itself) but its ticks wait in the source, for whoever takes them next."""
    got: Got = []
    symbol: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Recorder(got), mailbox=COALESCING)
    engine = Engine()
    async with tws_venue(engine) as server, anyio.create_task_group() as tg:
        assert server.port is not None
        source = IBMarketData(host="127.0.0.1", port=server.port, client_id=2, max_requests=0)
        feed: ActorCell[Any] = ActorCell(
            "market-data.ib", lambda: LiveFeed(source, {"TQQQ": [Subscriber(ref=symbol.ref)]})
        )
        await tg.start(symbol.run)
        async with anyio.create_task_group() as life:
            await life.start(feed.run)
            await until(lambda: any(s.subscriptions for s in server.sessions.values()))
            engine.on_trade("TQQQ", Decimal("50.10"), 100, MONDAY)
            await until(lambda: len(got) == 1)
            engine.on_trade("TQQQ", Decimal("50.20"), 100, MONDAY + timedelta(seconds=1))
            await until(lambda: len(got) == 2)
            view = await describe(feed)
            life.cancel_scope.cancel()
        engine.on_trade("TQQQ", Decimal("50.30"), 100, MONDAY + timedelta(seconds=2))
        with anyio.fail_after(5):
            late = await source.next()
        await source.close()
        tg.cancel_scope.cancel()
    assert prices(got) == ["50.10", "50.20"]
    assert (view.ticks, view.direct) == (2, 2)
    assert [t.price for t in late] == [Decimal("50.3")]
    assert symbol.ref.statistics().enqueued == 2


# -- a pushed source ----------------------------------------------------------------------------


class PushedDirect:
    """A ``DirectSource`` the test pushes ticks into, each offered to the sink at once as a
    client's callback would (no connection); ``drop()`` ends the connection."""

    name = "pushed"

    def __init__(self) -> None:
        self.queue: list[PriceTick] = []
        self.arrived = anyio.Event()
        self.dropped = anyio.Event()
        self.sink: Sink | None = None
        self.sinks: list[Sink | None] = []

    def deliver_to(self, sink: Sink | None) -> None:
        self.sink = sink
        self.sinks.append(sink)

    def push(self, *ticks: PriceTick) -> None:
        for t in ticks:
            if self.sink is not None and not self.queue and self.sink(t):
                continue
            self.queue.append(t)
            self.arrived.set()

    def drop(self) -> None:
        self.dropped.set()

    async def connect(self, symbols: list[str]) -> None:
        self.dropped = anyio.Event()

    async def ready(self) -> None:
        return None

    async def run(self) -> None:
        await self.dropped.wait()

    async def next(self) -> list[PriceTick]:
        while not self.queue:
            await self.arrived.wait()
            self.arrived = anyio.Event()
        ticks, self.queue = self.queue, []
        return ticks

    async def close(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {}


@asynccontextmanager
async def pushed(
    source: PushedDirect, subscribers: Subscribers, *cells: ActorCell[Any]
) -> AsyncIterator[ActorCell[Any]]:
    feed: ActorCell[Any] = ActorCell(
        "market-data.pushed", lambda: LiveFeed(source, subscribers, bar_timer=3600)
    )
    async with anyio.create_task_group() as tg:
        for cell in cells:
            await tg.start(cell.run)
        await tg.start(feed.run)
        await until(lambda: source.sink is not None)  # the actor's loop has started
        yield feed
        tg.cancel_scope.cancel()


async def test_a_bar_whose_mailbox_is_full_is_sent_by_the_actor_and_nothing_overtakes_it() -> None:
    """The 10:01 tick completes a bar for a busy subscriber whose mailbox (no coalescing,
    capacity 2) is full: the sink cannot put it, so the actor sends the bar, then that tick,
    and the ticks pushed meanwhile wait in the source; every subscriber gets all in order (the
    other one's 10:01 tick waits for that bar, as it did when the actor sent everything)."""
    slow: Got = []
    fast: Got = []
    gate = anyio.Event()
    a: ActorCell[Any] = ActorCell("symbol.a", lambda: Recorder(fast))
    b: ActorCell[Any] = ActorCell(
        "symbol.b", lambda: Recorder(slow, gate), mailbox=MailboxConfig(capacity=2)
    )
    subscribers = {
        "TQQQ": [
            Subscriber(ref=a.ref, needs=Needs(ticks=True)),
            Subscriber(ref=b.ref, needs=Needs(ticks=True, bars=(60,))),
        ]
    }
    source = PushedDirect()
    ticks = [tick("50.10", 10), tick("50.20", 20), tick("50.30", 30), tick("50.40", 65)]
    async with pushed(source, subscribers, a, b) as feed:
        source.push(ticks[0])
        await until(lambda: len(slow) == 1)  # b holds on to it
        source.push(*ticks[1:])
        later = tick("50.50", 70)
        source.push(later)
        assert source.queue == [later]  # the actor owes b the bar: the source keeps it
        await until(lambda: len(fast) == 3)  # its 10:01 tick is owed after b's bar
        gate.set()
        await until(lambda: len(slow) == 6 and len(fast) == 5)
        view = await describe(feed)
    assert prices(fast) == ["50.10", "50.20", "50.30", "50.40", "50.50"]
    assert prices(slow) == ["50.10", "50.20", "50.30", "bar 50.30", "50.40", "50.50"]
    assert (view.ticks, view.direct, view.bars) == (5, 3, 1)


async def test_a_stopped_symbol_actor_crashes_the_feed_from_its_send_not_the_callback() -> None:
    """A symbol actor stopped for good (its mailbox closed): the callback's put fails, the
    sink leaves the tick to the actor, and the actor's send raises ``MailboxClosed`` as it
    did before there was a sink; the source's callback never sees the error."""
    got: Got = []
    symbol: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Recorder(got), mailbox=COALESCING)
    source = PushedDirect()
    feed: ActorCell[Any] = ActorCell(
        "market-data.pushed", lambda: LiveFeed(source, {"TQQQ": [Subscriber(ref=symbol.ref)]})
    )
    with pytest.raises(ExceptionGroup) as crashed:  # noqa: PT012 - the feed crashes on its own
        async with anyio.create_task_group() as tg:
            await tg.start(symbol.run)
            await tg.start(feed.run)
            await until(lambda: source.sink is not None)
            source.push(tick("50.10", 1))
            await until(lambda: len(got) == 1)
            symbol.mailbox.close()
            source.push(tick("50.20", 2))
            await anyio.sleep_forever()
    assert crashed.value.subgroup(MailboxClosed) is not None
    assert prices(got) == ["50.10"]


async def test_each_incarnation_installs_its_sink_and_removes_it_however_it_ends() -> None:
    """A dropped connection crashes the feed, its supervisor restarts it: the sink goes with
    the crashed incarnation and the new one installs its own; a stop removes it too."""
    got: Got = []
    symbol: ActorCell[Any] = ActorCell("symbol.TQQQ", lambda: Recorder(got), mailbox=COALESCING)
    source = PushedDirect()
    feed: ActorCell[Any] = ActorCell(
        "market-data.pushed", lambda: LiveFeed(source, {"TQQQ": [Subscriber(ref=symbol.ref)]})
    )
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            children=[ChildSpec(id=c.name, start=c) for c in (symbol, feed)],
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await until(lambda: source.sink is not None)
        first = source.sink
        source.push(tick("50.10", 1))
        source.drop()
        await until(lambda: feed.restarts == 1 and source.sink is not None)
        second = source.sink
        source.push(tick("50.20", 2))
        await until(lambda: len(got) == 2)
        view = await describe(feed)
        root.stop()
    assert source.sinks == [first, None, second, None]
    assert first is not second
    assert prices(got) == ["50.10", "50.20"]
    assert (view.ticks, view.direct) == (1, 1)
