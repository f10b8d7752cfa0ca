"""``ActorRef.request_inline``: a request whose handler the calling task runs when the actor is
idle, as the actor's next message would be handled: the same reply, the same context, one
message at a time (what is sent meanwhile waits, then is handled in order by the actor's own
loop), a crash that fails the actor; when the actor is busy, an ordinary request."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from runtime import Actor, ActorCell, ActorCrashed, LifecycleState, RequestTimeout

pytestmark = pytest.mark.anyio


@attrs.frozen
class Ask:
    n: int


@attrs.frozen
class Slow:
    """Handled over several awaits (as a symbol actor awaits the lot-keeper)."""

    n: int
    gate: anyio.Event


@attrs.frozen
class Boom:
    pass


class Host(Actor[Ask | Slow | Boom]):
    """Records, for each message, which task handled it and whether another was in progress."""

    def __init__(self, log: list[tuple[str, int, object]]) -> None:
        self.log = log
        self.inside = False

    async def handle(self, message: Ask | Slow | Boom) -> object:
        assert not self.inside, "two messages handled at once"
        self.inside = True
        try:
            task = anyio.get_current_task().id
            match message:
                case Ask(n=n):
                    envelope = self.context.envelope
                    assert envelope is not None
                    assert envelope.message is message
                    self.log.append(("ask", n, task))
                    return n * 10
                case Slow(n=n, gate=gate):
                    self.log.append(("slow", n, task))
                    await gate.wait()
                    await anyio.lowlevel.checkpoint()
                    return n
                case Boom():
                    raise ValueError("boom")
        finally:
            self.inside = False


async def _idle(cell: ActorCell[Any]) -> None:
    while not cell.ref.idle:
        await anyio.lowlevel.checkpoint()


async def test_an_idle_actors_handler_runs_in_the_calling_task_with_its_context() -> None:
    log: list[tuple[str, int, object]] = []
    cell = ActorCell("host", lambda: Host(log))
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await _idle(cell)
        me = anyio.get_current_task().id
        assert await cell.ref.request_inline(Ask(1), timeout=5) == 10
        assert await cell.ref.request(Ask(2), timeout=5) == 20
        cell.request_stop()
    assert [(kind, n) for kind, n, _ in log] == [("ask", 1), ("ask", 2)]
    assert log[0][2] == me, "the idle actor's handler ran in the caller's task"
    assert log[1][2] != me, "an ordinary request is handled by the actor's own task"
    assert cell.ref.statistics().processed == 2


async def test_what_is_sent_meanwhile_waits_and_is_handled_after_in_order() -> None:
    log: list[tuple[str, int, object]] = []
    cell = ActorCell("host", lambda: Host(log))
    gate = anyio.Event()
    replies: list[object] = []
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await _idle(cell)

        async def inline() -> None:
            replies.append(await cell.ref.request_inline(Slow(1, gate), timeout=5))

        async def others() -> None:
            # Sent while the inline handler awaits: queued, not handled yet, and the actor
            # is not idle (a lockstep harness must not take the tree for settled).
            while not log:
                await anyio.lowlevel.checkpoint()
            cell.ref.tell(Ask(2))
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            assert not cell.ref.idle
            assert [n for _, n, _ in log] == [1]
            # Busy: a second inline request is an ordinary one, answered after the rest.
            tg.start_soon(_answer, cell, Ask(3), replies)
            gate.set()

        tg.start_soon(inline)
        tg.start_soon(others)
        with anyio.fail_after(5):
            while len(replies) < 2:
                await anyio.lowlevel.checkpoint()
        await _idle(cell)
        cell.request_stop()
    assert [n for _, n, _ in log] == [1, 2, 3]
    assert replies == [1, 30]


async def _answer(cell: ActorCell[Any], message: Ask, replies: list[object]) -> None:
    replies.append(await cell.ref.request_inline(message, timeout=5))


async def test_a_busy_actor_gets_an_ordinary_request() -> None:
    log: list[tuple[str, int, object]] = []
    cell = ActorCell("host", lambda: Host(log))
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        cell.ref.tell(Slow(1, gate))
        while not log:
            await anyio.lowlevel.checkpoint()
        me = anyio.get_current_task().id
        gate.set()
        assert await cell.ref.request_inline(Ask(2), timeout=5) == 20
        cell.request_stop()
    assert log[1][:2] == ("ask", 2)
    assert log[1][2] != me


async def test_a_crash_inline_fails_the_actor_and_tells_the_caller() -> None:
    log: list[tuple[str, int, object]] = []
    cell = ActorCell("fragile", lambda: Host(log))
    with pytest.RaisesGroup(ValueError):
        async with anyio.create_task_group() as tg:
            await tg.start(cell.run)
            await _idle(cell)
            with pytest.raises(ActorCrashed, match="'fragile' crashed while handling Boom") as info:
                await cell.ref.request_inline(Boom(), timeout=5)
            assert isinstance(info.value.__cause__, ValueError)
            with anyio.fail_after(5):
                while cell.state is not LifecycleState.FAILED:
                    await anyio.lowlevel.checkpoint()
    assert cell.state is LifecycleState.FAILED
    # The next incarnation serves inline again.
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await _idle(cell)
        assert await cell.ref.request_inline(Ask(4), timeout=5) == 40
        cell.request_stop()
    assert cell.restarts == 1


async def test_a_stopped_actor_answers_no_inline_request() -> None:
    cell = ActorCell("gone", lambda: Host([]))
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await _idle(cell)
        cell.request_stop()
    with pytest.raises(RequestTimeout, match="'gone' did not answer Ask"):
        await cell.ref.request_inline(Ask(1), timeout=0.5)
