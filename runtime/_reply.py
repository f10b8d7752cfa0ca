"""The one-shot slot a request's reply is delivered through."""

from __future__ import annotations

import anyio


class ReplySlot:
    """Holds the reply to one request: filled at most once; a reply after the timeout is dropped."""

    __slots__ = ("_done", "_value", "_error")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: object = None
        self._error: BaseException | None = None

    def succeed(self, value: object) -> None:
        if not self._done.is_set():
            self._value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> object:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
