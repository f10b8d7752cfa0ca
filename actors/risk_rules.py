"""The risk actor's rules (SPEC 12), pure: no I/O, no clock, no actors; ``actors.risk`` feeds
them.

* ``RiskLimits``: the configured limits (``[risk]``); every one off by default.
* ``Book``: the portfolio as the risk actor sees it: positions and cash from every execution it
  is told about (each execId once), marks (the last prices), and each strategy's working orders.
  ``equity`` is the configured equity plus the P&L of those executions marked at the last
  prices (realized and unrealized, commissions paid).
* ``check``: whether a new order may go, or which rule refuses it, and why.
* ``loss_trips``: whether the loss since the session's start trips the daily loss guard.

A **protective exit** (a sell of no more shares than the position holds) is never refused, and
neither is a cancel (never asked). Position sizing (``max_risk_pct_per_trade``) measures an
order's risk as its notional (quantity x price): ``PlaceOrder`` carries no stop, so the whole
amount is at risk.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import assert_never

import attrs

from .domain import (
    MULTIPLIER,
    CorporateAction,
    Dividend,
    OrderFilled,
    PlaceOrder,
    Side,
    Split,
    is_option_symbol,
    split_price,
    split_shares,
    underlying_of,
)
from .domain.sessions import Session, session_at

__all__ = [
    "ALL",
    "Book",
    "MarketHours",
    "Refusal",
    "RiskLimits",
    "Rule",
    "Working",
    "check",
    "loss_trips",
    "outside_hours",
    "protective",
]

ALL = "*"
"""The halt of every symbol (``actorctl halt`` without a symbol)."""


class MarketHours(enum.StrEnum):
    """When new orders may be placed, by the New York session at the event's time."""

    ANY = "any"
    EXTENDED = "extended"
    """Pre-market, regular and after-hours sessions (04:00-20:00 on trading days)."""
    REGULAR = "regular"
    """The regular session only (09:30-16:00 on trading days)."""


class Rule(enum.StrEnum):
    """The rule that refused an order (the ``rule`` of a refusal, and its metric's label)."""

    HALT = "halt"
    DAILY_LOSS = "daily_loss"
    MARKET_HOURS = "market_hours"
    OPEN_ORDERS = "open_orders"
    POSITIONS = "positions"
    TRADE_RISK = "trade_risk"
    SYMBOL_NOTIONAL = "symbol_notional"
    GROSS_EXPOSURE = "gross_exposure"


@attrs.frozen(kw_only=True)
class RiskLimits:
    """The configured limits; None means no such limit. Percentages are of the equity."""

    max_notional_per_symbol: Decimal | None = None
    """A symbol's position at the last price plus its working buys plus the new order."""
    max_gross_exposure: Decimal | None = None
    """Every symbol's |position| at its last price plus every working buy plus the new order."""
    max_open_orders: int | None = None
    """Working orders of every strategy, the new one included."""
    max_positions: int | None = None
    """Instruments held at once (a stock's shares, an option's contracts): a buy of one not
    held is refused while this many are (working entries not yet filled do not count)."""
    market_hours: MarketHours = MarketHours.ANY
    max_risk_pct_per_trade: Decimal | None = None
    """An order whose notional exceeds this % of the session's start equity is refused."""
    max_daily_loss_pct: Decimal | None = None
    """A loss since the session's start beyond this % of its start equity trips the guard."""
    equity: Decimal | None = None
    """The account's equity the percentages are of (from the config)."""

    @property
    def any(self) -> bool:
        """Whether any limit is set (else only the operator's halts can refuse an order)."""
        return (
            self.market_hours is not MarketHours.ANY
            or self.max_notional_per_symbol is not None
            or self.max_gross_exposure is not None
            or self.max_open_orders is not None
            or self.max_positions is not None
            or self.max_risk_pct_per_trade is not None
            or self.max_daily_loss_pct is not None
        )

    def __attrs_post_init__(self) -> None:
        for name in ("max_risk_pct_per_trade", "max_daily_loss_pct"):
            if getattr(self, name) is not None and (self.equity is None or self.equity <= 0):
                raise ValueError(f"risk: {name} needs a positive equity, got {self.equity}")


@attrs.frozen(kw_only=True)
class Refusal:
    rule: Rule
    reason: str


@attrs.frozen(kw_only=True)
class Working:
    """A strategy's working orders as its symbol actor reports them."""

    symbol: str
    orders: int = 0
    buy_notional: Decimal = Decimal(0)
    """What its working buys would cost: open quantity x limit (or the last price)."""


