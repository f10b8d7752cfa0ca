"""The risk invariant (``RiskWatch``; ``app.chaos.invariants`` describes it): no order of any
strategy of the symbol reaches the venue beyond a limit of the risk actor. An option on the
symbol counts toward its caps at 100 shares a contract: an order at its limit, a position at
the lowest price it was bought at (the risk actor marks it at its fill price)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from actors import ledger as ledger_
from actors.domain import MULTIPLIER, Side, is_option_symbol, underlying_of
from actors.domain.sessions import NEW_YORK, Session, session_at
from actors.risk_rules import MarketHours, RiskLimits
from sim.engine import Engine, Input, OnTrade, Place

from ._facts import GRID, Tally, ours, position
from ._facts import ours_of as _ours

DECISION_LAG = timedelta(minutes=1)
"""How long before it reaches the venue a buy may have been decided, its broker up: the trades
of that span are the prices its decision may have seen (``RiskWatch``)."""


class RiskWatch:
    """The risk invariant (see the module doc), fed every input of the venue's engine before
    it takes effect; ``breaches`` lists what went beyond a limit."""

    def __init__(self, limits: RiskLimits, symbol: str, strategies: Sequence[str] = GRID) -> None:
        self.limits = limits
        self.symbol = symbol
        self.strategies = tuple(strategies)
        """What trades ``symbol``: the limits hold across all of their orders."""
        self.breaches: list[str] = []
        self.buys: list[tuple[datetime, str]] = []
        """Every buy of ours placed: when (venue time) and its orderRef."""
        self.trips: dict[tuple[str, str], datetime] = {}
        """Each trip on record (session, reason): the venue's time when it was first seen."""
        self.trades: deque[tuple[datetime, Decimal]] = deque()
        """The symbol's trades of the last ``DECISION_LAG`` (venue time, price)."""

    def __call__(self, engine: Engine, entry: Input) -> None:
        if isinstance(entry, OnTrade) and entry.symbol == self.symbol:
            self.trades.append((entry.at, entry.price))
            while self.trades and self.trades[0][0] < entry.at - DECISION_LAG:
                self.trades.popleft()
            return
        if not isinstance(entry, Place) or not ours(entry.order.ref, self.symbol, self.strategies):
            return
        order, limits = entry.order, self.limits
        if order.side is not Side.BUY:
            return
        self.buys.append((entry.at, order.ref))
        working = _ours(engine.open_orders(), self.symbol, self.strategies)
        if limits.max_open_orders is not None and len(working) + 1 > limits.max_open_orders:
            self.breaches.append(
                f"{order.ref} placed with {len(working)} orders working, at most "
                f"{limits.max_open_orders}: {sorted(o.ref for o in working)}"
            )
        last = engine.last.get(self.symbol)
        price = order.limit if order.limit is not None else last
        if is_option_symbol(order.symbol):
            price = None if order.limit is None else order.limit * MULTIPLIER
        if price is not None and last is not None:
            seen = [p for at, p in self.trades if at >= entry.at - DECISION_LAG]
            decided = min([last, *seen])
            exposure = position(engine, self.symbol) * decided + order.quantity * price
            exposure += _options_held(engine, self.symbol)
            for o in working:
                if o.side is not Side.BUY:
                    continue
                if is_option_symbol(o.symbol):
                    exposure += o.remaining * (o.limit or 0) * MULTIPLIER
                else:
                    exposure += o.remaining * (o.limit if o.limit is not None else last)
            for name in ("max_notional_per_symbol", "max_gross_exposure"):
                cap = getattr(limits, name)
                if cap is not None and exposure > cap:
                    self.breaches.append(
                        f"{order.ref} placed with exposure {exposure} > {name} {cap}"
                    )
        if limits.market_hours is not MarketHours.ANY:
            session = session_at(entry.at)
            allowed = (
                session is Session.REGULAR
                if limits.market_hours is MarketHours.REGULAR
                else session.trading
            )
            if not allowed:
                self.breaches.append(
                    f"{order.ref} placed at {entry.at.isoformat()} ({session.value} session), "
                    f"only {limits.market_hours.value} allowed"
                )

    def check(self, tally: Tally, record: ledger_.RiskRecord, now: datetime | None) -> None:
        """``record`` is the ledger's risk state now, ``now`` the venue's time: a trip is
        dated by when the venue first saw it on record (at most a step late), not by the risk
        actor's own event time."""
        tally.check(not self.breaches, f"orders beyond a risk limit: {self.breaches[:3]}")
        if record.tripped is None or record.session is None or now is None:
            return
        seen = self.trips.setdefault((record.session, record.tripped), now)
        late = [
            ref
            for at, ref in self.buys
            if at > seen and at.astimezone(NEW_YORK).date().isoformat() == record.session
        ]
        tally.check(
            not late,
            f"buys placed after the daily loss guard tripped (on record at {seen.isoformat()}): "
            f"{late[:3]}",
        )


def _options_held(engine: Engine, symbol: str) -> Decimal:
    # The options on ``symbol`` the venue holds long, each at the lowest price it was bought
    # at (x 100): never more than the risk actor's mark, its first fill's price.
    held = Decimal(0)
    for option, contracts in engine.positions.items():
        if contracts.quantity <= 0 or not is_option_symbol(option):
            continue
        if underlying_of(option) != symbol:
            continue
        bought = [e.price for e in engine.executions if e.symbol == option and e.side is Side.BUY]
        if bought:
            held += contracts.quantity * min(bought) * MULTIPLIER
    return held
