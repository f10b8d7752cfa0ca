"""Reconciliation as pure logic (SPEC section 6): the broker is the source of truth.

``plan`` compares one symbol's ledger with what the broker reports and returns the repairs the
ledger needs, in one transaction, and a ``Diff`` describing them:

* executions the broker reports that the ledger lacks are recorded (a sell that filled while we
  were offline closes its lot; a buy adds to its lot);
* an order or execution under one of our orderRefs with no intent (a ledger restored from an
  older backup) gets its intent reconstructed from the broker's order (``Origin.ADOPTED``);
* an intent whose order the broker has no record of at all never reached it: it is retired (once)
  and the strategy re-plans around it;
* **orphan shares** (broker position > open shares in the ledger, net of shares the operator's
  own working sells hold) become a lot at the broker's average cost, which the strategy then
  gives its +1% sell (``Origin.ORPHAN``, a synthetic fill ``orphan:<ref>``);
* **missing shares** (ledger > broker) cannot be repaired from our side: the symbol fails
  closed (no new orders) and the diff shows it until an operator resolves it;
* an **execution conflict** (an execId the ledger holds, reported with another order, side,
  quantity or price: a broker that lost recent state and reissued ids) is never taken for a
  duplicate: it is recorded (``ledger.ConflictRecord``) and the symbol halts until an operator
  acknowledges it.

Orders that are not ours (no actortrade orderRef, or another strategy's) are reported and left
alone: the operator's own orders are not ours to cancel or re-price.

What the strategy then does about the broker's working orders (re-placing a vanished sell,
cancelling duplicate, stale or mispriced buys, placing missing ones) comes from rebuilding the
strategy from the repaired facts (``GridStrategy.restore``) and letting it re-sync. Two checks
stand above every strategy (the symbol actor's): a working order of ours that the rebuilt
strategy does not count as live (``stale_orders``: the ledger holds its fills, say) is
cancelled, and the working sells never offer more than the broker's position
(``actors.exposure``). The symbol actor adds those orders to the diff.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from decimal import Decimal

import attrs

from .domain import (
    BrokerOrder,
    BrokerSnapshot,
    DomainError,
    OrderFilled,
    OrderRef,
    PlaceOrder,
    Side,
    TimeInForce,
)
from .ledger import ConflictRecord, FillRecord, IntentRecord, Origin, same_execution
from .lot_keeper import LedgerState

AVERAGE_COST_PLACES = Decimal("0.0001")


@attrs.frozen(kw_only=True)
class Repairs:
    """What ``plan`` writes to the ledger, in one transaction (``lot_keeper.Heal``)."""

    intents: tuple[IntentRecord, ...] = ()
    fills: tuple[OrderFilled, ...] = ()
    retired: tuple[str, ...] = ()
    conflicts: tuple[ConflictRecord, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.intents or self.fills or self.retired or self.conflicts)


@attrs.frozen(kw_only=True)
class Diff:
    """One symbol's reconciliation report."""

    symbol: str
    broker_position: int
    ledger_shares: int
    """Open shares in the ledger before the repairs."""
    recorded_fills: tuple[str, ...] = ()
    adopted_orders: tuple[str, ...] = ()
    retired_intents: tuple[str, ...] = ()
    foreign_orders: tuple[str, ...] = ()
    orphan_shares: int = 0
    missing_shares: int = 0
    missing_options: tuple[str, ...] = ()
    """Options on the symbol the ledger holds more contracts of than the broker: each
    ``<OCC symbol>: ...`` (the symbol fails closed, as for missing shares)."""
    orphan_options: tuple[str, ...] = ()
    """Options we traded of which the broker holds contracts no order of ours explains."""
    conflicts: tuple[str, ...] = ()
    """Execution conflicts no operator has acknowledged yet (``ConflictRecord.describe``)."""
    cancelled: tuple[str, ...] = ()
    placed: tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def clean(self) -> bool:
        """Nothing to repair and nothing to re-align (foreign orders are only reported)."""
        return not (
            self.recorded_fills
            or self.adopted_orders
            or self.retired_intents
            or self.orphan_shares
            or self.missing_shares
            or self.missing_options
            or self.orphan_options
            or self.conflicts
            or self.cancelled
            or self.placed
        )

    def lines(self) -> list[str]:
        """The report, one line per finding; empty when there is nothing to say."""
        verb = "would " if self.dry_run else ""
        found = []
        for conflict in self.conflicts:
            found.append(
                f"{self.symbol}: EXECUTION CONFLICT: {conflict}; no new orders until an "
                "operator acknowledges it (actorctl reconcile --acknowledge-conflicts)"
            )
        if self.missing_shares:
            found.append(
                f"{self.symbol}: MISSING SHARES: the ledger holds {self.ledger_shares}, the broker "
                f"{self.broker_position}: {self.missing_shares} missing; no new orders until "
                "resolved"
            )
        for line in self.missing_options:
            found.append(f"{self.symbol}: MISSING CONTRACTS: {line}; no new orders until resolved")
        for line in self.orphan_options:
            found.append(f"{self.symbol}: orphan contracts: {line}; left alone")
        if self.orphan_shares:
            found.append(
                f"{self.symbol}: {self.orphan_shares} orphan shares at the broker: "
                f"{verb}become a lot with its sell"
            )
        for title, items in (
            ("executions the ledger missed, " + (verb or "") + "recorded", self.recorded_fills),
            ("orders with our orderRef but no intent, " + verb + "adopted", self.adopted_orders),
            ("intents the broker never received, " + verb + "retired", self.retired_intents),
            ("orders that are not ours, left alone", self.foreign_orders),
            ("orders " + verb + "cancelled", self.cancelled),
            ("orders " + verb + "placed", self.placed),
        ):
            if items:
                found.append(f"{self.symbol}: {len(items)} {title}: {', '.join(items)}")
        return found


