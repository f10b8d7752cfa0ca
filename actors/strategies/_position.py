"""What the bar-close strategies share (``ma_cross``, ``momentum``): one long position of one
symbol, entered and left by signals at bar close, and the orders that carry those decisions out.

A subclass owns an indicator: ``_observe`` takes each bar's close and returns the bar's signal
(BUY: enter, SELL: leave, None: nothing new), and ``_desire`` says which side the indicator is
on now (BUY: long, SELL: flat, None: not warm yet). Everything else is here:

* **Sizing**: an entry buys ``floor(target_notional / close)`` shares; when one share costs
  more than that, the entry is skipped with an alert (``too-expensive``).
* **Decisions**: a BUY signal opens an *entry* (tag ``E.<bar>``, ``<bar>`` the bar's start in
  Unix seconds) when nothing is held and no buy works; a SELL signal, or shares held while the
  indicator is flat, opens an *exit* (``X.<bar>``) that sells every share held. The latest
  decision stays in force until the next one; its orders are its attempts
  (``strategy:symbol:E.<bar>:<attempt>``).
* **Orders**: a marketable limit at ``close * (1 +/- slippage_bps / 10000)`` rounded to the tick
  (BUY up, SELL down), or a market order, with the configured time in force; ``outsideRth``
  when the strategy trades extended hours.
* **Time-outs and retries** (on the host's timer): an order not filled within ``fill_timeout``
  seconds is cancelled; once it is gone (cancelled or rejected) the decision places what is
  left (an entry: its shares not yet bought; an exit: the shares held and not offered) as its
  next attempt, at the latest price, at least ``retry_delay`` seconds after the previous one, up
  to ``max_attempts``; then it gives up with one alert (``gave-up``) until the next signal.
  Partial fills count: an entry's retry buys only the rest, an exit sells what is held.
* **The indicator turns**: orders of the other side are cancelled (an entry still working when
  the indicator goes flat, an exit when it goes long); shares that an entry bought after its
  cancel was asked get an exit of their own.
* **Never short**: an exit offers at most the shares held minus those working sells offer.
* **P&L** by average cost: a sell realizes ``quantity * (price - average cost)``; commissions
  are not in it (as for the grid).

**Restore** (``PositionStrategy.restore``): the position, its average cost, the realized P&L,
the decisions and their attempts and the working orders come back from the facts alone (the
ledger's intents and fills, and what the broker works). The indicator does not: it re-warms
from bars (``warm``, or the live bars that follow), and until it is warm the strategy opens no
decision and retries no entry; an exit in force keeps selling. Once warm it is the
uninterrupted strategy's indicator, since it depends only on the last ``Needs.warmup`` closes.
A cancel asked before the restart and not yet confirmed is asked again by ``resync``.

Orphan shares (``adopt``) become part of the position under a tag ``A.<n>``; the indicator's
side then applies to them (flat: they are sold).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, Self, TypeVar

import attrs

from ..domain import (
    Bar,
    CancelOrder,
    DomainError,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
    PlaceOrder,
    PriceTick,
    Side,
    TimeInForce,
    round_to_tick,
)
from ..messages import Alert, Command
from .protocol import (
    BarClosed,
    Facts,
    ModifyRefused,
    Needs,
    OptionFound,
    OptionMissing,
    OrderRefused,
    PositionLine,
    StrategyEvent,
    TimerFired,
)

ZERO = Decimal(0)
BPS = Decimal(10_000)
OrderType = Literal["limit", "market"]
Sessions = Literal["regular", "extended"]

_DECISION = re.compile(r"^(?P<kind>[EX])\.(?P<bar>\d+)$")
_ADOPTED = re.compile(r"^A\.(?P<n>\d+)$")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float | Decimal) and value > 0):
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float | Decimal) and value >= 0):
        raise ValueError(f"{attribute.name} must be zero or more, got {value!r}")


def _decimal(value: object) -> Decimal:
    # Parameters arrive from the config as Decimals, from code as strings or ints too.
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | str) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise TypeError(f"expected a decimal number, got {value!r}")
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


@attrs.frozen(kw_only=True)
class PositionParams:
    """How a bar-close strategy's decisions become orders (shared by ``ma_cross`` and
    ``momentum``; see the module doc)."""

    symbol: str
    strategy: str
    """The strategy's name: its orders' refs start with it (each strategy's parameters give it
    a default)."""
    bar_seconds: int = attrs.field(default=60, validator=_positive)
    """The bar size it decides on (60: 1-minute bars, 86400: daily)."""
    target_notional: Decimal = attrs.field(
        default=Decimal(10_000), converter=_decimal, validator=_positive
    )
    order_type: OrderType = attrs.field(
        default="limit", validator=attrs.validators.in_(("limit", "market"))
    )
    slippage_bps: Decimal = attrs.field(
        default=Decimal(10), converter=_decimal, validator=_non_negative
    )
    """How far through the close a limit is priced, in basis points (marketable)."""
    tif: TimeInForce = attrs.field(default=TimeInForce.DAY, converter=TimeInForce)
    fill_timeout: float = attrs.field(default=60.0, validator=_positive)
    max_attempts: int = attrs.field(default=3, validator=_positive)
    retry_delay: float = attrs.field(default=5.0, validator=_non_negative)
    tick: Decimal = attrs.field(default=Decimal("0.01"), converter=_decimal, validator=_positive)
    sessions: Sessions = attrs.field(
        default="regular", validator=attrs.validators.in_(("regular", "extended"))
    )


@attrs.define(kw_only=True)
class PositionOrder:
    """An order as the strategy sees it. ``done`` once filled, cancelled or rejected."""

    ref: str
    tag: str
    attempt: int
    side: Side
    quantity: int
    limit: Decimal | None
    placed_at: float
    filled: int = 0
    accepted: bool = False
    done: bool = False
    cancel_requested: bool = False

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


@attrs.define(kw_only=True)
class Decision:
    """An entry (BUY, ``E.<bar>``) or an exit (SELL, ``X.<bar>``) and its attempts so far."""

    tag: str
    side: Side
    bar: int
    """The deciding bar's start, Unix seconds."""
    quantity: int = 0
    """An entry's shares to buy (an exit sells whatever is held)."""
    attempts: int = 0
    last_placed_at: float = 0.0
    told: bool = False
    """Whether its giving up has been reported."""


