"""The risk actor (SPEC 12): portfolio-level pre-trade checks and the daily loss guard.

Every new order of every strategy asks it before its intent is committed: the symbol actor
sends ``CheckOrder`` with the order, the symbol's position, its strategy's working orders and
the last price, and gets ``Allowed`` or ``Refused(reason, rule)`` back. Cancels never ask, and a
protective exit (a sell of no more shares than the position) is always allowed. The rules are
pure (``actors.risk_rules``); this actor keeps the portfolio they read:

* positions and cash from every execution of the ledger (loaded at start) and every new one a
  symbol actor records (``FillSeen``, each execId once); a corporate action a symbol actor
  applied (``ActionSeen``, each once): a split rescales the position and the last price, a
  dividend adds its cash (the ledger's dividends at start);
* the last prices (``Exposure``, which symbol actors send at most once a second of event time,
  and with every check) and each strategy's working orders, an order it allows counted among
  them at once (until the strategy's next report: another strategy's check must see it);
* **equity**: ``risk.equity`` from the config plus the P&L of those executions at the last
  prices (realized and unrealized, commissions paid). The broker's account value is not used:
  neither the sim venue nor the IB port reports one yet.

**Sessions run on the event's time** (the ticks' exchange time, so a replay on virtual time
works as live), by New York trading day: the first event of a new day starts a session, whose
start equity is what the daily loss is measured from, and lifts a tripped guard. An order
decided before any tick (a restarted symbol actor's re-sync) is checked at the latest event
time known, the trip's when nothing newer is, and refused by the market-hours gate when no time
is known (never the wall clock: a replay runs on virtual time); it never starts a session: only
a tick does. A
loss beyond ``max_daily_loss_pct`` of it trips the guard: every new order is refused until the
next session, the symbol actors cancel their working buys (``RiskTripped``), and the operator
gets one alert. When a limit lifts (a new session after a trip, the operator's resume) the
symbol actors are told (``RiskLifted``) and rebuild their strategies, which place again.

**The gate.** Without any limit configured and with no halt, nothing can refuse an order, and
the symbol actors do not ask (a request per order costs its round trip on the tick-to-order
path). Each asks whether to (``AskGate``) as it starts, and is told when that changes
(``RiskGate``): the operator's first halt turns the checks on, the last resume off.

**Durable** (``ledger.RiskRecord`` in the ledger's ``risk`` database, through the lot-keeper,
the environment's only writer): the session's day and start equity, the trip and the operator's
halts (``actorctl halt [SYMBOL]`` / ``resume``). A restart on a tripped day stays tripped, and
says nothing again.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, assert_never

import attrs

from runtime import Actor, ActorRef, Request
from runtime import telemetry as telemetry_
from runtime.metrics import Count
from runtime.telemetry import Telemetry

from .domain import CorporateAction, OrderFilled, PlaceOrder, Side, underlying_of
from .domain.sessions import NEW_YORK
from .ledger import RiskRecord
from .lot_keeper import LedgerState, LoadLedger, LoadRisk, SaveRisk
from .messages import Alert
from .risk_rules import ALL, Book, RiskLimits, Working, check, loss_trips, protective

if TYPE_CHECKING:
    from .alerts import AlertsInbox

__all__ = [
    "ActionSeen",
    "Allowed",
    "AskGate",
    "CheckOrder",
    "DescribeRisk",
    "Exposure",
    "FillSeen",
    "HaltTrading",
    "Refused",
    "ResumeTrading",
    "RiskActor",
    "RiskGate",
    "RiskInbox",
    "RiskLifted",
    "RiskTripped",
    "RiskView",
]

log = logging.getLogger("actortrade.risk")


@attrs.frozen(kw_only=True)
class CheckOrder:
    """May ``order`` (a new order of ``route``) go? Replies ``Allowed`` or ``Refused``.
    ``position`` is the symbol's (the broker's, as its symbol actor knows it), ``working`` the
    route's working orders without ``order``, ``price`` the last price, ``at_ns`` the time of
    the event that decided it (Unix ns; 0 when unknown: the actor's clock then)."""

    order: PlaceOrder
    route: str
    position: int
    working: Working
    price: Decimal | None
    at_ns: int


@attrs.frozen(kw_only=True)
class Allowed:
    pass


@attrs.frozen(kw_only=True)
class Refused:
    """The order must not go: nothing is committed, the strategy sees ``OrderRefused``."""

    reason: str
    rule: str


@attrs.frozen(kw_only=True)
class Exposure:
    """A route's working orders and its symbol's last price (told; coalesces per route)."""

    route: str
    working: Working
    price: Decimal | None
    at_ns: int


@attrs.frozen(kw_only=True)
class FillSeen:
    """An execution the ledger has just recorded (told; each execId counts once)."""

    symbol: str
    side: Side
    fill: OrderFilled
    at_ns: int


@attrs.frozen(kw_only=True)
class ActionSeen:
    """A split or dividend the ledger has just applied (told; each counts once)."""

    action: CorporateAction
    at_ns: int


@attrs.frozen(kw_only=True)
class HaltTrading(Request["RiskView"]):
    """The operator's halt of ``symbol`` (None: every symbol): durable; replies a ``RiskView``."""

    symbol: str | None = None


@attrs.frozen(kw_only=True)
class ResumeTrading(Request["RiskView"]):
    """Lift the operator's halt of ``symbol`` (None: every halt); replies a ``RiskView``. The
    daily loss guard is not the operator's: it lifts at the next session."""

    symbol: str | None = None


@attrs.frozen(kw_only=True)
class DescribeRisk(Request["RiskView"]):
    """Reply with a ``RiskView``."""


@attrs.frozen(kw_only=True)
class RiskTripped:
    """To every symbol actor: the daily loss guard tripped; cancel the working buys."""

    reason: str


@attrs.frozen(kw_only=True)
class AskGate:
    """Must new orders be checked? Replies a bool (see the module doc's *gate*)."""


@attrs.frozen(kw_only=True)
class RiskGate:
    """To the symbol actors: check new orders from now on (``on``), or no longer."""

    on: bool


@attrs.frozen(kw_only=True)
class RiskLifted:
    """To the symbol actors: a limit lifted (a new session, the operator's resume); rebuild
    the strategy so that it places again without waiting out its back-off."""


@attrs.frozen(kw_only=True)
class RiskRefusal:
    """A refusal as ``status`` shows it."""

    ref: str
    rule: str
    reason: str


@attrs.frozen(kw_only=True)
class RiskView:
    """What ``actorctl status`` shows of the risk actor."""

    limits: RiskLimits
    session: str | None
    start_equity: Decimal | None
    equity: Decimal | None
    tripped: str | None
    halts: tuple[str, ...]
    open_orders: int
    exposure: Decimal
    allowed: int
    refused: dict[str, int]
    last_refusals: tuple[RiskRefusal, ...]


RiskInbox = (
    CheckOrder
    | Exposure
    | FillSeen
    | ActionSeen
    | HaltTrading
    | ResumeTrading
    | DescribeRisk
    | AskGate
)


class RiskActor(Actor[RiskInbox]):
    """See the module doc. ``symbols``: route -> symbol actor, told ``RiskTripped`` (read when
    the guard trips, so it may be filled after this actor is made)."""

    def __init__(
        self,
        limits: RiskLimits,
        *,
        lot_keeper: ActorRef[Any],
        symbols: Mapping[str, ActorRef[Any]],
        alerts: ActorRef[AlertsInbox] | None = None,
        telemetry: Telemetry | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.limits = limits
        self.lot_keeper = lot_keeper
        self.symbols = symbols
        self.alerts = alerts
        self.request_timeout = request_timeout
        self.base = limits.equity if limits.equity is not None else Decimal(0)
        self.book = Book()
        self.record = RiskRecord()
        self.event_ns = 0
        """The latest event time seen (Unix ns)."""
        self.untimed_loss: str | None = None
        """A loss beyond the guard seen before any event time was known (see ``_watch``)."""
        self.allowed = 0
        self.refusals: collections.Counter[str] = collections.Counter()
        self.last_refusals: collections.deque[RiskRefusal] = collections.deque(maxlen=20)
        telemetry = telemetry if telemetry is not None else telemetry_.off()
        self.metrics = telemetry.metrics
        self._refused: dict[tuple[str, str], Count] = {}

    async def on_start(self) -> None:
        record = await self.lot_keeper.request(LoadRisk(), timeout=self.request_timeout)
        if not isinstance(record, RiskRecord):
            raise TypeError(f"expected a RiskRecord, got {record!r}")
        self.record = record
        self.event_ns = max(record.tripped_ns, record.session_ns)
        state = await self.lot_keeper.request(LoadLedger(), timeout=self.request_timeout)
        if not isinstance(state, LedgerState):
            raise TypeError(f"expected a LedgerState, got {state!r}")
        orders = {intent.ref: intent.order for intent in state.intents}
        for fill in state.fills:
            order = orders.get(fill.ref)
            if order is not None:
                self.book.fill(
                    order.symbol,
                    order.side,
                    OrderFilled(
                        ref=fill.ref,
                        exec_id=fill.exec_id,
                        quantity=fill.quantity,
                        price=fill.price,
                        commission=fill.commission,
                    ),
                )
        for action in state.actions:
            # The fills came restated by every split already; a dividend's cash is its own.
            self.book.applied.add(action.id)
            self.book.cash += action.cash
        if record.tripped is not None:
            log.warning(
                "the daily loss guard stays tripped (%s): %s", record.session, record.tripped
            )

    async def handle(self, message: RiskInbox) -> object:
        match message:
            case CheckOrder():
                return await self._check(message)
            case Exposure(route=route, working=working, price=price, at_ns=at_ns):
                self.book.working[route] = working
                if price is not None:
                    self.book.mark(working.symbol, price)
                await self._watch(at_ns)
                return None
            case FillSeen(symbol=symbol, side=side, fill=fill, at_ns=at_ns):
                if self.book.fill(symbol, side, fill):
                    await self._watch(at_ns)
                return None
            case ActionSeen(action=action, at_ns=at_ns):
                if self.book.corporate_action(action):
                    await self._watch(at_ns)
                return None
            case HaltTrading(symbol=symbol):
                gated = self.gated
                halted = tuple(sorted({*self.record.halts, symbol or ALL}))
                await self._save(attrs.evolve(self.record, halts=halted))
                log.warning("the operator halted %s", symbol or "every symbol")
                if not gated:
                    await self._tell_symbols(RiskGate(on=True))
                return self._view()
            case ResumeTrading(symbol=symbol):
                kept = () if symbol is None else tuple(h for h in self.record.halts if h != symbol)
                lifted = kept != self.record.halts
                await self._save(attrs.evolve(self.record, halts=kept))
                log.warning("the operator resumed %s", symbol or "every symbol")
                if lifted:
                    if not self.gated:
                        await self._tell_symbols(RiskGate(on=False))
                    await self._tell_symbols(RiskLifted())
                return self._view()
            case DescribeRisk():
                return self._view()
            case AskGate():
                return self.gated
            case _:
                assert_never(message)

    async def _check(self, message: CheckOrder) -> Allowed | Refused:
        order = message.order
        self.book.working[message.route] = message.working
        if message.price is not None:
            # The symbol actor's price: its symbol's (an option order's underlying's).
            self.book.mark(underlying_of(order.symbol), message.price)
        await self._watch(message.at_ns)
        if protective(order, message.position):
            self.allowed += 1
            self._reserve(message, priced=None)
            return Allowed()
        record = self.record
        refusal = check(
            order,
            limits=self.limits,
            book=self.book,
            route=message.route,
            price=message.price,
            at=self._moment(message.at_ns),
            start_equity=record.start_equity,
            tripped=record.tripped or self.untimed_loss,
            halts=record.halts,
        )
        if refusal is None:
            self.allowed += 1
            self._reserve(message, priced=order.limit if order.limit is not None else message.price)
            return Allowed()
        rule = refusal.rule.value
        self.refusals[rule] += 1
        self.last_refusals.append(RiskRefusal(ref=order.ref, rule=rule, reason=refusal.reason))
        key = (order.symbol, rule)
        count = self._refused.get(key)
        if count is None:
            count = self._refused[key] = self.metrics.count(
                "actortrade.risk.refused",
                {"trading.symbol": order.symbol, "trading.risk.rule": rule},
            )
        count.value += 1
        log.info("refused %s (%s): %s", order.ref, rule, refusal.reason)
        return Refused(reason=refusal.reason, rule=rule)

    def _reserve(self, message: CheckOrder, priced: Decimal | None) -> None:
        """Count an allowed order among its route's working ones at once: until the route's
        next report (``Exposure``, after the order is committed and sent, or refused there),
        another strategy's check must see it, or two strategies could each fill the room of
        one limit."""
        order, working = message.order, message.working
        buying = working.buy_notional
        if order.side is Side.BUY and priced is not None:
            buying += order.quantity * priced
        self.book.working[message.route] = attrs.evolve(
            working, orders=working.orders + 1, buy_notional=buying
        )

    async def _watch(self, at_ns: int) -> None:
        """A new session on a new New York day; the daily loss guard after every change."""
        record = self.record
        if at_ns < record.session_ns:
            at_ns = 0  # older than the session (a symbol actor's last tick before a restart)
        if at_ns > self.event_ns:
            self.event_ns = at_ns
        day = datetime.fromtimestamp(at_ns / 1e9, tz=UTC).astimezone(NEW_YORK).date().isoformat()
        if at_ns and (record.session is None or day > record.session):
            record = attrs.evolve(
                record,
                session=day,
                session_ns=at_ns,
                start_equity=self.book.equity(self.base),
                tripped=None,
                tripped_ns=0,
            )
            lifted = self.record.tripped is not None
            await self._save(record)
            if lifted:
                log.warning("a new session (%s): the daily loss guard is lifted", day)
                await self._tell_symbols(RiskLifted())
        self.untimed_loss = None
        if record.tripped is not None:
            return
        equity = self.book.equity(self.base)
        reason = loss_trips(self.limits, record.start_equity, equity)
        if reason is None:
            return
        if not self.event_ns:
            # No event time known yet (restarted, no tick): refuse new orders, and trip, with
            # the event's time on record, at the first event that has one.
            self.untimed_loss = reason
            return
        # Durable before anyone is told: a restart after the alert stays tripped (no second).
        await self._save(attrs.evolve(record, tripped=reason, tripped_ns=self.event_ns))
        alert = Alert(
            symbol=ALL,
            kind="risk-tripped",
            message=f"no new orders until the next session: {reason}",
        )
        log.warning("%s %s: %s", alert.symbol, alert.kind, alert.message)
        if self.alerts is not None:
            # Told, never awaited: a full alerts mailbox drops it (counted there).
            self.alerts.try_tell(attrs.evolve(alert, at_ns=self.context.clock.time_ns()))
        await self._tell_symbols(RiskTripped(reason=reason))

    @property
    def gated(self) -> bool:
        """Whether anything can refuse an order: a limit, a halt (a trip needs a limit)."""
        return self.limits.any or bool(self.record.halts)

    async def _tell_symbols(self, message: RiskTripped | RiskLifted | RiskGate) -> None:
        for ref in self.symbols.values():
            await self.context.send(ref, message)

    async def _save(self, record: RiskRecord) -> None:
        await self.lot_keeper.request(SaveRisk(record=record), timeout=self.request_timeout)
        self.record = record

    def _moment(self, at_ns: int) -> datetime | None:
        # An event of unknown time: the latest known, else none (no tick seen yet).
        ns = at_ns or self.event_ns
        return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else None

    def _view(self) -> RiskView:
        record = self.record
        return RiskView(
            limits=self.limits,
            session=record.session,
            start_equity=record.start_equity,
            equity=self.book.equity(self.base) if self.limits.equity is not None else None,
            tripped=record.tripped,
            halts=record.halts,
            open_orders=self.book.open_orders,
            exposure=self.book.exposure(),
            allowed=self.allowed,
            refused=dict(self.refusals),
            last_refusals=tuple(self.last_refusals),
        )


EXPOSURE_EVERY_NS = 1_000_000_000
"""How often (in event time) a symbol actor tells the risk actor its exposure on ticks."""
