"""Actors in a cell: request/reply, context propagation, restarts keep the mailbox, lifecycle."""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any

import anyio
import attrs
import pytest

from runtime import (
    FAIRNESS_BUDGET,
    Actor,
    ActorCell,
    ActorCrashed,
    ActorRef,
    Coalesce,
    Envelope,
    LifecycleState,
    MailboxClosed,
    MailboxConfig,
    Request,
    RequestTimeout,
)

pytestmark = pytest.mark.anyio


@attrs.frozen
class Ping:
    n: int


@attrs.frozen
class Hang:
    pass


@attrs.frozen
class Boom:
    pass


@attrs.frozen
class Forward:
    to: ActorRef[Any]
    payload: object


class Worker(Actor[Ping | Hang | Boom | Forward]):
    """Answers pings with (n, incarnation); hangs or raises on demand; records what it saw."""

    def __init__(self, seen: list[tuple[int, object]]) -> None:
        self.seen = seen

    async def handle(self, message: Ping | Hang | Boom | Forward) -> object:
        match message:
            case Ping(n=n):
                self.seen.append((self.context.incarnation, n))
                return (n, self.context.incarnation)
            case Hang():
                await anyio.sleep_forever()
            case Boom():
                raise ValueError("boom")
            case Forward(to=to, payload=payload):
                self.context.tell(to, payload)
        return None


class Recorder(Actor[object]):
    def __init__(self, envelopes: list[Envelope[object]]) -> None:
        self.envelopes = envelopes

    def handle(self, message: object) -> None:
        assert self.context.envelope is not None
        self.envelopes.append(self.context.envelope)


async def test_a_request_returns_what_the_handler_returned() -> None:
    """request() is ask: the reply is the handler's return value."""
    cell = ActorCell("worker", lambda: Worker([]))
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(Ping(7), timeout=5) == (7, 1)
        cell.request_stop()
    assert cell.state is LifecycleState.STOPPED


@attrs.frozen(kw_only=True)
class Square(Request[int]):
    n: int


class Squarer(Actor[Square]):
    async def handle(self, message: Square) -> int:
        return message.n * message.n


async def test_a_request_message_names_its_reply_and_stays_plain_data() -> None:
    """A Request[int] message is answered with the int (its type to mypy: runtime.Request);
    the base adds no field, no slot and no __dict__ to a slotted attrs message."""
    assert [f.name for f in attrs.fields(Square)] == ["n"]
    assert Square.__slots__ == ("n", "__weakref__")
    assert not hasattr(Square(n=2), "__dict__")
    assert Square(n=2) == Square(n=2)
    cell = ActorCell("squarer", Squarer)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(Square(n=12), timeout=5) == 144
        cell.request_stop()


async def test_a_request_that_gets_no_reply_times_out_naming_the_actor() -> None:
    """RequestTimeout says which actor did not answer which message, within how long."""
    cell = ActorCell("slowpoke", lambda: Worker([]))
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        cell.ref.tell(Hang())
        with pytest.raises(RequestTimeout, match=r"'slowpoke' did not answer Ping within 0\.05 s"):
            await cell.ref.request(Ping(1), timeout=0.05)
        tg.cancel_scope.cancel()


async def test_a_request_to_a_crashing_handler_raises_actor_crashed_with_the_cause() -> None:
    """The requester learns the actor crashed and why; the actor itself fails."""
    cell = ActorCell("fragile", lambda: Worker([]))
    with pytest.RaisesGroup(ValueError):
        async with anyio.create_task_group() as tg:
            await tg.start(cell.run)
            with pytest.raises(ActorCrashed, match="'fragile' crashed while handling Boom") as info:
                await cell.ref.request(Boom(), timeout=5)
            assert isinstance(info.value.__cause__, ValueError)
    assert cell.state is LifecycleState.FAILED


