"""The seed grid strategy as pure logic (SPEC section 4): no I/O, no clock, no randomness.

The symbol actor feeds it events (prices, broker events, timer ticks) with the current time and
carries out the commands it returns (``PlaceOrder`` after committing the intent, ``CancelOrder``,
``Alert``). Rules:

* **Level 0** (no open lot in the current cycle): buy ``lots[0]`` with a LIMIT at
  ``price * (1 + level0_buffer)``, DAY, outsideRth. Its first fill price anchors the ladder:
  ``T[0]``. Not filled within ``fill_timeout`` seconds: cancelled and reported.
* **Levels 1..N-1**: GTC LIMIT at ``T[k] = round_tick(T[k-1] * (1 - step))`` with a
  PriceCondition (last <= ``T[k]``), outsideRth.
* **Queue**: the broker holds exactly the buys for levels ``next .. next + queue_depth - 1``
  (within the ladder), ``next`` = deepest open level + 1; surplus buys are cancelled, missing ones
  placed. Past the last level nothing more is bought and the operator is told once per cycle.
* **Sells, 1-to-1**: when a lot's buy is done (filled, or ended with a partial fill), the lot gets
  its own GTC LIMIT sell at ``round_tick(average purchase price * (1 + profit))`` for its shares.
  When it fills, exactly that lot closes with its realized P&L. A sell that vanished without
  filling is placed again. When the current cycle has no open lot left, its queued buys are
  cancelled and the next price starts a new cycle at level 0.
* **Rejects** back off per level (buys) or per lot (sells), doubling from ``retry_initial`` up
  to ``retry_maximum`` seconds, and alert the operator. After ``retry_limit`` rejections in a
  row the grid stops retrying that level or lot (one more alert) until it is rebuilt: a
  restart, or a reconciliation that finds the ledger or the broker changed. A **risk refusal**
  (``OrderRefused``: nothing was committed or sent) backs off the same way but is never given
  up on, since a limit lifts by itself; the operator is told at the first of a run.

Lots are created by their first fill. A lot whose buy fills after its order was cancelled (a
late or reordered execution) keeps the shares: its sell is resized by cancel and replace.

**Refs.** Every order's tag (``actors.domain.OrderRef``) is ``L<level>:<side>:<lot>``:
``grid:TQQQ:L3:BUY:42:1`` is the first attempt to buy lot 42 at level 3 (``GridRef``).

``GridKind`` is the strategy of one symbol with its parameters and lot map (the host's
``StrategyKind``); ``GridStrategy`` the live grid (its ``Strategy``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Literal

import attrs

from config.lotmap import LotMap

from ..domain import (
    CancelOrder,
    DomainError,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
    PriceTick,
    Side,
    TimeInForce,
    round_to_tick,
)
from ..ledger import Origin
from ..messages import Alert, Command, LotClosed, LotOpened
from ._gridref import GridRef as GridRef
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

NAME = "grid"
ZERO = Decimal(0)


@attrs.frozen(kw_only=True)
class GridParams:
    """The strategy's settings; the defaults are the seed bot's."""

    symbol: str
    tick: Decimal = Decimal("0.01")
    level0_buffer: Decimal = Decimal("0.0025")
    step: Decimal = Decimal("0.01")
    profit: Decimal = Decimal("0.01")
    queue_depth: int = 3
    fill_timeout: float = 120.0
    retry_initial: float = 1.0
    retry_maximum: float = 60.0
    retry_limit: int = 10
    strategy: str = NAME


@attrs.define(kw_only=True)
class GridOrder:
    """An order as the strategy sees it. ``done`` once filled, cancelled or rejected."""

    ref: str
    side: Side
    level: int
    lot: int
    cycle: int
    quantity: int
    placed_at: float
    limit: Decimal | None = None
    filled: int = 0
    accepted: bool = False
    done: bool = False
    cancel_requested: bool = False
    restated: bool = False
    """Its prices were restated by a split (``actors.domain.split_order``): rounded from the
    old prices, they may be a tick off what the grid computes from its restated lots."""

    def priced(self, price: Decimal, tick: Decimal) -> bool:
        """Whether its limit is ``price`` (or, restated by a split, within a tick of it)."""
        if self.limit is None or self.limit == price:
            return True
        return self.restated and abs(self.limit - price) <= tick


@attrs.define(kw_only=True)
class Lot:
    """Shares bought by one buy order, and sold by its own sell."""

    id: int
    level: int
    cycle: int
    buy_ref: str
    bought: int = 0
    cost: Decimal = ZERO
    buy_done: bool = False
    sell_ref: str | None = None
    sell_attempts: int = 0
    sold: int = 0
    proceeds: Decimal = ZERO
    closed: bool = False
    realized: Decimal = ZERO

    @property
    def open_shares(self) -> int:
        return self.bought - self.sold

    @property
    def purchase_price(self) -> Decimal:
        return self.cost / self.bought if self.bought else ZERO


@attrs.define
class _Retry:
    attempts: int = 0
    not_before: float = 0.0


class GridStrategy:
    """One symbol's grid. Every ``on_*`` method returns the commands to carry out, in order."""

    def __init__(self, params: GridParams, lots: LotMap) -> None:
        if params.queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1, got {params.queue_depth}")
        if params.retry_limit < 1:
            raise ValueError(f"retry_limit must be >= 1, got {params.retry_limit}")
        self.params = params
        self.lot_map = lots
        self.cycle = 1
        self.anchor: Decimal | None = None
        self.triggers: list[Decimal] = []
        self.orders: dict[str, GridOrder] = {}
        self._working: dict[str, GridOrder] = {}
        """The orders not known done yet, in placing order: ``live_orders`` prunes it as it
        reads, so a long run does not scan every order the grid ever placed on every tick."""
        self.lots: dict[int, Lot] = {}
        self.next_lot = 1
        self.realized = ZERO
        self.last_price: Decimal | None = None
        self._exec_ids: set[str] = set()
        self._retries: dict[tuple[str, int, int], _Retry] = {}
        self._ladder_end_told = 0
        self._retry_due: float | None = None
        """The earliest retry the last ``_maintain`` held back (``_may_retry``): its time."""
        self._quiet_at: float | None = None
        """When a price last decided nothing, with no other event since (None: there has
        been one): until a retry comes due, a price decides nothing (``on_price``)."""
        self.halted: str | None = None
        """Why this grid must not place orders (missing shares at the broker), or None."""

    @classmethod
    def restore(
        cls,
        params: GridParams,
        lots: LotMap,
        *,
        orders: Iterable[PlaceOrder],
        fills: Iterable[OrderFilled],
        working: Collection[str],
        detached: Collection[str] = (),
        placed_at: Mapping[str, float] | None = None,
        now: float,
        restated: Collection[str] = (),
    ) -> GridStrategy:
        """Rebuild a grid from the facts: the orders it committed (intents), the executions
        recorded for them in recording order, and which of them the broker still has working
        (``working``, orderRefs). The broker decides what is live: an intent it does not hold
        is done (cancelled, rejected, or never sent), and the grid re-plans around it.

        Lots are numbered by their orderRefs; each level-0 buy starts a new ladder (cycle) that
        the conditional buys and sells after it belong to. ``detached`` buys (lots the reconciler
        created for orphan shares) belong to no ladder: they only get their sells.
        ``placed_at`` gives an order's placing time on the strategy's clock (else ``now``), so
        that a restart does not reset the level-0 fill timeout. ``restated`` orders had their
        prices restated by a split: within a tick of what the grid computes is right for them
        (a split moves no order by itself).
        """
        placed_at = placed_at or {}
        grid = cls(params, lots)
        mine: list[tuple[GridRef, PlaceOrder]] = []
        for order in orders:
            try:
                ref = GridRef.parse(order.ref)
            except DomainError:
                continue
            if (ref.strategy, ref.symbol) == (params.strategy, params.symbol):
                mine.append((ref, order))
        mine.sort(key=lambda pair: (pair[0].lot, pair[0].side is Side.SELL, pair[0].attempt))
        cycle = 0
        cycle_of: dict[int, int] = {}
        for ref, order in mine:
            if ref.side is Side.BUY:
                if order.ref in detached:
                    cycle_of[ref.lot] = 0
                else:
                    cycle += ref.level == 0
                    cycle_of[ref.lot] = cycle
            grid._track(
                order,
                level=ref.level,
                lot=ref.lot,
                cycle=cycle_of.get(ref.lot, 0),
                now=placed_at.get(order.ref, now),
            )
            if order.ref in restated:
                grid.orders[order.ref].restated = True
            grid.next_lot = max(grid.next_lot, ref.lot + 1)
        first_fill: dict[int, Decimal] = {}
        finished: set[int] = set()  # ladders that went flat: the next price starts a new one
        for fill in fills:
            tracked = grid.orders.get(fill.ref)
            if tracked is None or fill.exec_id in grid._exec_ids:
                continue
            grid._exec_ids.add(fill.exec_id)
            tracked.filled += fill.quantity
            lot = grid.lots.get(tracked.lot)
            if lot is None:
                lot = Lot(id=tracked.lot, level=tracked.level, cycle=tracked.cycle, buy_ref="")
                grid.lots[lot.id] = lot
            if tracked.side is Side.BUY:
                lot.buy_ref = tracked.ref
                lot.bought += fill.quantity
                lot.cost += fill.price * fill.quantity
                if tracked.level == 0:
                    first_fill.setdefault(tracked.cycle, fill.price)
            else:
                lot.sold += fill.quantity
                lot.proceeds += fill.price * fill.quantity
                flat = all(
                    other.sold >= other.bought
                    for other in grid.lots.values()
                    if other.cycle == lot.cycle
                )
                if flat and lot.cycle > 0:
                    finished.add(lot.cycle)
        for tracked in grid.orders.values():
            tracked.accepted = tracked.ref in working
            tracked.done = not tracked.accepted or tracked.filled >= tracked.quantity
            lot = grid.lots.get(tracked.lot)
            if lot is None:
                continue
            if tracked.side is Side.BUY and tracked.ref == lot.buy_ref:
                lot.buy_done = tracked.done
            elif tracked.side is Side.SELL:
                # The lot's sell is its working one, else its latest attempt.
                current = grid.orders.get(lot.sell_ref) if lot.sell_ref else None
                if current is None or current.done or not tracked.done:
                    lot.sell_ref = tracked.ref
                lot.sell_attempts = max(lot.sell_attempts, GridRef.parse(tracked.ref).attempt)
        for lot in grid.lots.values():
            if lot.buy_done and lot.bought > 0 and lot.sold >= lot.bought:
                lot.closed = True
                lot.realized = lot.proceeds - lot.cost
                grid.realized += lot.realized
        grid.cycle = max(cycle, 1)
        if grid.cycle in finished:
            grid.cycle += 1
        elif grid.cycle in first_fill:
            grid.anchor = first_fill[grid.cycle]
            grid.triggers = [grid.anchor]
        return grid

    def halt(self, reason: str) -> list[Command]:
        """Fail closed: place nothing more (working orders stay) until ``resume``."""
        self._quiet_at = None
        told = self.halted == reason
        self.halted = reason
        return [] if told else [self._alert("halted", f"no new orders: {reason}")]

    def resume(self, now: float) -> list[Command]:
        """Lift a halt and bring the broker's orders in line with the rules."""
        self._quiet_at = None
        self.halted = None
        return self._maintain(now)

    def resync(self, now: float) -> list[Command]:
        """Bring the broker's orders in line with the rules (after ``restore``): re-place
        vanished sells, cancel misplaced orders, place the missing queued buys."""
        self._quiet_at = None
        return self._maintain(now)

    # -- the Strategy protocol ---------------------------------------------------------------

    def decide(self, event: StrategyEvent, now: float) -> list[Command]:
        """The commands ``event`` leads to (``actors.strategies.protocol``)."""
        if not isinstance(event, PriceTick):
            self._quiet_at = None
        match event:
            case PriceTick(price=price):
                return self.on_price(price, now)
            case OrderAccepted():
                return self.on_accepted(event)
            case OrderFilled():
                return self.on_filled(event, now)
            case OrderCancelled():
                return self.on_cancelled(event, now)
            case OrderRejected():
                return self.on_rejected(event, now)
            case OrderRefused():
                return self.on_refused(event, now)
            case TimerFired():
                return self.on_timer(now)
            case BarClosed():
                return []  # the grid decides on ticks; it subscribes to no bars
            case ModifyRefused():
                return []  # it never modifies an order
            case OptionFound() | OptionMissing():
                return []  # it never asks for an option

    def warm(self, bars: Sequence[BarClosed]) -> None:
        """Nothing to warm: the grid decides on ticks and needs no history."""
        return None

    def positions(self) -> list[PositionLine]:
        """Its open lots."""
        return [
            PositionLine(
                id=lot.id,
                shares=lot.open_shares,
                purchase_price=lot.purchase_price,
                sell_price=self.sell_price(lot),
                label=f"L{lot.level}",
            )
            for lot in self.open_lots()
        ]

    def view(self) -> GridView:
        return GridView(cycle=self.cycle, anchor=self.anchor)

    # -- views -----------------------------------------------------------------------------

    def live_orders(self) -> list[GridOrder]:
        working = self._working
        done = [ref for ref, order in working.items() if order.done]
        for ref in done:
            del working[ref]
        return list(working.values())

    def open_lots(self, cycle: int | None = None) -> list[Lot]:
        return [
            lot
            for lot in self.lots.values()
            if not lot.closed and lot.bought > 0 and (cycle is None or lot.cycle == cycle)
        ]

    def desired_levels(self) -> set[int]:
        """The conditional buy levels the broker should hold now."""
        current = self.open_lots(self.cycle)
        if self.anchor is None or not current:
            return set()
        first = max(lot.level for lot in current) + 1
        last = min(first + self.params.queue_depth, len(self.lot_map))
        return set(range(first, last))

    def trigger(self, level: int) -> Decimal:
        """``T[level]`` for the current anchor."""
        if self.anchor is None:
            raise DomainError("the ladder has no anchor yet")
        while len(self.triggers) <= level:
            previous = self.triggers[-1]
            self.triggers.append(round_to_tick(previous * (1 - self.params.step), self.params.tick))
        return self.triggers[level]

    def sell_price(self, lot: Lot) -> Decimal:
        return round_to_tick(lot.purchase_price * (1 + self.params.profit), self.params.tick)

    # -- events ----------------------------------------------------------------------------

    def on_price(self, price: Decimal, now: float) -> list[Command]:
        if not price.is_finite() or price <= 0:
            raise DomainError(f"{self.params.symbol}: price must be positive, got {price}")
        self.last_price = price
        quiet_at = self._quiet_at
        if quiet_at is not None and not any(
            quiet_at < retry.not_before <= now for retry in self._retries.values()
        ):
            # A price decided nothing since the last event, and no retry has come due since:
            # nothing here depends on the price but the level-0 buy's limit (placed only when
            # the conditions that held then change), so this one decides nothing either.
            return []
        commands: list[Command] = []
        if (
            self.halted is None
            and not self.open_lots(self.cycle)
            and not self._live_buy_at(0)
            and self._may_retry("buy", 0, now)
        ):
            commands.append(self._place_level0(price, now))
        commands.extend(self._maintain(now))
        self._quiet_at = None if commands else now
        return commands

    def on_accepted(self, event: OrderAccepted) -> list[Command]:
        order = self.orders.get(event.ref)
        if order is not None:
            order.accepted = True
            self._retries.pop(self._retry_key(order), None)
        return []

    def on_filled(self, event: OrderFilled, now: float) -> list[Command]:
        if event.exec_id in self._exec_ids:
            return []
        order = self.orders.get(event.ref)
        if order is None:
            return [
                self._alert("unknown-fill", f"fill {event.exec_id} for unknown order {event.ref}")
            ]
        self._exec_ids.add(event.exec_id)
        order.filled += event.quantity
        if order.filled >= order.quantity:
            order.done = True
        commands: list[Command] = []
        if order.side is Side.BUY:
            lot = self.lots.get(order.lot)
            if lot is None:
                lot = Lot(id=order.lot, level=order.level, cycle=order.cycle, buy_ref=order.ref)
                self.lots[lot.id] = lot
            lot.bought += event.quantity
            lot.cost += event.price * event.quantity
            if order.level == 0 and order.cycle == self.cycle and self.anchor is None:
                self.anchor = event.price
                self.triggers = [event.price]
            if order.done:
                lot.buy_done = True
        else:
            lot = self.lots[order.lot]
            lot.sold += event.quantity
            lot.proceeds += event.price * event.quantity
            if lot.buy_done and lot.sold >= lot.bought:
                commands.extend(self._close(lot))
        commands.extend(self._maintain(now))
        return commands

    def on_cancelled(self, event: OrderCancelled, now: float) -> list[Command]:
        order = self.orders.get(event.ref)
        if order is None or order.done:
            return []
        order.done = True
        commands: list[Command] = []
        if order.side is Side.BUY:
            lot = self.lots.get(order.lot)
            if lot is not None:
                lot.buy_done = True
        elif not order.cancel_requested:
            commands.append(
                self._alert("sell-vanished", f"sell {order.ref} was cancelled at the broker")
            )
        commands.extend(self._maintain(now))
        return commands

    def on_rejected(self, event: OrderRejected | OrderRefused, now: float) -> list[Command]:
        order = self.orders.get(event.ref)
        if order is None or order.done:
            return []
        order.done = True
        retry = self._retries.setdefault(self._retry_key(order), _Retry())
        retry.attempts += 1
        lot = self.lots.get(order.lot)
        if order.side is Side.BUY and lot is not None:
            lot.buy_done = True
        if isinstance(event, OrderRefused):
            # A risk limit lifts by itself: retried for as long as it lasts, backing off; the
            # operator is told once per run of refusals (the risk actor counts every one).
            retry.not_before = now + min(
                self.params.retry_maximum,
                self.params.retry_initial * 2 ** min(retry.attempts - 1, 30),
            )
            commands: list[Command] = []
            if retry.attempts == 1:
                commands.append(
                    self._alert(
                        "order-refused",
                        f"{order.ref} refused by risk ({event.rule}): {event.reason}",
                    )
                )
            commands.extend(self._maintain(now))
            return commands
        if retry.attempts >= self.params.retry_limit:
            retry.not_before = math.inf
            alert = self._alert(
                "gave-up",
                f"{order.ref} rejected ({event.reason}), {retry.attempts} times in a row: not "
                "retried until the grid is rebuilt (restart the service once the cause is fixed)",
            )
        else:
            delay = min(
                self.params.retry_maximum,
                self.params.retry_initial * 2 ** min(retry.attempts - 1, 30),
            )
            retry.not_before = now + delay
            alert = self._alert(
                "order-rejected", f"{order.ref} rejected ({event.reason}); retrying in {delay:g} s"
            )
        told: list[Command] = [alert]
        told.extend(self._maintain(now))
        return told

    def on_refused(self, event: OrderRefused, now: float) -> list[Command]:
        """A risk refusal: like a rejection, but never given up on (see ``OrderRefused``)."""
        return self.on_rejected(event, now)

    def on_timer(self, now: float) -> list[Command]:
        commands: list[Command] = []
        for order in self.live_orders():
            if (
                order.side is Side.BUY
                and order.level == 0
                and not order.cancel_requested
                and now - order.placed_at >= self.params.fill_timeout
            ):
                order.cancel_requested = True
                commands.append(CancelOrder(ref=order.ref, reason="level-0 fill timeout"))
                commands.append(
                    self._alert(
                        "fill-timeout",
                        f"{order.ref} not filled within {self.params.fill_timeout:g} s: cancelled",
                    )
                )
        commands.extend(self._maintain(now))
        return commands

    # -- rules -----------------------------------------------------------------------------

    def prices_quiet(self) -> bool:
        """Whether prices decide nothing until another event (``Wakes``): the last price
        decided nothing, nothing else happened since, and no retry waits for its time."""
        quiet_at = self._quiet_at
        return quiet_at is not None and not any(
            quiet_at < retry.not_before < math.inf for retry in self._retries.values()
        )

    def next_wake(self, now: float) -> float | None:
        """The earliest time a ``TimerFired`` can do anything (``actors.strategies.protocol``,
        ``Wakes``): a level-0 buy's fill time-out, or a retry held back until its time."""
        due = self._retry_due
        timeout = self.params.fill_timeout
        for order in self.live_orders():
            if order.side is Side.BUY and order.level == 0 and not order.cancel_requested:
                deadline = order.placed_at + timeout
                due = deadline if due is None else min(due, deadline)
        return due

    def _maintain(self, now: float) -> list[Command]:
        """Bring the broker's orders in line with the rules: sells for done lots, the buy queue."""
        self._retry_due = None
        commands: list[Command] = []
        for lot in self.open_lots():
            if lot.buy_done and lot.open_shares > 0:
                commands.extend(self._keep_sell(lot, now))
        desired = self.desired_levels()
        queued: set[tuple[int, int]] = set()
        for order in self.live_orders():
            if order.cancel_requested:
                continue
            reason = self._misplaced(order, desired, queued)
            if reason is not None:
                order.cancel_requested = True
                commands.append(CancelOrder(ref=order.ref, reason=reason))
        if self.halted is not None:
            return commands
        for level in sorted(desired):
            if not self._live_buy_at(level) and self._may_retry("buy", level, now):
                commands.append(self._place_conditional(level, now))
        ladder_done = self.anchor is not None and self.open_lots(self.cycle) and not desired
        if ladder_done and self._ladder_end_told != self.cycle:
            self._ladder_end_told = self.cycle
            commands.append(
                self._alert(
                    "ladder-end", f"all {len(self.lot_map)} levels are bought: no further buys"
                )
            )
        return commands

    def _misplaced(
        self, order: GridOrder, desired: set[int], queued: set[tuple[int, int]]
    ) -> str | None:
        """Why a live order must be cancelled, or None: a buy outside the queue, a second buy
        for one level, a wrongly priced one, a sell that is not its open lot's sell."""
        if order.side is Side.SELL:
            lot = self.lots.get(order.lot)
            if lot is None or lot.closed or lot.sell_ref != order.ref:
                return "not the sell of an open lot"
            return None
        if order.cycle != self.cycle or (order.level > 0 and order.level not in desired):
            return "not in the buy queue"
        if (order.cycle, order.level) in queued:
            return "a second buy for this level"
        queued.add((order.cycle, order.level))
        if order.level > 0 and not order.priced(self.trigger(order.level), self.params.tick):
            return "not at this level's trigger"
        return None

    def _keep_sell(self, lot: Lot, now: float) -> list[Command]:
        live = self.orders.get(lot.sell_ref) if lot.sell_ref is not None else None
        if live is not None and not live.done:
            if live.cancel_requested:
                return []
            right_size = live.quantity - live.filled == lot.open_shares
            if right_size and live.priced(self.sell_price(lot), self.params.tick):
                return []
            # A late buy fill changed the lot (or the sell is mispriced): replace the sell
            # once this one is gone.
            live.cancel_requested = True
            return [CancelOrder(ref=live.ref, reason="the lot's sell needs replacing")]
        if self.halted is not None or not self._may_retry("sell", lot.id, now):
            return []
        commands: list[Command] = []
        if lot.sell_attempts == 0:
            commands.append(
                LotOpened(
                    symbol=self.params.symbol,
                    lot=lot.id,
                    level=lot.level,
                    shares=lot.open_shares,
                    purchase_price=lot.purchase_price,
                    sell_price=self.sell_price(lot),
                )
            )
        lot.sell_attempts += 1
        ref = str(
            GridRef(
                strategy=self.params.strategy,
                symbol=self.params.symbol,
                level=lot.level,
                side=Side.SELL,
                lot=lot.id,
                attempt=lot.sell_attempts,
            )
        )
        command = PlaceOrder(
            ref=ref,
            symbol=self.params.symbol,
            side=Side.SELL,
            quantity=lot.open_shares,
            limit=self.sell_price(lot),
            tif=TimeInForce.GTC,
        )
        lot.sell_ref = ref
        self._track(command, level=lot.level, lot=lot.id, cycle=lot.cycle, now=now)
        commands.append(command)
        return commands

    def _close(self, lot: Lot) -> list[Command]:
        lot.closed = True
        lot.realized = lot.proceeds - lot.cost
        self.realized += lot.realized
        closed = LotClosed(
            symbol=self.params.symbol,
            lot=lot.id,
            level=lot.level,
            shares=lot.sold,
            cost=lot.cost,
            proceeds=lot.proceeds,
            realized=lot.realized,
        )
        if lot.cycle == self.cycle and not self.open_lots(self.cycle):
            # Flat: this ladder is done; the next price anchors a new one.
            self.cycle += 1
            self.anchor = None
            self.triggers = []
        return [closed]

    def _place_level0(self, price: Decimal, now: float) -> PlaceOrder:
        limit = round_to_tick(price * (1 + self.params.level0_buffer), self.params.tick)
        return self._place_buy(level=0, limit=limit, tif=TimeInForce.DAY, condition=None, now=now)

    def _place_conditional(self, level: int, now: float) -> PlaceOrder:
        trigger = self.trigger(level)
        return self._place_buy(
            level=level,
            limit=trigger,
            tif=TimeInForce.GTC,
            condition=PriceCondition(trigger=trigger, is_more=False),
            now=now,
        )

    def _place_buy(
        self,
        *,
        level: int,
        limit: Decimal,
        tif: TimeInForce,
        condition: PriceCondition | None,
        now: float,
    ) -> PlaceOrder:
        lot = self.next_lot
        self.next_lot += 1
        ref = str(
            GridRef(
                strategy=self.params.strategy,
                symbol=self.params.symbol,
                level=level,
                side=Side.BUY,
                lot=lot,
            )
        )
        command = PlaceOrder(
            ref=ref,
            symbol=self.params.symbol,
            side=Side.BUY,
            quantity=self.lot_map[level],
            limit=limit,
            tif=tif,
            condition=condition,
        )
        self._track(command, level=level, lot=lot, cycle=self.cycle, now=now)
        return command

    def _track(self, command: PlaceOrder, *, level: int, lot: int, cycle: int, now: float) -> None:
        self.orders[command.ref] = self._working[command.ref] = GridOrder(
            ref=command.ref,
            side=command.side,
            level=level,
            lot=lot,
            cycle=cycle,
            quantity=command.quantity,
            placed_at=now,
            limit=command.limit,
        )

    def _live_buy_at(self, level: int) -> bool:
        return any(
            order.side is Side.BUY and order.level == level and order.cycle == self.cycle
            for order in self.live_orders()
        )

    def _retry_key(self, order: GridOrder) -> tuple[str, int, int]:
        if order.side is Side.BUY:
            return ("buy", order.cycle, order.level)
        return ("sell", 0, order.lot)

    def _may_retry(self, kind: str, key: int, now: float) -> bool:
        retry = self._retries.get((kind, self.cycle if kind == "buy" else 0, key))
        if retry is None or now >= retry.not_before:
            return True
        if retry.not_before != math.inf:
            due = self._retry_due
            self._retry_due = retry.not_before if due is None else min(due, retry.not_before)
        return False

    def _alert(self, kind: str, message: str) -> Alert:
        return Alert(symbol=self.params.symbol, kind=kind, message=message)


