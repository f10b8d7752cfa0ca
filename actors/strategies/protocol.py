"""The Strategy protocol (SPEC 12): what a symbol actor hosts, whatever the strategy.

A strategy is pure: no I/O, no clock reads, no asyncio. It gets events with the time
(``decide``) and returns commands; the host (``actors.symbol.SymbolActor``), not the strategy,
talks to the lot-keeper, the risk checks and the broker, and it commits every order as a
write-ahead intent before sending it. After any restart a strategy is rebuilt from the facts
alone (``StrategyKind.restore``): the ledger's intents and executions, and which of its orders
the broker still works.

Two objects per (strategy, symbol):

* a ``StrategyKind``: the strategy's name, symbol, parameters and needs (``Needs``: ticks, bars,
  a timer, sessions, warm-up), which makes strategies (``restore``) and adopts shares the broker
  holds that no order of the ledger explains (``adopt``);
* a ``Strategy``: the live instance, one event at a time.

**Bars and warm-up.** A strategy that declares bar sizes (``Needs.bars``) gets a ``BarClosed``
through ``decide`` whenever a bar of one of them closes (``actors.domain.bars`` defines them:
New York clock, cut to the sessions of ``Needs.sessions``; no empty bars). One that declares
``Needs.warmup`` gets history *before* it decides anything, through a method of its own,
``warm``: the last ``warmup`` bars of its smallest size, oldest first. ``warm`` returns
nothing, so that no order can come of history (a strategy sees no difference between warm-up
and live bars in ``decide``, and needs no flag to ignore). The host warms every live strategy
it makes: the first after its history source answered, and every one ``restore`` rebuilds
after a restart or reconciliation, with the same number of bars, the latest live ones included
(``actors.symbol``).

Every order's ref is ``strategy:symbol:tag:attempt`` (``actors.domain.OrderRef``) with a tag the
strategy chooses, so reconciliation maps any order found at the broker back to its strategy,
and the broker routes its events to the right symbol actor (``OrderRef.route``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Literal, Protocol

import attrs

from ..domain import (
    Bar,
    OptionQuote,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceTick,
    Side,
)
from ..domain.bars import BarError, check_sessions, check_size
from ..ledger import FillRecord, IntentRecord
from ..messages import Command

__all__ = [
    "BarClosed",
    "Command",
    "Facts",
    "LiveOrder",
    "ModifyRefused",
    "OptionFound",
    "OptionMissing",
    "Needs",
    "OrderRefused",
    "PositionLine",
    "Strategy",
    "StrategyEvent",
    "StrategyKind",
    "TimerFired",
    "Wakes",
]


@attrs.frozen(kw_only=True)
class TimerFired:
    """The host's timer: time-outs and retries are decided on it."""


@attrs.frozen(kw_only=True)
class BarClosed:
    """A bar the strategy subscribed to (``Needs.bars``) has closed; ``seconds`` is its size."""

    bar: Bar
    seconds: int


@attrs.frozen(kw_only=True)
class OrderRefused:
    """The risk actor (``actors.risk``) refused a new order before its intent was committed:
    nothing was committed or sent. ``rule`` names the limit (``actors.risk_rules.Rule``). A
    strategy treats it like a rejection, but a limit lifts by itself (the next session, the
    operator's resume, a fill that frees exposure), so it keeps retrying, backing off."""

    ref: str
    reason: str
    rule: str


@attrs.frozen(kw_only=True)
class ModifyRefused:
    """A ``ModifyOrder`` was refused before it was amended or sent (the order is not working,
    the change would sell shares the broker does not hold, or a risk limit: ``rule``): the
    order works as it was."""

    ref: str
    reason: str
    rule: str = ""


@attrs.frozen(kw_only=True)
class OptionFound:
    """The host's answer to ``FindOption``: the chosen option, its quote and the account's
    equity (NetLiquidation) for sizing."""

    decision: str
    option: str
    """Its OCC symbol (``actors.domain.OptionSymbol``)."""
    quote: OptionQuote
    equity: Decimal
    multiplier: int


@attrs.frozen(kw_only=True)
class OptionMissing:
    """The host's answer to ``FindOption`` when there is nothing to trade: no contract fits
    (``code`` as ``actors.options.choice.Skip``'s) or the venue could not answer
    (``code`` ``data``)."""

    decision: str
    reason: str
    code: str


StrategyEvent = (
    PriceTick
    | BarClosed
    | OrderAccepted
    | OrderFilled
    | OrderCancelled
    | OrderRejected
    | OrderRefused
    | ModifyRefused
    | TimerFired
    | OptionFound
    | OptionMissing
)
"""What a strategy decides on. Fills reach it only once the ledger holds them (exactly once)."""


def _tuple_of_sizes(sizes: Iterable[int]) -> tuple[int, ...]:
    return tuple(sizes)


def _bar_sizes(_needs: object, _attribute: object, sizes: tuple[int, ...]) -> None:
    for seconds in sizes:
        check_size(seconds)


def _sessions(_needs: object, _attribute: object, sessions: str) -> None:
    check_sessions(sessions)


def _warmup(needs: Needs, _attribute: object, warmup: object) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise BarError(f"warmup is a number of bars >= 0, got {warmup!r}")
    if warmup and not needs.bars:
        raise BarError(f"warmup of {warmup} bars needs a bar size to warm up on (bars is empty)")


