"""The symbol actor: hosts one symbol's grid and carries out its decisions, one event at a time.

* Every ``PlaceOrder`` is committed as an intent with the lot-keeper before it is sent: no order
  without a durable intent, so the same decision can never place two orders.
* Every execution is recorded (exactly once, by execId) before the strategy sees it, so a lot's
  sell is never placed for a fill the ledger does not hold; a duplicate is dropped there.
* A timer tick every ``timer_interval`` seconds drives the level-0 fill timeout and retries.
* **Reconciliation** (``Resync``, SPEC section 6) is done here, between two events, so that it
  never races the strategy: the broker's snapshot is taken after every order this actor sent
  (the broker handles its mailbox in order), the ledger is repaired (``reconcile.plan``), and the
  grid is rebuilt from the repaired facts whenever they disagree with its in-memory view. Every
  incarnation starts that way (``on_start``): a restarted symbol actor trusts nothing it had in
  memory, only the ledger and the broker.
"""

from __future__ import annotations

import collections
import logging
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from config.lotmap import LotMap
from runtime import Actor, ActorRef

from . import reconcile
from .broker import BrokerInbox, Snapshot
from .domain import Side
from .ledger import FillRecord, Origin
from .lot_keeper import CommitIntent, Heal, LedgerState, LoadLedger, RecordFill, Refused
from .messages import (
    Alert,
    BrokerSnapshot,
    CancelOrder,
    Command,
    LotClosed,
    LotOpened,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceTick,
)
from .strategies.grid import GridParams, GridStrategy
from .ticks import TickGuard

log = logging.getLogger("actortrade.symbol")
T = TypeVar("T")


class ReconcileFailed(RuntimeError):
    """Raised by a symbol actor when the ledger refuses the reconciler's repairs; names why."""


@attrs.frozen(kw_only=True)
class TimerTick:
    pass


@attrs.frozen(kw_only=True)
class Resync:
    """Reconcile with the broker now; replies with the ``reconcile.Diff``. A dry run changes
    nothing and reports what would be done."""

    dry_run: bool = False


@attrs.frozen(kw_only=True)
class Describe:
    """Reply with a ``SymbolView``."""


@attrs.frozen(kw_only=True)
class LotLine:
    lot: int
    level: int
    shares: int
    purchase_price: Decimal
    sell_price: Decimal


@attrs.frozen(kw_only=True)
class SymbolView:
    """What ``actorctl status`` and ``lots`` show of one symbol."""

    symbol: str
    halted: str | None
    cycle: int
    anchor: Decimal | None
    last_price: Decimal | None
    live_buys: int
    live_sells: int
    lots: tuple[LotLine, ...]
    realized: Decimal
    last_diff: reconcile.Diff | None
    ticks_accepted: int = 0
    ticks_dropped: dict[str, int] = attrs.Factory(dict)
    lot_events: tuple[LotOpened | LotClosed, ...] = ()


SymbolInbox = (
    PriceTick
    | OrderAccepted
    | OrderFilled
    | OrderCancelled
    | OrderRejected
    | TimerTick
    | Resync
    | Describe
)


