"""The seed-style baseline: what users run today, measured beside our runtime in the same run.

**What the seed bot models.** A typical retail grid bot, written the plain way: one asyncio event
loop; ib_insync's ``IB()`` connected to TWS (here our ``sim/tws`` server over a real loopback
socket, the same venue our runtime trades on); prices from ``reqMktData`` (``ticker.updateEvent``);
state in SQLite with Python's ``sqlite3`` defaults (rollback journal, ``synchronous=FULL``, one
commit per change); the grid rules of SPEC section 4, decided on each price update and each order
status:

* no open lot and no level-0 buy working: a DAY LIMIT buy of ``shares[0]`` at ``price * 1.0025``;
* a buy filled (``orderStatus`` Filled): insert the lot (commit), place its GTC +1% sell, record
  the sell (commit), then top the queue up to 3 conditional buys (GTC, ib_insync
  ``PriceCondition``, trigger ``T[k] = T[k-1] * 0.99``, limit = trigger), each recorded;
* a sell filled: close its lot (commit); re-align the queue (place the missing level, cancel the
  one now too deep); no lot left: cancel the queue, the next price starts at level 0 again;
* every order is written to SQLite *after* ``placeOrder`` returns: no write-ahead intent (the seed
  ordering). An order status or fill for an order id SQLite does not know is ignored.
* on start it loads its lots and orders from SQLite and carries on from them (a sell for an open
  lot that has none recorded, the queue); it trusts SQLite: ib_insync re-reads the open orders
  at connect as it always does, but the bot does not reconcile with the broker.

It is honest about what it leaves out: no level-0 fill timeout (a replay runs faster than a
120 s wall clock), no pacing (ib_insync's request throttle is off, as it is for our embedded
venue), prices as ``Decimal`` rounded half-up to the cent as SPEC 4 says.

**What is measured** (group "seed-style baseline", each variant interleaved in rounds with ours):

* tick-to-order over the same path for both: from the venue publishing a trade
  (``Engine.on_trade``) through sim/tws market data, ib_insync, the bot, ``placeOrder``, to the
  frame decoded by sim/tws (``placed_listeners``). Ours is the production tree
  (``app.compose.live_trading``: IB market data feed -> symbol actor -> lot-keeper with its
  durable intent -> broker actor -> ``IBPort``). The seed bot commits nothing before it places
  an order (its SQLite write comes after), so ours carries a write it does not. Both bots run
  with the venue in two places: on a thread of the bot's process with its own loop
  (``VenueThread``: the venue shares the bot's GIL) and in a process of its own
  (``VenueProcess``, bench/venue_process.py, as TWS is), where the figure is measured in the
  venue's process. Ours is compared with the seed bot with the venue in the same place.
* throughput on the same replay (a generated day, seed 14, 3,840 trades): the venue matches each
  trade and the bot is handed its price (the seed bot's handler, or our market-data actor ->
  symbol actor path with the durable lot-keeper), one scheduler pass per trade for both; orders
  over the wire to sim/tws.
* the kill: the seed bot as a subprocess on the same replay, SIGKILLed just after a
  ``placeOrder`` returned (its frame decoded by the venue) and before the SQLite commit (a
  placement drawn at random, seeded, from a control run without a kill); restarted on the same
  SQLite file and the same venue, run to the end; then its books against the venue's: duplicate
  orders (same level and side working twice), shares it lost track of, shares with no sell.
  Ours: ``app.chaos.process.run_campaign`` (SIGKILLs of ``actorctl start`` checked against the
  same books by its invariants), in a full run only; ``--quick`` cites tests/chaos/test_process.py.

    python bench/seed_bot.py [--rounds 3] [--quick] [--json bench/results/seed-bot.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio
import anyio.lowlevel
import attrs
from common import Row, Target, interleave, latency_row, rate_row, render, spread, write_rows
from ib_insync import IB, LimitOrder, PriceCondition, Stock, Trade
from venue_process import (
    MONDAY,
    SYMBOL,
    Decoded,
    VenueProcess,
    flatten,
    trade_price,
    venue,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # the child process runs this file by path
    sys.path.insert(0, str(ROOT))

from actors.broker import BrokerActor, Poll  # noqa: E402
from actors.brokers.ib import IBMarketData, IBPort  # noqa: E402
from actors.domain import PriceTick  # noqa: E402
from actors.domain import Trade as ReplayTrade  # noqa: E402
from actors.lot_keeper import LotKeeper, ledger_store  # noqa: E402
from actors.market_data import WaitSubscribed  # noqa: E402
from actors.strategies.grid import GridKind, GridParams  # noqa: E402
from actors.symbol import SymbolActor, TimerTick  # noqa: E402
from app.compose import LiveSource, live_trading  # noqa: E402
from config.lotmap import LotMap, load_lot_map  # noqa: E402
from runtime import Actor, ActorCell, ActorRef  # noqa: E402
from runtime.store import Durability  # noqa: E402
from sim.replay import generated_days, trades  # noqa: E402
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec  # noqa: E402

GROUP = "seed-style baseline"
LOTS = load_lot_map(ROOT / "config" / "lots" / "tqqq.csv")
SESSION_SEED = 14
"""`actorctl start`'s default generated session (config/actortrade.toml ``venue.seed``)."""
CENT = Decimal("0.01")
PACE = 0.001
"""Seconds between two trades of the kill replay (a generated day in about 4 s)."""
READY, PAUSED = "READY", "PAUSED"


