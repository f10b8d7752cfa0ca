"""The position guard of one symbol: never offer more shares for sale than the broker holds.

A long-only strategy must never go short, whatever its ledger believes: after a broker that lost
recent state, a ledger restored from an older backup, or shares sold by hand, the ledger's lots
and the broker's position can disagree, and a sell placed for a lot the broker does not hold
takes the position below zero when it fills. So the symbol actor keeps, beside the strategy,
the broker's side of the matter (``SellBook``):

* the broker's position, as of the last reconciliation's snapshot, moved by every execution the
  ledger records as new since;
* every working sell at the broker, ours and the operator's, with what is left of it; a sell
  stays counted until the broker confirms it is gone (cancelled, rejected or filled), so a
  cancel in flight frees nothing.

The exits of a bracket (``PlaceBracket``: sells that are children of a buy, in one OCA group)
count as one sell for the group, and only for what their entry has bought: the venue lets
them sell no more than the entry filled, and the group no more than one exit's quantity.

Before a sell is committed, ``headroom`` must cover it, else the sell is refused (the strategy
sees a rejection and backs off). At each reconciliation, ``excess`` names the working sells of
ours to cancel when the sells at the broker already offer more than the position.

Pure bookkeeping: no I/O, no clock; the symbol actor feeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import attrs

from .domain import BrokerSnapshot, Side, underlying_of


@attrs.define
class Exits:
    """A bracket's exits (``refs``: one OCA group of sells, children of the buy ``entry``):
    the group may still sell what its entry bought less what the group sold, at most its
    ``quantity``."""

    entry: str
    quantity: int
    refs: set[str] = attrs.Factory(set)
    bought: int = 0
    sold: int = 0

    @property
    def offers(self) -> int:
        return max(min(self.quantity, self.bought) - self.sold, 0)


@attrs.define
class SellBook:
    """See the module doc. ``working`` maps our working sells' orderRefs to their open
    quantity; ``foreign`` is what the operator's own working sells still offer."""

    position: int = 0
    working: dict[str, int] = attrs.Factory(dict)
    foreign: int = 0
    placed: dict[str, int] = attrs.Factory(dict)
    """When each of our working sells was placed, as an increasing number (the broker's order id
    for those in the snapshot, then a count above it): which is newest."""
    groups: dict[str, Exits] = attrs.Factory(dict)
    """The brackets' exits, by OCA group."""

    @classmethod
    def from_snapshot(
        cls, snapshot: BrokerSnapshot, symbol: str, ours: Callable[[str], bool]
    ) -> SellBook:
        """The book as the broker's snapshot of ``symbol`` has it; ``ours`` tells this
        symbol actor's orderRefs from everyone else's."""
        book = cls(position=snapshot.position(symbol).quantity)
        filled = {order.order.ref: order.filled for order in snapshot.orders}
        for order in snapshot.orders:
            placed = order.order
            if placed.symbol != symbol or placed.side is not Side.SELL or not order.working:
                continue
            left = max(placed.quantity - order.filled, 0)
            if ours(placed.ref) and placed.oca is not None:
                exits = book.groups.get(placed.oca)
                if exits is None:
                    # A bracket's exits (children of their entry) or sells of one OCA group
                    # placed alone (an exit placed again once its entry had filled).
                    exits = book.groups[placed.oca] = Exits(
                        entry=placed.parent or "",
                        quantity=placed.quantity,
                        bought=placed.quantity
                        if placed.parent is None
                        else filled.get(placed.parent, 0),
                        sold=sum(
                            o.filled
                            for o in snapshot.orders
                            if o.order.oca == placed.oca and o.order.side is Side.SELL
                        ),
                    )
                elif placed.parent is not None and not exits.entry:
                    exits.entry = placed.parent
                    exits.bought = filled.get(placed.parent, 0)
                exits.quantity = max(exits.quantity, placed.quantity)
                exits.refs.add(placed.ref)
            if ours(placed.ref):
                book.working[placed.ref] = left
                book.placed[placed.ref] = order.order_id or 0
            else:
                book.foreign += left
        return book

    @property
    def offered(self) -> int:
        """Shares the working sells at the broker still offer."""
        return self._offers(())

    def _offers(self, leaving_out: Collection[str]) -> int:
        plain = {ref for ref in self.working if ref not in leaving_out}
        offered = self.foreign
        for exits in self.groups.values():
            if exits.refs & plain:
                offered += exits.offers
            plain -= exits.refs
        return offered + sum(self.working[ref] for ref in plain)

    def _exit(self, ref: str) -> bool:
        return any(ref in exits.refs for exits in self.groups.values())

    def bracket(self, entry: str, exits: Collection[str], group: str, quantity: int) -> None:
        """A bracket's exits (sells in OCA ``group``, children of the buy ``entry``) are on
        their way to the broker."""
        self.groups[group] = Exits(entry=entry, quantity=quantity, refs=set(exits))
        for ref in exits:
            self.sent(ref, quantity)

    @property
    def headroom(self) -> int:
        """Shares a new sell may offer without the position going below zero."""
        return self.position - self.offered

    def refuses(self, quantity: int, group: str | None = None) -> str | None:
        """Why a new sell of ``quantity`` must not be placed, or None. A sell joining the
        working sells of OCA ``group`` adds only what it would offer beyond the group (the
        group never sells more than one order's quantity)."""
        exits = self.groups.get(group) if group is not None else None
        extra = quantity if exits is None else max(quantity - exits.offers, 0)
        if extra <= self.headroom:
            return None
        return (
            f"a sell of {quantity} would offer more than the broker's position: it holds "
            f"{self.position}, working sells already offer {self.offered}"
        )

    def sent(self, ref: str, quantity: int, group: str | None = None) -> None:
        """A sell of ours is on its way to the broker (in OCA ``group``, if it names one)."""
        self.working[ref] = quantity
        self.placed[ref] = max(self.placed.values(), default=0) + 1
        if group is None:
            return
        exits = self.groups.get(group)
        if exits is None:
            self.groups[group] = Exits(entry="", quantity=quantity, refs={ref}, bought=quantity)
        else:
            exits.refs.add(ref)
            if not exits.entry:
                exits.quantity = max(exits.quantity, quantity)
                exits.bought = max(exits.bought, quantity)

    def filled(self, ref: str, side: Side, quantity: int) -> None:
        """An execution the ledger recorded as new (never one the snapshot already counted)."""
        if side is Side.BUY:
            self.position += quantity
            for exits in self.groups.values():
                if exits.entry == ref:
                    exits.bought += quantity
            return
        self.position -= quantity
        for exits in self.groups.values():
            if ref in exits.refs:
                exits.sold += quantity
        left = self.working.get(ref)
        if left is not None:
            if left > quantity:
                self.working[ref] = left - quantity
            else:
                del self.working[ref]
                self._forget_groups()

    def gone(self, ref: str) -> None:
        """The broker confirmed a sell of ours is no longer working (cancelled, rejected)."""
        self.working.pop(ref, None)
        self._forget_groups()

    def _forget_groups(self) -> None:
        for group, exits in list(self.groups.items()):
            if not exits.refs & self.working.keys():
                del self.groups[group]

    def excess(self, keep: Collection[str], cancelling: Collection[str]) -> list[str]:
        """Our working sells to cancel so that what the sells offer fits in the position:
        none if it fits. Sells already being cancelled count as gone; the others are given up
        newest first, those in ``keep`` (the strategy's own live sells) later, a bracket's
        protective exits last."""
        excess: list[str] = []
        candidates = sorted(
            (ref for ref in self.working if ref not in cancelling),
            key=lambda ref: (self._exit(ref), ref in keep, -self.placed.get(ref, 0), ref),
        )
        for ref in candidates:
            if self._offers({*cancelling, *excess}) <= max(self.position, 0):
                break
            excess.append(ref)
        return excess


