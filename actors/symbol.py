"""The symbol actor: hosts one strategy of one symbol (any ``Strategy``,
``actors.strategies.protocol``) and carries out its decisions, one event at a time.

* Every ``PlaceOrder`` is committed as an intent with the lot-keeper before it is sent: no order
  without a durable intent, so the same decision can never place two orders.
* Every execution is recorded (exactly once, by execId) before the strategy sees it, so a lot's
  sell is never placed for a fill the ledger does not hold; a duplicate (same execId, same
  facts) is dropped there. An execId the ledger holds with other facts is an execution
  conflict: on record, an alert, and the symbol halts (a reconciliation runs at once).
* **Never short** (``actors.exposure``): a sell is committed only if the broker's position
  covers it beside every working sell; otherwise the strategy sees it rejected and backs off.
  The position is the symbol's, one at the broker for every strategy that trades it: a host
  with siblings (other strategies of its symbol) checks each sell against a fresh snapshot of
  the broker, so that their working sells and fills count too.
* **Risk** (``actors.risk``): every new order asks the risk actor before its intent is
  committed, unless nothing can refuse it (no limit, no halt: the risk actor says so,
  ``RiskGate``); a refused one is neither committed nor sent, and the strategy sees
  ``OrderRefused``. While it checks, the risk actor is told each new execution, and the
  strategy's working orders and the last price after every order event and once a second
  (event time) of ticks.
  When its daily loss guard trips (``RiskTripped``) the strategy's working buys are cancelled;
  when a limit lifts (``RiskLifted``: a new session, the operator's resume) the strategy is
  rebuilt from the facts, as after a restart, so that it places again at once instead of
  waiting out the back-off its refusals built up.
* **Dry run** (``dry_run``): intents are committed marked dry; the broker actor's port
  (``actors.brokers.dry.DryPort``) sends nothing to the venue.
* A timer tick every ``timer_interval`` seconds drives the level-0 fill timeout and retries.
* **Reconciliation** (``Resync``, SPEC section 6) is done here, between two events, so that it
  never races the strategy: the broker's snapshot is taken after every order this actor sent
  (the broker handles its mailbox in order), the ledger is repaired (``reconcile.plan``), and the
  grid is rebuilt from the repaired facts whenever they disagree with its in-memory view; our
  working orders the rebuilt grid does not count as live are cancelled, and so are the sells
  that would offer more than the position. An unacknowledged execution conflict or missing
  shares halt the symbol (no new orders) until resolved. Every
  incarnation starts that way (``on_start``): a restarted symbol actor trusts nothing it had in
  memory, only the ledger and the broker.
* **Bars** (``BarClosed``, from the market-data actor, of the sizes the strategy declares) go to
  the strategy like ticks, through the same path: a decision's orders are committed intents
  first, and a bar that decides opens a trace as a tick does.
* **Warm-up** (``Needs.warmup``): before the first reconciliation (and so before any decision)
  the host asks its ``history`` source for the last ``warmup`` bars of the strategy's smallest
  bar size and hands them to ``Strategy.warm``, which returns no commands. It keeps the last
  ``warmup`` bars of that size, live ones included, and warms every strategy it rebuilds with
  them. A source that cannot answer (``HistoryError``) crashes the actor: its supervisor
  retries with the restart's backoff.
* **Tracing** (SPEC 10, ``actors.tracing``): a tick that decides nothing only bumps a count; one
  that decides opens a trace, noted as span records after its messages are sent.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
from datetime import date
from decimal import Decimal
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, TypeVar, assert_never

import anyio
import attrs

from runtime import LOG_TRACE, Actor, ActorRef, Request, VirtualClock
from runtime import telemetry as telemetry_
from runtime.telemetry import AttributeValue, Telemetry, TraceContext, new_span_id

from . import reconcile
from .broker import BrokerInbox, Snapshot
from .domain import (
    BrokerSnapshot,
    CancelOrder,
    CorporateAction,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    PriceTick,
    Side,
    Split,
    TimeInForce,
    route,
    split_price,
)
from .domain.sessions import NEW_YORK
from .exposure import Books
from .history import HistorySource
from .ledger import FillRecord
from .lot_keeper import (
    AcknowledgeConflicts,
    AmendIntent,
    ApplyAction,
    CommitBracket,
    CommitIntent,
    Conflicted,
    Heal,
    LedgerState,
    LoadLedger,
    LoadSnapshot,
    LotKeeperInbox,
    RecordFill,
    Refused,
    SaveSnapshot,
)
from .messages import (
    SEVERITY,
    Alert,
    Command,
    FindOption,
    LotClosed,
    LotOpened,
    Remember,
    Severity,
)
from .option_data import OptionData, OptionDataError
from .options.choice import ContractParams, Skip, choose_contract
from .risk import (
    EXPOSURE_EVERY_NS,
    ActionSeen,
    AskGate,
    CheckOrder,
    Exposure,
    FillSeen,
    RiskGate,
    RiskLifted,
    RiskTripped,
)
from .risk import Refused as RiskRefused
from .risk_rules import Working, multiplier
from .strategies.protocol import (
    BarClosed,
    Facts,
    ModifyRefused,
    OptionFound,
    OptionMissing,
    OrderRefused,
    PositionLine,
    Strategy,
    StrategyKind,
    TimerFired,
)
from .ticks import TickGuard
from .tracing import Trail

if TYPE_CHECKING:
    from .alerts import AlertsInbox

log = logging.getLogger("actortrade.symbol")
T = TypeVar("T")
OrderCommand = PlaceOrder | PlaceBracket | ModifyOrder | CancelOrder
"""The commands that are a decision about orders (``SymbolView.last_decision``)."""


class ReconcileFailed(RuntimeError):
    """Raised by a symbol actor when the ledger refuses the reconciler's repairs; names why."""


@attrs.frozen(kw_only=True)
class TimerTick:
    pass


@attrs.frozen(kw_only=True)
class Resync(Request[reconcile.Diff]):
    """Reconcile with the broker now; replies with the ``reconcile.Diff``. A dry run changes
    nothing and reports what would be done. ``acknowledge`` first marks the symbol's execution
    conflicts as seen by an operator, which lifts the halt they caused."""

    dry_run: bool = False
    acknowledge: bool = False


class _PricesQuiet:
    """The reply to a price whose strategy said prices decide nothing for it until another
    event (``SymbolActor._prices_quiet``): a replay on virtual time may hold the next ones
    back and hand on only the latest, before anything else (``actors.replay_feed``)."""

    def __repr__(self) -> str:
        return "PRICES_QUIET"


PRICES_QUIET = _PricesQuiet()


@attrs.frozen(kw_only=True)
class CorporateActionDue(Request[None]):
    """A split or dividend of the symbol takes effect now (the start of its ex-date, before
    its first trade; the venue has applied it): see ``SymbolActor._corporate_action``."""

    action: CorporateAction


@attrs.frozen(kw_only=True)
class Describe(Request["SymbolView"]):
    """Reply with a ``SymbolView``."""


