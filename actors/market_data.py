"""The live market-data actor: owns one feed's connection (Alpaca's stream, IB's streaming
data) and hands each tick to its symbol actor. A lost connection that the source cannot heal
raises: the actor crashes and its supervisor reconnects it with backoff; a refusal no restart can
fix (``runtime.Unrecoverable``) stops the service with the reason. Replays have their own actor
(``replay_feed``), which moves the sim venue and can wait on this one (``Delivered``) to keep a
replay over a real feed in lockstep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, assert_never

import anyio
import attrs

from runtime import Actor, ActorRef, Request

from .domain import PriceTick

if TYPE_CHECKING:
    from .symbol import SymbolInbox


class TickSource(Protocol):
    """A market data connection."""

    name: str
    """The feed's name in logs and status (``alpaca``, ``ib``)."""

    async def connect(self, symbols: list[str]) -> None: ...

    async def ready(self) -> None:
        """Return once the source is subscribed, so that what the market prints from now on
        reaches it (waits again while it reconnects)."""
        ...

    async def run(self) -> None:
        """Keep the connection going (reconnecting when the source does that itself); return
        or raise when it is over for good (``ConnectionError``: restart me; an
        ``Unrecoverable``: do not)."""
        ...

    async def next(self) -> list[PriceTick]:
        """The ticks that arrived since the last call (waits for one); raises
        ``ConnectionError`` when the connection is lost."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """The connection's figures for ``actorctl status`` (JSON-able; never a secret)."""
        ...


@attrs.frozen(kw_only=True)
class Delivered:
    """Reply (None) once the feed has handed its symbol actor a tick of ``symbol`` stamped at
    or after ``ts_event_ns``: a replay over a real feed waits on it to stay in lockstep."""

    symbol: str
    ts_event_ns: int


@attrs.frozen(kw_only=True)
class WaitSubscribed:
    """Reply (None) once the feed's source is subscribed: a replay over a real feed publishes
    a trade only then, or the trade would be lost."""


@attrs.frozen(kw_only=True)
class DescribeFeed(Request["FeedView"]):
    """Reply with a ``FeedView``."""


@attrs.frozen(kw_only=True)
class FeedView:
    feed: str
    symbols: tuple[str, ...]
    ticks: int
    """Ticks handed to symbol actors since this incarnation of the feed started."""
    connection: dict[str, Any]


LiveFeedInbox = Delivered | WaitSubscribed | DescribeFeed


class LiveFeed(Actor[LiveFeedInbox]):
    def __init__(self, source: TickSource, symbols: Mapping[str, ActorRef[SymbolInbox]]) -> None:
        self.source = source
        self.symbols = symbols
        self.ticks = 0
        self.last_event_ns: dict[str, int] = {}
        self._progress = anyio.Event()

    async def on_start(self) -> None:
        await self.source.connect(list(self.symbols))

    async def on_stop(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self.source.close()

    async def handle(self, message: LiveFeedInbox) -> FeedView | None:
        match message:
            case Delivered(symbol=symbol, ts_event_ns=ts):
                while self.last_event_ns.get(symbol, 0) < ts:
                    await self._progress.wait()
            case WaitSubscribed():
                await self.source.ready()
            case DescribeFeed():
                return FeedView(
                    feed=self.source.name,
                    symbols=tuple(self.symbols),
                    ticks=self.ticks,
                    connection=self.source.describe(),
                )
            case _:
                assert_never(message)
        return None

    async def background(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_source)
            while True:
                for tick in await self.source.next():
                    target = self.symbols.get(tick.symbol)
                    if target is None:
                        continue
                    await self.context.send(target, tick)
                    self.ticks += 1
                    if tick.ts_event_ns > self.last_event_ns.get(tick.symbol, 0):
                        self.last_event_ns[tick.symbol] = tick.ts_event_ns
                self._progress.set()
                self._progress = anyio.Event()

    async def _run_source(self) -> None:
        await self.source.run()
        raise ConnectionError(f"the {self.source.name} market data connection ended")