def round_tick(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- the seed bot ----------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (
    id INTEGER PRIMARY KEY, level INTEGER, shares INTEGER, buy_price TEXT,
    buy_order_id INTEGER, sell_order_id INTEGER, sell_price TEXT,
    status TEXT DEFAULT 'open', realized TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, level INTEGER, side TEXT, price TEXT, shares INTEGER,
    lot_id INTEGER, status TEXT DEFAULT 'working'
);
CREATE TABLE IF NOT EXISTS anchor (id INTEGER PRIMARY KEY CHECK (id = 1), price TEXT);
"""


class SeedBot:
    """The seed-style grid bot (see the module doc): one loop, ib_insync, SQLite, no intents.

    ``on_placed`` is called right after each ``placeOrder`` returns, before the SQLite write:
    the kill experiment stops the process there."""

    def __init__(
        self,
        ib: IB,
        db: Path,
        lots: LotMap,
        *,
        on_placed: Callable[[Trade], None] | None = None,
    ) -> None:
        self.ib = ib
        self.lots = lots
        self.on_placed = on_placed or (lambda _trade: None)
        self.db = sqlite3.connect(db)  # the defaults: rollback journal, synchronous=FULL
        self.db.executescript(SCHEMA)
        self.contract: Any = None
        self.price: Decimal | None = None
        self.seen: tuple[float, float] | None = None
        self.placed = 0
        self.flat = asyncio.Event()

    # -- start ---------------------------------------------------------------------------------

    async def start(self, *, subscribe: bool = True) -> None:
        self.contract = (await self.ib.qualifyContractsAsync(Stock(SYMBOL, "SMART", "USD")))[0]
        self.ib.orderStatusEvent += self.on_status
        self.resume()
        if subscribe:
            ticker = self.ib.reqMktData(self.contract)
            ticker.updateEvent += self.on_ticker

    def resume(self) -> None:
        """Carry on from SQLite: a sell for each open lot that has none recorded, the queue."""
        rows = self.db.execute(
            "SELECT id, level, shares, buy_price FROM lots "
            "WHERE status = 'open' AND sell_order_id IS NULL"
        ).fetchall()
        for lot_id, level, shares, buy_price in rows:
            self._sell(lot_id, level, shares, Decimal(buy_price))
        if self.open_lots():
            self._realign()

    def anchor(self) -> Decimal | None:
        row = self.db.execute("SELECT price FROM anchor").fetchone()
        return Decimal(row[0]) if row else None

    def open_lots(self) -> list[tuple[int, int, int]]:
        """(id, level, shares) of every open lot."""
        return self.db.execute(
            "SELECT id, level, shares FROM lots WHERE status = 'open' ORDER BY level"
        ).fetchall()

    def working(self, side: str) -> dict[int, int]:
        """order id -> level of this side's working orders."""
        rows = self.db.execute(
            "SELECT order_id, level FROM orders WHERE status = 'working' AND side = ?", (side,)
        ).fetchall()
        return dict(rows)

    # -- prices --------------------------------------------------------------------------------

    def on_ticker(self, ticker: Any) -> None:
        last = ticker.last
        if last is None or math.isnan(last) or last <= 0:
            return
        # An update may be only the bid or ask moving: decide on a new last trade.
        seen = (last, ticker.lastSize)
        if seen == self.seen:
            return
        self.seen = seen
        self.on_price(Decimal(repr(last)))

    def on_price(self, price: Decimal) -> None:
        self.price = price
        if self.open_lots() or 0 in self.working("BUY").values():
            return
        order = LimitOrder("BUY", self.lots[0], float(round_tick(price * Decimal("1.0025"))))
        order.tif, order.outsideRth, order.orderRef = "DAY", True, f"seed:{SYMBOL}:L0:BUY"
        trade = self._place(order)
        self.flat.clear()
        self._record(trade, level=0, lot_id=None)

    # -- orders --------------------------------------------------------------------------------

    def _place(self, order: LimitOrder) -> Trade:
        trade = self.ib.placeOrder(self.contract, order)
        self.placed += 1
        self.on_placed(trade)
        return trade

    def _record(self, trade: Trade, *, level: int, lot_id: int | None) -> None:
        order = trade.order
        with self.db:
            self.db.execute(
                "INSERT INTO orders (order_id, level, side, price, shares, lot_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    order.orderId,
                    level,
                    order.action,
                    str(order.lmtPrice),
                    int(order.totalQuantity),
                    lot_id,
                ),
            )

    def on_status(self, trade: Trade) -> None:
        status = trade.orderStatus.status
        row = self.db.execute(
            "SELECT level, side, lot_id, status FROM orders WHERE order_id = ?",
            (trade.order.orderId,),
        ).fetchone()
        if row is None or row[3] != "working":
            return  # not ours as far as SQLite knows, or already handled
        level, side, lot_id, _ = row
        if status == "Filled":
            price = Decimal(repr(trade.orderStatus.avgFillPrice))
            shares = int(trade.orderStatus.filled)
            if side == "BUY":
                self._bought(trade.order.orderId, level, shares, price)
            else:
                self._sold(trade.order.orderId, lot_id, shares, price)
        elif status in ("Cancelled", "ApiCancelled", "Inactive"):
            with self.db:
                self.db.execute(
                    "UPDATE orders SET status = 'cancelled' WHERE order_id = ?",
                    (trade.order.orderId,),
                )
            if not self.open_lots() and 0 not in self.working("BUY").values():
                self.flat.set()

    def _bought(self, order_id: int, level: int, shares: int, price: Decimal) -> None:
        with self.db:
            self.db.execute("UPDATE orders SET status = 'filled' WHERE order_id = ?", (order_id,))
            if level == 0:
                self.db.execute("INSERT OR REPLACE INTO anchor VALUES (1, ?)", (str(price),))
            lot_id = self.db.execute(
                "INSERT INTO lots (level, shares, buy_price, buy_order_id) VALUES (?, ?, ?, ?)",
                (level, shares, str(price), order_id),
            ).lastrowid
        assert lot_id is not None
        self._sell(lot_id, level, shares, price)
        self._realign()

    def _sell(self, lot_id: int, level: int, shares: int, price: Decimal) -> None:
        sell_price = round_tick(price * Decimal("1.01"))
        order = LimitOrder("SELL", shares, float(sell_price))
        order.tif, order.outsideRth = "GTC", True
        order.orderRef = f"seed:{SYMBOL}:L{level}:SELL"
        trade = self._place(order)
        self._record(trade, level=level, lot_id=lot_id)
        with self.db:
            self.db.execute(
                "UPDATE lots SET sell_order_id = ?, sell_price = ? WHERE id = ?",
                (trade.order.orderId, str(sell_price), lot_id),
            )

    def _sold(self, order_id: int, lot_id: int, shares: int, price: Decimal) -> None:
        with self.db:
            self.db.execute("UPDATE orders SET status = 'filled' WHERE order_id = ?", (order_id,))
            row = self.db.execute("SELECT buy_price FROM lots WHERE id = ?", (lot_id,)).fetchone()
            realized = (price - Decimal(row[0])) * shares if row else Decimal(0)
            self.db.execute(
                "UPDATE lots SET status = 'closed', realized = ? WHERE id = ?",
                (str(realized), lot_id),
            )
        self._realign()

    def _realign(self) -> None:
        lots = self.open_lots()
        anchor = self.anchor()
        wanted: set[int] = set()
        if lots and anchor is not None:
            first = max(level for _, level, _ in lots) + 1
            wanted = set(range(first, min(first + 3, len(self.lots))))
        queued = {oid: level for oid, level in self.working("BUY").items() if level > 0}
        for order_id, level in queued.items():
            if level not in wanted:
                self.ib.cancelOrder(self._order(order_id))
        for level in sorted(wanted - set(queued.values())):
            assert anchor is not None
            trigger = anchor
            for _ in range(level):
                trigger = round_tick(trigger * Decimal("0.99"))
            order = LimitOrder("BUY", self.lots[level], float(trigger))
            order.tif, order.outsideRth = "GTC", True
            order.orderRef = f"seed:{SYMBOL}:L{level}:BUY"
            order.conditions = [
                PriceCondition(
                    isMore=False, price=float(trigger), conId=self.contract.conId, exch="SMART"
                )
            ]
            trade = self._place(order)
            self._record(trade, level=level, lot_id=None)
        if not lots:
            self.flat.set()

    def _order(self, order_id: int) -> Any:
        for trade in self.ib.trades():
            if trade.order.orderId == order_id:
                return trade.order
        order = LimitOrder("BUY", 0, 0.0)
        order.orderId = order_id
        return order

    def close(self) -> None:
        self.db.close()