@attrs.define
class Book:
    """The portfolio (see the module doc). Mutable bookkeeping, fed by the risk actor."""

    positions: dict[str, int] = attrs.Factory(dict)
    cash: Decimal = Decimal(0)
    """Sells' proceeds minus buys' cost and commissions, since the ledger began."""
    marks: dict[str, Decimal] = attrs.Factory(dict)
    working: dict[str, Working] = attrs.Factory(dict)
    """Route (``strategy:symbol``) -> its working orders."""
    seen: set[str] = attrs.Factory(set)
    """The execIds applied."""
    applied: set[str] = attrs.Factory(set)
    """The corporate actions applied, by id."""

    def fill(self, symbol: str, side: Side, fill: OrderFilled) -> bool:
        """Apply an execution once (by execId); True if it was new."""
        if fill.exec_id in self.seen:
            return False
        self.seen.add(fill.exec_id)
        signed = fill.quantity if side is Side.BUY else -fill.quantity
        self.positions[symbol] = self.positions.get(symbol, 0) + signed
        self.cash -= signed * fill.price * multiplier(symbol) + (fill.commission or 0)
        self.marks.setdefault(symbol, fill.price)
        return True

    def corporate_action(self, action: CorporateAction) -> bool:
        """Apply a split (the position times its ratio, the last price divided by it) or a
        dividend (its cash on the position) once (by id); True if it was new."""
        if action.id in self.applied:
            return False
        self.applied.add(action.id)
        held = self.positions.get(action.symbol, 0)
        match action:
            case Split(ratio=ratio):
                self.positions[action.symbol] = split_shares(held, ratio, action.symbol)
                if action.symbol in self.marks:
                    self.marks[action.symbol] = split_price(self.marks[action.symbol], ratio)
            case Dividend(amount_per_share=amount):
                self.cash += amount * held
            case _:
                assert_never(action)
        return True

    def mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price

    def equity(self, base: Decimal) -> Decimal:
        held = sum(
            (
                shares * self.marks.get(symbol, Decimal(0)) * multiplier(symbol)
                for symbol, shares in self.positions.items()
            ),
            Decimal(0),
        )
        return base + self.cash + held

    def exposure(self, symbol: str | None = None) -> Decimal:
        """|position| x last price plus working buys, of ``symbol`` (its shares and the
        options on it) or of every symbol."""
        held = sum(
            (
                abs(shares) * self.marks.get(s, Decimal(0)) * multiplier(s)
                for s, shares in self.positions.items()
                if symbol is None or underlying_of(s) == symbol
            ),
            Decimal(0),
        )
        buying = sum(
            (w.buy_notional for w in self.working.values() if symbol is None or w.symbol == symbol),
            Decimal(0),
        )
        return held + buying

    @property
    def open_orders(self) -> int:
        return sum(w.orders for w in self.working.values())


def multiplier(symbol: str) -> int:
    """What one unit of ``symbol`` is worth in its price: an option contract 100 shares."""
    return MULTIPLIER if is_option_symbol(symbol) else 1


def protective(order: PlaceOrder, position: int) -> bool:
    """A sell of no more shares than the long ``position`` holds: never refused."""
    return order.side is Side.SELL and 0 < order.quantity <= position