@attrs.define
class Books:
    """The ``SellBook`` of every instrument one symbol actor trades: the symbol's shares, and
    each option on it (by OCC symbol), whose contracts are a position of their own: a sell
    of an option is checked against that option's contracts, never against the shares."""

    symbol: str
    by_instrument: dict[str, SellBook] = attrs.Factory(dict)

    @classmethod
    def from_snapshot(
        cls, snapshot: BrokerSnapshot, symbol: str, ours: Callable[[str], bool]
    ) -> Books:
        instruments = {symbol}
        instruments.update(o.order.symbol for o in snapshot.orders)
        instruments.update(p.symbol for p in snapshot.positions)
        return cls(
            symbol=symbol,
            by_instrument={
                name: SellBook.from_snapshot(snapshot, name, ours)
                for name in instruments
                if underlying_of(name) == symbol
            },
        )

    def __getitem__(self, instrument: str) -> SellBook:
        book = self.by_instrument.get(instrument)
        if book is None:
            book = self.by_instrument[instrument] = SellBook()
        return book

    @property
    def shares(self) -> SellBook:
        """The symbol's own shares' book."""
        return self[self.symbol]

    def gone(self, ref: str) -> None:
        """The broker confirmed an order of ours is no longer working (whichever instrument)."""
        for book in self.by_instrument.values():
            book.gone(ref)