async def connect(port: int, client_id: int) -> IB:
    ib = IB()
    ib.client.MaxRequests = 0  # the embedded venue has no pacing limit (as IBPort's max_requests)
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=10)
    return ib


# -- tick-to-order ---------------------------------------------------------------------------------


class VenueThread:
    """The venue (engine and sim/tws) on a thread of the bot's process with its own loop: a bot
    that blocks its loop (a synchronous SQLite fsync after an order) does not hold up the venue
    decoding that order, but the venue competes with the bot for the GIL. ``VenueProcess``
    (bench/venue_process.py) is the same venue in a process of its own, as TWS is. The same
    harness for both bots; both are used as ``async with Venue() as v`` and ``await v.tick(i)``."""

    def __init__(self) -> None:
        self.engine, self.server = venue()
        self.decoded = Decoded(self.server)
        self.port = 0
        self._up = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with anyio.create_task_group() as tg:
            self.port = await tg.start(self.server.serve)
            self._up.set()
            await self._stop.wait()
            tg.cancel_scope.cancel()

    async def __aenter__(self) -> VenueThread:
        self._thread.start()
        if not self._up.wait(10):
            raise TimeoutError("the venue thread did not start")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def tick(self, i: int) -> int:
        """From the bot's loop: the venue publishes a trade; ns until the order it causes is
        decoded, after which the venue cancels it."""
        future = asyncio.run_coroutine_threadsafe(self._tick(i), self.loop)
        return await asyncio.wrap_future(future)

    async def _tick(self, i: int) -> int:
        arrived = self.decoded.arm()
        sent = perf_counter_ns()
        self.engine.on_trade(SYMBOL, trade_price(i), 100, MONDAY)
        with anyio.fail_after(30):
            await arrived.wait()
        flatten(self.engine)
        return self.decoded.at_ns - sent


