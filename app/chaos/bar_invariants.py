"""The bar strategies' invariants (``ma_cross``, ``momentum``: one long position each, entered
and left at bar close), beside the grid's (``app.chaos.invariants``): ``bar_safety`` between any
two steps, ``bar_agreement`` once settled. ``docs/chaos.md`` says what each checks."""

from __future__ import annotations

from actors.domain import Side
from actors.lot_keeper import LedgerState
from actors.strategies._position import PositionStrategy
from sim.engine import Engine

from ._facts import ExecutionKey, Tally, ours
from ._facts import executions_of as _executions


def _side(ledger: LedgerState, ref: str) -> Side:
    # A fill's side is its order's (the intent committed before it went out); a bar strategy's
    # tag says it too: X.<bar> sells, E.<bar> and adopted shares (A.<n>) buy.
    for intent in ledger.intents:
        if intent.ref == ref:
            return intent.order.side
    return Side.SELL if ref.split(":")[2].startswith("X.") else Side.BUY


def ledger_position(ledger: LedgerState, symbol: str, name: str) -> int:
    """The shares strategy ``name`` holds of ``symbol`` by the ledger's fills of its orders."""
    sides = {i.ref: i.order.side for i in ledger.intents}
    held = 0
    for fill in ledger.fills:
        if ours(fill.ref, symbol, (name,)):
            side = sides.get(fill.ref) or _side(ledger, fill.ref)
            held += fill.quantity if side is Side.BUY else -fill.quantity
    return held


def entry_size(ledger: LedgerState, symbol: str, name: str) -> int:
    """One entry's worth of a bar strategy: the shares of its latest entry (the ``E.<bar>``
    decision of the latest bar, the most any of its attempts on record asked for: an attempt
    the risk actor refused has no intent, a retry asks for the rest), plus every share it
    adopted (``A.<n>``)."""
    latest: tuple[int, int] = (-1, 0)
    adopted = 0
    for intent in ledger.intents:
        if not ours(intent.ref, symbol, (name,)):
            continue
        tag = intent.ref.split(":")[2]
        if tag.startswith("E."):
            latest = max(latest, (int(tag[2:]), intent.order.quantity))
        elif tag.startswith("A."):
            adopted += intent.order.quantity
    return latest[1] + adopted


IN_FLIGHT = 10.0
"""Seconds an order a bar strategy decided may go without its intent committed, or committed
but not at the venue, at a settle point (two of the simulation's timer ticks: its decision, the
risk and ledger round trips, and the broker's)."""


def bar_safety(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    name: str,
    history: set[ExecutionKey],
    tally: Tally,
    *,
    forgotten: set[ExecutionKey] | None = None,
) -> None:
    """A bar strategy's safety (``ma_cross``, ``momentum``: one long position of its own):
    never two working entries at the venue; never short by its own fills (the ledger's, and
    the venue's executions of its orders); its working sells never offer more than it holds;
    never more than one entry's worth held (``entry_size``)."""
    route = f"{name}:{symbol}"
    working = [o for o in engine.open_orders() if ours(o.ref, symbol, (name,))]
    entries = sorted(o.ref for o in working if o.side is Side.BUY)
    tally.check(len(entries) <= 1, f"{route} has {len(entries)} working entry orders: {entries}")
    held = ledger_position(ledger, symbol, name)
    tally.check(held >= 0, f"{route} is short by the ledger's fills of its orders: {held}")
    size = entry_size(ledger, symbol, name)
    tally.check(
        held <= size,
        f"{route} holds {held} shares by the ledger, more than one entry's worth ({size})",
    )
    if forgotten is not None:
        return  # the venue's executions of its earlier lives may be taken twice: the ledger's
    executed = sum(
        quantity if side is Side.BUY else -quantity
        for _, ref, side, quantity, _ in history
        if ours(ref, symbol, (name,))
    )
    adopted = sum(
        f.quantity
        for f in ledger.fills
        if f.exec_id.startswith("orphan:") and ours(f.ref, symbol, (name,))
    )
    tally.check(
        executed + adopted >= 0,
        f"{route} sold more than it bought at the venue: {executed} (+{adopted} adopted)",
    )
    offered = sum(o.remaining for o in working if o.side is Side.SELL)
    tally.check(
        offered <= executed + adopted,
        f"{route}'s working sells offer {offered} shares, it holds {executed + adopted}",
    )


def bar_agreement(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    name: str,
    tally: Tally,
    *,
    strategy: PositionStrategy | None = None,
    forgotten: set[ExecutionKey] | None = None,
    now: float | None = None,
) -> None:
    """A bar strategy's agreement once settled: its ledger position is its venue executions'
    (adopted shares aside); it holds nothing or at most one entry's worth; the strategy's
    position and live orders are the ledger's and the venue's."""
    route = f"{name}:{symbol}"
    held = ledger_position(ledger, symbol, name)
    if forgotten is None:
        executed = sum(
            e.quantity if e.side is Side.BUY else -e.quantity
            for e in _executions(engine, symbol, (name,))
        )
        adopted = sum(
            f.quantity
            for f in ledger.fills
            if f.exec_id.startswith("orphan:") and ours(f.ref, symbol, (name,))
        )
        tally.check(
            held == executed + adopted,
            f"{route}: the ledger holds {held} shares, its executions at the venue "
            f"{executed} (+{adopted} adopted)",
        )
    size = entry_size(ledger, symbol, name)
    tally.check(
        0 <= held <= size,
        f"{route} holds {held} shares after settling: neither flat nor one entry's worth ({size})",
    )
    if strategy is None:
        return
    if forgotten is not None and strategy.halted is not None:
        return
    tally.check(
        strategy.halted is None, f"{route} halted with nothing sold by hand: {strategy.halted}"
    )
    tally.check(
        strategy.shares == held,
        f"{route}: the strategy holds {strategy.shares} shares, the ledger {held}",
    )
    # An order decided by a timer tick after the settle point's last request is in flight: its
    # intent not yet committed (the host asks the risk actor and the lot-keeper first). Those
    # with an intent on record must be the venue's working ones; one without an intent may be
    # at most ``IN_FLIGHT`` seconds old (``now``: the strategy's clock).
    committed = {i.ref for i in ledger.intents}
    live = strategy.live_orders()
    stuck = sorted(
        o.ref
        for o in live
        if o.ref not in committed and (now is None or now - o.placed_at > IN_FLIGHT)
    )
    tally.check(
        not stuck,
        f"{route} believes in orders never committed, decided over {IN_FLIGHT:.0f} s ago: {stuck}",
    )
    # One committed in that time may still be on its way: in the broker actor's mailbox, or
    # answered by a rejection the symbol actor has not handled yet.
    recent = {o.ref for o in live if now is not None and now - o.placed_at <= IN_FLIGHT}
    believed = {o.ref for o in live if o.ref in committed}
    at_venue = {o.ref for o in engine.open_orders() if ours(o.ref, symbol, (name,))}
    missing, unknown = sorted(believed - at_venue - recent), sorted(at_venue - believed)
    tally.check(
        not missing and not unknown,
        f"{route}'s live orders are not the venue's working ones: it believes in {missing}, "
        f"does not know {unknown}",
    )
