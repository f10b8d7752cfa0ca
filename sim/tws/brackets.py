"""The TWS face's untransmitted orders: what a placeOrder with ``transmit=False`` leaves at the
venue, as TWS keeps such an order in its window without sending it to IB.

An order is held with the group it belongs to: its own order id, or, for a child (``parentId``)
of a held order, its parent's group. A placeOrder with ``transmit=True`` in a group (a new
order or a modify of a held one) transmits the whole group: the held orders in the order they
were placed, then the transmitting one (ib_insync's ``bracketOrder`` sends the parent and the
take-profit untransmitted and the stop-loss transmitted). A group whose transmitting order
never comes never reaches the engine: nothing of it fills, and its orders can be modified and
cancelled (a held parent's cancel takes its held children).

Held orders are the face's state, not the engine's: they are not journaled, and a venue restart
loses them, as untransmitted orders do not survive a TWS restart.
"""

from __future__ import annotations

import attrs

from actors.domain import Instrument

from .orders import WireOrder


@attrs.frozen(kw_only=True)
class HeldOrder:
    """One untransmitted order: the message as it came, what it names, and its group."""

    client_id: int
    wire: WireOrder
    fields: tuple[str, ...]
    server_version: int
    instrument: Instrument
    group: int
    """The order id of the group's first order (a bracket's parent)."""

    @property
    def order_id(self) -> int:
        return self.wire.order_id


class HeldOrders:
    """Every client's held orders, in the order they were placed."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int], HeldOrder] = {}

    def get(self, client_id: int, order_id: int) -> HeldOrder | None:
        return self._held.get((client_id, order_id))

    def of(self, client_id: int | None = None) -> list[HeldOrder]:
        """The held orders of ``client_id`` (of every client if None), oldest first."""
        return [h for h in self._held.values() if client_id is None or h.client_id == client_id]

    def group_of(self, client_id: int, parent_id: int) -> int | None:
        """The group a child of ``parent_id`` joins when its parent is held, else None."""
        parent = self._held.get((client_id, parent_id))
        return parent.group if parent is not None else None

    def hold(self, order: HeldOrder) -> None:
        """Keep ``order`` (a modify of a held order keeps its place in the group)."""
        self._held[(order.client_id, order.order_id)] = order

    def release(self, client_id: int, group: int) -> list[HeldOrder]:
        """Take the held orders of ``group``, in the order they were placed: they go to the
        engine now."""
        taken = [h for h in self.of(client_id) if h.group == group]
        for held in taken:
            del self._held[(client_id, held.order_id)]
        return taken

    def cancel(self, client_id: int, order_id: int) -> list[HeldOrder]:
        """Drop a held order and its held children (and theirs): what was cancelled, the order
        first."""
        order = self._held.pop((client_id, order_id), None)
        if order is None:
            return []
        dropped = [order]
        for child in self.of(client_id):
            if child.wire.parent_id == order_id:
                dropped += self.cancel(client_id, child.order_id)
        return dropped
