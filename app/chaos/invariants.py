"""The invariants of a trading run, checked against the venue's own books (``sim.engine.Engine``)
and the lot-keeper's ledger: what the deterministic simulation checks after every step and at
every settle point, and what the process-level campaign checks after its kills.

Two kinds (``docs/chaos.md``):

* **Safety** (``safety``) holds at every moment between two steps, whatever failed: no orderRef
  sent twice, no order without a committed intent, at most one working buy per level and at most
  ``queue_depth`` conditional buys, at most one working sell per lot and never more shares
  offered than a lot holds, the working sells never offer more than the position, no position
  below zero, and every execution the ledger holds is one the venue made, with its quantity and
  price, recorded once.
* **Agreement** (``agreement``) holds once the tree has settled after a fault (a reconciliation
  has run with the connection up): every execution of ours recorded exactly once; the ledger's
  open shares are the venue's position; each open lot has exactly one working sell, for its open
  shares, at its average cost + profit; realized P&L equals what the venue's executions give;
  and the strategy's books are the ledger's.

**Risk** (``RiskWatch``): no order reaches the venue beyond a configured limit of the risk
actor (``actors.risk``). Checked on the venue's side, at the moment each buy of ours is placed
(the engine's recorder sees every input before it takes effect): the orders of ours working
then, plus the new one, are at most ``max_open_orders``; the symbol's position at the price
the decision saw, plus the working buys at their limits, plus the new order at its own limit, is
at most ``max_notional_per_symbol`` (and ``max_gross_exposure``). The caps are the decision's
contract (``docs/risk.md``): a price that moves while the order travels to the venue does not
breach them. The decision saw a trade of the last ``DECISION_LAG`` before the placement, so the
position is valued at the lowest of them (the venue knows no more of the decision); no buy
is placed outside the configured sessions; no buy is placed after the daily loss guard tripped,
that day (the ledger's ``RiskRecord``). Sells that reduce the position are protective and
never limited.

After a venue that lost recent state (``forgotten``: the executions of its earlier lives) the
history is every execution any life of the venue made: a lot never sells beyond what it bought
in all of them, the ledger's fills are among them, and an execution id the venue reissued with
other contents is never taken for the one the ledger holds (a conflict is on record and the
symbol halts until acknowledged). The symbol may end halted then, for a conflict or for shares
the venue no longer holds; never short, whatever happened.

Each check counts itself in a ``Tally``; a failed one raises ``Violation`` naming what differs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from actors.domain import Side, round_to_tick
from actors.lot_keeper import LedgerState
from actors.strategies.grid import GridRef, GridStrategy
from sim.engine import Engine, SimOrder

from ._facts import GRID as GRID
from ._facts import OURS as OURS
from ._facts import ExecutionKey as ExecutionKey
from ._facts import Tally as Tally
from ._facts import Violation as Violation
from ._facts import executions_of as _executions
from ._facts import keys as keys
from ._facts import ours as ours
from ._facts import ours_of as _ours
from ._facts import position as position
from ._facts import read_ledger as read_ledger
from ._facts import strategy_of as strategy_of
from .bar_invariants import bar_agreement, bar_safety, ledger_position
from .option_invariants import option_agreement, option_safety, settled
from .risk_watch import DECISION_LAG as DECISION_LAG
from .risk_watch import RiskWatch as RiskWatch


def safety(
    engine: Engine,
    ledger: LedgerState,
    placed: Mapping[str, int],
    symbol: str,
    tally: Tally,
    *,
    queue_depth: int = 3,
    forgotten: set[ExecutionKey] | None = None,
    strategies: Sequence[str] = GRID,
    options: Mapping[str, int] | None = None,
) -> None:
    """The invariants that hold between any two steps, whatever failed (see the module doc).
    ``placed`` counts the orders the venue was sent, by orderRef; ``forgotten`` the executions
    of the venue's earlier lives, if it lost some state; ``strategies`` trade ``symbol`` (the
    grid's checks apply to the grid's orders, ``option_safety``'s to the options strategies'
    of ``options``, by name with their ``max_contracts``, ``bar_safety``'s to the others')."""
    twice = sorted(ref for ref, n in placed.items() if n > 1 and strategy_of(ref) in strategies)
    tally.check(not twice, f"orderRefs sent to the venue more than once: {twice}")
    intents = {i.ref for i in ledger.intents}
    orders = _ours(engine.orders.values(), symbol, strategies)
    unbacked = sorted(o.ref for o in orders if o.ref not in intents)
    tally.check(not unbacked, f"orders at the venue without a committed intent: {unbacked}")
    # Every execution of every strategy, in all of the venue's lives.
    history = keys(_executions(engine, symbol, strategies)) | (forgotten or set())
    options = options or {}
    for name in strategies:
        if name in options:
            option_safety(
                engine,
                ledger,
                symbol,
                name,
                history,
                tally,
                max_contracts=options[name],
                forgotten=forgotten,
            )
        elif name != "grid":
            bar_safety(engine, ledger, symbol, name, history, tally, forgotten=forgotten)
    if "grid" in strategies:
        _grid_safety(engine, ledger, symbol, history, tally, queue_depth, forgotten)
    held = position(engine, symbol)
    # Shares an option's exercise or assignment took away at its expiry (the venue's doing,
    # not an order's: the service was down across the close) may leave the symbol short.
    taken = min(settled(engine, symbol).get(symbol, 0), 0)
    tally.check(
        held - taken >= 0,
        f"the venue's {symbol} position is below zero: {held}"
        + (f" ({-taken} taken by an expiry's settlement)" if taken else ""),
    )
    offering = sum(
        o.remaining for o in engine.open_orders() if o.symbol == symbol and o.side is Side.SELL
    )
    tally.check(
        offering <= held - taken,
        f"the working {symbol} sells offer {offering} shares, the position is {held}"
        + (f" ({-taken} taken by an expiry's settlement)" if taken else ""),
    )

    # What the ledger recorded, the venue executed: same order, quantity and price, once.
    recorded = Counter(f.exec_id for f in ledger.fills)
    tally.check(
        all(n == 1 for n in recorded.values()),
        f"executions recorded twice: {sorted(e for e, n in recorded.items() if n > 1)}",
    )
    made = {(exec_id, ref, quantity, price) for exec_id, ref, _, quantity, price in history}
    for fill in ledger.fills:
        if fill.exec_id.startswith("orphan:"):
            continue
        tally.check(
            (fill.exec_id, fill.ref, fill.quantity, fill.price) in made,
            f"the ledger's fill {fill.exec_id} ({fill.ref}, {fill.quantity} @ {fill.price}) "
            "is not an execution the venue made",
        )
    for view in ledger.lots:
        tally.check(view.sold <= view.bought, f"ledger lot {view.lot} sold more than it bought")


def _grid_safety(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    history: set[ExecutionKey],
    tally: Tally,
    queue_depth: int,
    forgotten: set[ExecutionKey] | None,
) -> None:
    """The grid's safety: per level and per lot (see the module doc)."""
    orders = _ours(engine.orders.values(), symbol)
    working = [o for o in orders if not o.done]
    buys = Counter(GridRef.parse(o.ref).level for o in working if o.side is Side.BUY)
    doubled = {level: n for level, n in buys.items() if n > 1}
    tally.check(not doubled, f"levels with more than one working buy: {doubled}")
    queued = sum(n for level, n in buys.items() if level > 0)
    tally.check(
        queued <= queue_depth,
        f"{queued} conditional buys working, more than the queue depth {queue_depth}: "
        f"{sorted(o.ref for o in working if o.side is Side.BUY)}",
    )

    # Never offer more than a lot holds, in all of the venue's lives; never short.
    bought: Counter[int] = Counter()
    sold: Counter[int] = Counter()
    for _, ref, side, quantity, _ in history:
        if not ref.startswith(f"{OURS}{symbol}:"):
            continue
        (bought if side is Side.BUY else sold)[GridRef.parse(ref).lot] += quantity
    for fill in ledger.fills:
        if fill.exec_id.startswith("orphan:") and fill.ref.startswith(OURS):
            # A lot the reconciler made of shares no lot held: bought under other lots (or
            # in a life of the venue it forgot), sold under its own.
            bought[GridRef.parse(fill.ref).lot] += fill.quantity
    sells: dict[int, list[SimOrder]] = {}
    for order in working:
        if order.side is Side.SELL:
            sells.setdefault(GridRef.parse(order.ref).lot, []).append(order)
    for lot, offered in sells.items():
        refs = [o.ref for o in offered]
        tally.check(len(offered) == 1, f"lot {lot} has {len(offered)} working sells: {refs}")
        if forgotten is not None:
            # A venue back from an older state works again sells that had filled: what
            # matters then is that they never fill twice (below) and never go short.
            continue
        tally.check(
            sold[lot] + offered[0].remaining <= bought[lot],
            f"lot {lot}: {offered[0].ref} offers {offered[0].remaining} shares but the lot "
            f"holds {bought[lot] - sold[lot]}",
        )
    short = {lot: (bought[lot], n) for lot, n in sold.items() if n > bought[lot]}
    tally.check(not short, f"lots sold beyond what they bought (bought, sold): {short}")


