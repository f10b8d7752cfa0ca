"""Mailboxes: ordering, policies, statistics, draining and parking."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from time import perf_counter_ns

import anyio
import attrs
import pytest
import trio

from runtime import (
    FAIRNESS_BUDGET,
    ActorStopped,
    Coalesce,
    Envelope,
    Mailbox,
    MailboxClosed,
    MailboxConfig,
    MailboxFull,
    MailboxInterrupted,
)
from runtime._envelope import next_message_id
from runtime._reply import ReplySlot

pytestmark = pytest.mark.anyio


@attrs.frozen
class Tick:
    symbol: str
    price: int


@attrs.frozen
class Fill:
    exec_id: str


def env(message: object) -> Envelope[object]:
    return Envelope(message, next_message_id(), None, None, perf_counter_ns())


def market_data_mailbox(capacity: int = 8) -> Mailbox[object]:
    return Mailbox(
        "md", MailboxConfig(capacity=capacity, policies={Tick: Coalesce(key=lambda t: t.symbol)})
    )


async def test_messages_are_received_in_the_order_they_were_sent() -> None:
    """A backpressure mailbox is FIFO."""
    mailbox: Mailbox[object] = Mailbox("m", MailboxConfig(capacity=100))
    for i in range(50):
        mailbox.put_nowait(env(Fill(exec_id=str(i))))
    received = [(await mailbox.receive()).message for _ in range(50)]
    assert received == [Fill(exec_id=str(i)) for i in range(50)]


async def test_tell_on_a_full_mailbox_raises_and_drops_nothing() -> None:
    """Backpressure kinds are never dropped: a full mailbox refuses instead."""
    mailbox: Mailbox[object] = Mailbox("orders", MailboxConfig(capacity=2))
    mailbox.put_nowait(env(Fill(exec_id="a")))
    mailbox.put_nowait(env(Fill(exec_id="b")))
    with pytest.raises(MailboxFull, match="'orders' is full"):
        mailbox.put_nowait(env(Fill(exec_id="c")))
    stats = mailbox.statistics()
    assert (stats.depth, stats.dropped, stats.enqueued) == (2, 0, 2)


async def test_send_waits_for_room_and_delivers_everything_in_order() -> None:
    """A producer faster than its consumer is held back, and nothing is lost or reordered."""
    mailbox: Mailbox[object] = Mailbox("fills", MailboxConfig(capacity=3))
    received: list[object] = []

    async def produce() -> None:
        for i in range(40):
            await mailbox.put(env(Fill(exec_id=str(i))))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            for _ in range(40):
                received.append((await mailbox.receive()).message)
                await anyio.lowlevel.checkpoint()
    assert received == [Fill(exec_id=str(i)) for i in range(40)]
    stats = mailbox.statistics()
    assert stats.high_water_mark == 3
    assert stats.dropped == 0
    assert stats.processed == 40


async def test_a_send_with_room_queues_at_once_and_never_yields_to_the_scheduler() -> None:
    """``await put()`` with room costs no scheduling pass (the hot path of every hop): no other
    task runs while a producer sends into mailboxes that have room, and the messages are queued
    before the await; coalescing kinds go through the policy and queue at once too."""
    plain: Mailbox[object] = Mailbox("orders", MailboxConfig(capacity=100))
    coalescing = market_data_mailbox(capacity=100)
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        for i in range(50):
            pending = plain.put(env(Fill(exec_id=str(i))))
            assert len(plain) == i + 1
            await pending
            await coalescing.put(env(Tick(symbol=f"S{i % 5}", price=i)))
        assert not ran
    assert ran
    assert len(coalescing) == 5


async def test_a_queued_tick_is_replaced_in_place_by_a_newer_one_for_its_key() -> None:
    """Coalescing: latest wins per symbol, the queue position is kept, others are untouched."""
    mailbox = market_data_mailbox()
    mailbox.put_nowait(env(Tick("TQQQ", 1)))
    mailbox.put_nowait(env(Fill(exec_id="x")))
    mailbox.put_nowait(env(Tick("QQQ", 10)))
    mailbox.put_nowait(env(Tick("TQQQ", 2)))
    mailbox.put_nowait(env(Tick("TQQQ", 3)))
    received = [(await mailbox.receive()).message for _ in range(3)]
    assert received == [Tick("TQQQ", 3), Fill(exec_id="x"), Tick("QQQ", 10)]
    assert mailbox.statistics().coalesced == 2
    # Once taken, the key is free again: the next tick queues normally.
    mailbox.put_nowait(env(Tick("TQQQ", 4)))
    assert (await mailbox.receive()).message == Tick("TQQQ", 4)


async def test_a_coalesced_envelope_carries_the_newest_stamp_and_trace() -> None:
    """The envelope that survives coalescing describes the newest message, not the first."""
    mailbox = market_data_mailbox()
    first = Envelope(Tick("TQQQ", 1), 1, "feed-1", None, 100, trace="t1")
    newest = Envelope(Tick("TQQQ", 2), 2, "feed-2", None, 200, trace="t2")
    mailbox.put_nowait(first)
    mailbox.put_nowait(newest)
    got = await mailbox.receive()
    assert (got.message, got.message_id, got.sender, got.ts_init_ns, got.trace) == (
        Tick("TQQQ", 2),
        2,
        "feed-2",
        200,
        "t2",
    )


async def test_a_request_is_never_coalesced_nor_coalesced_into() -> None:
    """A coalescing kind sent as a request keeps its place and its answer: a later tick of its
    key queues behind it instead of replacing it, and it does not replace a queued tick."""
    mailbox = market_data_mailbox()
    mailbox.put_nowait(env(Tick("TQQQ", 1)))
    mailbox.put_nowait(Envelope(Tick("TQQQ", 2), next_message_id(), None, 7, perf_counter_ns()))
    mailbox.put_nowait(env(Tick("TQQQ", 3)))
    mailbox.put_nowait(env(Tick("TQQQ", 4)))
    got = [await mailbox.receive() for _ in range(3)]
    assert [(e.message, e.correlation_id) for e in got] == [
        (Tick("TQQQ", 1), None),
        (Tick("TQQQ", 2), 7),
        (Tick("TQQQ", 4), None),
    ]
    assert mailbox.statistics().coalesced == 1


async def test_a_new_key_meeting_a_full_mailbox_is_dropped_and_counted() -> None:
    """Market data never blocks the feed: with no slot to coalesce into, the tick is dropped."""
    mailbox = market_data_mailbox(capacity=2)
    mailbox.put_nowait(env(Tick("A", 1)))
    mailbox.put_nowait(env(Tick("B", 1)))
    mailbox.put_nowait(env(Tick("C", 1)))
    mailbox.put_nowait(env(Tick("A", 2)))
    stats = mailbox.statistics()
    assert (stats.depth, stats.dropped, stats.coalesced) == (2, 1, 1)
    assert [(await mailbox.receive()).message for _ in range(2)] == [Tick("A", 2), Tick("B", 1)]


async def test_a_full_mailbox_still_refuses_backpressure_kinds_beside_coalescing_ones() -> None:
    """Policies are per message kind: a fill is never dropped even where ticks coalesce."""
    mailbox = market_data_mailbox(capacity=1)
    mailbox.put_nowait(env(Tick("A", 1)))
    with pytest.raises(MailboxFull):
        mailbox.put_nowait(env(Fill(exec_id="f")))


async def test_statistics_track_depth_high_water_and_processed() -> None:
    """statistics() reports what happened to the mailbox."""
    mailbox: Mailbox[object] = Mailbox("s", MailboxConfig(capacity=10))
    for i in range(6):
        mailbox.put_nowait(env(i))
    for _ in range(4):
        await mailbox.receive()
    stats = mailbox.statistics()
    assert (stats.depth, stats.high_water_mark, stats.processed, stats.enqueued) == (2, 6, 4, 6)
    assert stats.capacity == 10
    assert not stats.closed


async def test_queued_messages_are_drained_without_a_scheduler_pass_each() -> None:
    """While messages are queued, receive() does not yield: no other task runs in between."""
    mailbox: Mailbox[object] = Mailbox("drain", MailboxConfig(capacity=FAIRNESS_BUDGET * 2))
    runs = 0

    async def other_task() -> None:
        nonlocal runs
        while True:
            runs += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        for i in range(FAIRNESS_BUDGET - 1):
            mailbox.put_nowait(env(i))
        before = runs
        for _ in range(FAIRNESS_BUDGET - 1):
            await mailbox.receive()
        assert runs == before
        tg.cancel_scope.cancel()


async def test_a_long_drain_yields_once_per_fairness_budget() -> None:
    """One busy actor cannot starve the others: every FAIRNESS_BUDGET messages it yields."""
    count = FAIRNESS_BUDGET * 6 + 1  # five yields; trio's shuffled batches may hide some
    mailbox: Mailbox[object] = Mailbox("fair", MailboxConfig(capacity=count))
    runs = 0

    async def other_task() -> None:
        nonlocal runs
        while True:
            runs += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        for i in range(count):
            mailbox.put_nowait(env(i))
        before = runs
        for _ in range(count):
            await mailbox.receive()
        assert runs - before >= 2
        tg.cancel_scope.cancel()


async def test_parking_builds_no_event_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty mailbox parks its consumer on the backend primitive, not on a new Event."""
    built: list[str] = []

    def spy(name: str, original: Callable[..., object]) -> Callable[..., object]:
        def build(*args: object, **kwargs: object) -> object:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("runtime"):
                built.append(f"{name} from {caller}")
            return original(*args, **kwargs)

        return build

    mailbox: Mailbox[object] = Mailbox("park", MailboxConfig(capacity=4))
    received: list[object] = []

    async def consume() -> None:
        for _ in range(20):
            received.append((await mailbox.receive()).message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        monkeypatch.setattr(anyio, "Event", spy("anyio.Event", anyio.Event))
        monkeypatch.setattr(asyncio, "Event", spy("asyncio.Event", asyncio.Event))
        monkeypatch.setattr(trio, "Event", spy("trio.Event", trio.Event))
        for i in range(20):
            mailbox.put_nowait(env(i))
            await anyio.wait_all_tasks_blocked()
    assert received == list(range(20))
    assert built == []


async def test_interrupt_wakes_a_parked_consumer_once() -> None:
    """interrupt() makes the pending receive raise, then the mailbox works as before."""
    mailbox: Mailbox[object] = Mailbox("int", MailboxConfig(capacity=4))
    outcome: list[str] = []

    async def consume() -> None:
        try:
            await mailbox.receive()
        except MailboxInterrupted:
            outcome.append("interrupted")
        outcome.append(str((await mailbox.receive()).message))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        mailbox.interrupt()
        await anyio.wait_all_tasks_blocked()
        mailbox.put_nowait(env("after"))
    assert outcome == ["interrupted", "after"]


async def test_a_cancelled_receive_leaves_the_mailbox_usable() -> None:
    """Cancelling a parked consumer loses nothing; the next receive gets the next message."""
    mailbox: Mailbox[object] = Mailbox("cancel", MailboxConfig(capacity=4))
    with anyio.move_on_after(0.01):
        await mailbox.receive()
    mailbox.put_nowait(env("x"))
    with anyio.fail_after(1):
        assert (await mailbox.receive()).message == "x"


async def test_a_cancelled_waiting_sender_passes_its_slot_on() -> None:
    """A sender woken for a free slot but cancelled hands the slot to the next waiter."""
    mailbox: Mailbox[object] = Mailbox("slots", MailboxConfig(capacity=1))
    mailbox.put_nowait(env("first"))
    delivered: list[str] = []

    async def sender(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            await mailbox.put(env(name))
            delivered.append(name)

    first_scope, second_scope = anyio.CancelScope(), anyio.CancelScope()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender, "a", first_scope)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(sender, "b", second_scope)
            await anyio.wait_all_tasks_blocked()
            assert (await mailbox.receive()).message == "first"
            # "a" was handed the slot; cancelled now, it may still have used it (asyncio) or
            # leave without it (trio). Either way "b" must get in: no slot is lost.
            first_scope.cancel()
            received = [(await mailbox.receive()).message]
            if received[0] == "a":
                received.append((await mailbox.receive()).message)
    assert received[-1] == "b"
    assert delivered == received


async def test_closing_fails_queued_requests_and_refuses_new_messages() -> None:
    """A mailbox closed for good tells requesters and senders instead of hanging them."""
    mailbox: Mailbox[object] = Mailbox("gone", MailboxConfig(capacity=4))
    reply = ReplySlot()
    mailbox.put_nowait(Envelope("q", 1, None, 1, perf_counter_ns(), None, reply))
    mailbox.put_nowait(env("plain"))
    assert mailbox.close() == 2
    with pytest.raises(ActorStopped, match="'gone'"):
        await reply.wait()
    with pytest.raises(MailboxClosed, match="'gone'"):
        mailbox.put_nowait(env("late"))
    with pytest.raises(MailboxClosed):
        await mailbox.receive()
    assert mailbox.statistics().closed


async def test_closing_releases_senders_waiting_for_room() -> None:
    """A sender blocked on a full mailbox gets MailboxClosed when it closes."""
    mailbox: Mailbox[object] = Mailbox("full", MailboxConfig(capacity=1))
    mailbox.put_nowait(env("x"))
    errors: list[BaseException] = []

    async def blocked_sender() -> None:
        try:
            await mailbox.put(env("y"))
        except MailboxClosed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked_sender)
        await anyio.wait_all_tasks_blocked()
        assert mailbox.statistics().waiting_senders == 1
        mailbox.close()
    assert len(errors) == 1


