"""Orders and what a broker says about them: the commands an actor sends to a venue, the events
it gets back, and a broker's snapshot of its books (the source of truth, SPEC 6).

Frozen attrs classes, data only. Commands are VerbNoun (``PlaceOrder``), events NounPastTense
(``OrderFilled``). Prices are ``Decimal`` already rounded to the instrument tick
(``round_to_tick``); quantities are whole shares.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import attrs

from ._options import underlying_of
from ._values import DomainError, OrderRef, Side, TimeInForce


@attrs.frozen(kw_only=True)
class PriceCondition:
    """IB's PriceCondition on the last price: true when last <= trigger (``is_more=False``)."""

    trigger: Decimal
    is_more: bool = False


@attrs.frozen(kw_only=True)
class PlaceOrder:
    """Send an order whose intent is already committed. ``ref`` is its self-describing orderRef.

    Its type follows from its prices (``order_type``): a limit, a market order (no limit), a
    stop (``stop``: it becomes a market order once the last trade reaches the stop price: at or
    below it for a sell, at or above for a buy) or a stop limit (both). ``parent`` and ``oca``
    make it a leg of a bracket (``PlaceBracket``)."""

    ref: str
    symbol: str
    side: Side
    quantity: int
    limit: Decimal | None
    """The limit price; None for a market order."""
    tif: TimeInForce
    outside_rth: bool = True
    condition: PriceCondition | None = None
    stop: Decimal | None = None
    """The stop (trigger) price of a stop or stop-limit order; None for any other."""
    parent: str | None = None
    """The ref of the order this one is a child of: it works only once its parent has filled,
    and goes when its parent is cancelled (IB's ``parentId``)."""
    oca: str | None = None
    """Its one-cancels-all group: an execution of one order of the group reduces every other
    order of the group by the same quantity, cancelling it when nothing remains, so that the
    group never fills more than one order's quantity (IB's ``ocaGroup`` with ``ocaType`` 2,
    reduce with block)."""

    @property
    def order_type(self) -> str:
        """IB's name for its type: ``LMT``, ``MKT``, ``STP`` or ``STP LMT``."""
        if self.stop is None:
            return "MKT" if self.limit is None else "LMT"
        return "STP" if self.limit is None else "STP LMT"


class BracketError(ValueError):
    """A bracket whose legs do not make one (``PlaceBracket``); says which leg and why."""


@attrs.frozen(kw_only=True)
class PlaceBracket:
    """An entry with its two protective exits, sent as one: the entry (a limit or market
    order), a take-profit limit and a stop-loss stop, both children of the entry (``parent``)
    for its whole quantity on the other side, in one OCA group, so that the exit that fills
    first cancels the other. The children work only once the entry has filled: a filled entry
    is never left without both exits working. Every leg is a write-ahead intent of its own,
    committed together before any leg is sent (``actors.symbol``), under refs of one
    strategy and symbol that name their role (``<decision>.entry``, ``.tp``, ``.sl`` by
    convention), so that reconciliation tells the legs apart. Raises ``BracketError`` for legs
    that do not make a bracket."""

    entry: PlaceOrder
    take_profit: PlaceOrder
    stop_loss: PlaceOrder

    def __attrs_post_init__(self) -> None:
        entry, take_profit, stop_loss = self.entry, self.take_profit, self.stop_loss
        problems: list[str] = []
        if entry.parent is not None or entry.oca is not None or entry.stop is not None:
            problems.append(
                "the entry must be a plain limit or market order (no parent, oca, stop)"
            )
        for name, leg in (("take_profit", take_profit), ("stop_loss", stop_loss)):
            if leg.symbol != entry.symbol:
                problems.append(f"{name} is for {leg.symbol}, the entry for {entry.symbol}")
            if leg.side is entry.side:
                problems.append(f"{name} must be on the other side of the entry ({leg.side})")
            if leg.quantity != entry.quantity:
                problems.append(
                    f"{name} is for {leg.quantity}, the entry for {entry.quantity}: the exits "
                    f"protect the whole entry"
                )
            if leg.parent != entry.ref:
                problems.append(f"{name}'s parent is {leg.parent!r}, not the entry {entry.ref!r}")
            if leg.oca is None:
                problems.append(f"{name} has no OCA group")
        if take_profit.oca != stop_loss.oca:
            problems.append(f"the exits are in two OCA groups ({take_profit.oca}, {stop_loss.oca})")
        if take_profit.order_type != "LMT":
            problems.append(f"take_profit must be a limit order, not {take_profit.order_type}")
        if stop_loss.stop is None:
            problems.append("stop_loss has no stop price")
        refs = {entry.ref, take_profit.ref, stop_loss.ref}
        if len(refs) != 3:
            problems.append(f"the legs need three refs, got {sorted(refs)}")
        routes = set()
        for leg in self.legs:
            # A venue's own refs are not checked (PlaceOrder checks none); the host's are ours.
            with contextlib.suppress(DomainError):
                routes.add(OrderRef.parse(leg.ref).route)
        if len(routes) > 1:
            problems.append(
                f"the legs belong to {sorted(routes)}: one strategy's orders, one route"
            )
        if problems:
            raise BracketError(f"bracket {entry.ref}: " + "; ".join(problems))

    @property
    def legs(self) -> tuple[PlaceOrder, PlaceOrder, PlaceOrder]:
        """Entry, take-profit, stop-loss: the order they are sent in (the last transmits)."""
        return (self.entry, self.take_profit, self.stop_loss)