def broker_realized(engine: Engine, symbol: str) -> Decimal:
    """Realized P&L from the venue's executions alone: each lot's sales against its average
    purchase price (gross of commissions, as the ledger keeps it)."""
    bought: Counter[int] = Counter()
    cost: dict[int, Decimal] = {}
    sold: Counter[int] = Counter()
    proceeds: dict[int, Decimal] = {}
    for execution in _executions(engine, symbol):
        lot = GridRef.parse(execution.ref).lot
        value = execution.price * execution.quantity
        if execution.side is Side.BUY:
            bought[lot] += execution.quantity
            cost[lot] = cost.get(lot, Decimal(0)) + value
        else:
            sold[lot] += execution.quantity
            proceeds[lot] = proceeds.get(lot, Decimal(0)) + value
    return sum(
        (proceeds[lot] - cost[lot] / bought[lot] * sold[lot] for lot in sold if bought[lot]),
        Decimal(0),
    )


def agreement(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    tally: Tally,
    *,
    profit: Decimal = Decimal("0.01"),
    tick: Decimal = Decimal("0.01"),
    strategy: GridStrategy | None = None,
    forgotten: set[ExecutionKey] | None = None,
    strategies: Sequence[str] = GRID,
    bars: Mapping[str, Any] | None = None,
    now: float | None = None,
    options: Mapping[str, int] | None = None,
) -> None:
    """The invariants that hold once the tree has settled (see the module doc). ``strategy``
    is the grid's live strategy, ``bars`` each other strategy's by name (for comparing their
    books with the ledger's; ``now`` is their clock), ``strategies`` what trades ``symbol``,
    ``options`` the options strategies among them (with their ``max_contracts``)."""
    options = options or {}
    if forgotten is not None:
        if not _agreement_after_amnesia(engine, ledger, symbol, tally, strategy, strategies):
            return
        for name, bar in (bars or {}).items():
            if name in options:
                continue
            if bar is not None and bar.halted is not None:
                _halted_after_amnesia(f"{name}:{symbol}", bar.halted, tally)
                return
    else:
        venue = sorted(e.exec_id for e in _executions(engine, symbol, strategies))
        recorded = sorted(f.exec_id for f in ledger.fills if not f.exec_id.startswith("orphan:"))
        missing = sorted(set(venue) - set(recorded))
        extra = sorted(set(recorded) - set(venue))
        tally.check(
            recorded == venue,
            f"the ledger's executions are not the venue's: missing {missing}, extra {extra}",
        )
    open_lots = [lot for lot in ledger.lots if lot.open_shares]
    shares = sum(lot.open_shares for lot in open_lots)
    held = position(engine, symbol)
    others = [name for name in strategies if name != "grid" and name not in options]
    # Shares an option's expiry moved at the venue (exercised or assigned while the service
    # was down): the ledger records no settlement. Brought in, they are orphans, adopted by
    # the symbol's owner if it adopts (the grid) or left alone (an options strategy); taken
    # away, the ledger holds more than the venue and the symbol fails closed (below).
    moved = settled(engine, symbol).get(symbol, 0)
    if moved and held - moved == shares + sum(
        ledger_position(ledger, symbol, name) for name in others
    ):
        held -= moved
    if not others:
        tally.check(
            shares == held,
            f"the ledger's open lots hold {shares} {symbol} shares, the venue's position is {held}",
        )
    else:
        positions = {name: ledger_position(ledger, symbol, name) for name in others}
        total = shares + sum(positions.values())
        tally.check(
            total == held,
            f"the ledger holds {total} {symbol} shares (grid lots {shares}, {positions}), the "
            f"venue's position is {held}",
        )
        for name in others:
            bar_agreement(
                engine,
                ledger,
                symbol,
                name,
                tally,
                strategy=(bars or {}).get(name),
                forgotten=forgotten,
                now=now,
            )
    if moved < 0:
        # Shares missing at the venue: every strategy of the symbol halted for them.
        every = {"grid": strategy, **(bars or {})}
        for name, found in every.items():
            if found is not None:
                _failed_closed(f"{name}:{symbol}", found.halted, tally)
    for name in options:
        if name in strategies:
            option_agreement(
                engine,
                ledger,
                symbol,
                name,
                tally,
                strategy=(bars or {}).get(name),
                forgotten=forgotten,
            )
    if "grid" not in strategies or moved < 0:
        return
    live = _ours(engine.open_orders(), symbol)
    working = [o for o in live if o.side is Side.SELL]
    buying = {GridRef.parse(o.ref).lot for o in live if o.side is Side.BUY}
    for lot in open_lots:
        sells = [o for o in working if GridRef.parse(o.ref).lot == lot.lot]
        if lot.lot in buying:
            # Partly bought, its buy still working: the sell comes once the buy is done.
            tally.check(
                not sells,
                f"lot {lot.lot} has sells while its buy is still working: {[o.ref for o in sells]}",
            )
            continue
        tally.check(
            len(sells) == 1,
            f"open lot {lot.lot} ({lot.open_shares} shares) has {len(sells)} working sells",
        )
        expected = round_to_tick(lot.cost / lot.bought * (1 + profit), tick)
        tally.check(
            (sells[0].remaining, sells[0].limit) == (lot.open_shares, expected),
            f"lot {lot.lot}: its sell {sells[0].ref} is {sells[0].remaining} @ {sells[0].limit}, "
            f"expected {lot.open_shares} @ {expected}",
        )
    stray = sorted(
        o.ref for o in working if GridRef.parse(o.ref).lot not in {lot.lot for lot in open_lots}
    )
    tally.check(not stray, f"working sells for lots that are not open: {stray}")
    if forgotten is None:
        # (After an amnesia the ledger's realized P&L includes what the venue forgot.)
        realized = sum((lot.realized for lot in ledger.lots), Decimal(0))
        venue_realized = broker_realized(engine, symbol)
        tally.check(
            realized == venue_realized,
            f"realized P&L: the ledger says {realized}, the venue's executions {venue_realized}",
        )
    if strategy is None:
        return
    tally.check(
        strategy.halted is None, f"{symbol} halted with nothing sold by hand: {strategy.halted}"
    )
    closed = sum((lot.realized for lot in ledger.lots if not lot.open_shares), Decimal(0))
    tally.check(
        strategy.realized == closed,
        f"realized P&L of closed lots: the strategy says {strategy.realized}, the ledger {closed}",
    )
    believed = sorted(o.ref for o in strategy.live_orders())
    at_venue = sorted(o.ref for o in live)
    tally.check(
        believed == at_venue,
        f"the strategy's live orders are not the venue's working ones: it believes in "
        f"{sorted(set(believed) - set(at_venue))}, does not know "
        f"{sorted(set(at_venue) - set(believed))}",
    )
    mine = {lot.id: lot.open_shares for lot in strategy.open_lots()}
    theirs = {lot.lot: lot.open_shares for lot in open_lots}
    tally.check(mine == theirs, f"open lots: the strategy has {mine}, the ledger {theirs}")


