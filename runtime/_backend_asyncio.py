"""The asyncio half of the mailbox's park/unpark primitive.

This and ``_backend_trio.py`` are the runtime's only backend adapters: everything else reaches the
event loop through anyio. They exist because anyio has no reusable wait primitive, and building an
``anyio.Event`` per park costs 1.2-2.2 us (ref/perf-baselines.md section 2.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class AsyncioParker:
    """Parks the single consumer task of a mailbox on a bare future (what ``asyncio.Queue`` does).

    ``park`` returns the future itself, so waiting adds no coroutine frame.
    """

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def park(self) -> Awaitable[None]:
        future = asyncio.get_running_loop().create_future()
        self._future = future
        return future

    def unpark(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)
