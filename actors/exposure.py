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

Before a sell is committed, ``headroom`` must cover it, else the sell is refused (the strategy
sees a rejection and backs off). At each reconciliation, ``excess`` names the working sells of
ours to cancel when the sells at the broker already offer more than the position.

Pure bookkeeping: no I/O, no clock; the symbol actor feeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import attrs

from .domain import BrokerSnapshot, Side


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

    @classmethod
    def from_snapshot(
        cls, snapshot: BrokerSnapshot, symbol: str, ours: Callable[[str], bool]
    ) -> SellBook:
        """The book as the broker's snapshot of ``symbol`` has it; ``ours`` tells this
        symbol actor's orderRefs from everyone else's."""
        book = cls(position=snapshot.position(symbol).quantity)
        for order in snapshot.orders:
            placed = order.order
            if placed.symbol != symbol or placed.side is not Side.SELL or not order.working:
                continue
            left = max(placed.quantity - order.filled, 0)
            if ours(placed.ref):
                book.working[placed.ref] = left
                book.placed[placed.ref] = order.order_id or 0
            else:
                book.foreign += left
        return book

    @property
    def offered(self) -> int:
        """Shares the working sells at the broker still offer."""
        return sum(self.working.values()) + self.foreign

    @property
    def headroom(self) -> int:
        """Shares a new sell may offer without the position going below zero."""
        return self.position - self.offered

    def refuses(self, quantity: int) -> str | None:
        """Why a new sell of ``quantity`` must not be placed, or None."""
        if quantity <= self.headroom:
            return None
        return (
            f"a sell of {quantity} would offer more than the broker's position: it holds "
            f"{self.position}, working sells already offer {self.offered}"
        )

    def sent(self, ref: str, quantity: int) -> None:
        """A sell of ours is on its way to the broker."""
        self.working[ref] = quantity
        self.placed[ref] = max(self.placed.values(), default=0) + 1

    def filled(self, ref: str, side: Side, quantity: int) -> None:
        """An execution the ledger recorded as new (never one the snapshot already counted)."""
        if side is Side.BUY:
            self.position += quantity
            return
        self.position -= quantity
        left = self.working.get(ref)
        if left is not None:
            if left > quantity:
                self.working[ref] = left - quantity
            else:
                del self.working[ref]

    def gone(self, ref: str) -> None:
        """The broker confirmed a sell of ours is no longer working (cancelled, rejected)."""
        self.working.pop(ref, None)

    def excess(self, keep: Collection[str], cancelling: Collection[str]) -> list[str]:
        """Our working sells to cancel so that what the sells offer fits in the position:
        none if it fits. Sells already being cancelled count as gone; the others are given up
        newest first, those in ``keep`` (the strategy's own live sells) last."""
        offered = self.foreign + sum(
            left for ref, left in self.working.items() if ref not in cancelling
        )
        excess: list[str] = []
        candidates = sorted(
            (ref for ref in self.working if ref not in cancelling),
            key=lambda ref: (ref in keep, -self.placed.get(ref, 0), ref),
        )
        for ref in candidates:
            if offered <= max(self.position, 0):
                break
            excess.append(ref)
            offered -= self.working[ref]
        return excess
