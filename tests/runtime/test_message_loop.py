"""The drain-batch message loop of an actor cell: it pops queued messages itself and handles
them without a scheduler pass each, yet keeps every mailbox semantic one message at a time had:
a stop or a crash in the middle of a batch loses and repeats nothing, a message still queued
behind the one being handled can be coalesced, a sender waiting for room is let in, the
statistics count what was handled, and the loop parks once per batch."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from runtime import (
    FAIRNESS_BUDGET,
    Actor,
    ActorCell,
    ActorCrashed,
    Coalesce,
    LifecycleState,
    Mailbox,
    MailboxConfig,
)

pytestmark = pytest.mark.anyio


@attrs.frozen
class Tick:
    symbol: str
    price: int


class Recorder(Actor[Any]):
    """A plain (sync) handler: records each message; stops itself or raises on demand."""

    def __init__(self, seen: list[object], *, stop_at: object = None, fail_at: object = None):
        self.seen = seen
        self.stop_at = stop_at
        self.fail_at = fail_at

    def handle(self, message: object) -> object:
        if message == self.fail_at:
            raise ValueError(f"failed on {message!r}")
        self.seen.append(message)
        if message == self.stop_at:
            self.context.stop_self()
        return message


async def test_a_stop_in_the_middle_of_a_batch_leaves_the_rest_queued_for_the_next_run() -> None:
    """Ten messages queued before the actor runs form one batch; the handler of the third asks
    to stop: nothing after it is handled, all seven stay queued in order, and the next
    incarnation handles exactly those (none lost, none twice)."""
    seen: list[object] = []
    cell = ActorCell("stopper", lambda: Recorder(seen, stop_at=3))
    for i in range(1, 11):
        cell.ref.tell(i)
    await cell.run()
    assert seen == [1, 2, 3]
    assert cell.state is LifecycleState.STOPPED
    assert len(cell.mailbox) == 7
    assert cell.ref.statistics().processed == 3
    seen.clear()
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(11, timeout=5) == 11
        cell.request_stop()
    assert seen == [4, 5, 6, 7, 8, 9, 10, 11]
    assert cell.ref.statistics().processed == 11


async def test_an_async_handler_stopped_from_outside_mid_batch_finishes_only_its_message() -> None:
    """request_stop() from another task while an async handler awaits, with more queued
    behind it: that handler finishes, then the loop ends before taking the next one."""
    seen: list[int] = []
    release = anyio.Event()

    class Slow(Actor[int]):
        async def handle(self, message: int) -> None:
            if message == 2:
                await release.wait()
            seen.append(message)

    cell = ActorCell("slow", Slow)
    for i in range(1, 6):
        cell.ref.tell(i)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await anyio.wait_all_tasks_blocked()
        assert seen == [1]
        cell.request_stop()
        release.set()
    assert seen == [1, 2]
    assert len(cell.mailbox) == 3
    assert cell.state is LifecycleState.STOPPED


async def test_a_crash_in_the_middle_of_a_batch_loses_only_the_failing_message() -> None:
    """The request that crashes gets ActorCrashed; what was queued behind it in the same batch
    is handled, in order, by the next incarnation."""
    seen: list[object] = []
    cell = ActorCell("crasher", lambda: Recorder(seen, fail_at="boom"))
    for i in range(3):
        cell.ref.tell(i)
    crashed: list[BaseException] = []

    async def ask() -> None:
        try:
            await cell.ref.request("boom", timeout=5)
        except ActorCrashed as exc:
            crashed.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        for i in range(3, 6):
            cell.ref.tell(i)
        with pytest.raises(ValueError, match="failed on 'boom'"):
            await cell.run()
    assert seen == [0, 1, 2]
    assert len(crashed) == 1
    assert isinstance(crashed[0].__cause__, ValueError)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request("last", timeout=5) == "last"
        cell.request_stop()
    assert seen == [0, 1, 2, 3, 4, 5, "last"]


async def test_a_tick_queued_behind_the_one_being_handled_is_still_coalesced() -> None:
    """The batch leaves envelopes in the mailbox until their turn: a newer tick for a key that
    waits behind the message being handled replaces it in place (latest wins)."""
    seen: list[Tick] = []
    release = anyio.Event()

    class Quotes(Actor[Tick]):
        async def handle(self, message: Tick) -> None:
            if message.symbol == "A":
                await release.wait()
            seen.append(message)

    cell = ActorCell(
        "quotes",
        Quotes,
        mailbox=MailboxConfig(policies={Tick: Coalesce(key=lambda t: t.symbol)}),
    )
    cell.ref.tell(Tick("A", 1))
    cell.ref.tell(Tick("B", 1))
    cell.ref.tell(Tick("C", 1))
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await anyio.wait_all_tasks_blocked()
        cell.ref.tell(Tick("B", 2))
        cell.ref.tell(Tick("B", 3))
        release.set()
        await anyio.wait_all_tasks_blocked()
        cell.request_stop()
    assert seen == [Tick("A", 1), Tick("B", 3), Tick("C", 1)]
    assert cell.ref.statistics().coalesced == 2
    assert cell.ref.statistics().processed == 3


async def test_senders_waiting_for_room_get_in_as_the_batch_drains() -> None:
    """Backpressure through the batch: a capacity of 2, two producers sending 50 messages each
    with ``send``; every message arrives once, each producer's in order, and the mailbox never
    holds more than 2."""
    seen: list[object] = []
    cell = ActorCell("narrow", lambda: Recorder(seen), mailbox=MailboxConfig(capacity=2))

    async def produce(name: str) -> None:
        for i in range(50):
            await cell.ref.send((name, i))

    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        tg.start_soon(produce, "a")
        tg.start_soon(produce, "b")
        with anyio.fail_after(5):
            while len(seen) < 100:
                await anyio.lowlevel.checkpoint()
        cell.request_stop()
    for name in "ab":
        assert [m for m in seen if isinstance(m, tuple) and m[0] == name] == [
            (name, i) for i in range(50)
        ]
    assert len(seen) == 100
    stats = cell.ref.statistics()
    assert stats.high_water_mark == 2
    assert stats.processed == 100
    assert stats.waiting_senders == 0


async def test_a_batch_parks_once_and_yields_once_per_fairness_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2 * FAIRNESS_BUDGET + 10 messages queued at once are handled with no park in between
    (one park, when the mailbox is empty again), and other tasks run only every
    FAIRNESS_BUDGET messages while the batch is under way."""
    count = 2 * FAIRNESS_BUDGET + 10
    parks = 0
    original_wait = Mailbox.wait

    def counting_wait(self: Mailbox[Any]) -> Any:
        nonlocal parks
        parks += 1
        return original_wait(self)

    monkeypatch.setattr(Mailbox, "wait", counting_wait)
    seen: list[object] = []
    observed: list[int] = []
    cell = ActorCell("batch", lambda: Recorder(seen), mailbox=MailboxConfig(capacity=count))
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await anyio.wait_all_tasks_blocked()
        parks_before = parks
        for i in range(count):
            cell.ref.tell(i)
        with anyio.fail_after(5):
            while len(seen) < count:
                await anyio.lowlevel.checkpoint()
                observed.append(len(seen))
        await anyio.wait_all_tasks_blocked()
        assert parks - parks_before == 1
        cell.request_stop()
    assert seen == list(range(count))
    # This task ran while the batch was under way, and only at the budget's yields.
    mid_batch = [n for n in observed if 0 < n < count]
    assert mid_batch
    assert all(n % FAIRNESS_BUDGET == 0 for n in mid_batch)


