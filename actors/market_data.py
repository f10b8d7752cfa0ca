"""The live market-data actor: owns one feed's connection (Alpaca's stream, IB's streaming
data) and hands each tick to the symbol actors of its symbol (``Fanout``: every strategy of a
symbol has its own symbol actor, and each gets what its ``Needs`` declare: the ticks, the
closed bars of its sizes and sessions, or both).

Bars are completed here, from the ticks, by one ``actors.domain.bars.BarBuilder`` per symbol
and session kind, for the sizes its subscribers declare: a bar goes out when a tick of a later
interval arrives (before that tick), or when the clock passes its end. The feed's clock for
that is the exchange's: the last tick's timestamp plus the time since it arrived, on the
actor's clock (``bar_timer`` seconds apart), so a replay through a live feed closes bars on its
own time. A tick that is not finite or positive, or carries no timestamp, goes into no bar
(the symbol actor's gate counts it). A lost connection that the source cannot heal
raises: the actor crashes and its supervisor reconnects it with backoff; a refusal no restart can
fix (``runtime.Unrecoverable``) stops the service with the reason. Replays have their own actor
(``replay_feed``), which moves the sim venue and can wait on this one (``Delivered``) to keep a
replay over a real feed in lockstep.

A source that can (``DirectSource``: Alpaca's stream, IB's streaming data) hands each tick to
the actor's sink straight from its client's callback, so the tick reaches the symbol actors'
mailboxes with no hop through this actor's loop. That is safe because the callback runs on the
event loop's thread, between two of this actor's awaits, and the sink never waits: it puts
with ``ActorRef.tell``, which queues at once or raises. A coalescing mailbox (the symbol
actors' ticks) never raises: a full one replaces or drops as an awaited send would; a full
backpressure mailbox (a bar's, a subscriber's without coalescing) raises ``MailboxFull``, and a
stopped actor's ``MailboxClosed``. Then what the tick still owes goes to the actor's outbox,
which the actor sends in order, awaiting room (or crashing on the closed mailbox, as before).
The sink takes no tick while the actor is sending or owes anything, nor while the source holds
ticks the actor has not taken, nor from another thread: those ticks wait in the source, as
without a sink, so every symbol actor gets its ticks in order and a bar before the tick that
completes it (the builders are the actor's, and the sink runs them). The actor installs the
sink when its loop starts and removes it when the loop ends, however the incarnation ends (a
stop, a crash, a kill): no callback delivers for a feed that is gone, and a restarted feed
installs its own. The sink counts the ticks it delivered (``FeedView.direct``) and keeps
``Delivered`` answered as the loop does."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, assert_never, runtime_checkable

import anyio
import attrs

from runtime import Actor, ActorRef, MailboxClosed, MailboxFull, Request

from .domain import Bar, PriceTick
from .domain.bars import BarBuilder, ClosedBar, SessionKind, Window
from .strategies.protocol import BarClosed, Needs

if TYPE_CHECKING:
    pass


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


Sink = Callable[[PriceTick], bool]
"""Takes a tick from a source's callback: True when it took it (delivered it, or owes it to the
symbol actors), False when the source must keep it for ``next`` as it would without a sink."""


@runtime_checkable
class DirectSource(Protocol):
    """A ``TickSource`` whose client's callback can hand each tick to a sink (see the module
    doc); ``deliver_to(None)`` removes it."""

    def deliver_to(self, sink: Sink | None) -> None:
        """From now on, offer each new tick to ``sink`` in the client's callback, on the thread
        that calls it, unless the source still holds ticks ``next`` has not returned (those
        come first)."""
        ...


@attrs.frozen(kw_only=True)
class Subscriber:
    """A symbol actor a feed delivers to, and what its strategy needs."""

    ref: ActorRef[Any]
    needs: Needs = attrs.field(factory=Needs)


Subscribers = Mapping[str, Sequence[Subscriber]]
"""Symbol -> the symbol actors of its strategies."""


Planned = list[tuple[BarBuilder, list[Window | None]]]
"""Trades ``Fanout.plan`` found fit into the bars, for ``Fanout.take``."""


class Fanout:
    """Who gets what of one feed (see the module doc): pure, no I/O; the feed sends."""

    def __init__(self, subscribers: Subscribers) -> None:
        self.subscribers = {s: tuple(subs) for s, subs in subscribers.items()}
        self.tick_refs = {
            s: tuple(sub.ref for sub in subs if sub.needs.ticks)
            for s, subs in self.subscribers.items()
        }
        self._builders: dict[str, list[tuple[BarBuilder, tuple[Subscriber, ...]]]] = {}
        for symbol, subs in self.subscribers.items():
            kinds: tuple[SessionKind, ...] = ("regular", "extended")
            for kind in kinds:
                wanting = tuple(
                    sub for sub in subs if sub.needs.bars and sub.needs.sessions == kind
                )
                if wanting:
                    sizes = {size for sub in wanting for size in sub.needs.bars}
                    builder = BarBuilder(symbol, sizes, kind)
                    self._builders.setdefault(symbol, []).append((builder, wanting))
        self.bar_symbols = frozenset(self._builders)
        """The symbols whose ticks make bars."""
        self.bars_sent = 0
        self.unfit = 0
        """Ticks left out of bars (not finite, not positive, no timestamp)."""

    @property
    def builds_bars(self) -> bool:
        return bool(self._builders)

    def on_tick(self, tick: PriceTick) -> list[tuple[ActorRef[Any], BarClosed]]:
        """The bars ``tick`` completes, addressed; send them before the tick itself."""
        builders = self._builders.get(tick.symbol)
        if builders is None:
            return []
        price = tick.price
        if not price.is_finite() or price <= 0 or tick.size < 0 or tick.ts_event_ns <= 0:
            self.unfit += 1
            return []
        out: list[tuple[ActorRef[Any], BarClosed]] = []
        for builder, wanting in builders:
            out += self._address(builder.add(price, tick.size, tick.ts_event_ns), wanting)
        return out

    def due(self, now_ns: int) -> list[tuple[ActorRef[Any], BarClosed]]:
        """The bars whose end the clock has passed at ``now_ns``, addressed."""
        out: list[tuple[ActorRef[Any], BarClosed]] = []
        for builders in self._builders.values():
            for builder, wanting in builders:
                out += self._address(builder.close_due(now_ns), wanting)
        return out

    def plan(
        self,
        symbol: str,
        first_ns: int,
        last_ns: int,
        prices: Sequence[Decimal],
        sizes: Sequence[int],
    ) -> Planned | None:
        """Whether trades of ``symbol`` at ``prices`` with ``sizes``, stamped from ``first_ns``
        to ``last_ns`` (in order, at most a minute apart), coming after ``due(first_ns)``,
        complete no bar of any symbol's: then ``take`` counts them at once, the same as ``due``
        and ``on_tick`` for each in turn (which would address nothing); else None (nothing
        done: each must go through them)."""
        if first_ns <= 0 or min(sizes) < 0:
            return None
        for price in prices:
            if not price.is_finite() or price <= 0:
                return None
        plans: Planned = []
        for owner, builders in self._builders.items():
            for builder, _ in builders:
                if owner != symbol:
                    if builder.due_by(last_ns):
                        return None
                    continue
                planned = builder.plan(first_ns, last_ns)
                if planned is None:
                    return None
                plans.append((builder, planned))
        return plans

    def take(
        self,
        plans: Planned,
        prices: Sequence[Decimal],
        sizes: Sequence[int],
        source: Bar | None = None,
    ) -> None:
        """Count the trades ``plan`` found fit into the bars (``source``: the bar they are the
        trades of, ``BarBuilder.take``)."""
        if plans:
            volume = sum(sizes)
            for builder, planned in plans:
                builder.take(planned, prices, volume, len(prices), source)

    def flush(self) -> list[tuple[ActorRef[Any], BarClosed]]:
        """Every open bar, closed now (the data has ended), addressed."""
        out: list[tuple[ActorRef[Any], BarClosed]] = []
        for builders in self._builders.values():
            for builder, wanting in builders:
                out += self._address(builder.flush(), wanting)
        return out

    def _address(
        self, closed: list[ClosedBar], wanting: tuple[Subscriber, ...]
    ) -> list[tuple[ActorRef[Any], BarClosed]]:
        if not closed:
            return []
        out = [
            (sub.ref, BarClosed(bar=c.bar, seconds=c.seconds))
            for c in closed
            for sub in wanting
            if c.seconds in sub.needs.bars
        ]
        self.bars_sent += len(out)
        return out


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
    bars: int = 0
    """Closed bars handed to symbol actors since this incarnation started."""
    direct: int = 0
    """Of ``ticks``, those the source's callback handed on itself (the sink), not the actor's
    loop."""


LiveFeedInbox = Delivered | WaitSubscribed | DescribeFeed


class LiveFeed(Actor[LiveFeedInbox]):
    def __init__(self, source: TickSource, symbols: Subscribers, *, bar_timer: float = 1.0) -> None:
        self.source = source
        self.fanout = Fanout(symbols)
        self.bar_timer = bar_timer
        """Seconds between two looks at the clock for bars whose end it has passed."""
        self.ticks = 0
        self.direct = 0
        """Ticks the sink delivered from the source's callback."""
        self.last_event_ns: dict[str, int] = {}
        self._progress = anyio.Event()
        self._watchers = 0
        """``Delivered`` requests waiting on ``_progress``."""
        self._market: tuple[int, int] | None = None
        """The latest exchange timestamp seen, and the actor clock's time when it was."""
        self._outbox: deque[tuple[ActorRef[Any] | None, Any]] = deque()
        """What the actor owes the symbol actors, in order: ``(ref, message)`` to send, and
        ``(None, tick)`` once a tick has gone to all its symbol actors."""
        self._sending = False
        """A task of this actor is sending (the loop, the bar timer's, the owed): the others,
        and the sink, leave what they have after what it sends."""
        self._idle: anyio.Event | None = None
        """Set when that task is done (made only when someone waits for it)."""
        self._owed = anyio.Event()
        self._thread = threading.get_ident()

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.fanout.subscribers)

    async def on_start(self) -> None:
        await self.source.connect(list(self.symbols))

    async def on_stop(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self.source.close()

    async def handle(self, message: LiveFeedInbox) -> FeedView | None:
        match message:
            case Delivered(symbol=symbol, ts_event_ns=ts):
                self._watchers += 1
                try:
                    while self.last_event_ns.get(symbol, 0) < ts:
                        await self._progress.wait()
                finally:
                    self._watchers -= 1
            case WaitSubscribed():
                await self.source.ready()
            case DescribeFeed():
                return FeedView(
                    feed=self.source.name,
                    symbols=self.symbols,
                    ticks=self.ticks,
                    connection=self.source.describe(),
                    bars=self.fanout.bars_sent,
                    direct=self.direct,
                )
            case _:
                assert_never(message)
        return None

    async def background(self) -> None:
        source = self.source
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_source)
            if self.fanout.builds_bars:
                tg.start_soon(self._close_bars)
            direct = source if isinstance(source, DirectSource) else None
            if direct is not None:
                tg.start_soon(self._send_owed)
                self._thread = threading.get_ident()
                direct.deliver_to(self._deliver)
            try:
                while True:
                    ticks = await source.next()
                    if self._outbox or self._sending:
                        for tick in ticks:
                            self._route(tick)
                    else:
                        await self._send_now(ticks)
                    await self._send()
            finally:
                if direct is not None:
                    direct.deliver_to(None)

    def _deliver(self, tick: PriceTick) -> bool:
        # The sink (see the module doc): runs in the source's callback, never waits. Each
        # call is a tick of the feed: the common case (no bar completed) builds no list.
        if self._outbox or self._sending or threading.get_ident() != self._thread:
            return False
        symbol = tick.symbol
        fanout = self.fanout
        refs = fanout.tick_refs.get(symbol)
        if refs is None:
            return True  # nobody's symbol: the loop would skip it too
        me = self.context.self_ref
        if symbol in fanout.bar_symbols:
            sends: list[tuple[ActorRef[Any], Any]] = fanout.on_tick(tick)
            if sends:
                sends += [(ref, tick) for ref in refs]
                for n, (ref, message) in enumerate(sends):
                    try:
                        ref.tell(message, sender=me)
                    except (MailboxFull, MailboxClosed):
                        self._owe(sends[n:], tick)
                        return True
                refs = ()
        for n, ref in enumerate(refs):
            try:
                ref.tell(tick, sender=me)
            except (MailboxFull, MailboxClosed):
                self._owe([(r, tick) for r in refs[n:]], tick)
                return True
        self.direct += 1
        self._delivered(tick)
        return True

    def _owe(self, sends: list[tuple[ActorRef[Any], Any]], tick: PriceTick) -> None:
        # What the sink could not put without waiting: the actor sends it, awaiting room (or
        # crashing on a stopped actor's mailbox, as its own send would); ticks wait in the
        # source meanwhile.
        self._outbox.extend(sends)
        self._outbox.append((None, tick))
        self._owed.set()

    def _route(self, tick: PriceTick) -> None:
        refs = self.fanout.tick_refs.get(tick.symbol)
        if refs is None:
            return
        outbox = self._outbox
        outbox.extend(self.fanout.on_tick(tick))
        outbox.extend((ref, tick) for ref in refs)
        outbox.append((None, tick))

    async def _send_now(self, ticks: list[PriceTick]) -> None:
        """Send ``ticks`` (nothing is owed before them) as the outbox would, without queuing
        them there: until something is owed meanwhile (the bar timer's), then the rest goes
        after it."""
        fanout = self.fanout
        send = self.context.send
        self._sending = True
        try:
            for n, tick in enumerate(ticks):
                if self._outbox:
                    for later in ticks[n:]:
                        self._route(later)
                    return
                refs = fanout.tick_refs.get(tick.symbol)
                if refs is None:
                    continue
                for ref, closed in fanout.on_tick(tick):
                    await send(ref, closed)
                for ref in refs:
                    await send(ref, tick)
                self._delivered(tick)
        finally:
            self._done_sending()

    async def _send(self) -> None:
        """Send what the outbox holds, in order; returns once it is empty."""
        while self._sending:  # another task of this actor is at it: it sends ours too
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()
        outbox = self._outbox
        if not outbox:
            return
        send = self.context.send
        self._sending = True
        try:
            while outbox:
                ref, message = outbox[0]
                if ref is None:
                    self._delivered(message)
                else:
                    await send(ref, message)
                outbox.popleft()
        finally:
            self._done_sending()

    def _done_sending(self) -> None:
        self._sending = False
        if self._idle is not None:
            self._idle.set()
            self._idle = None

    async def _send_owed(self) -> None:
        # What the sink could not put without waiting.
        while True:
            await self._owed.wait()
            self._owed = anyio.Event()
            await self._send()

    def _delivered(self, tick: PriceTick) -> None:
        self.ticks += 1
        symbol = tick.symbol
        ts = tick.ts_event_ns
        if ts > self.last_event_ns.get(symbol, 0):
            self.last_event_ns[symbol] = ts
            market = self._market
            if market is None or ts > market[0]:
                self._market = (ts, self.context.clock.time_ns())
            if self._watchers:
                self._progress.set()
                self._progress = anyio.Event()

    async def _close_bars(self) -> None:
        clock = self.context.clock
        while True:
            await clock.sleep(self.bar_timer)
            if self._market is None:
                continue
            seen_ns, at_ns = self._market
            self._outbox.extend(self.fanout.due(seen_ns + max(0, clock.time_ns() - at_ns)))
            await self._send()

    async def _run_source(self) -> None:
        await self.source.run()
        raise ConnectionError(f"the {self.source.name} market data connection ended")
