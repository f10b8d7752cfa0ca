"""The example tree ``actorctl start`` runs until the grid trading service replaces it.

    root (rest_for_one)
     |- feed       random-walk prices for a few symbols, coalesced per symbol
     |- symbols    (one_for_one) one actor per symbol: last price, tick count, moving average
     |- reporter   asks every symbol for its figures (request/reply) and prints one line

``crash_every`` makes the feed send a poison message to a random symbol now and then, so the
restarts show in the report (the ``#n`` after each symbol is its incarnation).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from decimal import Decimal

import attrs

from runtime import Actor, ActorCell, ActorRef, Coalesce, MailboxConfig, Request
from supervisors import ChildSpec, Intensity, Strategy, SupervisorSpec

_CENT = Decimal("0.01")


@attrs.frozen(kw_only=True)
class PriceTick:
    symbol: str
    price: Decimal


@attrs.frozen(kw_only=True)
class GetStats(Request["SymbolStats"]):
    pass


@attrs.frozen(kw_only=True)
class Crash:
    """A poison message: the symbol actor raises on it (a demonstration of a restart)."""


@attrs.frozen(kw_only=True)
class SymbolStats:
    symbol: str
    last: Decimal | None
    ticks: int
    average: Decimal | None
    incarnation: int


class DemoCrash(Exception):
    """Raised by a symbol actor on ``Crash``."""


SymbolInbox = PriceTick | GetStats | Crash


class SymbolActor(Actor[SymbolInbox]):
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.last: Decimal | None = None
        self.ticks = 0
        self.average: Decimal | None = None

    def handle(self, message: SymbolInbox) -> SymbolStats | None:
        match message:
            case PriceTick(price=price):
                self.ticks += 1
                self.last = price
                previous = self.average if self.average is not None else price
                self.average = (previous * 19 + price) / 20
                return None
            case GetStats():
                average = self.average.quantize(_CENT) if self.average is not None else None
                return SymbolStats(
                    symbol=self.symbol,
                    last=self.last,
                    ticks=self.ticks,
                    average=average,
                    incarnation=self.context.incarnation,
                )
            case Crash():
                raise DemoCrash(f"{self.symbol}: poison message")


class FeedActor(Actor[None]):
    def __init__(
        self,
        symbols: dict[str, ActorRef[SymbolInbox]],
        *,
        start_prices: dict[str, Decimal],
        interval: float,
        crash_every: float,
        seed: int | None,
    ) -> None:
        self.symbols = symbols
        self.prices = dict(start_prices)
        self.interval = interval
        self.crash_every = crash_every
        self.rng = random.Random(seed)

    def handle(self, message: None) -> None:
        return None

    async def background(self) -> None:
        clock = self.context.clock
        next_crash = clock.monotonic() + self.crash_every if self.crash_every > 0 else None
        while True:
            for symbol, ref in self.symbols.items():
                step = Decimal(self.rng.gauss(0.0, 0.0001)).quantize(Decimal("0.0001"))
                price = max(_CENT, (self.prices[symbol] * (1 + step)).quantize(_CENT))
                self.prices[symbol] = price
                ref.tell(PriceTick(symbol=symbol, price=price))
            if next_crash is not None and clock.monotonic() >= next_crash:
                victim = self.rng.choice(sorted(self.symbols))
                await self.symbols[victim].send(Crash())
                next_crash = clock.monotonic() + self.crash_every
            await clock.sleep(self.interval)


class ReporterActor(Actor[None]):
    def __init__(
        self,
        symbols: Sequence[ActorRef[SymbolInbox]],
        *,
        interval: float,
        out: Callable[[str], None],
    ) -> None:
        self.symbols = symbols
        self.interval = interval
        self.out = out

    def handle(self, message: None) -> None:
        return None

    async def background(self) -> None:
        while True:
            await self.context.clock.sleep(self.interval)
            parts = []
            for ref in self.symbols:
                stats: SymbolStats = await ref.request(GetStats(), timeout=2.0)
                parts.append(
                    f"{stats.symbol} {stats.last} avg {stats.average} "
                    f"ticks {stats.ticks} #{stats.incarnation}"
                )
            self.out(" | ".join(parts))


DEFAULT_PRICES = {"TQQQ": Decimal("52.40"), "QQQ": Decimal("480.15"), "SPY": Decimal("590.30")}


def demo_tree(
    *,
    symbols: Sequence[str] = tuple(DEFAULT_PRICES),
    tick_interval: float = 0.01,
    report_interval: float = 1.0,
    crash_every: float = 0.0,
    seed: int | None = None,
    out: Callable[[str], None] = print,
) -> SupervisorSpec:
    """Build the example tree's spec."""
    mailbox = MailboxConfig(capacity=256, policies={PriceTick: Coalesce(key=lambda t: t.symbol)})
    cells = {
        symbol: ActorCell(
            f"symbol.{symbol}", functools.partial(SymbolActor, symbol), mailbox=mailbox
        )
        for symbol in symbols
    }
    refs = {symbol: cell.ref for symbol, cell in cells.items()}
    prices = {symbol: DEFAULT_PRICES.get(symbol, Decimal("100.00")) for symbol in symbols}
    feed = ActorCell(
        "feed",
        lambda: FeedActor(
            refs,
            start_prices=prices,
            interval=tick_interval,
            crash_every=crash_every,
            seed=seed,
        ),
    )
    reporter = ActorCell(
        "reporter",
        lambda: ReporterActor(list(refs.values()), interval=report_interval, out=out),
    )
    symbols_spec = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=Intensity(max_restarts=10, period=10.0),
        # Crashed on purpose, forever: only the restart intensity may end the show.
        children=[
            ChildSpec(id=cell.name, start=cell, shutdown=1.0, give_up_after=None)
            for cell in cells.values()
        ],
    )
    return SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=3, period=5.0),
        children=[
            ChildSpec(id="feed", start=feed, shutdown=1.0),
            ChildSpec(id="symbols", start=symbols_spec, shutdown=2.0),
            ChildSpec(id="reporter", start=reporter, shutdown=1.0),
        ],
    )