Adopt = Callable[[int, Decimal, Collection[str]], PlaceOrder]
"""A strategy's ``StrategyKind.adopt``: orphan shares as one of its orders."""


def plan(
    *,
    symbol: str,
    strategy: str,
    ledger: LedgerState,
    broker: BrokerSnapshot,
    now_ns: int,
    adopt: Adopt | None,
    siblings: Collection[str] = (),
) -> tuple[Diff, Repairs]:
    """Compare ``ledger`` (every strategy's facts of ``symbol``) with ``broker`` for the
    orders of ``strategy`` on ``symbol``; return the diff and the repairs.

    The position is the symbol's, shared by every strategy of ours that trades it: what the
    broker should hold counts all their fills, recorded or not yet, so that one strategy never
    takes another's shares for orphans or missing. Only ``strategy``'s own orders are repaired.
    Orphan shares are adopted by the symbol's owner (``adopt``, that strategy's
    ``StrategyKind.adopt``); another strategy of the symbol passes None and only reports them.
    ``siblings`` names the other strategies of ours that trade ``symbol``: any other orderRef,
    well-formed or not, is an order that is not ours (the operator's, another program's).
    """
    family = {strategy, *siblings}
    intents = {intent.ref: intent for intent in ledger.intents}
    recorded: dict[str, FillRecord] = {fill.exec_id: fill for fill in ledger.fills}
    on_record = {conflict.key for conflict in ledger.conflicts}
    known_orders = {order.order.ref for order in broker.orders}

    def parsed(ref: str) -> OrderRef | None:
        try:
            return OrderRef.parse(ref)
        except DomainError:
            return None

    def ours(ref: str) -> bool:
        found = parsed(ref)
        return found is not None and (found.strategy, found.symbol) == (strategy, symbol)

    def anyones(ref: str) -> bool:
        # An order of any strategy of ours on this symbol.
        found = parsed(ref)
        return found is not None and found.symbol == symbol and found.strategy in family

    adopted: dict[str, IntentRecord] = {}
    foreign: list[str] = []
    foreign_selling: Counter[str] = Counter()  # by instrument
    for order in broker.orders:
        ref = order.order.ref
        if not anyones(ref):
            if order.working:
                foreign.append(ref)
                if order.order.side is Side.SELL:
                    foreign_selling[order.order.symbol] += order.order.quantity - order.filled
        elif ours(ref) and ref not in intents:
            adopted[ref] = IntentRecord(order=order.order, created_ns=now_ns, origin=Origin.ADOPTED)

    missed: list[OrderFilled] = []
    unrecorded: Counter[str] = Counter()  # other strategies' executions the ledger lacks
    executed_in: dict[str, str] = {}  # the instrument of each execution's order
    conflicts: list[ConflictRecord] = []
    executed: dict[str, list[OrderFilled]] = defaultdict(list)
    for execution in broker.executions:
        if not anyones(execution.ref):
            continue
        fill = execution.as_fill()
        signed = fill.quantity if execution.side is Side.BUY else -fill.quantity
        known = recorded.get(execution.exec_id)
        if known is not None:
            if ours(execution.ref) and not same_execution(known, fill):
                conflict = ConflictRecord(
                    exec_id=fill.exec_id,
                    symbol=symbol,
                    recorded=known,
                    reported=fill,
                    seen_ns=now_ns,
                )
                if conflict.key not in on_record:
                    conflicts.append(conflict)
            continue
        if not ours(execution.ref):
            unrecorded[execution.symbol] += signed
            continue
        executed_in[execution.ref] = execution.symbol
        missed.append(fill)
        executed[execution.ref].append(fill)
        if execution.ref not in intents and execution.ref not in adopted:
            # An execution of an order the broker no longer lists: its intent is rebuilt from
            # what was executed (the order's own quantity and price are gone).
            adopted[execution.ref] = IntentRecord(
                order=PlaceOrder(
                    ref=execution.ref,
                    symbol=execution.symbol,
                    side=execution.side,
                    quantity=0,
                    limit=execution.price,
                    tif=TimeInForce.GTC,
                ),
                created_ns=now_ns,
                origin=Origin.ADOPTED,
            )
    for ref, intent in list(adopted.items()):
        if intent.order.quantity == 0:
            quantity = sum(fill.quantity for fill in executed[ref])
            adopted[ref] = attrs.evolve(intent, order=attrs.evolve(intent.order, quantity=quantity))

    filled_refs = {fill.ref for fill in ledger.fills} | set(executed)
    retired = tuple(
        ref
        for ref, intent in intents.items()
        if intent.origin is Origin.STRATEGY
        and ours(ref)
        and ref not in known_orders
        and ref not in filled_refs
        and ref not in ledger.retired
    )

    ours_and_adopted = (*intents.items(), *adopted.items())
    sides = {ref: intent.order.side for ref, intent in ours_and_adopted}
    instruments = {**executed_in, **{ref: intent.order.symbol for ref, intent in ours_and_adopted}}
    held = _open_quantities(ledger.fills, sides, instruments, symbol)
    after = Counter(held)  # update adds (keeping what is negative; + would drop it)
    after.update(_open_quantities(missed, sides, instruments, symbol))
    after.update(unrecorded)
    ledger_shares = held[symbol]
    position = broker.position(symbol)
    spoken_for = after[symbol] + foreign_selling[symbol]
    orphan = max(position.quantity - spoken_for, 0)
    missing = max(after[symbol] - position.quantity, 0)
    # Options on the symbol (by OCC symbol), each an instrument of its own: contracts missing
    # halt the symbol as missing shares do; contracts of an option we traded that no order of
    # ours explains are reported (an option position is never adopted: no exit rule fits it).
    # An option position the ledger never traded is the operator's, and left unsaid.
    missing_options: list[str] = []
    orphan_options: list[str] = []
    for instrument in sorted(set(instruments.values()) - {symbol}):
        contracts = broker.position(instrument).quantity
        expected = after[instrument]
        if expected > contracts:
            missing_options.append(
                f"{instrument}: the ledger holds {expected} contracts, the broker {contracts}"
            )
        elif contracts > expected + foreign_selling[instrument]:
            orphan_options.append(
                f"{instrument}: the broker holds {contracts} contracts, our orders explain "
                f"{expected}"
            )
    new_intents = list(adopted.values())
    if orphan and adopt is not None:
        cost = position.average_cost.quantize(AVERAGE_COST_PLACES)
        adoption = adopt(orphan, cost, [*intents, *adopted])
        new_intents.append(IntentRecord(order=adoption, created_ns=now_ns, origin=Origin.ORPHAN))
        missed.append(
            OrderFilled(
                ref=adoption.ref, exec_id=f"orphan:{adoption.ref}", quantity=orphan, price=cost
            )
        )
    diff = Diff(
        symbol=symbol,
        broker_position=position.quantity,
        ledger_shares=ledger_shares,
        recorded_fills=tuple(fill.exec_id for fill in missed if not _synthetic(fill)),
        adopted_orders=tuple(adopted),
        retired_intents=retired,
        foreign_orders=tuple(foreign),
        orphan_shares=orphan,
        missing_shares=missing,
        missing_options=tuple(missing_options),
        orphan_options=tuple(orphan_options),
        conflicts=tuple(c.describe() for c in (*ledger.open_conflicts, *conflicts)),
    )
    repairs = Repairs(
        intents=tuple(new_intents),
        fills=tuple(missed),
        retired=retired,
        conflicts=tuple(conflicts),
    )
    return diff, repairs


