"""The options bot's invariants (``actors.strategies.options``: brackets of an entry, a
take-profit and a stop in one OCA group, refs ``scalp:TQQQ:<bracket>:<leg>:<attempt>``), beside
the grid's and the bar strategies' (``app.chaos.invariants``). ``docs/chaos.md`` says what each
checks; in short:

* **Safety** (``option_safety``, between any two steps, whatever failed): never short an option;
  never more contracts of the strategy's options than its ``max_contracts``; at most one
  bracket with contracts open at a time, holding at most what its entry asked for; no bracket
  sells more than it bought; at most one working entry; no decision (the signal's bar) bought
  by two brackets; the working exits never offer more contracts than the venue holds (the
  exits of one OCA group count as the group: it sells at most one order's quantity, a child at
  most what its parent filled).
* **Protection** (``unprotected``): every option of the strategy's the venue holds long has a
  take-profit and a stop of ours working for at least the contracts held, or a close of ours
  working. Checked at settle points (``option_agreement``), and between steps once the tree
  has settled after the last fault (``checks.protected`` says when exactly). The one
  exception the bot documents: a close that could not be placed halts the strategy, and the
  position is the operator's.
* **Agreement** (``option_agreement``, once settled): the ledger's contracts of each option
  are the venue's position, and the strategy's bracket, contracts and live orders are the
  venue's.

Only the venue's current life is read for the checks that compare with its working orders;
after a ``venue-amnesia`` the history checks read every life's executions, those that a venue
working again orders that had filled would break are skipped, and contracts the venue holds
beyond the ledger's are orphans (reported and left alone): ``max_contracts`` and protection
count what the ledger holds. An option the venue settled at its expiry while the ledger held
it (the process down across the close) must have made the strategy fail closed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import attrs

from actors.domain import OrderRef, Side, is_option_symbol, underlying_of
from actors.lot_keeper import LedgerState
from actors.strategies.options import LEGS, OptionsStrategy
from sim.engine import Engine, SimOrder

from ._facts import ExecutionKey, Tally, ours

EXITS = ("tp", "sl")


@attrs.frozen
class Leg:
    """An order of an options bracket, by its ref."""

    ref: str
    bracket: str
    """The bracket's id: the decision (``S<bar start>``), ``.n`` for a replacement."""
    leg: str
    attempt: int


def leg_of(ref: str, symbol: str, name: str) -> Leg | None:
    """The bracket leg ``ref`` names, if it is an order of strategy ``name`` on ``symbol``."""
    if not ours(ref, symbol, (name,)):
        return None
    try:
        parsed = OrderRef.parse(ref)
    except ValueError:
        return None
    bracket, _, leg = parsed.tag.partition(":")
    if leg not in LEGS:
        return None
    return Leg(ref=ref, bracket=bracket, leg=leg, attempt=parsed.attempt)


def offers(order: SimOrder, engine: Engine) -> int:
    """What a working sell may still sell: a child at most what its parent filled, less what
    it and its OCA siblings under that parent filled (the venue's rule)."""
    if order.done:
        return 0
    if order.parent is None:
        return order.remaining
    parent = engine.orders.get(order.parent)
    if parent is None:
        return order.remaining
    used = sum(
        o.filled
        for o in engine.orders.values()
        if o.parent == order.parent and (o is order or (order.oca and o.oca == order.oca))
    )
    return max(min(order.remaining, parent.filled - used), 0)


