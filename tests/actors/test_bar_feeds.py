"""Bars through the actors: a replay fans ticks and closed bars out to two strategies of one
symbol, each getting what it declared; a strategy needing warm-up gets exactly its history
before any live bar, through ``warm``, and again after a restart; a bar decision takes the
order path (intent committed, order at the venue); a live feed closes a bar when the clock
passes its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.broker import BrokerActor
from actors.brokers.sim import SimPort
from actors.domain import Bar, PriceTick, epoch_ns, route
from actors.domain.sessions import NEW_YORK
from actors.history import ReplayHistory
from actors.lot_keeper import LedgerState, LoadLedger, LotKeeper, ledger_store
from actors.market_data import LiveFeed, Subscriber
from actors.replay_feed import ReplayFeed
from actors.strategies.protocol import BarClosed, Needs
from actors.symbol import SymbolActor
from runtime import Actor, ActorCell
from sim.engine import Engine
from sim.replay import generated_days, trades
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec
from tests.bar_strategies import RecorderKind

from .test_bars import plain_bars

pytestmark = pytest.mark.anyio

DAY_ONE = date(2026, 11, 23)


def trade_tuples(bars: list[Bar]) -> list[tuple[int, Decimal, int]]:
    return [(epoch_ns(t.at), t.price, t.size) for t in trades(bars)]


@asynccontextmanager
async def tree(
    tmp_path: Path,
    replay: list[Bar],
    kinds: list[RecorderKind],
    history: ReplayHistory,
    engine: Engine,
) -> AsyncIterator[tuple[Supervisor, dict[str, ActorCell[Any]], anyio.Event]]:
    """Lot-keeper, broker on the in-process venue, one symbol actor per kind, the replay in
    lockstep; one_for_one, so that a killed symbol actor restarts alone."""
    port = SimPort(engine, replay[0].start)
    finished = anyio.Event()
    keeper: ActorCell[Any] = ActorCell("lot-keeper", lambda: LotKeeper(ledger_store(tmp_path)))
    cells: dict[str, ActorCell[Any]] = {}
    broker: ActorCell[Any] = ActorCell(
        "broker",
        lambda: BrokerActor(port, {route(k.name, k.symbol): cells[k.name].ref for k in kinds}),
    )
    for kind in kinds:
        cells[kind.name] = ActorCell(
            f"symbol.{kind.name}",
            lambda kind=kind: SymbolActor(  # type: ignore[misc]  # bound per kind
                kind, lot_keeper=keeper.ref, broker=broker.ref, history=history
            ),
        )
    subscribers = {"TQQQ": tuple(Subscriber(ref=cells[k.name].ref, needs=k.needs) for k in kinds)}
    feed: ActorCell[Any] = ActorCell(
        "market-data",
        lambda: ReplayFeed(
            trades(replay),
            market=port.trade,
            broker=broker.ref,
            symbols=subscribers,
            finished=finished.set,
        ),
    )
    children = [
        ChildSpec(id="lot-keeper", start=keeper),
        ChildSpec(id="broker", start=broker),
        *(ChildSpec(id=c.name, start=c) for c in cells.values()),
        ChildSpec(id="market-data", start=feed),
    ]
    root = Supervisor("root", SupervisorSpec(strategy=Strategy.ONE_FOR_ONE, children=children))
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        yield root, {**cells, "lot-keeper": keeper}, finished
        tg.cancel_scope.cancel()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the store's thread and real time; the tree runs on both elsewhere


async def test_two_strategies_of_one_symbol_get_what_they_declared(tmp_path: Path) -> None:
    """Ticks and minute bars to one, regular 5-minute bars (and no ticks) to the other, each
    by value equal to a plain aggregation of the replayed trades; the second gets exactly its
    3 bars of warm-up, the last of the day before, before anything live, and after a restart
    the last 3 of the day so far; the first's bar decisions are committed intents and orders
    at the venue."""
    days = generated_days(seed=5, days=2, first=DAY_ONE)
    before = [b for b in days if b.start.astimezone(NEW_YORK).date() == DAY_ONE]
    replay = days[len(before) : len(before) + 400]  # 04:00 to 10:40 of the second day
    ticks_and_minutes = RecorderKind(
        name="minutes",
        symbol="TQQQ",
        needs=Needs(ticks=True, bars=(60,), timer=False),
        buy_every=100,
    )
    regular_fives = RecorderKind(
        name="fives",
        symbol="TQQQ",
        needs=Needs(ticks=False, bars=(300,), sessions="regular", warmup=3, timer=False),
    )
    engine = Engine()
    history = ReplayHistory(days, until=lambda: engine.last_trade_at or before[-1].start)
    kinds = [ticks_and_minutes, regular_fives]
    async with tree(tmp_path, replay, kinds, history, engine) as (root, cells, finished):
        with anyio.fail_after(120):
            await finished.wait()
            state = await cells["lot-keeper"].ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
            warmed = len(regular_fives.journal.warmups())
            root.kill("symbol.fives")
            while len(regular_fives.journal.warmups()) == warmed:  # noqa: ASYNC110 - its start
                await anyio.sleep(0.01)

    replayed = trade_tuples(replay)
    minutes = ticks_and_minutes.journal
    assert [(t.ts_event_ns, t.price, t.size) for t in minutes.ticks()] == replayed
    live_minutes = [b.bar for b in minutes.bars()]
    assert live_minutes == plain_bars(replayed, 60, regular=False)
    assert len(live_minutes) == 400
    assert minutes.warmups() == []
    placed = [f"minutes:TQQQ:B{n}:1" for n in (1, 2, 3, 4)]
    assert isinstance(state, LedgerState)
    assert [i.ref for i in state.intents] == placed
    assert [ref for ref in engine.orders] == placed
    # Each filled at the trade after its bar; the last bar closed as the replay ended.
    assert [engine.orders[ref].done for ref in placed] == [True, True, True, False]

    fives = regular_fives.journal
    assert fives.ticks() == []
    expected_warm = plain_bars(trade_tuples(before), 300, regular=True)[-3:]
    assert expected_warm[-1].start == datetime.combine(DAY_ONE, time(15, 55), tzinfo=NEW_YORK)
    assert fives.entries[0] == ("warm", tuple(BarClosed(bar=b, seconds=300) for b in expected_warm))
    live = [b.bar for b in fives.bars()]
    assert live == plain_bars(replayed, 300, regular=True)
    assert len(live) == 14  # 09:30 to 10:35
    assert all(kind == "bar" for kind, _ in fives.entries[1:-1])
    assert fives.entries[-1] == ("warm", tuple(BarClosed(bar=b, seconds=300) for b in live[-3:]))


class PushedTicks:
    """A TickSource the test pushes ticks into (the port's contract, no connection)."""

    name = "pushed"

    def __init__(self) -> None:
        self.queue: list[PriceTick] = []
        self.arrived = anyio.Event()

    def push(self, *ticks: PriceTick) -> None:
        self.queue.extend(ticks)
        self.arrived.set()

    async def connect(self, symbols: list[str]) -> None:
        return None

    async def ready(self) -> None:
        return None

    async def run(self) -> None:
        await anyio.sleep_forever()

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


class Sink(Actor[PriceTick | BarClosed]):
    def __init__(self, got: list[PriceTick | BarClosed]) -> None:
        self.got = got

    def handle(self, message: PriceTick | BarClosed) -> None:
        self.got.append(message)


async def test_a_live_feed_closes_a_bar_when_the_clock_passes_its_end() -> None:
    """No later tick needed: the feed's clock (the last exchange time plus the time since)
    passes 10:01 and the minute bar goes out, to the subscriber of bars only; the ticks go
    to the subscriber of ticks only."""
    source = PushedTicks()
    ticks_only: list[PriceTick | BarClosed] = []
    bars_only: list[PriceTick | BarClosed] = []
    a: ActorCell[Any] = ActorCell("symbol.a", lambda: Sink(ticks_only))
    b: ActorCell[Any] = ActorCell("symbol.b", lambda: Sink(bars_only))
    subscribers = {
        "TQQQ": [
            Subscriber(ref=a.ref, needs=Needs(ticks=True)),
            Subscriber(ref=b.ref, needs=Needs(ticks=False, bars=(60,))),
        ]
    }
    feed: ActorCell[Any] = ActorCell(
        "market-data.pushed", lambda: LiveFeed(source, subscribers, bar_timer=0.01)
    )
    ten = datetime.combine(DAY_ONE, time(10), tzinfo=NEW_YORK)
    first = PriceTick(
        symbol="TQQQ", price=Decimal("50.10"), size=5, ts_event_ns=epoch_ns(ten) + 10**10
    )
    last = PriceTick(
        symbol="TQQQ", price=Decimal("50.05"), size=7, ts_event_ns=epoch_ns(ten) + 59_990_000_000
    )
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            children=[ChildSpec(id=c.name, start=c) for c in (a, b, feed)],
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        source.push(first, last)
        with anyio.fail_after(10):
            while not bars_only:  # noqa: ASYNC110 - the feed's timer fires on its own
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert ticks_only == [first, last]
    assert bars_only == [
        BarClosed(
            bar=Bar(
                symbol="TQQQ",
                start=ten,
                open=Decimal("50.10"),
                high=Decimal("50.10"),
                low=Decimal("50.05"),
                close=Decimal("50.05"),
                volume=12,
            ),
            seconds=60,
        )
    ]
