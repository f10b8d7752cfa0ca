"""The trio half of the mailbox's park/unpark primitive (see ``_backend_asyncio.py``)."""

from __future__ import annotations

from collections.abc import Awaitable

import trio


class TrioParker:
    """Parks the single consumer task with ``wait_task_rescheduled``: no object per park."""

    __slots__ = ("_task", "_abort")

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None
        self._abort = self._on_abort

    def park(self) -> Awaitable[None]:
        self._task = trio.lowlevel.current_task()
        # Returned, not awaited: the mailbox awaits it, saving a coroutine frame per park.
        return trio.lowlevel.wait_task_rescheduled(self._abort)  # noqa: ASYNC105

    def _on_abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED

    def unpark(self) -> None:
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)