@attrs.frozen(kw_only=True)
class SymbolView:
    """What ``actorctl status`` and ``lots`` show of one strategy of one symbol: what every
    strategy has, and in ``detail`` its own view (a ``kind``-tagged attrs class of its
    module, the grid's ``GridView`` say)."""

    symbol: str
    strategy: str
    halted: str | None
    last_price: Decimal | None
    live_buys: int
    live_sells: int
    lots: tuple[PositionLine, ...]
    realized: Decimal
    last_diff: reconcile.Diff | None
    detail: object = None
    ticks_accepted: int = 0
    ticks_dropped: dict[str, int] = attrs.Factory(dict)
    lot_events: tuple[LotOpened | LotClosed, ...] = ()
    last_decision: str | None = None
    """The last order the strategy decided (placed, bracketed, changed or cancelled), as one
    line; None before its first."""
    last_decision_ns: int = 0
    """When: the exchange time of the event it answered (Unix ns; 0: none yet)."""


SymbolInbox = (
    PriceTick
    | BarClosed
    | OrderAccepted
    | OrderFilled
    | OrderCancelled
    | OrderRejected
    | TimerTick
    | Resync
    | Describe
    | RiskTripped
    | RiskLifted
    | RiskGate
    | CorporateActionDue
)


class SymbolActor(Actor[SymbolInbox]):
    """Hosts ``kind``'s strategy (see the module doc). ``owner``: the strategy that adopts the
    symbol's orphan shares (one per symbol, when several strategies trade it), ``siblings``
    the names of the others; ``published`` gets the live strategy under its route
    (``strategy:symbol``) after every rebuild; ``history`` answers the strategy's warm-up
    (required when it needs one)."""

    def __init__(
        self,
        kind: StrategyKind,
        *,
        lot_keeper: ActorRef[LotKeeperInbox],
        broker: ActorRef[BrokerInbox],
        alerts: ActorRef[AlertsInbox] | None = None,
        published: dict[str, Any] | None = None,
        timer_interval: float = 1.0,
        request_timeout: float = 30.0,
        telemetry: Telemetry | None = None,
        owner: bool = True,
        siblings: frozenset[str] = frozenset(),
        history: HistorySource | None = None,
        risk: ActorRef[Any] | None = None,
        dry_run: bool = False,
        lazy_timer: bool = False,
        option_data: OptionData | None = None,
    ) -> None:
        needs = kind.needs
        if needs.warmup and history is None:
            raise ValueError(
                f"{kind.name}:{kind.symbol} needs {needs.warmup} bars of warm-up, but its host "
                "was given no history source"
            )
        self.kind = kind
        self.option_data = option_data
        """Chains, quotes and equity for an options strategy's ``FindOption``."""
        self.memory: dict[str, str] = {}
        """The strategy's durable memory (``Remember``), as last loaded or saved."""
        self._warm_size = kind.needs.warmup_size
        """The bar size the warm-up is made of (``Needs.warmup_size``), read at every bar."""
        self.history = history
        self.warm_bars: collections.deque[BarClosed] = collections.deque(maxlen=needs.warmup)
        """The last ``Needs.warmup`` bars of the warm-up size: what every strategy made here
        is warmed with."""
        self.risk = risk
        self.dry_run = dry_run
        self.owner = owner
        self.siblings = siblings
        self.lot_keeper = lot_keeper
        self.broker = broker
        self.alerts = alerts
        """The alerts actor (None: alerts are only logged)."""
        self.published = published if published is not None else {}
        self.timer_interval = timer_interval
        self.lazy_timer = lazy_timer
        """Tick only when the strategy says a timer can do something (``Wakes``): see
        ``background``."""
        self._alarm_at: float | None = None
        """The lazy timer's next alarm (see ``background``)."""
        self._tick_quiet = False
        """The message just handled was a price that decided nothing."""
        self._timer_start: float | None = None
        """When the lazy timer's cadence began (None: no lazy timer running)."""
        self.request_timeout = request_timeout
        self.strategy: Strategy | None = None
        self.sides: dict[str, Side] = {}
        """Each known order's side (from the ledger's intents and the orders sent)."""
        self.limits: dict[str, Decimal | None] = {}
        """Each known order's limit price (what its working buys are valued at)."""
        self.quantities: dict[str, int] = {}
        """Each known order's quantity as last sent (a change's "before")."""
        self.event_ns = 0
        """The exchange time of the last tick (Unix ns): the risk checks' time."""
        self._exposure_told_ns = 0
        self.gated = True
        """Whether new orders ask the risk actor (it says, as this actor starts and later)."""
        self.books = Books(symbol=kind.symbol)
        """The broker's positions and working sells, by instrument: the symbol's shares and
        each option on it (set by every reconciliation)."""
        self.instruments: dict[str, str] = {}
        """Each known order's instrument: the symbol, or an option's OCC symbol."""
        self.last_diff: reconcile.Diff | None = None
        self.ticks = TickGuard(symbol=kind.symbol)
        self.actions: list[Split] = []
        """The ledger's splits of this symbol (read at every reconciliation): what the bars
        before each ex-date are restated by."""
        self.lot_events: collections.deque[LotOpened | LotClosed] = collections.deque(maxlen=50)
        """The latest lot events, for ``actorctl status``."""
        self.last_decision: tuple[int, OrderCommand] | None = None
        """The last order command decided and when (event time), for ``actorctl top``; made
        a line only when described, so that the trading path pays an isinstance and an
        assignment per command."""
        telemetry = telemetry if telemetry is not None else telemetry_.off()
        self.tracer = telemetry.tracer
        metrics, symbol = telemetry.metrics, {"trading.symbol": kind.symbol}
        ticks = "actortrade.ticks"
        self._decided = metrics.count(ticks, {**symbol, "outcome": "decided"})
        self._quiet = metrics.count(ticks, {**symbol, "outcome": "no_decision"})
        self._rejected = metrics.count(ticks, {**symbol, "outcome": "rejected"})
        self._decided_bars = metrics.count("actortrade.bars", {**symbol, "outcome": "decided"})
        self._quiet_bars = metrics.count("actortrade.bars", {**symbol, "outcome": "no_decision"})
        self._submitted = {
            side: metrics.count("actortrade.orders.submitted", {**symbol, "trading.side": side})
            for side in ("BUY", "SELL")
        }
        self._reconciles = metrics.count("actortrade.reconcile.runs", symbol)
        self._skips = metrics.count("actortrade.options.skips", symbol)
        """Options decisions that found nothing to trade (an ``Alert`` of kind ``skip``)."""
        self._diffs = metrics.count("actortrade.reconcile.diffs", symbol)

    @property
    def symbol(self) -> str:
        return self.kind.symbol

    @property
    def route(self) -> str:
        return route(self.kind.name, self.kind.symbol)

    async def on_start(self) -> None:
        if self.risk is not None:
            self.gated = bool(await self.risk.request(AskGate(), timeout=self.request_timeout))
        await self._load_history()
        await self._reconcile(dry_run=False)
        strategy = self.strategy
        if strategy is not None:
            working = len(strategy.live_orders())
            state = f"HALTED: {strategy.halted}" if strategy.halted else "trading"
            self._record(
                Alert(
                    symbol=self.symbol,
                    kind="trading",
                    message=f"{self.kind.name} reconciled with the broker (start "
                    f"{self.context.incarnation}): {len(strategy.positions())} open "
                    f"positions, {working} orders working; {state}",
                    severity=Severity.INFO,
                )
            )

    async def _load_history(self) -> None:
        needs = self.kind.needs
        seconds = needs.warmup_size
        if seconds is None or self.history is None or self.warm_bars:
            return  # a restarted actor keeps no memory: warm_bars is new (and empty) then
        with anyio.fail_after(self.request_timeout):
            bars = await self.history.recent(
                self.symbol, seconds=seconds, count=needs.warmup, sessions=needs.sessions
            )
        self.warm_bars.extend(BarClosed(bar=bar, seconds=seconds) for bar in bars)
        log.info(
            "%s: %d bars of %d s of warm-up from %s",
            self.route,
            len(bars),
            seconds,
            self.history.name,
        )

    async def background(self) -> None:
        """The timer: a ``TimerTick`` every ``timer_interval`` seconds from the start. On a
        virtual clock (a backtest) each tick is an alarm of the clock, told as time reaches it
        (never raced by the replay moving time on). With ``lazy_timer`` there, only the ticks
        of that cadence at or after the strategy's ``next_wake`` are delivered (the first
        after the present), and none while it has none: the strategy promises the others
        would do nothing, so the run is the same tick for tick
        (``tests/actors/test_lazy_timer.py``) without most of them. The handler sets the
        alarm for the next wanted tick after each message (``_rearm_timer``)."""
        clock = self.context.clock
        interval = self.timer_interval
        if isinstance(clock, VirtualClock):
            start = self._timer_start = clock.monotonic()
            try:
                if self.lazy_timer:
                    self._rearm_timer()
                else:
                    clock.alarm(start + interval, functools.partial(self._every, start + interval))
                await anyio.sleep_forever()
            finally:
                self._timer_start = None
        while True:
            await clock.sleep(interval)
            self.context.self_ref.tell(TimerTick())

    def _every(self, at: float) -> None:
        # A virtual clock's tick, and the next one's alarm (while this incarnation runs).
        if self._timer_start is None:
            return
        self.context.self_ref.try_tell(TimerTick())
        clock = self.context.clock
        assert isinstance(clock, VirtualClock)
        following = at + self.timer_interval
        clock.alarm(following, functools.partial(self._every, following))

    def _wanted(self, at: float) -> None:
        # A lazy timer's alarm: told if it is still the tick wanted next.
        if self._timer_start is None or self._alarm_at != at:
            return
        self._alarm_at = None
        self.context.self_ref.try_tell(TimerTick())

    def _next_tick(self) -> float | None:
        """The time of the timer's next tick that the strategy wants (see ``background``)."""
        start = self._timer_start
        assert start is not None
        now = self.context.clock.monotonic()
        strategy = self.strategy
        wakes = getattr(strategy, "next_wake", None)
        wake = now if strategy is None or wakes is None else wakes(now)
        if wake is None:
            return None
        interval = self.timer_interval
        tick = max(math.floor((now - start) / interval) + 1, math.ceil((wake - start) / interval))
        return start + tick * interval

    def _prices_quiet(self, strategy: Strategy) -> bool:
        """Whether prices will decide nothing until another event (``Wakes.prices_quiet``),
        so that a replay on virtual time may hold them back: only with the lazy timer, and
        never while the risk actor is told the prices."""
        if not self.lazy_timer or (self.risk is not None and self.gated):
            return False
        quiet = getattr(strategy, "prices_quiet", None)
        return quiet is not None and bool(quiet())

    def _rearm_timer(self) -> None:
        # After each message: the alarm for the strategy's next wanted tick, if it is sooner
        # than the one set (a later one set stays: its tick will be a no-op).
        at = self._next_tick()
        if at is not None and (self._alarm_at is None or at < self._alarm_at):
            self._alarm_at = at
            clock = self.context.clock
            assert isinstance(clock, VirtualClock)
            clock.alarm(at, functools.partial(self._wanted, at))

    async def handle(self, message: SymbolInbox) -> object:
        result = await self._handle(message)
        if self._tick_quiet:
            # A price that decided nothing changed nothing a timer depends on: the alarm set
            # (or none) still stands.
            self._tick_quiet = False
        elif self.lazy_timer and self._timer_start is not None:
            self._rearm_timer()
        return result

    async def _handle(self, message: SymbolInbox) -> object:
        started = perf_counter_ns()
        now = self.context.clock.monotonic()
        strategy = self.strategy
        if strategy is None:
            raise RuntimeError(f"{self.symbol}: no strategy: on_start did not reconcile")
        recorded_at: tuple[int, int] | None = None
        match message:
            case PriceTick():
                if not self.ticks.admit(message):
                    self._rejected.value += 1
                    return None
                if message.ts_event_ns:
                    self.event_ns = message.ts_event_ns
                commands = strategy.decide(message, now)
                if not commands:
                    self._quiet.value += 1  # no decision, no span (SPEC 10)
                    if self.risk is not None and self.gated:
                        self._tell_exposure(self.risk, strategy, force=False)
                    self._tick_quiet = True
                    return PRICES_QUIET if self._prices_quiet(strategy) else None
                self._decided.value += 1
            case BarClosed():
                if message.seconds == self._warm_size:
                    self._remember(message)
                commands = strategy.decide(self._restated(message), now)
                if not commands:
                    self._quiet_bars.value += 1
                    return None
                self._decided_bars.value += 1
            case OrderAccepted():
                commands = strategy.decide(message, now)
            case OrderFilled():
                recorded = await self.lot_keeper.request(
                    RecordFill(fill=message), timeout=self.request_timeout
                )
                recorded_at = (started, perf_counter_ns())
                if isinstance(recorded, Conflicted):
                    # Not a duplicate: the broker has reissued an id. The strategy does not
                    # see it; a reconciliation halts the symbol and shows the conflict.
                    alert = self._alert("execution-conflict", recorded.conflict.describe())
                    self._record(alert)
                    await self._reconcile(dry_run=False)
                    return None
                if isinstance(recorded, Refused):
                    commands = [self._alert("fill-refused", recorded.reason)]
                elif recorded is False:
                    commands = []  # a duplicate execution: the ledger already has it
                else:
                    side = self.sides.get(message.ref)
                    if side is not None:
                        book = self.books[self.instruments.get(message.ref, self.symbol)]
                        book.filled(message.ref, side, message.quantity)
                        if self.risk is not None and self.gated:
                            await self.context.send(
                                self.risk,
                                FillSeen(
                                    symbol=self.instruments.get(message.ref, self.symbol),
                                    side=side,
                                    fill=message,
                                    at_ns=self.event_ns,
                                ),
                            )
                    commands = strategy.decide(message, now)
            case OrderCancelled():
                self.books.gone(message.ref)
                commands = strategy.decide(message, now)
            case OrderRejected():
                self.books.gone(message.ref)
                commands = strategy.decide(message, now)
            case TimerTick():
                commands = strategy.decide(TimerFired(), now)
            case Resync(dry_run=dry_run, acknowledge=acknowledge):
                if acknowledge and not dry_run:
                    await self.lot_keeper.request(
                        AcknowledgeConflicts(symbol=self.symbol), timeout=self.request_timeout
                    )
                return await self._reconcile(dry_run=dry_run)
            case Describe():
                return self._describe(strategy)
            case RiskLifted():
                await self._reconcile(dry_run=False, rebuild=True)
                return None
            case CorporateActionDue(action=action):
                await self._corporate_action(action)
                return None
            case RiskGate(on=on):
                self.gated = on
                return None
            case RiskTripped(reason=reason):
                commands = [
                    CancelOrder(ref=order.ref, reason=f"the daily loss guard tripped: {reason}")
                    for order in strategy.live_orders()
                    if order.side is Side.BUY
                ]
        trail = self._trail(message, started, commands)
        if trail is None:
            if self.risk is not None and self.gated:
                self._tell_exposure(self.risk, strategy, force=True)
            return None
        if recorded_at is not None and trail.on:
            trail.span("fill.record", "client", *recorded_at, _LMDB_FILL, under_event=True)
        # The decision's log lines name its trace and decide span (docs/runtime.md, Logs).
        traced = LOG_TRACE.set(TraceContext(trail.trace_id, trail.decide_id))
        try:
            await self._carry_out(commands, trail)
        except BaseException as exc:
            trail.finish(error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            LOG_TRACE.reset(traced)
        trail.finish()
        if self.risk is not None and self.gated:
            self._tell_exposure(self.risk, strategy, force=not isinstance(message, PriceTick))
        return None

    def _working(self, strategy: Strategy, leaving_out: str = "") -> Working:
        orders = 0
        buying = Decimal(0)
        last = strategy.last_price
        for order in strategy.live_orders():
            if order.ref == leaving_out:
                continue
            orders += 1
            if order.side is Side.BUY:
                instrument = self.instruments.get(order.ref, self.symbol)
                limit = self.limits.get(order.ref)
                price = limit if limit is not None or instrument != self.symbol else last
                if price is not None:
                    buying += (order.quantity - order.filled) * price * multiplier(instrument)
        return Working(symbol=self.symbol, orders=orders, buy_notional=buying)

    def _tell_exposure(self, risk: ActorRef[Any], strategy: Strategy, *, force: bool) -> None:
        # Ticks tell at most once a second of event time; the risk actor's mailbox keeps only
        # the latest per route (it coalesces), so this never waits.
        at_ns = self.event_ns or self.context.clock.time_ns()
        if not force and at_ns - self._exposure_told_ns < EXPOSURE_EVERY_NS:
            return
        self._exposure_told_ns = at_ns
        self.context.tell(
            risk,
            Exposure(
                route=self.route,
                working=self._working(strategy),
                price=strategy.last_price,
                at_ns=self.event_ns,
            ),
        )

    def _trail(self, message: SymbolInbox, started: int, commands: list[Command]) -> Trail | None:
        """The trail of a handled event: a tick or timer that decided something roots a trace;
        an event of a traced order joins its trace, decided or not; others leave none."""
        envelope = self.context.envelope
        match message:
            case PriceTick() | BarClosed():
                origin = envelope.ts_init_ns if envelope is not None else started
                return Trail(
                    self.tracer,
                    kind="consumer",
                    symbol=self.symbol,
                    actor=self.context.name,
                    cause=None,
                    start_ns=origin,
                    decide_ns=started,
                    message=message,
                    origin_ns=origin,
                )
            case TimerTick():
                if not commands:
                    return None
                return Trail(
                    self.tracer,
                    name="timer",
                    kind="internal",
                    symbol=self.symbol,
                    actor=self.context.name,
                    cause=None,
                    start_ns=started,
                    decide_ns=perf_counter_ns(),
                )
        cause = envelope.trace if envelope is not None else None
        if not isinstance(cause, TraceContext):
            cause = None
        if cause is None and not commands:
            return None
        return Trail(
            self.tracer,
            kind="consumer",
            symbol=self.symbol,
            actor=self.context.name,
            cause=cause,
            start_ns=envelope.ts_init_ns if envelope is not None else started,
            decide_ns=perf_counter_ns(),
            message=message,
        )

    # -- corporate actions ---------------------------------------------------------------------

    async def _corporate_action(self, action: CorporateAction) -> None:
        """A split or dividend of this symbol at the start of its ex-date, which the venue has
        applied already: the ledger restates its facts (once, whichever host asks first), the
        risk actor is told, and the strategy is rebuilt from the restated facts (its warm-up
        bars and last price restated too), as after a restart."""
        applied = await self.lot_keeper.request(
            ApplyAction(action=action), timeout=self.request_timeout
        )
        if isinstance(applied, Refused):
            raise ReconcileFailed(
                f"{self.symbol}: the ledger refused {action.id}: {applied.reason}"
            )
        if self.risk is not None and self.gated:
            await self.context.send(self.risk, ActionSeen(action=action, at_ns=self.event_ns))
        strategy = self.strategy
        if isinstance(action, Split) and strategy is not None and strategy.last_price is not None:
            strategy.last_price = split_price(strategy.last_price, action.ratio)
        log.info("%s: %s applied", self.context.name, action.id)
        await self._reconcile(dry_run=False, rebuild=True)

    def _restated(self, closed: BarClosed) -> BarClosed:
        """A bar as traded, restated by every split of the ledger whose ex-date is after the
        bar's day (the warm-up bars are kept as traded, and restated as they are used)."""
        if not self.actions:
            return closed
        bar = closed.bar
        day = bar.start.astimezone(NEW_YORK).date()
        ratio = Decimal(1)
        for split in self.actions:
            if day < split.ex_date:
                ratio *= split.ratio
        if ratio == 1:
            return closed
        return attrs.evolve(
            closed,
            bar=attrs.evolve(
                bar,
                open=split_price(bar.open, ratio),
                high=split_price(bar.high, ratio),
                low=split_price(bar.low, ratio),
                close=split_price(bar.close, ratio),
                volume=int(bar.volume * ratio),
            ),
        )

    # -- reconciliation ----------------------------------------------------------------------

    async def _reconcile(self, *, dry_run: bool, rebuild: bool = False) -> reconcile.Diff:
        started = perf_counter_ns()
        self._reconciles.value += 1
        trail = Trail(
            self.tracer,
            name="reconcile",
            kind="internal",
            symbol=self.symbol,
            actor=self.context.name,
            cause=None,
            start_ns=started,
            decide_ns=started,
        )
        try:
            diff = await self._reconcile_traced(dry_run=dry_run, trail=trail, rebuild=rebuild)
        except BaseException as exc:
            trail.finish(error=f"{type(exc).__name__}: {exc}")
            raise
        if trail.on:
            trail.attributes = {
                "trading.dry_run": dry_run,
                "actortrade.incarnation": self.context.incarnation,
                "trading.broker_position": diff.broker_position,
                "trading.ledger_shares": diff.ledger_shares,
                "trading.clean": diff.clean,
            }
            for line in diff.lines():
                trail.event(("reconcile.diff", {"message": line}))
        trail.finish()
        return diff

    async def _reconcile_traced(
        self, *, dry_run: bool, trail: Trail, rebuild: bool = False
    ) -> reconcile.Diff:
        clock = self.context.clock
        snapshot = _expect(
            await self.broker.request(Snapshot(symbol=self.symbol), timeout=self.request_timeout),
            BrokerSnapshot,
        )
        state = await self._load()
        if getattr(self.kind, "remembers", False):
            self.memory = await self._load_memory()
        self.actions = [
            Split(symbol=r.symbol, ex_date=date.fromisoformat(r.ex_date), ratio=r.ratio)
            for r in state.actions
            if r.kind == "split" and r.ratio is not None
        ]
        diff, repairs = reconcile.plan(
            symbol=self.symbol,
            strategy=self.kind.name,
            ledger=state,
            broker=snapshot,
            now_ns=clock.time_ns(),
            adopt=self.kind.adopt
            if self.owner and getattr(self.kind, "adopts_shares", True)
            else None,
            siblings=self.siblings,
        )
        working = {order.order.ref for order in snapshot.orders if order.working}
        book = Books.from_snapshot(snapshot, self.symbol, self._ours)
        if dry_run:
            merged = _merged(state, repairs)
            strategy = self._restore(merged, working)
            commands = self._realign(strategy, diff, merged, snapshot, book)
            return _with_orders(attrs.evolve(diff, dry_run=True), commands)
        if repairs:
            healed = await self.lot_keeper.request(
                Heal(
                    intents=repairs.intents,
                    fills=repairs.fills,
                    retired=repairs.retired,
                    conflicts=repairs.conflicts,
                ),
                timeout=self.request_timeout,
            )
            if isinstance(healed, Refused | Conflicted):
                reason = healed.reason if isinstance(healed, Refused) else healed.conflict
                raise ReconcileFailed(f"{self.symbol}: the ledger refused repairs: {reason}")
            state = await self._load()
            # A conflict the heal found on its own (an id another symbol's fill holds).
            diff = attrs.evolve(diff, conflicts=tuple(c.describe() for c in state.open_conflicts))
            if self.risk is not None and self.gated and repairs.fills:
                # The executions the ledger missed (filled while we were away): the risk
                # actor's positions and P&L count them too (each execId once).
                orders = {intent.ref: intent.order for intent in state.intents}
                for fill in repairs.fills:
                    order = orders.get(fill.ref)
                    if order is not None:
                        await self.context.send(
                            self.risk,
                            FillSeen(
                                symbol=order.symbol, side=order.side, fill=fill, at_ns=self.event_ns
                            ),
                        )
        previous = self.strategy
        live = None if previous is None else {order.ref for order in previous.live_orders()}
        if previous is None or rebuild or repairs or live != {r for r in working if self._ours(r)}:
            strategy = self._restore(state, working, previous=previous)
            self.strategy = strategy
            self.published[self.route] = strategy
        else:
            strategy = previous
        self.books = book
        self.sides = {intent.ref: intent.order.side for intent in state.intents}
        self.instruments = {intent.ref: intent.order.symbol for intent in state.intents}
        self.limits = {intent.ref: intent.order.limit for intent in state.intents}
        self.quantities = {intent.ref: intent.order.quantity for intent in state.intents}
        commands = self._realign(strategy, diff, state, snapshot, book)
        refused = await self._carry_out(commands, trail)
        diff = _with_orders(diff, [c for c in commands if getattr(c, "ref", None) not in refused])
        self.last_diff = diff
        lines = diff.lines()
        self._diffs.value += len(lines)
        for line in lines:
            self._record(self._alert("reconcile", line))
        return diff

    async def _load(self) -> LedgerState:
        return _expect(
            await self.lot_keeper.request(
                LoadLedger(symbol=self.symbol), timeout=self.request_timeout
            ),
            LedgerState,
        )

    def _restore(
        self, state: LedgerState, working: set[str], previous: Strategy | None = None
    ) -> Strategy:
        clock = self.context.clock
        now, wall_ns = clock.monotonic(), clock.time_ns()
        intents = tuple(i for i in state.intents if self._ours(i.ref))
        strategy = self.kind.restore(
            Facts(
                intents=intents,
                fills=tuple(f for f in state.fills if self._ours(f.ref)),
                working=frozenset(r for r in working if self._ours(r)),
                placed_at={i.ref: now - (wall_ns - i.created_ns) / 1e9 for i in intents},
                now=now,
                memory=dict(self.memory),
            )
        )
        if previous is not None:
            strategy.last_price = previous.last_price
        if self.warm_bars:
            strategy.warm(tuple(self._restated(closed) for closed in self.warm_bars))
        return strategy

    def _remember(self, closed: BarClosed) -> None:
        # A live bar that history also served (the feed started inside it) replaces it.
        bars = self.warm_bars
        while bars and bars[-1].bar.start >= closed.bar.start:
            bars.pop()
        bars.append(closed)

    def _realign(
        self,
        strategy: Strategy,
        diff: reconcile.Diff,
        state: LedgerState,
        snapshot: BrokerSnapshot,
        books: Books,
    ) -> list[Command]:
        """The orders that bring the broker in line: first our working orders the strategy
        does not count as live, then the strategy's own re-sync (or its halt), then the sells
        that would still offer more than the position."""
        now = self.context.clock.monotonic()
        live = {order.ref for order in strategy.live_orders()}
        filled: collections.Counter[str] = collections.Counter()
        for fill in state.fills:
            filled[fill.ref] += fill.quantity
        stale = [o.order.ref for o in reconcile.stale_orders(snapshot, live, self._ours, filled)]
        commands: list[Command] = [
            CancelOrder(ref=ref, reason="working at the broker, but done in the ledger")
            for ref in stale
        ]
        if stale:
            commands.append(
                self._alert(
                    "stale-order",
                    f"working at the broker, but done in the ledger (the broker lost its "
                    f"record of them?): cancelled {', '.join(stale)}",
                )
            )
        commands += _undelivered_changes(snapshot, state, live, stale)
        if diff.conflicts:
            more = f" (and {len(diff.conflicts) - 1} more)" if len(diff.conflicts) > 1 else ""
            commands += strategy.halt(f"execution conflict: {diff.conflicts[0]}{more}")
        elif diff.missing_shares:
            commands += strategy.halt(
                f"the ledger holds {diff.ledger_shares} {self.symbol} shares, the broker "
                f"{diff.broker_position}"
            )
        elif diff.missing_options:
            more = (
                f" (and {len(diff.missing_options) - 1} more)"
                if len(diff.missing_options) > 1
                else ""
            )
            commands += strategy.halt(f"missing contracts: {diff.missing_options[0]}{more}")
        elif strategy.halted is not None:
            commands += strategy.resume(now)
        else:
            commands += strategy.resync(now)
        cancelling = {c.ref for c in commands if isinstance(c, CancelOrder)}
        keep = {o.ref for o in strategy.live_orders() if o.side is Side.SELL}
        for instrument, book in sorted(books.by_instrument.items()):
            excess = book.excess(keep, cancelling)
            for ref in excess:
                commands.append(
                    CancelOrder(ref=ref, reason="the working sells offer more than the position")
                )
            if excess:
                commands.append(
                    self._alert(
                        "oversold",
                        f"the working sells of {instrument} offered {book.offered}, the broker "
                        f"holds {book.position}: cancelled {', '.join(excess)}",
                    )
                )
        return commands

    async def _refresh_book(self) -> None:
        snapshot = _expect(
            await self.broker.request(Snapshot(symbol=self.symbol), timeout=self.request_timeout),
            BrokerSnapshot,
        )
        self.books = Books.from_snapshot(snapshot, self.symbol, self._ours)

    def _ours(self, ref: str) -> bool:
        return ref.startswith(f"{self.route}:")

    def _describe(self, strategy: Strategy) -> SymbolView:
        live = strategy.live_orders()
        return SymbolView(
            symbol=self.symbol,
            strategy=self.kind.name,
            halted=strategy.halted,
            last_price=strategy.last_price,
            live_buys=sum(1 for o in live if o.side is Side.BUY),
            live_sells=sum(1 for o in live if o.side is Side.SELL),
            lots=tuple(strategy.positions()),
            realized=strategy.realized,
            last_diff=self.last_diff,
            detail=strategy.view(),
            ticks_accepted=self.ticks.accepted,
            ticks_dropped=dict(self.ticks.dropped),
            lot_events=tuple(self.lot_events)[-10:],
            last_decision=_decision_line(self.last_decision[1]) if self.last_decision else None,
            last_decision_ns=self.last_decision[0] if self.last_decision else 0,
        )

    # -- commands ----------------------------------------------------------------------------

    async def _carry_out(self, commands: list[Command], trail: Trail) -> set[str]:
        """Carry out ``commands`` (and what the strategy decides on their refusals); returns
        the refs of the orders refused (never short, risk, the ledger): never sent."""
        refused_refs: set[str] = set()
        pending = collections.deque(commands)
        while pending:
            command = pending.popleft()
            if isinstance(command, OrderCommand):
                self.last_decision = (self.event_ns, command)
            match command:
                case PlaceOrder():
                    target = trail.for_order(command)
                    if command.side is Side.SELL and self.siblings:
                        # The siblings' sells and fills move the one position too: check
                        # against the broker's book as it is now, every strategy's working
                        # sells counted, not as this actor's last reconciliation saw it.
                        await self._refresh_book()
                    committing = perf_counter_ns()
                    book = self.books[command.symbol]
                    refused = (
                        book.refuses(command.quantity, command.oca)
                        if command.side is Side.SELL
                        else None
                    )
                    if refused is not None:
                        # Never short: the strategy sees a rejection (and backs off); nothing
                        # is committed or sent.
                        refused_refs.add(command.ref)
                        self._record(self._alert("sell-refused", f"{command.ref}: {refused}"))
                        if target.on:
                            target.placed(command, committing, committing, committing, 0, refused)
                        strategy = self.strategy
                        if strategy is not None:
                            rejection = OrderRejected(ref=command.ref, reason=refused)
                            now = self.context.clock.monotonic()
                            pending.extend(strategy.decide(rejection, now))
                        continue
                    strategy = self.strategy
                    if self.risk is not None and self.gated and strategy is not None:
                        verdict = await self._ask_risk(self.risk, strategy, command, target)
                        if verdict is not None:
                            # Neither committed nor sent: the strategy sees it refused.
                            refused_refs.add(command.ref)
                            refusal = OrderRefused(
                                ref=command.ref, reason=verdict.reason, rule=verdict.rule
                            )
                            now = self.context.clock.monotonic()
                            pending.extend(strategy.decide(refusal, now))
                            continue
                        committing = perf_counter_ns()
                    committed = await self.lot_keeper.request(
                        CommitIntent(order=command, dry=self.dry_run), timeout=self.request_timeout
                    )
                    sending = perf_counter_ns()
                    if isinstance(committed, Refused):
                        refused_refs.add(command.ref)
                        self._record(self._alert("intent-refused", committed.reason))
                        if target.on:
                            target.placed(
                                command, committing, sending, sending, 0, committed.reason
                            )
                        continue
                    submit_id = new_span_id()
                    self.sides[command.ref] = command.side
                    self.limits[command.ref] = command.limit
                    self.quantities[command.ref] = command.quantity
                    self.instruments[command.ref] = command.symbol
                    if command.side is Side.SELL:
                        self.books[command.symbol].sent(command.ref, command.quantity, command.oca)
                    await self.context.send(self.broker, command, trace=target.submitted(submit_id))
                    self._submitted[command.side.value].value += 1
                    if target.on:
                        target.placed(command, committing, sending, perf_counter_ns(), submit_id)
                case PlaceBracket():
                    refusals = await self._place_bracket(command, trail)
                    if refusals:
                        refused_refs.update(event.ref for event in refusals)
                        strategy = self.strategy
                        if strategy is not None:
                            now = self.context.clock.monotonic()
                            for event in refusals:
                                pending.extend(strategy.decide(event, now))
                case ModifyOrder():
                    unchanged = await self._modify(command, trail)
                    if unchanged is not None:
                        # Nothing amended, nothing sent: the order works as it was.
                        strategy = self.strategy
                        if strategy is not None:
                            pending.extend(
                                strategy.decide(unchanged, self.context.clock.monotonic())
                            )
                case CancelOrder():
                    cancel_id = new_span_id()
                    sending = perf_counter_ns()
                    await self.context.send(
                        self.broker, command, trace=TraceContext(trail.trace_id, cancel_id)
                    )
                    if trail.on:
                        trail.cancelled(command, sending, perf_counter_ns(), cancel_id)
                case Alert():
                    if command.kind == "skip":
                        self._skips.value += 1
                    self._record(command)
                    if trail.on:
                        trail.event(command)
                case Remember(key=key, value=value):
                    await self._commit_memory(key, value)
                case FindOption():
                    found = await self._find_option(command, trail)
                    strategy = self.strategy
                    if strategy is not None:
                        pending.extend(strategy.decide(found, self.context.clock.monotonic()))
                case LotOpened():
                    # DEBUG: the fill printer's trade line says as much (-v brings it back).
                    log.debug(
                        "%s lot %d (L%d) opened: %d @ %.4f, selling at %s",
                        command.symbol,
                        command.lot,
                        command.level,
                        command.shares,
                        command.purchase_price,
                        command.sell_price,
                    )
                    self.lot_events.append(command)
                    if trail.on:
                        trail.event(command)
                case LotClosed():
                    log.debug(
                        "%s lot %d (L%d) closed: %d shares, realized %s",
                        command.symbol,
                        command.lot,
                        command.level,
                        command.shares,
                        command.realized,
                    )
                    self.lot_events.append(command)
                    if trail.on:
                        trail.event(command)
        return refused_refs

    async def _place_bracket(
        self, bracket: PlaceBracket, trail: Trail
    ) -> list[OrderRefused | OrderRejected]:
        """Commit every leg of ``bracket`` as an intent, in one transaction, then send it as
        one; or the refusals of its legs when any check fails (nothing committed or sent).
        The entry is checked as a new order is (never short for a sell, the risk actor); the
        exits are protective and never blocked: the venue works them only for what the entry
        filled, so they count against the position only from then on (``SellBook``)."""
        entry = bracket.entry
        exits = (bracket.take_profit, bracket.stop_loss)
        target = trail.for_order(entry)

        def refused(reason: str) -> list[OrderRefused | OrderRejected]:
            return [
                OrderRejected(ref=leg.ref, reason=f"its entry {entry.ref} was refused: {reason}")
                for leg in exits
            ]

        if entry.side is Side.SELL:
            if self.siblings:
                await self._refresh_book()
            problem = self.books[entry.symbol].refuses(entry.quantity)
            if problem is not None:
                self._record(self._alert("sell-refused", f"{entry.ref}: {problem}"))
                return [OrderRejected(ref=entry.ref, reason=problem), *refused(problem)]
        strategy = self.strategy
        if self.risk is not None and self.gated and strategy is not None:
            verdict = await self._ask_risk(self.risk, strategy, entry, target)
            if verdict is not None:
                return [
                    OrderRefused(ref=entry.ref, reason=verdict.reason, rule=verdict.rule),
                    *refused(verdict.reason),
                ]
        committing = perf_counter_ns()
        committed = await self.lot_keeper.request(
            CommitBracket(bracket=bracket, dry=self.dry_run), timeout=self.request_timeout
        )
        sending = perf_counter_ns()
        if isinstance(committed, Refused):
            self._record(self._alert("intent-refused", committed.reason))
            if target.on:
                target.placed(entry, committing, sending, sending, 0, committed.reason)
            return [
                OrderRejected(ref=entry.ref, reason=committed.reason),
                *refused(committed.reason),
            ]
        submit_id = new_span_id()
        for leg in bracket.legs:
            self.sides[leg.ref] = leg.side
            self.limits[leg.ref] = leg.limit
            self.quantities[leg.ref] = leg.quantity
            self.instruments[leg.ref] = leg.symbol
        book = self.books[entry.symbol]
        if entry.side is Side.SELL:
            book.sent(entry.ref, entry.quantity)
        else:
            group = bracket.stop_loss.oca
            assert group is not None  # PlaceBracket checks it
            book.bracket(entry.ref, [leg.ref for leg in exits], group, entry.quantity)
        await self.context.send(self.broker, bracket, trace=target.submitted(submit_id))
        self._submitted[entry.side.value].value += 1
        if target.on:
            target.placed(entry, committing, sending, perf_counter_ns(), submit_id)
        return []

    async def _modify(self, change: ModifyOrder, trail: Trail) -> ModifyRefused | None:
        """Amend the order's intent, then send the change; or why not (nothing amended or
        sent). A change that asks for more (more shares, a higher buy limit) is checked as a
        new order would be; one that asks for less is never blocked."""
        strategy = self.strategy
        live = {order.ref: order for order in strategy.live_orders()} if strategy else {}
        order = live.get(change.ref)
        if order is None:
            return ModifyRefused(ref=change.ref, reason=f"{change.ref} is not working")
        side = order.side
        # What the order is now: the host's record (the strategy may already believe its change).
        more = change.quantity - self.quantities.get(change.ref, order.quantity)
        if side is Side.SELL and more > 0:
            if self.siblings:
                await self._refresh_book()
            problem = self.books[self.instruments.get(change.ref, self.symbol)].refuses(more)
            if problem is not None:
                self._record(self._alert("sell-refused", f"{change.ref}: {problem}"))
                return ModifyRefused(ref=change.ref, reason=problem)
        before = self.limits.get(change.ref)
        dearer = (
            change.limit is not None and before is not None and change.limit > before
        ) or more > 0
        if side is Side.BUY and dearer and self.risk is not None and self.gated and strategy:
            target = trail.for_order(self._as_order(change))
            verdict = await self._ask_risk(self.risk, strategy, self._as_order(change), target)
            if verdict is not None:
                return ModifyRefused(ref=change.ref, reason=verdict.reason, rule=verdict.rule)
        amended = await self.lot_keeper.request(
            AmendIntent(change=change), timeout=self.request_timeout
        )
        if isinstance(amended, Refused):
            self._record(self._alert("intent-refused", amended.reason))
            return ModifyRefused(ref=change.ref, reason=amended.reason)
        self.limits[change.ref] = change.limit
        self.quantities[change.ref] = change.quantity
        book = self.books[self.instruments.get(change.ref, self.symbol)]
        if side is Side.SELL and change.ref in book.working:
            book.working[change.ref] = change.quantity - order.filled
        span_id = new_span_id()
        sending = perf_counter_ns()
        await self.context.send(self.broker, change, trace=TraceContext(trail.trace_id, span_id))
        if trail.on:
            trail.span(
                "order.modify",
                "producer",
                sending,
                perf_counter_ns(),
                {
                    "trading.order_ref": change.ref,
                    "trading.quantity": change.quantity,
                    "trading.limit": str(change.limit),
                    "trading.reason": change.reason,
                },
            )
        return None

    def _as_order(self, change: ModifyOrder) -> PlaceOrder:
        """The order as ``change`` would make it (for the risk check), from its side and the
        host's view of it."""
        return PlaceOrder(
            ref=change.ref,
            symbol=self.symbol,
            side=self.sides.get(change.ref, Side.BUY),
            quantity=change.quantity,
            limit=change.limit,
            tif=TimeInForce.DAY,
            stop=change.stop,
        )

    async def _ask_risk(
        self, risk: ActorRef[Any], strategy: Strategy, order: PlaceOrder, trail: Trail
    ) -> RiskRefused | None:
        """The risk actor's refusal of ``order``, or None when it may go."""
        asking = perf_counter_ns()
        verdict = await risk.request(
            CheckOrder(
                order=order,
                route=self.route,
                position=self.books[order.symbol].position,
                working=self._working(strategy, leaving_out=order.ref),
                price=strategy.last_price,
                at_ns=self.event_ns,
            ),
            timeout=self.request_timeout,
        )
        refused = verdict if isinstance(verdict, RiskRefused) else None
        if trail.on:
            attributes: dict[str, AttributeValue] = {
                "trading.order_ref": order.ref,
                "trading.risk.outcome": "allowed" if refused is None else "refused",
            }
            if refused is not None:
                attributes["trading.risk.rule"] = refused.rule
                attributes["trading.risk.reason"] = refused.reason
                trail.event(("risk.refused", dict(attributes)))
            trail.span("risk.check", "client", asking, perf_counter_ns(), attributes)
        if refused is not None:
            log.info("%s refused by risk (%s): %s", order.ref, refused.rule, refused.reason)
        return refused

    async def _load_memory(self) -> dict[str, str]:
        raw = await self.lot_keeper.request(
            LoadSnapshot(actor=self._memory_key), timeout=self.request_timeout
        )
        if raw is None:
            return {}
        if not isinstance(raw, bytes):
            raise TypeError(f"expected the memory of {self.route}, got {raw!r}")
        memory = json.loads(raw)
        if not isinstance(memory, dict):
            raise ReconcileFailed(f"{self.route}: its memory in the ledger is damaged: {raw!r}")
        return {str(k): str(v) for k, v in memory.items()}

    @property
    def _memory_key(self) -> str:
        return f"memory:{self.route}"

    async def _commit_memory(self, key: str, value: str) -> None:
        """Commit the strategy's memory with ``key`` set before anything after it is done."""
        memory = {**self.memory, key: value}
        data = json.dumps(memory, sort_keys=True).encode()
        saved = await self.lot_keeper.request(
            SaveSnapshot(actor=self._memory_key, data=data), timeout=self.request_timeout
        )
        if saved is not True:
            raise ReconcileFailed(f"{self.route}: the ledger did not keep {key}: {saved!r}")
        self.memory = memory

    async def _find_option(self, find: FindOption, trail: Trail) -> OptionFound | OptionMissing:
        """The chain, the contract its parameters choose, its quote and the equity (see
        ``FindOption``); what went wrong as an ``OptionMissing``, never an exception (but
        for a lost connection, which crashes the actor as any broker call does)."""
        source = self.option_data
        if source is None:
            return OptionMissing(
                decision=find.decision, reason="this service has no option data", code="data"
            )
        started = perf_counter_ns()
        attributes: dict[str, AttributeValue] = {"trading.decision": find.decision}
        try:
            with anyio.fail_after(self.request_timeout):
                chain = await source.chain(self.symbol)
                params = find.contract
                assert isinstance(params, ContractParams)
                chosen = choose_contract(
                    chain,
                    underlying_price=find.underlying_price,
                    today=date.fromisoformat(find.today),
                    bullish=find.bullish,
                    params=params,
                )
                if isinstance(chosen, Skip):
                    attributes["trading.skip"] = chosen.code
                    return OptionMissing(
                        decision=find.decision, reason=chosen.reason, code=chosen.code
                    )
                attributes["trading.option"] = chosen.occ
                quote = await source.quote(chosen.occ)
                equity = await source.equity()
        except OptionDataError as exc:
            attributes["trading.skip"] = "data"
            return OptionMissing(decision=find.decision, reason=str(exc), code="data")
        except TimeoutError:
            attributes["trading.skip"] = "data"
            return OptionMissing(
                decision=find.decision,
                reason=f"{source.name} did not answer within {self.request_timeout} s",
                code="data",
            )
        finally:
            if trail.on:
                trail.span("option.find", "client", started, perf_counter_ns(), attributes)
        return OptionFound(
            decision=find.decision,
            option=chosen.occ,
            quote=quote,
            equity=equity,
            multiplier=chain.multiplier,
        )

    def _alert(self, kind: str, message: str) -> Alert:
        return Alert(symbol=self.symbol, kind=kind, message=message)

    def _record(self, alert: Alert) -> None:
        # Told, never sent: a full alerts mailbox drops the alert (counted there) rather than
        # hold up trading. The log line stays, whatever becomes of it; a notice (info: the
        # "trading" one, which actorctl start prints its own way) only at DEBUG.
        severity = SEVERITY.get(alert.kind, alert.severity)
        level = logging.DEBUG if severity is Severity.INFO else logging.WARNING
        log.log(level, "%s %s: %s", alert.symbol, alert.kind, alert.message)
        if self.alerts is not None:
            stamped = attrs.evolve(
                alert, severity=severity, at_ns=alert.at_ns or self.context.clock.time_ns()
            )
            self.alerts.try_tell(stamped)


_LMDB_FILL: dict[str, AttributeValue] = {
    "db.system.name": "lmdb",
    "db.operation.name": "record_fill",
}


def _decision_line(command: OrderCommand) -> str:
    # One line for `actorctl top`: what was decided of which order.
    match command:
        case PlaceOrder():
            price = "MKT" if command.limit is None else command.limit
            stop = "" if command.stop is None else f" stop {command.stop}"
            return (
                f"{command.side.value} {command.quantity} {command.symbol} @ {price}{stop} "
                f"({command.ref})"
            )
        case PlaceBracket(entry=entry, take_profit=tp, stop_loss=sl):
            price = "MKT" if entry.limit is None else entry.limit
            return (
                f"bracket {entry.side.value} {entry.quantity} {entry.symbol} @ {price}, "
                f"take profit {tp.limit}, stop {sl.stop} ({entry.ref})"
            )
        case ModifyOrder():
            price = "MKT" if command.limit is None else command.limit
            return f"modify {command.ref}: {command.quantity} @ {price}"
        case CancelOrder():
            return f"cancel {command.ref}: {command.reason}"
        case _:
            assert_never(command)


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


def _undelivered_changes(
    snapshot: BrokerSnapshot, state: LedgerState, live: set[str], stale: list[str]
) -> list[Command]:
    """A change is amended in the ledger before it is sent: a working order of the strategy's
    whose quantity or prices at the broker are not its intent's (the change was lost on its
    way, the process died between the two) gets the change again."""
    intents = {intent.ref: intent.order for intent in state.intents}
    changes: list[Command] = []
    for held in snapshot.orders:
        at_broker, ref = held.order, held.order.ref
        intended = intents.get(ref)
        if not held.working or intended is None or ref not in live or ref in stale:
            continue
        if (at_broker.quantity, at_broker.limit, at_broker.stop) != (
            intended.quantity,
            intended.limit,
            intended.stop,
        ):
            changes.append(
                ModifyOrder(
                    ref=ref,
                    quantity=intended.quantity,
                    limit=intended.limit,
                    stop=intended.stop,
                    reason="amended in the ledger, not yet at the broker",
                )
            )
    return changes


def _with_orders(diff: reconcile.Diff, commands: list[Command]) -> reconcile.Diff:
    return attrs.evolve(
        diff,
        placed=tuple(c.ref for c in commands if isinstance(c, PlaceOrder)),
        cancelled=tuple(c.ref for c in commands if isinstance(c, CancelOrder)),
    )
