"""The live market-data actor: owns a tick source (IB's streaming data today; Alpaca next)
and hands each tick to its symbol actor. A lost source raises: the actor crashes and its
supervisor reconnects it with backoff. Replays have their own actor (``replay_feed``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from runtime import Actor, ActorRef

from .messages import PriceTick


class TickSource(Protocol):
    """A market data connection."""

    async def connect(self, symbols: list[str]) -> None: ...

    async def next(self) -> list[PriceTick]:
        """The ticks that arrived since the last call (waits for one); raises
        ``ConnectionError`` when the connection is lost."""
        ...

    async def close(self) -> None: ...


class LiveFeed(Actor[None]):
    def __init__(self, source: TickSource, symbols: Mapping[str, ActorRef[Any]]) -> None:
        self.source = source
        self.symbols = symbols
        self.ticks = 0

    async def on_start(self) -> None:
        await self.source.connect(list(self.symbols))

    async def on_stop(self) -> None:
        await self.source.close()

    def handle(self, message: None) -> None:
        return None

    async def background(self) -> None:
        while True:
            for tick in await self.source.next():
                target = self.symbols.get(tick.symbol)
                if target is not None:
                    await self.context.send(target, tick)
                    self.ticks += 1
