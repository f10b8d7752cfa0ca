"""The broker port: the interface between the broker actor and a venue connection."""

from __future__ import annotations

from typing import Protocol

from ..domain import BrokerEvent, BrokerSnapshot, ModifyOrder, PlaceBracket, PlaceOrder


class BrokerPort(Protocol):
    """A venue connection. Calls return the broker events they caused, in order; events that
    arrive on their own (fills) are returned by ``poll``. A call on a lost connection raises
    ``ConnectionError``: the broker actor crashes and its supervisor restarts it, which
    reconnects and makes the symbol actors reconcile."""

    async def connect(self) -> None: ...

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]: ...

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        """Send the bracket's legs in order (``PlaceBracket.legs``) so that the venue holds
        them as one: nothing of it works until the last leg has arrived. A venue that cannot
        hold brackets rejects every leg (``OrderRejected``) and places none."""
        ...

    async def modify(self, change: ModifyOrder) -> list[BrokerEvent]:
        """Change a working order in place (``ModifyOrder``); the venue re-acknowledges it
        (``OrderAccepted``) or refuses the change, the order unchanged."""
        ...

    async def cancel(self, ref: str) -> list[BrokerEvent]: ...

    async def poll(self) -> list[BrokerEvent]: ...

    async def wait(self) -> None:
        """Return when events that arrived on their own are waiting for ``poll``; raise
        ``ConnectionError`` when the connection is lost."""
        ...

    async def snapshot(self) -> BrokerSnapshot:
        """Every order the broker reports (working and completed), every execution and the
        positions: what reconciliation compares the ledger with."""
        ...

    async def close(self) -> None: ...
