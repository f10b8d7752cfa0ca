"""The event loops an actor tree runs on."""

from __future__ import annotations

import enum


class Backend(enum.StrEnum):
    """anyio's name of an event loop backend. asyncio is the production one (with uvloop when it
    is installed): ib_insync and alpaca-py are asyncio-native. Every actor that wraps no SDK also
    runs on trio."""

    ASYNCIO = "asyncio"
    TRIO = "trio"