@attrs.frozen(kw_only=True)
class GridView:
    """What ``actorctl status`` shows of a grid beyond what every strategy shows: its ladder."""

    kind: Literal["grid"] = "grid"
    cycle: int
    """The ladder: each level-0 buy that anchors one starts the next."""
    anchor: Decimal | None
    """The current ladder's level-0 fill price (``T[0]``), None when flat."""


@attrs.frozen
class GridKind:
    """The grid of one symbol, with its parameters and lot map (a ``StrategyKind``)."""

    params: GridParams
    lot_map: LotMap

    @property
    def name(self) -> str:
        return self.params.strategy

    @property
    def symbol(self) -> str:
        return self.params.symbol

    @property
    def needs(self) -> Needs:
        return Needs(ticks=True, timer=True, sessions="extended")

    def restore(self, facts: Facts) -> GridStrategy:
        return GridStrategy.restore(
            self.params,
            self.lot_map,
            orders=[intent.order for intent in facts.intents],
            fills=[
                OrderFilled(
                    ref=f.ref,
                    exec_id=f.exec_id,
                    quantity=f.quantity,
                    price=f.price,
                    commission=f.commission,
                )
                for f in facts.fills
            ],
            working=facts.working,
            detached={i.ref for i in facts.intents if i.origin is Origin.ORPHAN},
            placed_at=facts.placed_at,
            now=facts.now,
            restated={i.ref for i in facts.intents if i.restated != 1},
        )

    def adopt(self, shares: int, average_cost: Decimal, taken: Collection[str]) -> PlaceOrder:
        """Orphan shares become a lot of their own (level 0 of no ladder, ``detached`` when
        rebuilt) bought at the broker's average cost: it gets its +profit sell like any lot."""
        lots = []
        for text in taken:
            try:
                parsed = GridRef.parse(text)
            except DomainError:
                continue
            if (parsed.strategy, parsed.symbol) == (self.name, self.symbol):
                lots.append(parsed.lot)
        ref = GridRef(
            strategy=self.name,
            symbol=self.symbol,
            level=0,
            side=Side.BUY,
            lot=max(lots, default=0) + 1,
        )
        return PlaceOrder(
            ref=str(ref),
            symbol=self.symbol,
            side=Side.BUY,
            quantity=shares,
            limit=round_to_tick(average_cost, self.params.tick),
            tif=TimeInForce.GTC,
        )
