"""The asyncio half of the mailbox's park/unpark primitive.

This and ``_backend_trio.py`` are the runtime's only backend adapters: everything else reaches the
event loop through anyio. They exist because anyio has no reusable wait primitive, and building an
``anyio.Event`` per park costs 1.2-2.2 us (ref/perf-baselines.md section 2.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ._errors import RequestTimeout
from ._reply import ReplySlot

running_loop = asyncio._get_running_loop
"""The running asyncio loop of this thread, or None (under trio, say): a C call of a few tens of
ns, where ``sniffio`` or ``get_running_loop`` (which raises) cost ten times that."""


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


class FutureReply(ReplySlot):
    """A request's reply slot on asyncio: a bare future, awaited by the requester with a loop
    timer for its timeout, where the general slot takes an ``anyio.Event`` and the request an
    ``anyio.fail_after`` scope (about 9 us of a 19 us round trip here). Filled at most once: a
    reply after the timeout, or after the requester was cancelled, is dropped."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[object]) -> None:
        # No ``super().__init__()``: the general slot's event is what this replaces.
        self.future = future

    def succeed(self, value: object) -> None:
        future = self.future
        if not future.done():
            future.set_result(value)

    def fail(self, error: BaseException) -> None:
        future = self.future
        if not future.done():
            future.set_exception(error)

    async def wait(self) -> object:
        return await self.future


def expire(future: asyncio.Future[object], actor: str, message_type: str, timeout: float) -> None:
    """The timer of a request on asyncio: no reply within ``timeout``."""
    if not future.done():
        future.set_exception(RequestTimeout(actor, message_type, timeout))