@attrs.frozen(kw_only=True)
class ModifyOrder:
    """Change a working order's quantity and prices in place (IB's modify: the same order id
    placed again), keeping its ref and its place in the queue of its side where the venue
    does. Its intent is amended before it is sent. A modification the venue refuses leaves the
    order as it was."""

    ref: str
    quantity: int
    limit: Decimal | None
    stop: Decimal | None = None
    reason: str = ""


@attrs.frozen(kw_only=True)
class CancelOrder:
    ref: str
    reason: str


@attrs.frozen(kw_only=True)
class OrderAccepted:
    """The broker acknowledged the order (it is working, or waiting for its condition)."""

    ref: str
    order_id: int | None = None
    perm_id: int | None = None


@attrs.frozen(kw_only=True)
class OrderFilled:
    """One execution. ``exec_id`` is unique per execution: a repeated one is a duplicate."""

    ref: str
    exec_id: str
    quantity: int
    price: Decimal
    commission: Decimal | None = None


@attrs.frozen(kw_only=True)
class OrderCancelled:
    """The order is no longer working; what it filled before stays filled."""

    ref: str
    reason: str = ""


@attrs.frozen(kw_only=True)
class OrderRejected:
    ref: str
    reason: str
    code: int | None = None


BrokerEvent = OrderAccepted | OrderFilled | OrderCancelled | OrderRejected


@attrs.frozen(kw_only=True)
class BrokerOrder:
    """An order as the broker reports it, working or finished. ``order.ref`` may be foreign
    (not one of our orderRefs): an order the operator placed by hand, say."""

    order: PlaceOrder
    filled: int
    working: bool
    order_id: int | None = None
    perm_id: int | None = None


@attrs.frozen(kw_only=True)
class BrokerExecution:
    ref: str
    exec_id: str
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    commission: Decimal | None = None

    def as_fill(self) -> OrderFilled:
        return OrderFilled(
            ref=self.ref,
            exec_id=self.exec_id,
            quantity=self.quantity,
            price=self.price,
            commission=self.commission,
        )


@attrs.frozen(kw_only=True)
class BrokerPosition:
    symbol: str
    quantity: int
    average_cost: Decimal


@attrs.frozen(kw_only=True)
class BrokerSnapshot:
    """What the broker holds, the source of truth: its orders (working ones and those it
    still reports as completed), every execution it reports, and positions."""

    orders: tuple[BrokerOrder, ...] = ()
    executions: tuple[BrokerExecution, ...] = ()
    positions: tuple[BrokerPosition, ...] = ()

    def for_symbol(self, symbol: str) -> BrokerSnapshot:
        """What concerns ``symbol``: its shares, and the options on it (by OCC symbol)."""
        return BrokerSnapshot(
            orders=tuple(o for o in self.orders if underlying_of(o.order.symbol) == symbol),
            executions=tuple(e for e in self.executions if underlying_of(e.symbol) == symbol),
            positions=tuple(p for p in self.positions if underlying_of(p.symbol) == symbol),
        )

    def position(self, symbol: str) -> BrokerPosition:
        for position in self.positions:
            if position.symbol == symbol:
                return position
        return BrokerPosition(symbol=symbol, quantity=0, average_cost=Decimal(0))