async def test_messages_queued_while_an_actor_restarts_reach_the_next_incarnation() -> None:
    """The mailbox outlives the crash: only the poison message is lost."""
    seen: list[tuple[int, object]] = []
    cell = ActorCell("phoenix", lambda: Worker(seen))
    cell.ref.tell(Ping(1))
    cell.ref.tell(Boom())
    cell.ref.tell(Ping(2))
    cell.ref.tell(Ping(3))
    with pytest.raises(ValueError, match="boom"):
        await cell.run()
    assert cell.state is LifecycleState.FAILED
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(Ping(4), timeout=5) == (4, 2)
        cell.request_stop()
    assert seen == [(1, 1), (2, 2), (2, 3), (2, 4)]
    assert cell.restarts == 1


async def test_context_tell_carries_sender_correlation_and_trace_forward() -> None:
    """A message sent while handling another keeps its causal chain (for tracing)."""
    envelopes: list[Envelope[object]] = []
    recorder = ActorCell("recorder", lambda: Recorder(envelopes))
    worker = ActorCell("worker", lambda: Worker([]))
    async with anyio.create_task_group() as tg:
        await tg.start(recorder.run)
        await tg.start(worker.run)
        before = perf_counter_ns()
        worker.ref.tell(Forward(recorder.ref, "hello"), correlation_id=42, trace={"span": "abc"})
        await worker.ref.request(Ping(0), timeout=5)
        await anyio.wait_all_tasks_blocked()
        recorder.request_stop()
        worker.request_stop()
    (got,) = envelopes
    assert got.message == "hello"
    assert got.sender is worker.ref
    assert got.correlation_id == 42
    assert got.trace == {"span": "abc"}
    assert got.ts_init_ns >= before


async def test_an_uncorrelated_message_starts_a_chain_named_by_its_own_id() -> None:
    """Without a correlation id, follow-ups are correlated to the originating message id."""
    envelopes: list[Envelope[object]] = []
    recorder = ActorCell("recorder", lambda: Recorder(envelopes))
    worker = ActorCell("worker", lambda: Worker([]))
    async with anyio.create_task_group() as tg:
        await tg.start(recorder.run)
        await tg.start(worker.run)
        worker.ref.tell(Forward(recorder.ref, "x"))
        await anyio.wait_all_tasks_blocked()
        recorder.request_stop()
        worker.request_stop()
    (got,) = envelopes
    assert got.correlation_id is not None
    assert got.correlation_id < got.message_id


async def test_plain_function_handlers_are_supported_beside_async_ones() -> None:
    """A handler that never awaits may be a plain def, and can still answer requests."""

    class Adder(Actor[int]):
        def handle(self, message: int) -> int:
            return message + 1

    cell = ActorCell("adder", Adder)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(41, timeout=5) == 42
        cell.request_stop()


async def test_stop_self_finishes_the_message_runs_on_stop_and_exits_normally() -> None:
    """stop_self() is a normal exit: on_stop runs, the cell is STOPPED."""
    events: list[str] = []

    class Quitter(Actor[str]):
        async def on_start(self) -> None:
            events.append("start")

        def handle(self, message: str) -> None:
            events.append(message)
            self.context.stop_self()

        async def on_stop(self) -> None:
            events.append("stop")

    cell = ActorCell("quitter", Quitter)
    cell.ref.tell("bye")
    cell.ref.tell("never")
    await cell.run()
    assert events == ["start", "bye", "stop"]
    assert cell.state is LifecycleState.STOPPED
    assert len(cell.mailbox) == 1


async def test_a_crashing_background_activity_crashes_the_actor() -> None:
    """background() is part of the incarnation: its exception is the actor's crash."""

    class Feed(Actor[None]):
        def handle(self, message: None) -> None:
            return None

        async def background(self) -> None:
            await anyio.sleep(0.01)
            raise ConnectionError("feed lost")

    cell = ActorCell("feed", Feed)
    with pytest.RaisesGroup(ConnectionError, flatten_subgroups=True):
        await cell.run()
    assert cell.state is LifecycleState.FAILED


async def test_a_factory_that_raises_is_a_crash_and_the_cell_can_be_restarted() -> None:
    """Regression: a raising factory left the cell in 'starting', so its restart failed."""
    attempts: list[int] = []

    class Echo(Actor[str]):
        def handle(self, message: str) -> str:
            return message

    def factory() -> Echo:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("bad configuration")
        return Echo()

    cell = ActorCell("echo", factory)
    with pytest.raises(ValueError, match="bad configuration"):
        await cell.run()
    assert cell.state is LifecycleState.FAILED
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request("again", timeout=5) == "again"
        cell.request_stop()
    assert cell.state is LifecycleState.STOPPED