def stale_orders(
    broker: BrokerSnapshot,
    live: Collection[str],
    ours: Callable[[str], bool],
    filled: Mapping[str, int],
) -> list[BrokerOrder]:
    """Our working orders at the broker that the ledger contradicts: the strategy, rebuilt from
    the ledger, does not count them as live (the ledger holds their fills in full, say), or the
    ledger holds more of their fills than the broker (``filled``: shares per orderRef). Only a
    broker that lost its record of them works them so. Left working, such a sell would sell
    shares no lot holds and such a buy buy beyond the strategy's plan: they are cancelled."""
    return [
        order
        for order in broker.orders
        if order.working
        and ours(order.order.ref)
        and (order.order.ref not in live or filled.get(order.order.ref, 0) > order.filled)
    ]


def _open_quantities(
    fills: Iterable[FillRecord | OrderFilled],
    sides: Mapping[str, Side],
    instruments: Mapping[str, str],
    symbol: str,
) -> Counter[str]:
    """What the fills leave open, by instrument (the symbol's shares, or an option's
    contracts): buys count up, sells down."""
    held: Counter[str] = Counter()
    for fill in fills:
        signed = fill.quantity if sides.get(fill.ref, Side.BUY) is Side.BUY else -fill.quantity
        held[instruments.get(fill.ref, symbol)] += signed
    return held


def _synthetic(fill: OrderFilled) -> bool:
    return fill.exec_id.startswith("orphan:")
