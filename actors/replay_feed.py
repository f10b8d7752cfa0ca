"""The replay market-data actor for the in-process sim venue.

For each trade of the replay, in order: the venue matches it (the outside world moves first),
the broker actor collects what that filled and forwards it, the symbol actor gets the price, and
the broker sends the orders that caused to the venue.

``speed`` None replays as fast as possible **in lockstep**: each step waits, by request/reply
(replies come after everything queued before the request), until the broker and the symbol actor
have handled all that the trade caused, so the venue sees every order before the next trade, as
it would at real speed. A number replays that many times faster than the bars' own clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from runtime import Actor, ActorRef
from sim.replay import Trade

from .broker import BrokerInbox, Poll
from .messages import PriceTick
from .symbol import SymbolInbox


class ReplayFeed(Actor[None]):
    def __init__(
        self,
        replay: Iterable[Trade],
        *,
        market: Callable[[Trade], None],
        broker: ActorRef[BrokerInbox],
        symbols: Mapping[str, ActorRef[SymbolInbox]],
        speed: float | None = None,
        finished: Callable[[], None] | None = None,
        on_step: Callable[[], None] | None = None,
        step_timeout: float = 30.0,
    ) -> None:
        self.replay = replay
        self.market = market
        """Moves the outside world: the venue matches the trade (before anyone sees it)."""
        self.broker = broker
        self.symbols = symbols
        self.speed = speed
        self.finished = finished
        self.on_step = on_step
        """Called after each lockstep step, when all the trade caused has been handled."""
        self.step_timeout = step_timeout
        self.trades = 0

    def handle(self, message: None) -> None:
        return None

    async def background(self) -> None:
        clock = self.context.clock
        first_at = None
        started = clock.monotonic()
        for trade in self.replay:
            target = self.symbols.get(trade.symbol)
            if target is None:
                continue
            if self.speed is not None:
                first_at = first_at or trade.at
                due = started + (trade.at - first_at).total_seconds() / self.speed
                await clock.sleep_until(due)
            self.market(trade)
            tick = PriceTick(
                symbol=trade.symbol,
                price=trade.price,
                size=trade.size,
                ts_event_ns=int(trade.at.timestamp() * 1e9),
            )
            if self.speed is None:
                await self.broker.request(Poll(), timeout=self.step_timeout)
                await target.request(tick, timeout=self.step_timeout)
                await self.broker.request(Poll(), timeout=self.step_timeout)
                if self.on_step is not None:
                    self.on_step()
            else:
                await self.broker.send(Poll())
                await target.send(tick)
            self.trades += 1
        if self.finished is not None:
            self.finished()