def _agreement_after_amnesia(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    tally: Tally,
    strategy: GridStrategy | None,
    strategies: Sequence[str] = GRID,
) -> bool:
    """The executions' part of the agreement once the venue has lost some state: every
    execution the venue holds now is the ledger's, or is on record as a conflict with it (a
    reissued execution id is never taken for the one the ledger holds). True if the rest of
    the agreement must hold too: the symbol is not halted."""
    recorded = {f.exec_id: f for f in ledger.fills}
    reported = {
        (c.exec_id, c.reported.ref, c.reported.quantity, c.reported.price) for c in ledger.conflicts
    }
    for execution in _executions(engine, symbol, strategies):
        fill = recorded.get(execution.exec_id)
        facts = (execution.ref, execution.quantity, execution.price)
        if fill is None:
            tally.check(
                False, f"the venue's execution {execution.exec_id} {facts} is not in the ledger"
            )
            continue
        tally.check(
            (fill.ref, fill.quantity, fill.price) == facts
            or (execution.exec_id, *facts) in reported,
            f"execution {execution.exec_id}: the venue made {facts}, the ledger holds "
            f"{(fill.ref, fill.quantity, fill.price)} and no conflict is on record",
        )
    if strategy is None or strategy.halted is None:
        return True
    _halted_after_amnesia(symbol, strategy.halted, tally)
    return False


def _failed_closed(who: str, halted: str | None, tally: Tally) -> None:
    tally.check(
        halted is not None and halted.startswith(("the ledger holds", "missing contracts")),
        f"{who}: the venue's expiry settlement took shares or contracts the ledger holds, but "
        f"it is not halted for them (halted: {halted})",
    )


def _halted_after_amnesia(who: str, halted: str, tally: Tally) -> None:
    tally.check(
        halted.startswith(("execution conflict", "the ledger holds")),
        f"{who} halted after the venue lost state, but not for a conflict or missing "
        f"shares: {halted}",
    )
