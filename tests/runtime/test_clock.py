"""Clocks: the backend clock and the manually advanced virtual clock."""

from __future__ import annotations

import anyio
import pytest

from runtime import BackendClock, VirtualClock

pytestmark = pytest.mark.anyio


async def test_virtual_sleepers_wake_in_deadline_order_at_their_deadline() -> None:
    """advance() wakes each sleeper in turn, each seeing time equal to its own deadline."""
    clock = VirtualClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async with anyio.create_task_group() as tg:
        # One at a time: trio runs newly spawned tasks in no fixed order.
        for name, seconds in [
            ("late", 3.0),
            ("early", 1.0),
            ("tie-first", 2.0),
            ("tie-second", 2.0),
        ]:
            tg.start_soon(sleeper, name, seconds)
            await anyio.wait_all_tasks_blocked()
        assert clock.sleepers == 4
        await clock.advance(2.5)
        assert woke == [("early", 101.0), ("tie-first", 102.0), ("tie-second", 102.0)]
        assert clock.monotonic() == 102.5
        await clock.advance(10)
    assert [name for name, _ in woke][-1] == "late"
    assert clock.sleepers == 0


async def test_virtual_wall_time_moves_with_virtual_monotonic_time() -> None:
    """time_ns() is the epoch plus the virtual time elapsed."""
    clock = VirtualClock(epoch_ns=1_000)
    await clock.advance(1.5)
    assert clock.time_ns() == 1_000 + 1_500_000_000


async def test_a_virtual_clock_never_goes_backwards() -> None:
    """Moving time back is refused with the values involved."""
    clock = VirtualClock()
    await clock.advance(5)
    with pytest.raises(ValueError, match="cannot go backwards"):
        await clock.advance(-1)
    with pytest.raises(ValueError, match=r"from 5\.0 to 4\.0"):
        await clock.advance_to(4.0)


async def test_a_cancelled_virtual_sleeper_is_forgotten() -> None:
    """A sleeper whose scope is cancelled leaves the queue and never wakes."""
    clock = VirtualClock()
    with anyio.move_on_after(0.01):
        await clock.sleep(60)
    assert clock.sleepers == 0


async def test_the_backend_clock_follows_the_event_loop() -> None:
    """BackendClock sleeps on the loop's clock (virtual under trio's MockClock)."""
    clock = BackendClock()
    start = clock.monotonic()
    await clock.sleep(0.02)
    # uvloop's loop clock has millisecond granularity.
    assert clock.monotonic() - start >= 0.019
    assert clock.time_ns() > 1_600_000_000 * 10**9