async def test_a_graceful_stop_cancels_the_background_activity_and_runs_on_stop() -> None:
    """Stopping an actor with a background loop ends the loop and still calls on_stop."""
    events: list[str] = []

    class Ticker(Actor[None]):
        def handle(self, message: None) -> None:
            return None

        async def background(self) -> None:
            try:
                await anyio.sleep_forever()
            finally:
                events.append("background ended")

        async def on_stop(self) -> None:
            events.append("on_stop")

    cell = ActorCell("ticker", Ticker)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        cell.request_stop()
    assert events == ["background ended", "on_stop"]
    assert cell.state is LifecycleState.STOPPED


async def test_an_actor_outside_a_cell_has_no_context() -> None:
    """Using context outside a running cell is a clear error, not an AttributeError."""
    with pytest.raises(RuntimeError, match="Worker is not running in an actor cell"):
        _ = Worker([]).context


async def test_a_flooded_actor_does_not_starve_its_neighbours() -> None:
    """Draining is batched, but a busy actor yields every FAIRNESS_BUDGET messages."""
    order: list[str] = []

    class Recorder2(Actor[str]):
        def handle(self, message: str) -> None:
            order.append(message)

    busy = ActorCell("busy", Recorder2, mailbox=MailboxConfig(capacity=2000))
    quiet = ActorCell("quiet", Recorder2)
    async with anyio.create_task_group() as tg:
        await tg.start(busy.run)
        await tg.start(quiet.run)
        for i in range(1000):
            busy.ref.tell(f"busy {i}")
        quiet.ref.tell("quiet")
        with anyio.fail_after(5):
            while len(order) < 1001:
                await anyio.lowlevel.checkpoint()
        busy.request_stop()
        quiet.request_stop()
    assert order.index("quiet") < 1000 - FAIRNESS_BUDGET


async def test_a_reply_arriving_after_the_timeout_is_dropped_and_the_actor_carries_on() -> None:
    """The slow request times out; its late reply harms nothing; the next request is answered."""

    class Slow(Actor[float]):
        async def handle(self, message: float) -> float:
            await anyio.sleep(message)
            return message

    cell = ActorCell("slow", Slow)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        with pytest.raises(RequestTimeout):
            await cell.ref.request(0.2, timeout=0.01)
        assert await cell.ref.request(0.0, timeout=5) == 0.0
        assert cell.state is LifecycleState.RUNNING
        cell.request_stop()


async def test_try_tell_drops_into_a_full_mailbox_and_never_waits() -> None:
    """``try_tell`` queues while there is room, then drops and counts: the sender goes on
    at once (no checkpoint is needed for it to return), and the actor gets what was queued."""
    seen: list[tuple[int, object]] = []
    cell = ActorCell("w", lambda: Worker(seen), mailbox=MailboxConfig(capacity=3))
    results = [cell.ref.try_tell(Ping(n)) for n in range(5)]
    assert results == [True, True, True, False, False]
    assert cell.ref.statistics().dropped == 2
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(Ping(9), timeout=5) == (9, 1)
        cell.request_stop()
    assert seen == [(1, 0), (1, 1), (1, 2), (1, 9)]


async def test_on_stop_can_drain_what_was_told_and_leaves_requests_queued() -> None:
    """``context.drain()`` in ``on_stop`` takes the told messages left in the mailbox, in
    order; a request stays for the next incarnation, which answers it."""
    drained: list[object] = []
    gate = anyio.Event()

    class Drainer(Actor[Ping]):
        async def handle(self, message: Ping) -> object:
            if message.n < 0:
                await gate.wait()
            return message.n

        async def on_stop(self) -> None:
            drained.extend(self.context.drain())

    cell = ActorCell("d", Drainer)
    async with anyio.create_task_group() as outer:
        async with anyio.create_task_group() as first:
            await first.start(cell.run)
            cell.ref.tell(Ping(-1))
            await anyio.wait_all_tasks_blocked()  # handling Ping(-1), behind the gate
            cell.ref.tell(Ping(1))
            outer.start_soon(_ask, cell, 3)
            await anyio.wait_all_tasks_blocked()  # the request is queued
            cell.ref.tell(Ping(2))
            cell.request_stop()
            gate.set()
        assert drained == [Ping(1), Ping(2)]
        assert len(cell.mailbox) == 1
        async with anyio.create_task_group() as second:
            await second.start(cell.run)
            await anyio.wait_all_tasks_blocked()  # the request answered
            assert len(cell.mailbox) == 0
            cell.request_stop()


