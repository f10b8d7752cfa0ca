"""Selects the park/unpark primitive of the running backend, once per mailbox."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

import sniffio


class Parker(Protocol):
    """Parks one consumer task until another task on the same event loop unparks it."""

    def park(self) -> Awaitable[None]:
        """Return what the consumer awaits until ``unpark`` (or cancellation)."""
        ...

    def unpark(self) -> None: ...


def new_parker() -> Parker:
    """Return a parker for the backend running the calling task."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        from ._backend_asyncio import AsyncioParker

        return AsyncioParker()
    if library == "trio":
        from ._backend_trio import TrioParker

        return TrioParker()
    raise RuntimeError(f"unsupported async library {library!r}: run under anyio (asyncio or trio)")