Venue = type[VenueThread] | type[VenueProcess]
Background = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


async def seed_latency(ticks: int, folder: Path, where: Venue = VenueThread) -> list[int]:
    samples: list[int] = []
    async with where() as venue_:
        ib = await connect(venue_.port, 1)
        bot = SeedBot(ib, folder / "seed.sqlite", LOTS)
        await bot.start()
        for i in range(ticks):
            samples.append(await venue_.tick(i))
            with anyio.fail_after(30):  # the cancel reaches the bot: flat again
                await bot.flat.wait()
        ib.disconnect()
        bot.close()
    return samples


async def ours_latency(
    ticks: int,
    folder: Path,
    where: Venue = VenueThread,
    background: Background | None = None,
) -> list[int]:
    """Our production tree's decisions, one trade at a time; ``background`` (bench/busy_tail.py)
    is entered once the tree trades and left after the last decision: other work in this
    process while the decisions are measured."""
    samples: list[int] = []
    async with where() as venue_:
        source = IBMarketData(host="127.0.0.1", port=venue_.port, client_id=2, max_requests=0)
        trading = live_trading(
            data_dir=folder / "ledger",
            lots={SYMBOL: LOTS},
            port=IBPort(host="127.0.0.1", port=venue_.port, client_id=1, max_requests=0),
            feeds=[LiveSource(source=source, symbols=frozenset({SYMBOL}))],
            reconcile_interval=3600,
        )
        root = Supervisor("bench", trading.spec)
        cells = trading.cells
        broker, symbol = cells["broker"], cells[SYMBOL]
        async with anyio.create_task_group() as tree:
            await tree.start(root.run)
            await cells["market-data.ib"].ref.request(WaitSubscribed(), timeout=30)
            async with background() if background else contextlib.nullcontext():
                for i in range(ticks):
                    samples.append(await venue_.tick(i))
                    # The cancel reaches the grid (poll is a round trip to TWS): flat again.
                    await broker.ref.request(Poll(), timeout=30)
                    await symbol.ref.request(TimerTick(), timeout=30)
            root.stop()
    return samples