def bar_epoch(start: datetime) -> int:
    """A bar's start as the Unix seconds its decisions are tagged with."""
    return int(start.timestamp())


class PositionStrategy:
    """A live bar-close strategy of one symbol (``actors.strategies.protocol.Strategy``); a
    subclass adds the indicator (see the module doc)."""

    def __init__(self, params: PositionParams, strategy: str) -> None:
        self.params = params
        self.strategy = strategy
        self.orders: dict[str, PositionOrder] = {}
        """Every order this strategy placed or adopted, by ref (it keeps them: their fills
        make its position)."""
        self._working: dict[str, PositionOrder] = {}
        """The orders not known done yet, in placing order: ``live_orders`` prunes it as it
        reads, so a long run does not scan every order it ever placed."""
        self._by_tag: dict[str, list[PositionOrder]] = {}
        """Each decision tag's orders (an entry or exit and its retries)."""
        self.decisions: dict[str, Decision] = {}
        self.latest: Decision | None = None
        self.shares = 0
        self.cost = ZERO
        """The cost basis of the shares held (average cost times shares)."""
        self.realized = ZERO
        self.last_price: Decimal | None = None
        self.last_bar: int | None = None
        self.last_signal: Side | None = None
        self.halted: str | None = None
        self._exec_ids: set[str] = set()
        self._warmed: tuple[int, Side | None] | None = None
        """The last warm-up bar and its signal, until the next bar (see ``warm``)."""
        self._retry_due: float | None = None
        """When the last ``_maintain`` held a retry back for ``retry_delay``: its time."""

    # -- the indicator (a subclass's) -------------------------------------------------------

    def _observe(self, close: Decimal) -> Side | None:
        raise NotImplementedError

    def _desire(self) -> Side | None:
        raise NotImplementedError

    def view(self) -> object:
        raise NotImplementedError

    # -- rebuilding -------------------------------------------------------------------------

    @classmethod
    def restore(cls, params: PositionParams, strategy: str, facts: Facts) -> Self:
        """The strategy the facts describe (see the module doc); its indicator is cold."""
        live = cls(params, strategy)
        for intent in facts.intents:
            try:
                ref = OrderRef.parse(intent.ref)
            except DomainError:
                continue
            if (ref.strategy, ref.symbol) != (strategy, params.symbol):
                continue
            live._track(intent.order, ref, facts.placed_at.get(intent.ref, facts.now))
        for fill in facts.fills:
            tracked = live.orders.get(fill.ref)
            if tracked is None or fill.exec_id in live._exec_ids:
                continue
            live._exec_ids.add(fill.exec_id)
            tracked.filled += fill.quantity
            live._apply(tracked.side, fill.quantity, fill.price)
        for tracked in live.orders.values():
            tracked.accepted = tracked.ref in facts.working
            tracked.done = not tracked.accepted or tracked.filled >= tracked.quantity
        latest = live.latest
        if latest is not None and latest.attempts >= params.max_attempts:
            latest.told = not live._live(latest.tag)
        return live

    def warm(self, bars: Sequence[BarClosed]) -> None:
        """Feed history to the indicator: no decision is taken on these bars. The signal of the
        last one is kept: history may hold a bar whose close has not reached this incarnation
        yet (it was restarted between the bar's trades and its ``BarClosed``), and that bar,
        when it arrives, decides as it would have (unless the ledger shows a decision on it or
        later)."""
        for closed in bars:
            bar = closed.bar
            signal = self._observe(bar.close)
            self.last_bar = bar_epoch(bar.start)
            self.last_price = bar.close
            self._warmed = (self.last_bar, signal)

    # -- the Strategy protocol --------------------------------------------------------------

    def decide(self, event: StrategyEvent, now: float) -> list[Command]:
        match event:
            case BarClosed(bar=bar, seconds=seconds):
                return self.on_bar(bar, seconds, now)
            case PriceTick(price=price):
                self.last_price = price
                return []
            case OrderAccepted(ref=ref):
                order = self.orders.get(ref)
                if order is not None:
                    order.accepted = True
                return []
            case OrderFilled():
                return self.on_filled(event, now)
            case OrderCancelled(ref=ref):
                return self._ended(ref, now)
            case OrderRejected(ref=ref, reason=reason):
                commands: list[Command] = []
                order = self.orders.get(ref)
                if order is not None and not order.done:
                    commands.append(self._alert("order-rejected", f"{ref} rejected: {reason}"))
                return commands + self._ended(ref, now)
            case OrderRefused(ref=ref, reason=reason, rule=rule):
                # The risk actor refused it before its intent was committed: it never reached
                # the broker. It ends like a rejection (a retry counts as an attempt).
                refused: list[Command] = []
                order = self.orders.get(ref)
                if order is not None and not order.done:
                    refused.append(self._alert("risk-refused", f"{ref} refused ({rule}): {reason}"))
                return refused + self._ended(ref, now)
            case TimerFired():
                return self.on_timer(now)
            case ModifyRefused():
                return []  # it never modifies an order
            case OptionFound() | OptionMissing():
                return []  # it never asks for an option

    def halt(self, reason: str) -> list[Command]:
        told = self.halted == reason
        self.halted = reason
        return [] if told else [self._alert("halted", f"no new orders: {reason}")]

    def resume(self, now: float) -> list[Command]:
        self.halted = None
        return self._maintain(now)

    def resync(self, now: float) -> list[Command]:
        # A rebuilt strategy does not know which cancels its last incarnation asked for: it
        # asks again for every order past its time-out (a second cancel of an order is harmless).
        return self.on_timer(now)

    def live_orders(self) -> list[PositionOrder]:
        working = self._working
        if not working:
            return []
        done = [ref for ref, order in working.items() if order.done]
        for ref in done:
            del working[ref]
        return list(working.values())

    def positions(self) -> list[PositionLine]:
        if self.shares <= 0:
            return []
        exits = [o.limit for o in self.live_orders() if o.side is Side.SELL]
        return [
            PositionLine(
                id=1,
                shares=self.shares,
                purchase_price=self.average_cost,
                sell_price=exits[0] if exits else None,
                label="long",
            )
        ]

    @property
    def average_cost(self) -> Decimal:
        return self.cost / self.shares if self.shares else ZERO

    # -- events -----------------------------------------------------------------------------

    def on_bar(self, bar: Bar, seconds: int, now: float) -> list[Command]:
        if bar.symbol != self.params.symbol or seconds != self.params.bar_seconds:
            return []
        epoch = bar_epoch(bar.start)
        warmed, self._warmed = self._warmed, None
        if self.last_bar is not None and epoch <= self.last_bar:
            # A bar seen already (history that overlaps the live bars): only the last bar of
            # the warm-up decides, once, if no decision of the ledger is on it or later.
            if warmed is None or warmed[0] != epoch:
                return []
            if self.latest is not None and self.latest.bar >= epoch:
                return []
            return self._act(warmed[1], bar.close, epoch, now)
        if not bar.close.is_finite() or bar.close <= 0:
            raise DomainError(f"{self.params.symbol}: a bar's close must be positive: {bar}")
        self.last_bar = epoch
        self.last_price = bar.close
        return self._act(self._observe(bar.close), bar.close, epoch, now)

    def _act(self, signal: Side | None, close: Decimal, epoch: int, now: float) -> list[Command]:
        commands: list[Command] = []
        if signal is not None:
            self.last_signal = signal
        if signal is Side.BUY and self.halted is None:
            commands += self._open_entry(close, epoch)
        elif signal is Side.SELL and self.halted is None:
            self._rearm_exit(epoch)
        commands += self._maintain(now)
        return commands

    def on_filled(self, event: OrderFilled, now: float) -> list[Command]:
        if event.exec_id in self._exec_ids:
            return []
        order = self.orders.get(event.ref)
        if order is None:
            return [self._alert("unknown-fill", f"fill {event.exec_id} for unknown {event.ref}")]
        self._exec_ids.add(event.exec_id)
        order.filled += event.quantity
        if order.filled >= order.quantity:
            order.done = True
        self._apply(order.side, event.quantity, event.price)
        return self._maintain(now)

    def on_timer(self, now: float) -> list[Command]:
        commands: list[Command] = []
        timeout = self.params.fill_timeout
        for order in self.live_orders():
            if not order.cancel_requested and now - order.placed_at >= timeout:
                order.cancel_requested = True
                commands.append(CancelOrder(ref=order.ref, reason=f"not filled in {timeout:g} s"))
        return commands + self._maintain(now)

    def _ended(self, ref: str, now: float) -> list[Command]:
        order = self.orders.get(ref)
        if order is None or order.done:
            return []
        order.done = True
        return self._maintain(now)

    # -- rules ------------------------------------------------------------------------------

    def _open_entry(self, close: Decimal, epoch: int) -> list[Command]:
        latest = self.latest
        working = (
            latest is not None
            and latest.side is Side.BUY
            and latest.attempts < self.params.max_attempts
            and self._bought(latest.tag) < latest.quantity
        )
        if self.shares > 0 or working or any(o.side is Side.BUY for o in self.live_orders()):
            return []
        quantity = int(self.params.target_notional // close)
        if quantity < 1:
            return [
                self._alert(
                    "too-expensive",
                    f"entry skipped: one share at {close} costs more than the target notional "
                    f"{self.params.target_notional}",
                )
            ]
        self._decide(Side.BUY, epoch, quantity)
        return []

    def _rearm_exit(self, epoch: int) -> None:
        # A SELL signal starts a new exit only when the one in force has given up.
        latest = self.latest
        if (
            latest is not None
            and latest.side is Side.SELL
            and latest.attempts >= self.params.max_attempts
            and not self._live(latest.tag)
            and self._uncovered() > 0
        ):
            self._decide(Side.SELL, epoch, 0)

    def next_wake(self, now: float) -> float | None:
        """The earliest time a ``TimerFired`` can do anything (``actors.strategies.protocol``,
        ``Wakes``): a working order's fill time-out, or a retry held back for its delay."""
        timeout = self.params.fill_timeout
        due = self._retry_due
        for order in self.live_orders():
            if not order.cancel_requested:
                deadline = order.placed_at + timeout
                due = deadline if due is None else min(due, deadline)
        return due

    def _maintain(self, now: float) -> list[Command]:
        """Bring the orders in line with the decision in force and the indicator's side."""
        self._retry_due = None
        commands: list[Command] = []
        latest = self.latest
        side = self._desire()
        if side is None and latest is not None and latest.side is Side.SELL:
            side = Side.SELL  # cold after a restart: an exit in force goes on selling
        if side is None:
            return commands
        for order in self.live_orders():
            if order.side is not side and not order.cancel_requested:
                order.cancel_requested = True
                commands.append(CancelOrder(ref=order.ref, reason="the signal turned"))
        if self.halted is not None:
            return commands
        if side is Side.BUY:
            if latest is not None and latest.side is Side.BUY and not self._live(latest.tag):
                left = latest.quantity - self._bought(latest.tag)
                if left > 0:
                    commands += self._attempt(latest, left, now)
            return commands
        uncovered = self._uncovered()
        if uncovered <= 0:
            return commands
        if (latest is None or latest.side is Side.BUY) and self.last_bar is not None:
            latest = self._decide(Side.SELL, self.last_bar, 0)
        if (
            latest is not None
            and latest.side is Side.SELL
            and (latest.attempts < self.params.max_attempts or not self._live(latest.tag))
        ):
            commands += self._attempt(latest, uncovered, now)
        return commands

    def _attempt(self, decision: Decision, quantity: int, now: float) -> list[Command]:
        params = self.params
        if decision.attempts >= params.max_attempts:
            if decision.told:
                return []
            decision.told = True
            what = "buy" if decision.side is Side.BUY else "sell"
            return [
                self._alert(
                    "gave-up",
                    f"{decision.tag}: {quantity} shares left to {what} after "
                    f"{decision.attempts} attempts: waiting for the next signal",
                )
            ]
        if decision.attempts and now < decision.last_placed_at + params.retry_delay:
            self._retry_due = decision.last_placed_at + params.retry_delay
            return []
        price = self.last_price
        if price is None:
            return []
        limit: Decimal | None = None
        if params.order_type == "limit":
            skew = params.slippage_bps / BPS
            factor = 1 + skew if decision.side is Side.BUY else 1 - skew
            limit = round_to_tick(price * factor, params.tick)
            if limit <= 0:
                limit = params.tick
        ref = OrderRef(
            strategy=self.strategy,
            symbol=params.symbol,
            tag=decision.tag,
            attempt=decision.attempts + 1,
        )
        command = PlaceOrder(
            ref=str(ref),
            symbol=params.symbol,
            side=decision.side,
            quantity=quantity,
            limit=limit,
            tif=params.tif,
            outside_rth=params.sessions == "extended",
        )
        self._track(command, ref, now)
        return [command]

    # -- bookkeeping ------------------------------------------------------------------------

    def _decide(self, side: Side, bar: int, quantity: int) -> Decision:
        tag = f"{'E' if side is Side.BUY else 'X'}.{bar}"
        decision = self.decisions.get(tag)
        if decision is None:
            decision = Decision(tag=tag, side=side, bar=bar, quantity=quantity)
            self.decisions[tag] = decision
        if self.latest is None or decision.bar >= self.latest.bar:
            self.latest = decision
        return decision

    def _track(self, order: PlaceOrder, ref: OrderRef, placed_at: float) -> None:
        tag = ref.tag
        tracked = PositionOrder(
            ref=order.ref,
            tag=tag,
            attempt=ref.attempt,
            side=order.side,
            quantity=order.quantity,
            limit=order.limit,
            placed_at=placed_at,
        )
        replaced = self.orders.get(order.ref)
        if replaced is not None:
            self._by_tag[replaced.tag].remove(replaced)
            self._working.pop(order.ref, None)
        self.orders[order.ref] = tracked
        self._working[order.ref] = tracked
        self._by_tag.setdefault(tag, []).append(tracked)
        match = _DECISION.match(tag)
        if match is None:
            return  # adopted shares (A.<n>): no decision
        side = Side.BUY if match["kind"] == "E" else Side.SELL
        decision = self._decide(side, int(match["bar"]), order.quantity)
        if ref.attempt == 1 or decision.attempts == 0:
            decision.quantity = order.quantity if side is Side.BUY else 0
        if ref.attempt >= decision.attempts:
            decision.attempts = ref.attempt
            decision.last_placed_at = placed_at

    def _apply(self, side: Side, quantity: int, price: Decimal) -> None:
        if side is Side.BUY:
            self.shares += quantity
            self.cost += price * quantity
            return
        held = self.shares
        basis = self.cost * quantity / held if held else ZERO
        self.realized += price * quantity - basis
        self.shares -= quantity
        self.cost = self.cost - basis if self.shares > 0 else ZERO

    def _live(self, tag: str) -> bool:
        return any(order.tag == tag for order in self.live_orders())

    def _bought(self, tag: str) -> int:
        return sum(o.filled for o in self._by_tag.get(tag, ()))

    def _uncovered(self) -> int:
        offered = sum(o.remaining for o in self.live_orders() if o.side is Side.SELL)
        return self.shares - offered

    def _alert(self, kind: str, message: str) -> Alert:
        return Alert(symbol=self.params.symbol, kind=kind, message=message)


P = TypeVar("P", bound=PositionParams)


@attrs.frozen
class PositionKind(abc.ABC, Generic[P]):
    """What every position strategy's ``StrategyKind`` shares: its name and symbol from its
    parameters, its needs (``warmup`` bars of its bar size) and the adoption of orphan shares
    as a filled buy of its position. A strategy's kind adds ``warmup`` and ``restore``."""

    params: P

    @property
    def name(self) -> str:
        return self.params.strategy

    @property
    def symbol(self) -> str:
        return self.params.symbol

    @property
    @abc.abstractmethod
    def warmup(self) -> int:
        """Bars of history it needs before its first decision."""

    @property
    def needs(self) -> Needs:
        return needs(self.params, warmup=self.warmup)

    def adopt(self, shares: int, average_cost: Decimal, taken: Collection[str]) -> PlaceOrder:
        return adoption(self.name, self.params, shares, average_cost, taken)


def adoption(
    strategy: str,
    params: PositionParams,
    shares: int,
    average_cost: Decimal,
    taken: Collection[str],
) -> PlaceOrder:
    """Orphan shares as a filled buy of the position (tag ``A.<n>``, n one more than any
    adoption of this strategy and symbol in ``taken``)."""
    numbers = [0]
    for text in taken:
        try:
            ref = OrderRef.parse(text)
        except DomainError:
            continue
        match = _ADOPTED.match(ref.tag)
        if match is not None and (ref.strategy, ref.symbol) == (strategy, params.symbol):
            numbers.append(int(match["n"]))
    ref = OrderRef(strategy=strategy, symbol=params.symbol, tag=f"A.{max(numbers) + 1}")
    return PlaceOrder(
        ref=str(ref),
        symbol=params.symbol,
        side=Side.BUY,
        quantity=shares,
        limit=round_to_tick(average_cost, params.tick),
        tif=TimeInForce.GTC,
    )


def needs(params: PositionParams, warmup: int) -> Needs:
    """A bar-close strategy's subscriptions: its bars, the timer, no ticks."""
    return Needs(
        ticks=False,
        bars=(params.bar_seconds,),
        timer=True,
        sessions=params.sessions,
        warmup=warmup,
    )
