"""An independent, plain re-implementation of the grid (SPEC section 4) and the venue's matching
(SPEC section 8) in one loop, without actors, written only to cross-check the real ones.

Timing follows the lockstep replay: at each trade the venue matches first, then the strategy
reacts to the fills and then to the price; what it decides works from the next trade on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from actors.domain import Trade
from actors.domain.sessions import NEW_YORK, Session, session_at

CENT = Decimal("0.01")


def tick_round(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Working:
    side: str  # "BUY" | "SELL"
    level: int
    quantity: int
    limit: Decimal
    trigger: Decimal | None
    day_of: object | None  # a date for DAY orders
    lot: Lot | None = None  # sells: the lot they close; buys: the lot once it exists
    cycle: int = 0
    filled: int = 0
    waiting: bool = False


@dataclass
class Lot:
    level: int
    cycle: int
    bought: int = 0
    cost: Decimal = Decimal(0)
    sold: int = 0
    proceeds: Decimal = Decimal(0)
    buy_done: bool = False


@dataclass
class Outcome:
    buys: int = 0
    sells: int = 0
    realized: Decimal = Decimal(0)
    lots: list[Lot] = field(default_factory=list)
    position: int = 0
    executions: list[tuple[str, int, int, Decimal, object]] = field(default_factory=list)


def run(trades: Iterable[Trade], shares: list[int], depth: int = 3) -> Outcome:
    out = Outcome()
    working: list[Working] = []
    cycle, anchor = 1, None
    triggers: list[Decimal] = []

    def trigger(level: int) -> Decimal:
        while len(triggers) <= level:
            triggers.append(tick_round(triggers[-1] * Decimal("0.99")))
        return triggers[level]

    def current_lots() -> list[Lot]:
        return [lot for lot in out.lots if lot.cycle == cycle and lot.sold < lot.bought]

    def align(pending: list[Working]) -> None:
        nonlocal cycle, anchor, triggers
        live = working + pending
        # A sell for every lot whose buy is done.
        for lot in out.lots:
            if (
                lot.buy_done
                and lot.sold < lot.bought
                and not any(w.lot is lot and w.side == "SELL" for w in live)
            ):
                price = tick_round(lot.cost / lot.bought * Decimal("1.01"))
                pending.append(
                    Working(
                        "SELL", lot.level, lot.bought - lot.sold, price, None, None, lot, lot.cycle
                    )
                )
        mine = current_lots()
        wanted: set[int] = set()
        if anchor is not None and mine:
            first = max(lot.level for lot in mine) + 1
            wanted = set(range(first, min(first + depth, len(shares))))
        for w in list(working):
            if w.side == "BUY" and w.level > 0 and (w.cycle != cycle or w.level not in wanted):
                working.remove(w)  # cancelled before the next trade
        have = {w.level for w in working + pending if w.side == "BUY" and w.cycle == cycle}
        for level in sorted(wanted - have):
            price = trigger(level)
            pending.append(
                Working("BUY", level, shares[level], price, price, None, None, cycle, waiting=True)
            )

    for trade in trades:
        local_day = trade.at.astimezone(NEW_YORK).date()
        pending: list[Working] = []
        # The venue: DAY orders of an earlier day expire; then match this trade.
        for w in list(working):
            if w.day_of is not None and local_day > w.day_of:
                working.remove(w)
                if w.lot is not None:
                    w.lot.buy_done = True
        fills: list[tuple[Working, int]] = []
        if session_at(trade.at) is not Session.CLOSED:
            size = trade.size
            for w in working:
                if w.waiting:
                    if trade.price > w.trigger:  # type: ignore[operator]
                        continue
                    w.waiting = False
                if size <= 0:
                    continue
                reach = trade.price <= w.limit if w.side == "BUY" else trade.price >= w.limit
                if reach:
                    quantity = min(w.quantity - w.filled, size)
                    size -= quantity
                    w.filled += quantity
                    fills.append((w, quantity))
        # The strategy: fills first, then the price. An order stays working in its view until
        # its fill is handled (as in the real strategy), so no second sell is placed for a lot
        # whose sell filled in this same trade.
        for w, quantity in fills:
            out.executions.append((w.side, w.level, quantity, trade.price, trade.at))
            if w.filled >= w.quantity and w in working:
                working.remove(w)
            if w.side == "BUY":
                out.buys += 1
                if w.lot is None:
                    w.lot = Lot(w.level, w.cycle)
                    out.lots.append(w.lot)
                w.lot.bought += quantity
                w.lot.cost += trade.price * quantity
                out.position += quantity
                if w.level == 0 and w.cycle == cycle and anchor is None:
                    anchor = trade.price
                    triggers = [trade.price]
                if w.filled >= w.quantity:
                    w.lot.buy_done = True
            else:
                out.sells += 1
                lot = w.lot
                assert lot is not None
                lot.sold += quantity
                lot.proceeds += trade.price * quantity
                out.position -= quantity
                if lot.sold >= lot.bought:
                    out.realized += lot.proceeds - lot.cost
                    if lot.cycle == cycle and not current_lots():
                        cycle, anchor, triggers = cycle + 1, None, []
            align(pending)
        if not current_lots() and not any(
            w.side == "BUY" and w.level == 0 and w.cycle == cycle for w in working + pending
        ):
            limit = tick_round(trade.price * Decimal("1.0025"))
            pending.append(Working("BUY", 0, shares[0], limit, None, local_day, None, cycle))
        align(pending)
        working.extend(pending)
    return out