# -- throughput ------------------------------------------------------------------------------------


def replay() -> list[ReplayTrade]:
    return list(trades(generated_days(seed=SESSION_SEED, days=1, symbol=SYMBOL)))


async def seed_throughput(day: list[ReplayTrade], folder: Path) -> float:
    _engine, server = venue()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        ib = await connect(port, 1)
        bot = SeedBot(ib, folder / "seed.sqlite", LOTS)
        await bot.start(subscribe=False)  # handed each price, as its ticker callback is
        start = perf_counter_ns()
        for trade in day:
            bot.on_price(trade.price)
        elapsed = perf_counter_ns() - start
        ib.disconnect()
        bot.close()
        tg.cancel_scope.cancel()
    return len(day) / (elapsed / 1e9)


class Forward(Actor[PriceTick]):
    """The market-data hop: each price to its symbol actor."""

    def __init__(self, symbol: ActorRef[Any]) -> None:
        self.symbol = symbol

    async def handle(self, message: PriceTick) -> None:
        await self.context.send(self.symbol, message)


async def ours_throughput(day: list[ReplayTrade], folder: Path) -> float:
    _engine, server = venue()
    async with anyio.create_task_group() as tg:
        number = await tg.start(server.serve)
        port = IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0)
        store = ledger_store(folder / "ledger", durability=Durability.POWER_SAFE)
        keeper: ActorCell[Any] = ActorCell("lot-keeper", lambda: LotKeeper(store))
        broker: ActorCell[Any] = ActorCell(
            "broker", lambda: BrokerActor(port, {f"grid:{SYMBOL}": symbol.ref})
        )
        symbol: ActorCell[Any] = ActorCell(
            f"symbol.{SYMBOL}",
            lambda: SymbolActor(
                GridKind(GridParams(symbol=SYMBOL), LOTS),
                lot_keeper=keeper.ref,
                broker=broker.ref,
                timer_interval=3600,
            ),
        )
        feed: ActorCell[PriceTick] = ActorCell("market-data", lambda: Forward(symbol.ref))
        root = Supervisor(
            "bench",
            SupervisorSpec(
                strategy=Strategy.REST_FOR_ONE,
                children=[ChildSpec(id=c.name, start=c) for c in (keeper, broker, symbol, feed)],
            ),
        )
        async with anyio.create_task_group() as tree:
            await tree.start(root.run)
            start = perf_counter_ns()
            for trade in day:
                await feed.ref.send(PriceTick(symbol=SYMBOL, price=trade.price, size=trade.size))
            # Every price handed on has been decided once the symbol actor answers this.
            await symbol.ref.request(TimerTick(), timeout=60)
            elapsed = perf_counter_ns() - start
            root.stop()
        tg.cancel_scope.cancel()
    return len(day) / (elapsed / 1e9)


# -- the kill --------------------------------------------------------------------------------------