def check(
    order: PlaceOrder,
    *,
    limits: RiskLimits,
    book: Book,
    route: str,
    price: Decimal | None,
    at: datetime | None,
    start_equity: Decimal | None,
    tripped: str | None,
    halts: Collection[str],
) -> Refusal | None:
    """Whether ``order`` (a new order of ``route``, not protective) may go: None, or the first
    rule that refuses it. ``book.working`` must already hold ``route``'s working orders
    (without ``order``); ``price`` is the symbol's last price, ``at`` the event's time (None:
    none known yet, which the market-hours gate refuses)."""
    symbol = underlying_of(order.symbol)
    if ALL in halts or symbol in halts:
        who = "every symbol" if ALL in halts else symbol
        return Refusal(rule=Rule.HALT, reason=f"the operator halted {who} (actorctl resume)")
    if tripped is not None:
        return Refusal(
            rule=Rule.DAILY_LOSS,
            reason=f"the daily loss guard tripped: {tripped}; until the next session",
        )
    if limits.market_hours is not MarketHours.ANY:
        if at is None:
            return Refusal(
                rule=Rule.MARKET_HOURS,
                reason="no market time known yet (no tick seen): new orders wait for one",
            )
        refusal = outside_hours(limits.market_hours, at)
        if refusal is not None:
            return refusal
    if limits.max_open_orders is not None and book.open_orders + 1 > limits.max_open_orders:
        return Refusal(
            rule=Rule.OPEN_ORDERS,
            reason=f"{book.open_orders} orders working, at most {limits.max_open_orders}",
        )
    # An option is valued at its limit (the symbol's price is the underlying's).
    option = is_option_symbol(order.symbol)
    if limits.max_positions is not None and order.side is Side.BUY:
        held = sorted(s for s, quantity in book.positions.items() if quantity)
        if book.positions.get(order.symbol, 0) == 0 and len(held) >= limits.max_positions:
            return Refusal(
                rule=Rule.POSITIONS,
                reason=f"{len(held)} positions open ({', '.join(held)}), at most "
                f"{limits.max_positions}",
            )
    priced = order.limit if order.limit is not None or option else price
    needs_price = (
        limits.max_risk_pct_per_trade,
        limits.max_notional_per_symbol,
        limits.max_gross_exposure,
    )
    if priced is None:
        if any(limit is not None for limit in needs_price):
            return Refusal(
                rule=_first_priced_rule(limits),
                reason=f"no price known for {symbol} to value a market order",
            )
        return None
    capped = limits.max_notional_per_symbol is not None or limits.max_gross_exposure is not None
    if price is None and capped:
        # The position is valued at the symbol's current price: a mark from before (a symbol
        # actor restarted, no tick yet) may be far from it.
        return Refusal(
            rule=Rule.SYMBOL_NOTIONAL
            if limits.max_notional_per_symbol is not None
            else Rule.GROSS_EXPOSURE,
            reason=f"no current price for {symbol} (no tick yet) to value its position",
        )
    notional = order.quantity * priced * multiplier(order.symbol)
    if limits.max_risk_pct_per_trade is not None and start_equity is not None:
        most = start_equity * limits.max_risk_pct_per_trade / 100
        if notional > most:
            return Refusal(
                rule=Rule.TRADE_RISK,
                reason=f"notional {_money(notional)} exceeds {limits.max_risk_pct_per_trade}% of "
                f"equity {_money(start_equity)} ({_money(most)})",
            )
    if limits.max_notional_per_symbol is not None:
        total = book.exposure(symbol) + notional
        if total > limits.max_notional_per_symbol:
            return Refusal(
                rule=Rule.SYMBOL_NOTIONAL,
                reason=f"{symbol} exposure would be {_money(total)}, at most "
                f"{_money(limits.max_notional_per_symbol)}",
            )
    if limits.max_gross_exposure is not None:
        total = book.exposure() + notional
        if total > limits.max_gross_exposure:
            return Refusal(
                rule=Rule.GROSS_EXPOSURE,
                reason=f"gross exposure would be {_money(total)}, at most "
                f"{_money(limits.max_gross_exposure)}",
            )
    return None


def outside_hours(hours: MarketHours, at: datetime) -> Refusal | None:
    """The ``market_hours`` refusal of a new order at ``at`` (an event's time), or None. The
    risk actor asks it at the decision, the broker actor again as the order goes out."""
    if hours is MarketHours.ANY:
        return None
    session = session_at(at)
    allowed = session is Session.REGULAR if hours is MarketHours.REGULAR else session.trading
    if allowed:
        return None
    return Refusal(
        rule=Rule.MARKET_HOURS,
        reason=f"{at.isoformat()} is in the {session.value} session; new orders only in "
        f"the {hours.value} sessions",
    )


def loss_trips(limits: RiskLimits, start_equity: Decimal | None, equity: Decimal) -> str | None:
    """Why the loss since the session's start trips the daily loss guard, or None."""
    if limits.max_daily_loss_pct is None or start_equity is None or start_equity <= 0:
        return None
    loss = start_equity - equity
    most = start_equity * limits.max_daily_loss_pct / 100
    if loss <= most:
        return None
    return (
        f"lost {_money(loss)} since the session's start (equity {_money(start_equity)} -> "
        f"{_money(equity)}), more than {limits.max_daily_loss_pct}% ({_money(most)})"
    )


def _first_priced_rule(limits: RiskLimits) -> Rule:
    if limits.max_risk_pct_per_trade is not None:
        return Rule.TRADE_RISK
    if limits.max_notional_per_symbol is not None:
        return Rule.SYMBOL_NOTIONAL
    return Rule.GROSS_EXPOSURE


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"