class SymbolActor(Actor[SymbolInbox]):
    def __init__(
        self,
        params: GridParams,
        lot_map: LotMap,
        *,
        lot_keeper: ActorRef[Any],
        broker: ActorRef[BrokerInbox],
        alerts: list[Alert] | None = None,
        published: dict[str, GridStrategy] | None = None,
        timer_interval: float = 1.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.params = params
        self.lot_map = lot_map
        self.lot_keeper = lot_keeper
        self.broker = broker
        self.alerts = alerts if alerts is not None else []
        self.published = published if published is not None else {}
        self.timer_interval = timer_interval
        self.request_timeout = request_timeout
        self.strategy: GridStrategy | None = None
        self.last_diff: reconcile.Diff | None = None
        self.ticks = TickGuard(symbol=params.symbol)
        self.lot_events: collections.deque[LotOpened | LotClosed] = collections.deque(maxlen=50)
        """The latest lot events, for ``actorctl status``."""

    @property
    def symbol(self) -> str:
        return self.params.symbol

    async def on_start(self) -> None:
        await self._reconcile(dry_run=False)

    async def background(self) -> None:
        while True:
            await self.context.clock.sleep(self.timer_interval)
            self.context.self_ref.tell(TimerTick())

    async def handle(self, message: SymbolInbox) -> object:
        now = self.context.clock.monotonic()
        strategy = self.strategy
        if strategy is None:
            raise RuntimeError(f"{self.symbol}: no strategy: on_start did not reconcile")
        match message:
            case PriceTick(price=price):
                if not self.ticks.admit(message):
                    return None
                commands = strategy.on_price(price, now)
            case OrderAccepted():
                commands = strategy.on_accepted(message)
            case OrderFilled():
                recorded = await self.lot_keeper.request(
                    RecordFill(fill=message), timeout=self.request_timeout
                )
                if isinstance(recorded, Refused):
                    commands = [self._alert("fill-refused", recorded.reason)]
                elif recorded is False:
                    commands = []  # a duplicate execution: the ledger already has it
                else:
                    commands = strategy.on_filled(message, now)
            case OrderCancelled():
                commands = strategy.on_cancelled(message, now)
            case OrderRejected():
                commands = strategy.on_rejected(message, now)
            case TimerTick():
                commands = strategy.on_timer(now)
            case Resync(dry_run=dry_run):
                return await self._reconcile(dry_run=dry_run)
            case Describe():
                return self._describe(strategy)
        await self._carry_out(commands)
        return None

    # -- reconciliation ----------------------------------------------------------------------

    async def _reconcile(self, *, dry_run: bool) -> reconcile.Diff:
        clock = self.context.clock
        snapshot = _expect(
            await self.broker.request(Snapshot(symbol=self.symbol), timeout=self.request_timeout),
            BrokerSnapshot,
        )
        state = await self._load()
        diff, repairs = reconcile.plan(
            symbol=self.symbol,
            strategy=self.params.strategy,
            tick=self.params.tick,
            ledger=state,
            broker=snapshot,
            now_ns=clock.time_ns(),
        )
        working = {order.order.ref for order in snapshot.orders if order.working}
        if dry_run:
            strategy = self._restore(_merged(state, repairs), working)
            commands = self._realign(strategy, diff)
            return _with_orders(attrs.evolve(diff, dry_run=True), commands)
        if repairs:
            healed = await self.lot_keeper.request(
                Heal(intents=repairs.intents, fills=repairs.fills, retired=repairs.retired),
                timeout=self.request_timeout,
            )
            if isinstance(healed, Refused):
                raise ReconcileFailed(f"{self.symbol}: the ledger refused repairs: {healed.reason}")
            state = await self._load()
        previous = self.strategy
        live = None if previous is None else {order.ref for order in previous.live_orders()}
        if previous is None or repairs or live != {r for r in working if self._ours(r)}:
            strategy = self._restore(state, working, previous=previous)
            self.strategy = strategy
            self.published[self.symbol] = strategy
        else:
            strategy = previous
        commands = self._realign(strategy, diff)
        diff = _with_orders(diff, commands)
        self.last_diff = diff
        for line in diff.lines():
            self._record(self._alert("reconcile", line))
        await self._carry_out(commands)
        return diff

    async def _load(self) -> LedgerState:
        return _expect(
            await self.lot_keeper.request(
                LoadLedger(symbol=self.symbol), timeout=self.request_timeout
            ),
            LedgerState,
        )

    def _restore(
        self, state: LedgerState, working: set[str], previous: GridStrategy | None = None
    ) -> GridStrategy:
        clock = self.context.clock
        now, wall_ns = clock.monotonic(), clock.time_ns()
        strategy = GridStrategy.restore(
            self.params,
            self.lot_map,
            orders=[intent.order for intent in state.intents],
            fills=[
                OrderFilled(
                    ref=f.ref,
                    exec_id=f.exec_id,
                    quantity=f.quantity,
                    price=f.price,
                    commission=f.commission,
                )
                for f in state.fills
            ],
            working=working,
            detached={i.ref for i in state.intents if i.origin is Origin.ORPHAN},
            placed_at={i.ref: now - (wall_ns - i.created_ns) / 1e9 for i in state.intents},
            now=now,
        )
        if previous is not None:
            strategy.last_price = previous.last_price
        return strategy

    def _realign(self, strategy: GridStrategy, diff: reconcile.Diff) -> list[Command]:
        now = self.context.clock.monotonic()
        if diff.missing_shares:
            return strategy.halt(
                f"the ledger holds {diff.ledger_shares} {self.symbol} shares, the broker "
                f"{diff.broker_position}"
            )
        if strategy.halted is not None:
            return strategy.resume(now)
        return strategy.resync(now)

    def _ours(self, ref: str) -> bool:
        return ref.startswith(f"{self.params.strategy}:{self.symbol}:")

    def _describe(self, strategy: GridStrategy) -> SymbolView:
        lots = tuple(
            LotLine(
                lot=lot.id,
                level=lot.level,
                shares=lot.open_shares,
                purchase_price=lot.purchase_price,
                sell_price=strategy.sell_price(lot),
            )
            for lot in strategy.open_lots()
        )
        live = strategy.live_orders()
        return SymbolView(
            symbol=self.symbol,
            halted=strategy.halted,
            cycle=strategy.cycle,
            anchor=strategy.anchor,
            last_price=strategy.last_price,
            live_buys=sum(1 for o in live if o.side is Side.BUY),
            live_sells=sum(1 for o in live if o.side is Side.SELL),
            lots=lots,
            realized=strategy.realized,
            last_diff=self.last_diff,
            ticks_accepted=self.ticks.accepted,
            ticks_dropped=dict(self.ticks.dropped),
            lot_events=tuple(self.lot_events)[-10:],
        )

    # -- commands ----------------------------------------------------------------------------

    async def _carry_out(self, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case PlaceOrder():
                    committed = await self.lot_keeper.request(
                        CommitIntent(order=command), timeout=self.request_timeout
                    )
                    if isinstance(committed, Refused):
                        self._record(self._alert("intent-refused", committed.reason))
                        continue
                    await self.context.send(self.broker, command)
                case CancelOrder():
                    await self.context.send(self.broker, command)
                case Alert():
                    self._record(command)
                case LotOpened():
                    log.info(
                        "%s lot %d (L%d) opened: %d @ %.4f, selling at %s",
                        command.symbol,
                        command.lot,
                        command.level,
                        command.shares,
                        command.purchase_price,
                        command.sell_price,
                    )
                    self.lot_events.append(command)
                case LotClosed():
                    log.info(
                        "%s lot %d (L%d) closed: %d shares, realized %s",
                        command.symbol,
                        command.lot,
                        command.level,
                        command.shares,
                        command.realized,
                    )
                    self.lot_events.append(command)

    def _alert(self, kind: str, message: str) -> Alert:
        return Alert(symbol=self.symbol, kind=kind, message=message)

    def _record(self, alert: Alert) -> None:
        log.warning("%s %s: %s", alert.symbol, alert.kind, alert.message)
        self.alerts.append(alert)


def _expect(reply: object, kind: type[T]) -> T:
    if not isinstance(reply, kind):
        raise TypeError(f"expected a {kind.__name__} reply, got {reply!r}")
    return reply


def _merged(state: LedgerState, repairs: reconcile.Repairs) -> LedgerState:
    # The ledger as it would be after the repairs (for a dry run, which writes nothing).
    seq = len(state.fills)
    fills = tuple(
        FillRecord(
            exec_id=f.exec_id,
            ref=f.ref,
            quantity=f.quantity,
            price=f.price,
            commission=f.commission,
            seq=seq + i + 1,
        )
        for i, f in enumerate(repairs.fills)
    )
    return attrs.evolve(
        state,
        intents=state.intents + repairs.intents,
        fills=state.fills + fills,
        retired=state.retired | frozenset(repairs.retired),
    )


def _with_orders(diff: reconcile.Diff, commands: list[Command]) -> reconcile.Diff:
    return attrs.evolve(
        diff,
        placed=tuple(c.ref for c in commands if isinstance(c, PlaceOrder)),
        cancelled=tuple(c.ref for c in commands if isinstance(c, CancelOrder)),
    )