@attrs.define
class KillOutcome:
    """The seed bot's books against the venue's after one run (killed or not)."""

    crash_at: int | None
    killed: bool = False
    killed_order: str = ""
    placed: int = 0
    duplicate_buys: int = 0
    duplicate_sells: int = 0
    venue_shares: int = 0
    bot_shares: int = 0
    unsold_shares: int = 0
    """Shares the venue holds with no working sell for them."""
    unknown_orders: int = 0
    """Orders working at the venue that the bot's SQLite does not know."""

    @property
    def duplicates(self) -> int:
        return self.duplicate_buys + self.duplicate_sells

    @property
    def untracked_shares(self) -> int:
        return max(0, self.venue_shares - self.bot_shares)

    @property
    def ghost_shares(self) -> int:
        return max(0, self.bot_shares - self.venue_shares)

    def text(self) -> str:
        return (
            f"{self.duplicate_buys} duplicate buys, {self.duplicate_sells} duplicate sells, "
            f"{self.untracked_shares} shares held but not in its lots, {self.ghost_shares} "
            f"shares in its lots but not held, {self.unsold_shares} held with no sell, "
            f"{self.unknown_orders} working orders it does not know"
        )


class Child:
    """The seed bot as a subprocess (this file with ``--child``)."""

    def __init__(self, port: int, db: Path, crash_at: int | None, log: Path) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(port), str(db)]
        if crash_at is not None:
            command += ["--crash-at", str(crash_at)]
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1
        )
        self.lines: list[str] = []
        self.ready = anyio.Event()
        self.paused = anyio.Event()

    async def read(self) -> None:
        assert self.process.stdout is not None
        stream = self.process.stdout
        while True:
            line = await anyio.to_thread.run_sync(stream.readline, abandon_on_cancel=True)
            if not line:
                return
            self.lines.append(line.strip())
            if line.startswith(READY):
                self.ready.set()
            elif line.startswith(PAUSED):
                self.paused.set()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


async def seed_kill_run(folder: Path, crash_at: int | None) -> KillOutcome:
    day = replay()
    now = day[0].at
    engine, server = venue(lambda: now)
    outcome = KillOutcome(crash_at=crash_at)
    decoded = 0
    progress = anyio.Event()

    def check(ref: str) -> None:
        # A duplicate: an order for a level and side already working at the venue, or a buy
        # for a level whose shares the venue still holds (bought at that level, not sold).
        nonlocal decoded
        decoded += 1
        progress.set()
        working = {server.orders[o.ref].wire.order_ref for o in engine.open_orders()}
        held: Counter[str] = Counter()
        for execution in engine.executions:
            level = server.orders[execution.ref].wire.order_ref.rsplit(":", 1)[0]
            held[level] += execution.quantity * (1 if execution.side.value == "BUY" else -1)
        if ref.endswith(":BUY") and (ref in working or held[ref.rsplit(":", 1)[0]] > 0):
            outcome.duplicate_buys += 1
        elif ref.endswith(":SELL") and ref in working:
            outcome.duplicate_sells += 1

    server.placed_listeners.append(check)
    db = folder / "seed.sqlite"
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        child = Child(port, db, crash_at, folder / "seed-bot.log")
        tg.start_soon(child.read)
        with anyio.fail_after(60):
            await child.ready.wait()
        for trade in day:
            if child.paused.is_set() and not outcome.killed:
                # The bot stopped right after placeOrder returned: the venue has the order,
                # the SQLite file does not. SIGKILL, and start it again on the same file.
                placed = int(child.lines[-1].split()[1])
                with anyio.fail_after(10):
                    while decoded < placed:
                        await progress.wait()
                        progress = anyio.Event()
                outcome.killed_order = child.lines[-1].split()[2]
                child.kill()
                outcome.killed = True
                child = Child(port, db, None, folder / "seed-bot.log")
                tg.start_soon(child.read)
                with anyio.fail_after(60):
                    await child.ready.wait()
            now = trade.at
            engine.on_trade(SYMBOL, trade.price, trade.size, trade.at)
            await anyio.sleep(PACE)
        await anyio.sleep(0.5)  # the last fills reach the bot
        child.stop()
        tg.cancel_scope.cancel()
    outcome.placed = decoded
    with contextlib.closing(sqlite3.connect(db)) as conn:
        outcome.bot_shares = conn.execute(
            "SELECT COALESCE(SUM(shares), 0) FROM lots WHERE status = 'open'"
        ).fetchone()[0]
        known = {row[0] for row in conn.execute("SELECT order_id FROM orders")}
    position = engine.positions.get(SYMBOL)
    outcome.venue_shares = position.quantity if position else 0
    working = engine.open_orders()
    selling = sum(o.quantity - o.filled for o in working if o.side.value.upper() == "SELL")
    outcome.unsold_shares = max(0, outcome.venue_shares - selling)
    outcome.unknown_orders = sum(1 for o in working if server.orders[o.ref].order_id not in known)
    return outcome