async def _ask(cell: ActorCell[Any], n: int) -> None:
    assert await cell.ref.request(Ping(n), timeout=5) == n


async def test_a_request_through_a_coalescing_mailbox_is_answered_and_times_out() -> None:
    """A mailbox with a coalescing kind takes a request through its policy (never coalescing
    it): the answer comes back, and a request behind a hung handler times out naming it."""
    config = MailboxConfig(policies={Ping: Coalesce(key=lambda p: "all")})
    cell = ActorCell("coalescing", lambda: Worker([]), mailbox=config)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(Ping(1), timeout=5) == (1, 1)
        cell.ref.tell(Ping(2))
        cell.ref.tell(Ping(3))  # coalesces into Ping(2): a tell may
        assert await cell.ref.request(Ping(4), timeout=5) == (4, 1)
        cell.ref.tell(Hang())
        with pytest.raises(RequestTimeout, match=r"'coalescing' did not answer Ping within"):
            await cell.ref.request(Ping(5), timeout=0.05)
        tg.cancel_scope.cancel()


async def test_a_request_meeting_a_full_mailbox_waits_for_room_within_its_timeout() -> None:
    """With no room the requester waits for a slot (the wait counts in the timeout), then for
    its answer; a request to an actor stopped for good is refused (MailboxClosed)."""
    seen: list[tuple[int, object]] = []
    cell = ActorCell("narrow", lambda: Worker(seen), mailbox=MailboxConfig(capacity=1))
    cell.ref.tell(Ping(1))  # fills the mailbox before the actor runs
    with pytest.raises(RequestTimeout):
        await cell.ref.request(Ping(2), timeout=0.05)  # never gets a slot
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        assert await cell.ref.request(Ping(3), timeout=5) == (3, 1)
        cell.request_stop()
    cell.mailbox.close()
    with pytest.raises(MailboxClosed):
        await cell.ref.request(Ping(4), timeout=5)
    assert [n for _, n in seen] == [1, 3]


async def test_a_cancelled_requester_leaves_the_actor_answering_others() -> None:
    """A requester cancelled while it waits drops the answer when it comes; the actor carries
    on, and the next request is answered."""
    cell = ActorCell("patient", lambda: Worker([]))
    gate = anyio.Event()

    class Slow(Actor[object]):
        async def handle(self, message: object) -> object:
            await gate.wait()
            return message

    slow = ActorCell("slow", Slow)
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await tg.start(slow.run)
        with anyio.move_on_after(0.05) as scope:
            await slow.ref.request("first", timeout=5)
        assert scope.cancelled_caught
        gate.set()
        assert await slow.ref.request("second", timeout=5) == "second"
        assert await cell.ref.request(Ping(9), timeout=5) == (9, 1)
        tg.cancel_scope.cancel()


async def test_idle_means_parked_with_nothing_queued() -> None:
    """A ref is idle only while its actor waits for messages with none queued: not before it
    runs, not with a message queued, not in the middle of a handler."""
    gate = anyio.Event()
    inside = anyio.Event()

    class Gated(Actor[str]):
        async def handle(self, message: str) -> None:
            inside.set()
            await gate.wait()

    cell = ActorCell("gated", Gated)
    assert not cell.ref.idle  # not started: it waits for nothing yet
    async with anyio.create_task_group() as tg:
        await tg.start(cell.run)
        await anyio.wait_all_tasks_blocked()
        assert cell.ref.idle
        cell.ref.tell("work")
        assert not cell.ref.idle  # queued
        await inside.wait()
        assert not cell.ref.idle  # handling
        gate.set()
        await anyio.wait_all_tasks_blocked()
        assert cell.ref.idle
        tg.cancel_scope.cancel()
