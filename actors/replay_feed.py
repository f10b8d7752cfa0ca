"""The replay market-data actor for the in-process sim venue.

For each trade of the replay, in order: the venue matches it (the outside world moves first),
the broker actor collects what that filled and forwards it, the symbol actor gets the price, and
the broker sends the orders that caused to the venue.

``speed`` None replays as fast as possible **in lockstep**: each step waits, by request/reply
(replies come after everything queued before the request), until the broker and the symbol actor
have handled all that the trade caused, so the venue sees every order before the next trade, as
it would at real speed (on virtual time, it polls until the tree has settled). A symbol actor
whose reply to a price is ``PRICES_QUIET`` (its strategy decides nothing on prices until
something else happens, on virtual time) is not handed the next prices while the tree stays
idle: the latest is handed on before anything else can reach it (a timer, a bar, an order
event, the end), so it stands where every price would have left it.

A number replays that many times faster than the bars' own clock.
``lockstep=True`` with a number paces the replay *and* steps in lockstep: on a virtual clock
(a deterministic simulation) that is market time, with every timer of the tree firing when it
would, and every step settled before the next.

A symbol in ``remote`` gets its prices through a live feed instead (the venue's Alpaca server
and alpaca-py): after the venue matched the trade and the broker collected what that filled,
the trade is published to the feed's server, and in lockstep the replay waits until that feed
has handed the tick on (``Delivered``) and the symbol actor has handled it.

Every symbol actor of a symbol gets what its strategy needs (``market_data.Fanout``): the
ticks, and the bars completed from the replay's trades on the replay's own clock. Before each
trade, the bars whose end that trade's time has reached close and go out first (in lockstep,
each handled, and the orders it caused sent to the venue, before the trade is matched), as a
bar closes at its end before the next trade prints. When the replay ends, the open bars close.
Bars of a symbol delivered by a live feed are that feed's to make.

**Corporate actions** (``actions``, a backtest's splits and dividends): at the first trade on or
after an action's ex-date, after the bars due before it closed, the venue applies it
(``corporate``), then every symbol actor of its symbol (``CorporateActionDue``: the ledger
restates its facts, the strategy is rebuilt), and in lockstep all of it is handled before the
trade is matched.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import anyio.lowlevel

from runtime import Actor, ActorRef, VirtualClock

from .broker import BrokerInbox, Poll
from .domain import Bar, CorporateAction, Dividend, PriceTick, Trade, epoch_ns
from .domain.bars import TRADE_STEP, bar_path
from .domain.sessions import NEW_YORK
from .market_data import Delivered, Fanout, LiveFeedInbox, Subscriber, Subscribers, WaitSubscribed
from .strategies.protocol import BarClosed
from .symbol import PRICES_QUIET, CorporateActionDue, Describe

Publish = Callable[[Trade], None]
Prints = Callable[[str, Decimal, datetime, Decimal, datetime], bool]
"""The venue taking a run of trades of a symbol (its first price and time, its last price and
time) at once when they can reach no order of its (True), or none of them (False)."""
_STEP_S = TRADE_STEP.total_seconds()
_STEP_NS = 15_000_000_000
_LAST = TRADE_STEP * 3
"""A bar's last trade after its first."""