async def test_sends_from_a_handler_carry_the_chain_and_count_the_high_water_mark() -> None:
    """The inlined fast path of ``send`` keeps what ``Mailbox.put`` did: the envelope carries
    sender, correlation and trace forward, the depth's high-water mark is counted, a parked
    consumer is woken."""
    got: list[tuple[object, object, object, object]] = []

    class Sink(Actor[int]):
        def handle(self, message: int) -> None:
            envelope = self.context.envelope
            assert envelope is not None
            got.append((message, envelope.sender, envelope.correlation_id, envelope.trace))

    sink = ActorCell("sink", Sink)

    class Fan(Actor[int]):
        async def handle(self, message: int) -> None:
            for i in range(message):
                await self.context.send(sink.ref, i)

    fan = ActorCell("fan", Fan)
    async with anyio.create_task_group() as tg:
        await tg.start(sink.run)
        await tg.start(fan.run)
        await anyio.wait_all_tasks_blocked()
        await fan.ref.send(5, trace="span-1")
        with anyio.fail_after(5):
            while len(got) < 5:
                await anyio.lowlevel.checkpoint()
        sink.request_stop()
        fan.request_stop()
    first = fan.ref.statistics()
    assert first.processed == 1
    assert [g[0] for g in got] == [0, 1, 2, 3, 4]
    assert {g[1] for g in got} == {fan.ref}
    assert len({g[2] for g in got}) == 1
    assert got[0][2] is not None
    assert {g[3] for g in got} == {"span-1"}
    assert sink.ref.statistics().high_water_mark == 5


class Gatherer(Actor[Any]):
    """Takes the messages queued behind the one it handles (``take_next``) and handles them as
    one run, answering each request it took itself; "stop" asks for a stop first."""

    def __init__(self, runs: list[list[object]]) -> None:
        self.runs = runs

    def handle(self, message: object) -> object:
        if message == "stop":
            self.context.stop_self()
        run = [message]
        while (envelope := self.context.take_next()) is not None:
            run.append(envelope.message)
            if envelope.reply is not None:
                envelope.reply.succeed(("taken", envelope.message))
        self.runs.append(run)
        return ("handled", message)


async def test_take_next_hands_over_the_queued_messages_and_never_takes_past_a_stop() -> None:
    """A handler takes what is queued behind it with ``take_next``: the whole queue in arrival
    order, requests answered by the taker, the statistics counting each as processed; once a
    stop is asked for it takes nothing more, and what is still queued waits for the next
    incarnation."""
    runs: list[list[object]] = []
    cell = ActorCell("gatherer", lambda: Gatherer(runs))
    replies: dict[str, object] = {}

    async def ask(message: str) -> None:
        replies[message] = await cell.ref.request(message, timeout=5)

    for i in range(1, 3):
        cell.ref.tell(i)
    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "a")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask, "b")
        await anyio.wait_all_tasks_blocked()
        cell.ref.tell(3)
        await tg.start(cell.run)
        await anyio.wait_all_tasks_blocked()
        assert runs == [[1, 2, "a", "b", 3]]
        assert replies == {"a": ("taken", "a"), "b": ("taken", "b")}
        assert cell.ref.statistics().processed == 5
        assert await cell.ref.request("c", timeout=5) == ("handled", "c")
        for message in ("stop", 4, 5):
            cell.ref.tell(message)
    assert runs[-1] == ["stop"]
    assert cell.state is LifecycleState.STOPPED
    assert len(cell.mailbox) == 2