@attrs.define
class OptionWatch:
    """The options strategy ``name`` of ``symbol`` at the venue (None: the scenario trades no
    options): which orders are its exits, and what its brackets did."""

    symbol: str
    name: str | None

    def leg(self, ref: str) -> Leg | None:
        return None if self.name is None else leg_of(ref, self.symbol, self.name)

    def is_exit(self, ref: str) -> bool:
        found = self.leg(ref)
        return found is not None and found.leg in EXITS

    def working_exits(self, engine: Engine) -> list[str]:
        """The strategy's exits working at the venue now, by ref."""
        return sorted(o.ref for o in engine.open_orders() if self.is_exit(o.ref))

    def brackets(self, engine: Engine) -> Counter[str]:
        """What the strategy's brackets did at the venue (this life of it): entries sent and
        filled, brackets closed by their take-profit, their stop, a close, or the venue's
        expiry (worthless or exercised), exits placed again."""
        counts: Counter[str] = Counter()
        if self.name is None:
            return counts
        ended: dict[str, set[str]] = defaultdict(set)
        bought: set[str] = set()
        for order in engine.orders.values():
            found = self.leg(order.ref)
            if found is None:
                continue
            if found.leg == "entry":
                counts["entries"] += 1
                if order.filled:
                    counts["entries filled"] += 1
                    bought.add(order.symbol)
            elif found.attempt > 1 and found.leg in EXITS:
                counts["exits placed again"] += 1
            if found.leg != "entry" and order.filled:
                ended[found.leg].add(found.bracket)
        counts["take-profits"] = len(ended["tp"])
        counts["stop-outs"] = len(ended["sl"])
        counts["closes"] = len(ended["close"])
        for execution in engine.executions:
            kind, _, option = execution.ref.partition(":")
            if execution.settles and option in bought and execution.symbol == option:
                counts["exercised" if kind == "exercise" else "expired worthless"] += 1
        return +counts


def _orders(engine: Engine, symbol: str, name: str) -> list[tuple[SimOrder, Leg]]:
    found = []
    for order in engine.orders.values():
        leg = leg_of(order.ref, symbol, name)
        if leg is not None:
            found.append((order, leg))
    return found


def _positions(engine: Engine, symbol: str, options: Iterable[str]) -> dict[str, int]:
    # The venue's contracts of each option of ``symbol`` the strategy traded.
    held = {}
    for option in set(options):
        if is_option_symbol(option) and underlying_of(option) == symbol:
            position = engine.positions.get(option)
            held[option] = position.quantity if position is not None else 0
    return held


def option_safety(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    name: str,
    history: set[ExecutionKey],
    tally: Tally,
    *,
    max_contracts: int,
    forgotten: set[ExecutionKey] | None = None,
) -> None:
    """The options strategy's safety (see the module doc). ``history`` is every execution of
    the symbol's strategies in all of the venue's lives."""
    route = f"{name}:{symbol}"
    orders = _orders(engine, symbol, name)
    options = {intent.ref: intent.order.symbol for intent in ledger.intents}
    options.update({order.ref: order.symbol for order, _ in orders})
    held = _positions(engine, symbol, options.values())
    short = {option: n for option, n in held.items() if n < 0}
    tally.check(not short, f"{route} is short options at the venue: {short}")
    if forgotten is None:
        total = sum(n for n in held.values() if n > 0)
    else:
        # Contracts beyond the ledger's are orphans of a venue back from an older state,
        # reported and left alone: the strategy holds what the ledger says it bought.
        recorded = _recorded(ledger, symbol, name)
        total = sum(min(n, recorded[o]) for o, n in held.items() if n > 0)
    tally.check(
        total <= max_contracts,
        f"{route} holds {total} contracts at the venue, more than its max_contracts "
        f"{max_contracts}: {held}",
    )
    working = [(o, leg) for o, leg in orders if not o.done]
    entries = sorted(o.ref for o, leg in working if leg.leg == "entry")
    tally.check(len(entries) <= 1, f"{route} has {len(entries)} working entries: {entries}")

    # Brackets by the venue's executions (every life of it).
    bought: Counter[str] = Counter()
    sold: Counter[str] = Counter()
    option_of: dict[str, str] = {}
    for _, ref, side, quantity, _ in history:
        leg = leg_of(ref, symbol, name)
        if leg is None:
            continue
        (bought if side is Side.BUY else sold)[leg.bracket] += quantity
        if ref in options:
            option_of[leg.bracket] = options[ref]
    oversold = {b: (bought[b], n) for b, n in sold.items() if n > bought[b]}
    tally.check(
        not oversold, f"{route}: brackets sold more than they bought (bought, sold): {oversold}"
    )
    decisions = Counter(bracket.partition(".")[0] for bracket in bought)
    twice = sorted(d for d, n in decisions.items() if n > 1)
    tally.check(not twice, f"{route}: decisions bought by more than one bracket: {twice}")
    if forgotten is not None:
        return  # a venue back from an older state works again orders that had filled
    asked = {leg.bracket: o.quantity for o, leg in orders if leg.leg == "entry"}
    beyond = {b: (n, asked[b]) for b, n in bought.items() if b in asked and n > asked[b]}
    tally.check(
        not beyond, f"{route}: brackets bought beyond their entry (bought, asked): {beyond}"
    )
    open_ = sorted(
        b for b in bought if bought[b] > sold[b] and held.get(option_of.get(b, ""), 0) > 0
    )
    tally.check(len(open_) <= 1, f"{route} has {len(open_)} brackets open at once: {open_}")
    for bracket in open_:
        option = option_of[bracket]
        tally.check(
            held[option] <= bought[bracket] - sold[bracket],
            f"{route}: the venue holds {held[option]} {option}, its bracket {bracket} "
            f"{bought[bracket] - sold[bracket]}",
        )
    for option, contracts in held.items():
        offered = _offered(engine, [(o, leg) for o, leg in working if o.symbol == option])
        tally.check(
            offered <= max(contracts, 0),
            f"{route}'s working sells of {option} offer {offered} contracts, the venue holds "
            f"{contracts}",
        )