@attrs.frozen(kw_only=True)
class Needs:
    """What a strategy subscribes to. Raises ``actors.domain.bars.BarError`` (a
    ``ValueError``) for a bar size no bar can have or a warm-up without bars."""

    ticks: bool = True
    """Every trade of its symbol (``PriceTick``)."""
    bars: tuple[int, ...] = attrs.field(default=(), converter=_tuple_of_sizes, validator=_bar_sizes)
    """Bar sizes in seconds (60, 300, 86400...) whose closes it decides on (``BarClosed``)."""
    timer: bool = True
    """``TimerFired`` every host timer interval."""
    sessions: Literal["regular", "extended"] = attrs.field(default="extended", validator=_sessions)
    """Which market sessions its bars are made of (``actors.domain.bars``)."""
    warmup: int = attrs.field(default=0, validator=_warmup)
    """Bars of history it needs before its first decision (of its smallest bar size), given
    to ``Strategy.warm``."""

    @property
    def warmup_size(self) -> int | None:
        """The bar size its warm-up is made of (None: it needs none)."""
        return min(self.bars) if self.warmup else None


@attrs.frozen(kw_only=True)
class Facts:
    """What a strategy is rebuilt from after any restart: the ledger's intents (with their
    origin) and executions in recording order, which of its orders the broker works now, and
    when each order was placed on the host's clock (for time-outs)."""

    intents: tuple[IntentRecord, ...]
    fills: tuple[FillRecord, ...]
    working: frozenset[str]
    placed_at: Mapping[str, float]
    now: float
    memory: Mapping[str, str] = attrs.Factory(dict)
    """What the strategy asked its host to remember (``Remember``), durable."""


class LiveOrder(Protocol):
    """An order a strategy believes the broker works."""

    @property
    def ref(self) -> str: ...

    @property
    def side(self) -> Side: ...

    @property
    def quantity(self) -> int: ...

    @property
    def filled(self) -> int: ...


@attrs.frozen(kw_only=True)
class PositionLine:
    """A piece of a strategy's position as ``actorctl status`` and ``lots`` show it: a grid
    lot, or the one position of a strategy that holds one."""

    id: int
    shares: int
    purchase_price: Decimal
    sell_price: Decimal | None
    """The price its exit works at, if one does."""
    label: str = ""
    """The strategy's name for it (the grid's level, ``L3``)."""


class Strategy(Protocol):
    """A live strategy of one symbol (see the module doc)."""

    halted: str | None
    """Why it must not place orders (missing shares, an execution conflict), or None."""
    last_price: Decimal | None
    realized: Decimal
    """Realized P&L of what it closed."""

    def decide(self, event: StrategyEvent, now: float) -> list[Command]:
        """The commands ``event`` leads to, at ``now`` (the host's monotonic seconds)."""
        ...

    def warm(self, bars: Sequence[BarClosed]) -> None:
        """History before any decision (see the module doc): the last ``Needs.warmup`` bars of
        its smallest size, oldest first (fewer when history is shorter). No commands can come
        of it: a strategy updates what it computes from bars (averages, rates of change)."""
        ...

    def halt(self, reason: str) -> list[Command]:
        """Fail closed: place nothing more (working orders stay) until ``resume``."""
        ...

    def resume(self, now: float) -> list[Command]:
        """Lift a halt and bring the broker's orders in line with the rules."""
        ...

    def resync(self, now: float) -> list[Command]:
        """Bring the broker's orders in line with the rules after a rebuild."""
        ...

    def live_orders(self) -> Sequence[LiveOrder]:
        """The orders it believes the broker works."""
        ...

    def positions(self) -> Sequence[PositionLine]:
        """What it holds, for the operator."""
        ...

    def view(self) -> object:
        """Its own view for ``actorctl status``: an attrs class of its module with a ``kind``
        field naming the strategy (the tag of the status reply's union)."""
        ...


class Wakes(Protocol):
    """What a strategy may add to spare its host needless timers and prices. A host on virtual
    time (a backtest) asks ``next_wake`` after every event and delivers ``TimerFired`` only at
    its timer's ticks at or after that time, and holds prices back while ``prices_quiet``; a
    strategy without them gets every tick and every price."""

    def next_wake(self, now: float) -> float | None:
        """The earliest time at which ``decide(TimerFired(), t)`` could return a command or
        change anything, were no other event to come first (a fill time-out, a retry held
        back until its delay is over); None when no timer can until the next event. Before
        that time, a ``TimerFired`` must be a no-op: the host counts on it."""
        ...

    def prices_quiet(self) -> bool:
        """Whether no price can make it decide anything, nor change anything but its last
        price, until another event reaches it (the grid while a ladder is open and no retry
        waits). A replay on virtual time then holds the prices back and hands on only the
        latest, before any other event; a strategy without it gets every price."""
        ...


class StrategyKind(Protocol):
    """A strategy of one symbol with its parameters: what the host needs before there is a
    live strategy (see the module doc). Two optional class attributes change what the host
    does: ``adopts_shares = False`` (the symbol's orphan shares are never given to it, as
    ``adopt`` would: an options strategy), and ``remembers = True`` (the host loads its
    durable memory, ``Facts.memory``, which its ``Remember`` commands write)."""

    @property
    def name(self) -> str:
        """The strategy's name: the first segment of its orders' refs."""
        ...

    @property
    def symbol(self) -> str: ...

    @property
    def needs(self) -> Needs: ...

    def restore(self, facts: Facts) -> Strategy:
        """The live strategy the facts describe (a new one when there are none)."""
        ...

    def adopt(self, shares: int, average_cost: Decimal, taken: Collection[str]) -> PlaceOrder:
        """Shares the broker holds that no order of the ledger explains, as one of this
        strategy's orders: a filled buy of ``shares`` at ``average_cost`` under a ref none of
        ``taken`` has. The host records it (an ``orphan`` intent and a synthetic fill) and the
        rebuilt strategy manages the shares like its own."""
        ...