async def child_main(port: int, db: Path, crash_at: int | None) -> None:
    ib = await connect(port, 7)

    def placed(trade: Trade) -> None:
        if bot.placed == crash_at:
            print(f"{PAUSED} {bot.placed} {trade.order.orderRef}", flush=True)
            time.sleep(3600)  # blocks the loop: the SQLite write after placeOrder never runs

    bot = SeedBot(ib, db, LOTS, on_placed=placed)
    await bot.start()
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    ib.disconnectedEvent += done.set  # the venue went away: nothing left to do
    print(READY, flush=True)
    await done.wait()
    ib.disconnect()
    bot.close()


def kill_rows(rounds: int, quick: bool, workdir: Path, log: Callable[[str], None]) -> list[Row]:
    rng = random.Random(20261122)
    outcomes: list[KillOutcome] = []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        log("  kill: control run (no kill)")
        control = anyio.run(seed_kill_run, Path(folder), None, backend="asyncio")
    for r in range(rounds):
        crash_at = rng.randint(1, max(1, control.placed))
        log(f"  kill {r + 1}/{rounds}: SIGKILL after placement {crash_at} of {control.placed}")
        with tempfile.TemporaryDirectory(dir=workdir) as folder:
            outcome = anyio.run(seed_kill_run, Path(folder), crash_at, backend="asyncio")
        outcomes.append(outcome)
    per_kill = "; ".join(
        f"kill at placement {o.crash_at} ({o.killed_order or 'not reached'}): {o.text()}"
        for o in outcomes
    )
    rows = [
        Row(
            group=GROUP,
            name="seed bot: duplicate orders after a SIGKILL between placeOrder and commit",
            unit="count",
            value=float(sum(o.duplicates for o in outcomes)),
            rounds=len(outcomes),
            samples=len(outcomes),
            note=(
                f"over {len(outcomes)} kill(s), the same generated day (seed {SESSION_SEED}): "
                f"{per_kill}. Control run without a kill: {control.text()} "
                f"({control.placed} orders)"
            ),
        ),
        Row(
            group=GROUP,
            name="seed bot: shares held that its SQLite lost track of, after the kill",
            unit="count",
            value=float(sum(o.untracked_shares for o in outcomes)),
            rounds=len(outcomes),
            samples=len(outcomes),
            note=(
                "venue position minus the shares of its open lots, summed over the kills; "
                f"held with no sell: {sum(o.unsold_shares for o in outcomes)}; control run: "
                f"{control.untracked_shares}"
            ),
        ),
    ]
    rows.append(ours_kill_row(quick, workdir, log))
    return rows


def ours_kill_row(quick: bool, workdir: Path, log: Callable[[str], None]) -> Row:
    name = "ours: duplicate orders after SIGKILLs of actorctl start"
    if quick:
        return Row(
            group=GROUP,
            name=name,
            unit="count",
            note="not run with --quick: tests/chaos/test_process.py checks it (app.chaos.process)",
        )
    from app.chaos import process

    kills = 2
    log(f"  kill: ours, app.chaos.process.run_campaign with {kills} kills")
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        try:
            outcome = process.run_campaign(
                kills=kills, seed=20261122, workdir=Path(folder), log=lambda _line: None
            )
        except process.ProcessChaosFailure as exc:
            return Row(group=GROUP, name=name, unit="count", note=f"FAILED: {exc}")
    return Row(
        group=GROUP,
        name=name,
        unit="count",
        value=0.0,
        rounds=outcome.kills,
        samples=outcome.checks,
        note=(
            f"app.chaos.process invariants held ({outcome}): no order sent twice, no fill "
            "lost, ledger agrees with the venue's books at the end"
        ),
    )