def _offered(engine: Engine, working: Sequence[tuple[SimOrder, Leg]]) -> int:
    # What the working sells offer together: an OCA group at most its largest order's.
    groups: dict[str, int] = {}
    alone = 0
    for order, _ in working:
        if order.side is not Side.SELL:
            continue
        can = offers(order, engine)
        if order.oca is None:
            alone += can
        else:
            groups[order.oca] = max(groups.get(order.oca, 0), can)
    return alone + sum(groups.values())


def unprotected(
    engine: Engine, symbol: str, name: str, ledger: LedgerState | None = None
) -> dict[str, str]:
    """The options of strategy ``name`` the venue holds long without both exits of ours
    working for what is held and without a close of ours working: option -> what is missing.
    With ``ledger`` (a venue back from an older state), only what the ledger's fills hold is
    owed protection: contracts beyond it are orphans, which reconciliation reports and leaves
    alone (an option position is never adopted, ``docs/options.md``)."""
    orders = _orders(engine, symbol, name)
    held = _positions(engine, symbol, (o.symbol for o, _ in orders))
    recorded = None if ledger is None else _recorded(ledger, symbol, name)
    found = {}
    for option, contracts in held.items():
        owed = contracts if recorded is None else min(contracts, recorded[option])
        if owed <= 0:
            continue
        working = [(o, leg) for o, leg in orders if o.symbol == option and not o.done]
        if any(leg.leg == "close" and o.side is Side.SELL for o, leg in working):
            continue
        covered: dict[str, int] = {}
        for o, leg in working:
            if leg.leg in EXITS:
                covered[leg.leg] = max(covered.get(leg.leg, 0), offers(o, engine))
        if any(covered.get(leg, 0) < owed for leg in EXITS):
            found[option] = (
                f"{contracts} held, "
                + ", ".join(f"{leg} for {covered.get(leg, 0)}" for leg in EXITS)
                + f" (working: {sorted(o.ref for o, _ in working)})"
            )
    return found


