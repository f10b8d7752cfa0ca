"""Clocks: the backend's clock for production, a manually advanced one for simulations.

``monotonic()`` is in seconds and only meaningful as a difference; ``time_ns()`` is Unix time in
nanoseconds. Actors read time through a clock so that a backtest or a deterministic simulation can
run them on virtual time. Under trio's ``MockClock`` the backend clock is itself virtual.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio


class Clock(Protocol):
    """What actors may ask of time."""

    def monotonic(self) -> float: ...

    def time_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...

    async def sleep_until(self, deadline: float) -> None: ...


class BackendClock:
    """The running event loop's clock (``anyio.current_time``) and the system's wall clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return anyio.current_time()

    def time_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)


class _Call:
    """An alarm in the sleepers' heap: woken like a sleeper's event, it calls."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], None]) -> None:
        self.call = call

    def set(self) -> None:
        self.call()

    def is_set(self) -> bool:
        return True


class VirtualClock:
    """Time that moves only when ``advance``/``advance_to`` is called.

    Sleepers wake in deadline order (ties in the order they went to sleep), each woken task
    observing ``monotonic()`` equal to its own deadline. Works on asyncio and trio.
    """

    def __init__(self, *, start: float = 0.0, epoch_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now = start
        self._start = start
        self._epoch_ns = epoch_ns
        self._sleepers: list[tuple[float, int, anyio.Event | _Call]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time_ns(self) -> int:
        return self._epoch_ns + round((self._now - self._start) * 1e9)

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(seconds, 0.0))

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        entry = (deadline, next(self._order), wake)
        heapq.heappush(self._sleepers, entry)
        try:
            await wake.wait()
        finally:
            if not wake.is_set():
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    def alarm(self, deadline: float, call: Callable[[], None]) -> None:
        """Call ``call`` when time reaches ``deadline`` (at once if it has), in deadline
        order with the sleepers, from the task moving time: what it does (a message told) is
        done before time moves on, with no task of its own to be scheduled first. Registered
        before this returns; it cannot be taken back (``call`` decides whether it still
        matters)."""
        if deadline <= self._now:
            call()
            return
        heapq.heappush(self._sleepers, (deadline, next(self._order), _Call(call)))

    def quiet_until(self, target: float) -> bool:
        """Whether no sleeper or alarm is due by ``target`` (``move_to`` would move there)."""
        sleepers = self._sleepers
        return not sleepers or sleepers[0][0] > target

    def move_to(self, target: float) -> bool:
        """Move time to ``target`` at once if no sleeper or alarm is due by then (True);
        otherwise leave it (False: ``advance_to`` wakes them in turn). What a caller stepping
        time at every event spares itself the coroutine of ``advance_to`` with."""
        if target < self._now:
            raise ValueError(f"a clock cannot go backwards (from {self._now} to {target})")
        sleepers = self._sleepers
        if sleepers and sleepers[0][0] <= target:
            return False
        self._now = target
        return True

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, letting each woken sleeper run in turn."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds})")
        await self.advance_to(self._now + seconds)

    async def advance_to(
        self, target: float, *, settle: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Move time to ``target``, waking the sleepers due by then in deadline order: each
        runs (and what it wakes runs) before time moves on. ``settle`` says when that is done
        (awaited after the woken task's first step); by default, once every task is blocked
        (``anyio.wait_all_tasks_blocked``, which polls every task of the loop)."""
        if target < self._now:
            raise ValueError(f"a clock cannot go backwards (from {self._now} to {target})")
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self._now = deadline
            wake.set()
            # Let the woken task (and what it wakes) run before time moves on.
            if settle is None:
                await anyio.wait_all_tasks_blocked()
            else:
                await anyio.lowlevel.checkpoint()
                await settle()
        self._now = target