class ReplayFeed(Actor[None]):
    def __init__(
        self,
        replay: Iterable[Trade | Bar],
        *,
        market: Callable[[Trade], None],
        prints: Prints | None = None,
        inline: bool = True,
        broker: ActorRef[BrokerInbox],
        symbols: Subscribers,
        remote: Mapping[str, tuple[ActorRef[LiveFeedInbox], Publish | None]] | None = None,
        speed: float | None = None,
        finished: Callable[[], None] | None = None,
        on_step: Callable[[], Awaitable[None] | None] | None = None,
        step_timeout: float = 30.0,
        lockstep: bool | None = None,
        max_pause: float | None = None,
        settled: Callable[[], bool] | None = None,
        virtual: VirtualClock | None = None,
        actions: Sequence[CorporateAction] = (),
        corporate: Callable[[CorporateAction], None] | None = None,
    ) -> None:
        self.replay = replay
        self.actions = sorted(actions, key=lambda a: (a.ex_date, isinstance(a, Dividend), a.id))
        self.corporate = corporate
        """Applies an action at the venue (before the symbol actors hear of it)."""
        if self.actions and corporate is None:
            raise ValueError("a replay with corporate actions needs the venue's `corporate`")
        self.market = market
        """Moves the outside world: the venue matches the trade (before anyone sees it)."""
        self.prints = prints
        """On virtual time: the venue takes a bar's trades at once when they can make
        nothing happen (``_whole``)."""
        self.inline = inline and virtual is not None
        """Requests to idle symbol actors run in this task (``_ask``): on virtual time only."""
        self.broker = broker
        self.remote = remote or {}
        self.fanout = Fanout({s: subs for s, subs in symbols.items() if s not in self.remote})
        self.symbols = symbols
        """Symbol -> the live feed delivering it, and how the trade reaches that feed's server
        (None: the venue's face publishes what it matches)."""
        self.speed = speed
        self.lockstep = speed is None if lockstep is None else lockstep
        self.max_pause = max_pause
        self._trade_step = _STEP_S if max_pause is None else min(_STEP_S, max_pause)
        """What a step from one of a bar's trades to the next adds to the clock's due time."""
        """With ``speed``: the longest wait between two trades, in seconds (a night or a
        holiday between sessions is then a jump of the venue's clock, not a wait)."""
        self.finished = finished
        self.on_step = on_step
        """Called (and awaited, if it returns an awaitable) after each lockstep step, when all
        the trade caused has been handled."""
        self.step_timeout = step_timeout
        self.settled = settled
        """In lockstep: True when a ``Poll`` of the broker could change nothing (the venue has
        delivered no event and holds none, and every actor of the tree is idle), so the step
        skips it. None: every step polls."""
        self.polls_skipped = 0
        self.virtual = virtual
        """The tree's clock, when it runs on virtual time (a backtest): in lockstep, before
        each trade the replay moves it to the trade's time (a gap between two trades counts
        at most ``max_pause``), and every timer due by then fires, and everything it causes is
        handled, in deadline order, before the trade is matched."""
        if virtual is not None and (not self.lockstep or settled is None):
            raise ValueError(
                "a replay on virtual time steps in lockstep on the in-process venue (it needs "
                "`settled` to know when a timer's work is done)"
            )
        self.trades = 0
        self._subscribed: list[ActorRef[LiveFeedInbox]] = []
        self._quiet: set[ActorRef[Any]] = set()
        """In lockstep: the symbol actors whose last price's reply said prices decide nothing
        for them until something else happens (``PRICES_QUIET``); cleared by anything else."""
        self._pending: dict[ActorRef[Any], PriceTick] = {}
        """The latest price held back from each of those, handed on by ``_flush``."""

    def handle(self, message: None) -> None:
        return None

    async def background(self) -> None:
        clock = self.context.clock
        fanout = self.fanout
        last_at = None
        due = clock.monotonic()
        virtual = self.virtual
        settled = self.settled
        actions = self.actions
        next_action = 0
        quiet = self._quiet
        pending = self._pending
        prints = self.prints if virtual is not None else None
        builds_bars = fanout.builds_bars
        on_step = self.on_step
        replay = iter(self.replay)
        backlog: list[Trade] = []
        """The trades of a bar still to step, last first."""
        while True:
            whole: Bar | None = None
            trade: Trade | None
            if backlog:
                trade = backlog.pop()
                symbol, at = trade.symbol, trade.at
            else:
                item = next(replay, None)
                if item is None:
                    break
                if isinstance(item, Bar):
                    # Its first trade is made only if the bar is not taken whole.
                    whole, trade = item, None
                    symbol, at = item.symbol, item.start
                else:
                    trade = item
                    symbol, at = trade.symbol, trade.at
            targets = self.symbols.get(symbol)
            if not targets:
                continue
            if virtual is not None:
                if last_at is not None:
                    gap = (at - last_at).total_seconds()
                    due += gap if self.max_pause is None else min(gap, self.max_pause)
                last_at = at
                target = max(due, virtual.monotonic())
                if not virtual.move_to(target):
                    await self._flush()
                    await virtual.advance_to(target, settle=self._settle)
                    quiet.clear()
            elif self.speed is not None:
                if last_at is not None:
                    pause = (at - last_at).total_seconds() / self.speed
                    due += pause if self.max_pause is None else min(pause, self.max_pause)
                last_at = at
                await clock.sleep_until(due)
            ts_event_ns = epoch_ns(at)
            if builds_bars:
                closing = fanout.due(ts_event_ns)
                if closing:
                    if pending:
                        await self._flush()
                    await self._bars(closing)
                    quiet.clear()
            if next_action < len(actions):
                day = at.astimezone(NEW_YORK).date()
                while next_action < len(actions) and actions[next_action].ex_date <= day:
                    await self._flush()
                    await self._corporate_action(actions[next_action])
                    quiet.clear()
                    next_action += 1
            if whole is not None:
                prices, sizes = bar_path(whole)
                if prints is not None:
                    taken = self._whole(whole, prices, sizes, ts_event_ns, due, next_action)
                    if taken is not None:
                        due, last_at = taken
                        if on_step is not None:
                            stepped = on_step()
                            if stepped is not None and inspect.isawaitable(stepped):
                                await stepped
                        continue
                backlog = [
                    Trade(symbol=symbol, price=price, size=size, at=at + TRADE_STEP * i)
                    for i, (price, size) in enumerate(zip(prices, sizes, strict=True))
                ]
                trade = backlog[0]
                backlog.reverse()
                backlog.pop()
            assert trade is not None
            self.market(trade)
            remote = self.remote.get(trade.symbol)
            if remote is not None:
                await self._through(trade, ts_event_ns, targets, *remote)
                self.trades += 1
                continue
            tick = PriceTick(
                symbol=trade.symbol,
                price=trade.price,
                size=trade.size,
                ts_event_ns=ts_event_ns,
            )
            if builds_bars:
                closing = fanout.on_tick(tick)
                if closing:
                    await self._flush()
                    await self._bars(closing)
                    quiet.clear()
            refs = fanout.tick_refs[trade.symbol]
            if self.lockstep:
                if settled is not None and quiet.issuperset(refs) and settled():
                    # Nothing in flight, and every symbol actor of the symbol said a price
                    # decides nothing for it until something else happens: the step is done
                    # (the polls would both be skipped), with no coroutine to await; each
                    # actor is handed its latest price before anything else reaches it.
                    for ref in refs:
                        pending[ref] = tick
                    self.polls_skipped += 1
                else:
                    if pending:
                        await self._flush()
                    if await self._poll():
                        quiet.clear()
                    for ref in refs:
                        pending.pop(ref, None)
                        reply = await self._ask(ref, tick)
                        if reply is PRICES_QUIET:
                            quiet.add(ref)
                        else:
                            quiet.discard(ref)
                    if await self._poll():
                        quiet.clear()
                        if virtual is not None:
                            await self._drain()
                if self.on_step is not None:
                    stepped = self.on_step()
                    if stepped is not None and inspect.isawaitable(stepped):
                        await stepped
            else:
                await self.broker.send(Poll())
                for ref in refs:
                    await ref.send(tick)
            self.trades += 1
        await self._flush()
        await self._bars(fanout.flush())
        if self.finished is not None:
            self.finished()

    def _whole(
        self,
        bar: Bar,
        prices: Sequence[Decimal],
        sizes: Sequence[int],
        first_ns: int,
        due: float,
        next_action: int,
    ) -> tuple[float, datetime] | None:
        """On virtual time, after the first of ``bar``'s trades moved the clock and closed the
        bars due: all its trades at once (the clock's due time and the last trade's time
        after them), when none of them can make anything happen: the tree idle, no order of
        the symbol working at the venue, no bar completed, no timer due, no corporate action,
        and every symbol actor taking the symbol's prices content to be handed the last one
        (``PRICES_QUIET``). The tree then stands where stepping each would have left it.
        Otherwise nothing is done (None)."""
        virtual, settled, prints = self.virtual, self.settled, self.prints
        assert virtual is not None
        assert settled is not None
        assert prints is not None
        symbol = bar.symbol
        if symbol in self.remote:
            return None
        refs = self.fanout.tick_refs[symbol]
        count = len(prices)
        step = self._trade_step
        for _ in range(count - 1):
            due += step  # as each trade's step adds it
        end = max(due, virtual.monotonic())
        last_at = bar.start + (_LAST if count == 4 else TRADE_STEP * (count - 1))
        if not (self._quiet.issuperset(refs) and virtual.quiet_until(end) and settled()):
            return None
        actions = self.actions
        if (
            next_action < len(actions)
            and actions[next_action].ex_date <= last_at.astimezone(NEW_YORK).date()
        ):
            return None
        # The venue first: it refuses at once when an order works (the grid's usual case).
        # Taken there and then refused by the bars, the trades go through the venue one by
        # one all the same, which leaves it as it was (only its last price, time and the day's
        # open moved, to what the last of them sets again).
        if not prints(symbol, prices[0], bar.start, prices[-1], last_at):
            return None
        last_ns = first_ns + (count - 1) * _STEP_NS
        plan = self.fanout.plan(symbol, first_ns, last_ns, prices, sizes)
        if plan is None:
            return None
        self.fanout.take(plan, prices, sizes, bar)
        virtual.move_to(end)
        if refs:
            tick = PriceTick(symbol=symbol, price=prices[-1], size=sizes[-1], ts_event_ns=last_ns)
            for ref in refs:
                self._pending[ref] = tick
        self.polls_skipped += count
        self.trades += count
        return due, last_at

    def _ask(self, ref: ActorRef[Any], message: Any) -> Awaitable[Any]:
        """A request of the lockstep; on virtual time run by this task when the actor is idle
        (``ActorRef.request_inline``: the same handling, without the round trip's two task
        switches)."""
        if self.inline:
            return ref.request_inline(message, timeout=self.step_timeout)
        return ref.request(message, timeout=self.step_timeout)

    async def _bars(self, bars: list[tuple[ActorRef[Any], BarClosed]]) -> None:
        if not bars:
            return
        if not self.lockstep:
            for ref, closed in bars:
                await ref.send(closed)
            return
        for ref, closed in bars:
            await self._ask(ref, closed)
        # The orders the bars caused reach the venue before the next trade is matched.
        await self._poll()

    async def _flush(self) -> None:
        """Hand each symbol actor that said prices are quiet for it (``PRICES_QUIET``) the
        latest price held back, before anything else can reach it (a timer, a bar, an order
        event): it then stands where every price would have left it."""
        pending = self._pending
        while pending:
            ref, tick = next(iter(pending.items()))
            del pending[ref]
            reply = await self._ask(ref, tick)
            if reply is not PRICES_QUIET:
                self._quiet.discard(ref)

    async def _corporate_action(self, action: CorporateAction) -> None:
        assert self.corporate is not None
        self.corporate(action)
        for subscriber in self.symbols.get(action.symbol, ()):
            due = CorporateActionDue(action=action)
            if self.lockstep:
                await self._ask(subscriber.ref, due)
            else:
                await subscriber.ref.send(due)
        if self.lockstep:
            await self._poll()

    async def _settle(self) -> None:
        """On virtual time, after a timer fired: until every actor is idle again (each pass
        lets every task that can run take a step; a hop takes one)."""
        settled = self.settled
        assert settled is not None
        if settled():
            return
        # A guard against a tree that never settles (an actor waiting on real time), read
        # from the system's clock: the loop's own scope machinery costs more than the passes.
        give_up = time.monotonic() + self.step_timeout
        while not settled():
            if time.monotonic() > give_up:
                raise TimeoutError(
                    f"the tree did not settle within {self.step_timeout} s after a timer fired"
                )
            await anyio.lowlevel.checkpoint()

    async def _drain(self) -> None:
        """On virtual time, after a step's last poll delivered something: poll until the tree
        is settled, so that what it caused (the order a cancel's confirmation makes the
        strategy place) is handled, and reaches the venue, before time moves on to the next
        trade. (On a real clock, a step leaves the rest to the next; the venue's connection
        may be down there, and the chaos harness's deterministic runs keep their steps.)"""
        settled = self.settled
        if settled is None:
            return
        give_up = time.monotonic() + self.step_timeout
        while not settled():
            if time.monotonic() > give_up:
                raise TimeoutError(f"the tree did not settle within {self.step_timeout} s")
            await self._poll()

    async def _poll(self) -> bool:
        """A lockstep poll: the broker forwards what the venue delivered, and has handled all
        sent to it before. Skipped when ``settled`` says nothing is delivered or in flight,
        which leaves the tree exactly as the poll would (False: skipped). A step whose trade
        reaches no symbol actor (a bar strategy's) polls a second time only after a poll
        that was not skipped: nothing else can have happened since."""
        settled = self.settled
        if settled is not None and settled():
            self.polls_skipped += 1
            return False
        await self.broker.request(Poll(), timeout=self.step_timeout)
        return True

    async def _stepped(self) -> None:
        assert self.on_step is not None
        result = self.on_step()
        if inspect.isawaitable(result):
            await result

    async def _through(
        self,
        trade: Trade,
        ts_event_ns: int,
        targets: Sequence[Subscriber],
        feed: ActorRef[LiveFeedInbox],
        publish: Publish | None,
    ) -> None:
        if not self.lockstep:
            await self.broker.send(Poll())
            if feed not in self._subscribed:
                # The market does not wait for a reconnect, but the replay's first trades do
                # not start before anyone listens.
                await feed.request(WaitSubscribed(), timeout=self.step_timeout)
                self._subscribed.append(feed)
            if publish is not None:
                publish(trade)
            return
        await self.broker.request(Poll(), timeout=self.step_timeout)
        await feed.request(WaitSubscribed(), timeout=self.step_timeout)
        if publish is not None:
            publish(trade)
        await feed.request(
            Delivered(symbol=trade.symbol, ts_event_ns=ts_event_ns), timeout=self.step_timeout
        )
        for target in targets:
            await target.ref.request(Describe(), timeout=self.step_timeout)
        await self.broker.request(Poll(), timeout=self.step_timeout)
        if self.on_step is not None:
            await self._stepped()
