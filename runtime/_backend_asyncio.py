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

    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        # Looked up once: ``get_running_loop`` costs about 170 ns here, a third of a park.
        self._loop = asyncio.get_running_loop()

    def park(self) -> Awaitable[None]:
        loop = self._loop
        if loop.is_closed():  # the mailbox outlived its event loop: parked again in a new one
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._future = future
        return future

    def unpark(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)