def _recorded(ledger: LedgerState, symbol: str, name: str) -> Counter[str]:
    # The contracts of each option the ledger's fills of strategy ``name`` hold.
    orders = {intent.ref: intent.order for intent in ledger.intents}
    held: Counter[str] = Counter()
    for fill in ledger.fills:
        order = orders.get(fill.ref)
        if order is None or leg_of(fill.ref, symbol, name) is None:
            continue
        held[order.symbol] += fill.quantity if order.side is Side.BUY else -fill.quantity
    return held


def settled(engine: Engine, symbol: str) -> dict[str, int]:
    """The options of ``symbol`` the venue settled at an expiry (worthless or exercised, refs
    ``expiry:``/``exercise:``), with the contracts it closed; and the shares an exercise or
    assignment moved, under ``symbol``."""
    found: Counter[str] = Counter()
    for execution in engine.executions:
        if not execution.settles or underlying_of(execution.symbol) != symbol:
            continue
        signed = execution.quantity if execution.side is Side.BUY else -execution.quantity
        found[execution.symbol] += signed
    return dict(found)


def option_agreement(
    engine: Engine,
    ledger: LedgerState,
    symbol: str,
    name: str,
    tally: Tally,
    *,
    strategy: OptionsStrategy | None = None,
    forgotten: set[ExecutionKey] | None = None,
) -> None:
    """The options strategy's agreement once settled (see the module doc): every option held
    is protected; the ledger's contracts and the strategy's books are the venue's.

    An option the venue settled at its expiry while the ledger held it (the bot never saw
    its close-out time: the service was down) stays in the ledger, which records no
    settlement: reconciliation finds the contracts missing and the strategy fails closed,
    halted for them (``MISSING CONTRACTS``); that is checked instead of the agreement."""
    route = f"{name}:{symbol}"
    halted = strategy.halted if strategy is not None else None
    bare = unprotected(engine, symbol, name, ledger if forgotten is not None else None)
    tally.check(
        not bare or (halted is not None and "the close" in halted),
        f"{route} holds options unprotected after settling: {bare}"
        + (f" (halted: {halted})" if halted else ""),
    )
    recorded = _recorded(ledger, symbol, name)
    orders = _orders(engine, symbol, name)
    held = _positions(engine, symbol, [*recorded, *(o.symbol for o, _ in orders)])
    expired = settled(engine, symbol)
    unseen = sorted(o for o, n in held.items() if o in expired and n == 0 and recorded[o] > 0)
    if unseen:
        tally.check(
            halted is not None and halted.startswith(("missing contracts", "the ledger holds")),
            f"{route}: the venue settled {unseen} at the expiry, the ledger still holds "
            f"{[recorded[o] for o in unseen]} contracts, and the strategy is not halted for "
            f"them (halted: {halted})",
        )
        return
    if forgotten is None:
        differ = {o: (recorded[o], n) for o, n in held.items() if n != recorded[o]}
        tally.check(
            not differ,
            f"{route}: the ledger's contracts are not the venue's (ledger, venue): {differ}",
        )
    if strategy is None or (forgotten is not None and halted is not None):
        return
    tally.check(halted is None, f"{route} halted: {halted}")
    bracket = strategy.bracket
    mine = {bracket.option: bracket.held} if bracket is not None and bracket.held else {}
    # (After an amnesia, contracts beyond the ledger's are orphans, left alone.)
    theirs = {
        o: n if forgotten is None else min(n, recorded[o])
        for o, n in held.items()
        if n and (forgotten is None or recorded[o] > 0)
    }
    tally.check(
        mine == theirs, f"{route}: the strategy holds {mine}, the venue {theirs} (contracts)"
    )
    believed = {o.ref for o in strategy.live_orders()}
    at_venue = {o.ref for o, _ in orders if not o.done}
    tally.check(
        believed == at_venue,
        f"{route}'s live orders are not the venue's working ones: it believes in "
        f"{sorted(believed - at_venue)}, does not know {sorted(at_venue - believed)}",
    )