def test_capacity_must_be_positive() -> None:
    """A mailbox with no room is a configuration error, named."""
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        MailboxConfig(capacity=0)


def test_a_mailbox_parks_its_consumer_again_under_a_later_event_loop() -> None:
    """The asyncio parker keeps its event loop (looking it up costs a third of a park); a
    mailbox that outlives that loop parks its consumer in the next one."""
    mailbox: Mailbox[object] = Mailbox("m", MailboxConfig(capacity=4))

    async def one_round(exec_id: str) -> object:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_put_later, mailbox, exec_id)
            return (await mailbox.receive()).message  # parks: the mailbox is empty

    for round_ in range(2):
        received = anyio.run(one_round, str(round_), backend="asyncio")
        assert received == Fill(exec_id=str(round_))


async def _put_later(mailbox: Mailbox[object], exec_id: str) -> None:
    await anyio.sleep(0.01)
    mailbox.put_nowait(env(Fill(exec_id=exec_id)))


async def test_offer_nowait_drops_and_counts_instead_of_refusing_or_waiting() -> None:
    """A full backpressure mailbox makes ``offer_nowait`` drop the message (False, counted),
    where ``put_nowait`` would raise; once there is room again it queues."""
    mailbox: Mailbox[object] = Mailbox("alerts", MailboxConfig(capacity=2))
    assert mailbox.offer_nowait(env(Fill(exec_id="1")))
    assert mailbox.offer_nowait(env(Fill(exec_id="2")))
    assert not mailbox.offer_nowait(env(Fill(exec_id="3")))
    stats = mailbox.statistics()
    assert (stats.depth, stats.dropped, stats.waiting_senders) == (2, 1, 0)
    assert mailbox.take() is not None
    assert mailbox.offer_nowait(env(Fill(exec_id="4")))
    received = [mailbox.take(), mailbox.take()]
    assert [e.message for e in received if e is not None] == [
        Fill(exec_id="2"),
        Fill(exec_id="4"),
    ]


async def test_offer_nowait_to_a_closed_mailbox_drops_without_raising() -> None:
    """An actor stopped for good does not make its senders fail: the offer is dropped."""
    mailbox: Mailbox[object] = Mailbox("alerts", MailboxConfig(capacity=2))
    mailbox.close()
    assert not mailbox.offer_nowait(env(Fill(exec_id="1")))
    assert mailbox.statistics().dropped == 1


async def test_offer_nowait_reports_a_coalescing_drop_as_not_queued() -> None:
    """A new market-data key meeting a full mailbox is dropped (once counted), and
    ``offer_nowait`` says so; a coalesced one was taken in."""
    mailbox = market_data_mailbox(capacity=1)
    assert mailbox.offer_nowait(env(Tick("A", 1)))
    assert mailbox.offer_nowait(env(Tick("A", 2)))
    assert not mailbox.offer_nowait(env(Tick("B", 1)))
    stats = mailbox.statistics()
    assert (stats.depth, stats.dropped, stats.coalesced) == (1, 1, 1)