# -- the suite -------------------------------------------------------------------------------------


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    ticks = 40 if quick else 300
    workdir = Path.cwd()
    day = replay()
    if quick:
        day = day[:600]

    def latency(run: Callable[..., Any], where: Venue) -> Callable[[], dict[str, float]]:
        def once() -> dict[str, float]:
            with tempfile.TemporaryDirectory(dir=workdir) as folder:
                samples = anyio.run(run, ticks, Path(folder), where, backend="asyncio")
            return spread(samples[ticks // 20 :], 1000.0)

        return once

    def rate(run: Callable[[list[ReplayTrade], Path], Any]) -> Callable[[], float]:
        def once() -> float:
            with tempfile.TemporaryDirectory(dir=workdir) as folder:
                return anyio.run(run, day, Path(folder), backend="asyncio")  # type: ignore[no-any-return]

        return once

    # ib_insync takes its loop from the policy: plain asyncio, no uvloop, for both.
    lat = interleave(
        {
            "seed": latency(seed_latency, VenueThread),
            "ours": latency(ours_latency, VenueThread),
            "seed, venue process": latency(seed_latency, VenueProcess),
            "ours, venue process": latency(ours_latency, VenueProcess),
        },
        rounds,
        on_run=log,
    )
    thr = interleave(
        {"seed": rate(seed_throughput), "ours": rate(ours_throughput)}, rounds, on_run=log
    )
    seed_name = "seed bot: trade published -> placeOrder decoded (reqMktData, ib_insync)"
    seed_process = "seed bot, venue in its own process: trade published -> placeOrder decoded"
    seed_rate = "seed bot: prices absorbed on the replay"
    ours_note = (
        "production tree (app.compose.live_trading): the order's intent is made durable before "
        "the order is sent"
    )
    steady = (
        f"prices/s over {len(day)} trades of the replay; the venue is not moved, so after the "
        "first price's level-0 buy every price takes the grid's steady-state path (decide, "
        "nothing to do), as between fills"
    )
    rows = [
        latency_row(
            GROUP,
            seed_name,
            lat["seed"],
            note=(
                "venue on a thread of the bot's process (its own loop, the same GIL); no write "
                "before placeOrder: its SQLite write comes after the order"
            ),
        ),
        latency_row(
            GROUP,
            "ours: trade published -> placeOrder decoded (IB feed, actors, LMDB intent)",
            lat["ours"],
            baselines={seed_name: lat["seed"]},
            note=f"venue on a thread of this process; {ours_note}",
        ),
        latency_row(
            GROUP,
            seed_process,
            lat["seed, venue process"],
            note=(
                "venue in a child process (bench/venue_process.py), as TWS is; both ends of the "
                "figure are read in the child"
            ),
        ),
        latency_row(
            GROUP,
            "ours, venue in its own process: trade published -> placeOrder decoded",
            lat["ours, venue process"],
            baselines={seed_process: lat["seed, venue process"]},
            targets=[Target(on="ratio", op="<=", limit=0.9, baseline=seed_process)],
            note=f"venue in a child process, as for the seed bot above; {ours_note}",
        ),
        rate_row(
            GROUP,
            seed_rate,
            thr["seed"],
            note=f"{steady}; the bot reads its lots and working orders from SQLite each time",
        ),
        rate_row(
            GROUP,
            "ours: prices absorbed on the replay (market data -> symbol actor)",
            thr["ours"],
            baselines={seed_rate: thr["seed"]},
            note=f"{steady}; the grid's state is in memory, its ledger in LMDB",
        ),
    ]
    rows += kill_rows(1 if quick else rounds, quick, workdir, log)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 ticks, 600 trades, one kill")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--crash-at", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child_main(int(args.child[0]), Path(args.child[1]), args.crash_at))
        return 0
    rows = suite_rows(rounds=args.rounds, quick=args.quick, log=lambda _line: None)
    print(render(rows))
    if args.json:
        write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
