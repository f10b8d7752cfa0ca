"""The broker port: the interface between the broker actor and a venue connection."""

from __future__ import annotations

from typing import Protocol

from ..messages import BrokerEvent, PlaceOrder


class BrokerPort(Protocol):
    """A venue connection. Calls return the broker events they caused, in order; events that
    arrive on their own (fills) are returned by ``poll``."""

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]: ...

    async def cancel(self, ref: str) -> list[BrokerEvent]: ...

    async def poll(self) -> list[BrokerEvent]: ...
