"""Bounded, typed mailboxes with per-message-kind policies.

The hot path is built on measurements (ref/perf-baselines.md sections 2.2, 2.3, 5.2):

* ``put_nowait``/``tell`` never yield; ``send`` yields only when the mailbox is full
  (that is the backpressure point). ``offer_nowait``/``try_tell`` never yield nor raise: a
  message that finds no room is dropped and counted.
* ``receive`` pops without a scheduler pass while messages are queued (a drain), and yields once
  every ``FAIRNESS_BUDGET`` messages so one busy actor cannot starve the others.
* An empty mailbox parks its consumer on the backend's own primitive (a bare future on asyncio,
  ``wait_task_rescheduled`` on trio): no event object is built per park.

Policies, chosen per message type:

* ``Backpressure`` (the default, for commands, orders, fills, ledger messages): never dropped.
  ``tell`` raises ``MailboxFull`` when full; ``send`` waits for room.
* ``Coalesce(key)`` (for market data): if a message with the same key is still queued, the new
  one replaces it in place (latest wins, the queue position is kept, ``coalesced`` counts it).
  If the key is not queued and the mailbox is full, the new message is dropped and ``dropped``
  counts it. Coalescing sends never wait: a feed must not stall behind a slow consumer. A
  request (``ActorRef.request``) of such a type is never coalesced or dropped: it is queued
  like a backpressure message, since its requester waits for the answer.
"""

from __future__ import annotations

import contextlib
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Hashable, Mapping
from typing import Any, Final, Generic, TypeVar, cast

import anyio
import anyio.lowlevel
import attrs

from ._envelope import Envelope
from ._errors import ActorStopped, MailboxClosed, MailboxFull
from ._park import Parker, new_parker

M = TypeVar("M")

FAIRNESS_BUDGET: Final = 256
"""Messages a consumer may take without yielding to the scheduler. 256 measured best for
throughput at 1, 10 and 100 symbols (docs/performance.md): below it a fan-out wakes each
receiver for too few messages, above it a batch's objects outgrow the CPU cache and
downstream mailboxes fill; one batch holds the loop for about 0.3 ms here."""


@attrs.frozen
class Backpressure:
    """Never drop: a full mailbox makes ``send`` wait and ``tell`` raise ``MailboxFull``."""


@attrs.frozen
class Coalesce:
    """Latest wins per ``key(message)`` while a message with that key is still queued."""

    key: Callable[[Any], Hashable]


Policy = Backpressure | Coalesce


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class MailboxConfig:
    """How an actor's mailbox is bounded and which message types coalesce."""

    capacity: int = attrs.field(default=1024, validator=_positive)
    policies: Mapping[type, Policy] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class MailboxStatistics:
    """A snapshot of one mailbox's counters."""

    name: str
    capacity: int
    depth: int
    high_water_mark: int
    enqueued: int
    processed: int
    coalesced: int
    dropped: int
    waiting_senders: int
    closed: bool


class MailboxInterrupted(Exception):
    """Raised inside ``receive`` after ``interrupt()``: the consumer is asked to stop."""


@types.coroutine
def _ready() -> Generator[Any, Any, None]:
    return
    yield  # unreachable: it makes this a generator


def _finished() -> Awaitable[None]:
    awaitable = _ready()
    for _ in awaitable:  # runs it to its end at once (it yields nothing)
        pass
    return cast("Awaitable[None]", awaitable)


READY: Final = _finished()
"""An awaitable that is already done (what ``put`` returns when the envelope is queued):
awaiting it returns None at once with no frame, no Python call and no scheduling pass. It is
a finished generator-based coroutine, which the interpreter resumes in C, returning None each
time (a native coroutine would refuse to be awaited twice); about 60 ns less per send than an
object with an ``__await__`` method."""


class Mailbox(Generic[M]):
    """A bounded multi-producer, single-consumer queue of envelopes."""

    __slots__ = (
        "name",
        "capacity",
        "_queue",
        "_fast_limit",
        "_coalesce",
        "_pending",
        "_parker",
        "_waker",
        "_unpark",
        "_send_waiters",
        "_closed",
        "_interrupted",
        "_streak",
        "_high_water",
        "_discarded",
        "_processed",
        "_coalesced",
        "_dropped",
        "host",
        "failed",
    )

    def __init__(self, name: str, config: MailboxConfig | None = None) -> None:
        config = config if config is not None else MailboxConfig()
        self.name = name
        self.capacity = config.capacity
        self._queue: deque[Envelope[M]] = deque()
        self._coalesce: dict[type, Callable[[Any], Hashable]] = {
            kind: policy.key
            for kind, policy in config.policies.items()
            if isinstance(policy, Coalesce)
        }
        self._pending: dict[Hashable, Envelope[M]] = {}
        # The depth below which a send takes the fast path (append, no policy to apply):
        # the capacity, or 0 when every send must go through ``_offer`` (a coalescing
        # mailbox, a closed one). One comparison instead of three on every hop.
        self._fast_limit = 0 if self._coalesce else self.capacity
        self._parker: Parker | None = None
        # The parker's ``unpark`` while the consumer is parked, else None: a producer pays a
        # Python call for the wake-up only when there is someone to wake (once per park).
        self._waker: Callable[[], None] | None = None
        self._unpark: Callable[[], None] | None = None
        self._send_waiters: deque[anyio.Event] = deque()
        self._closed = False
        self._interrupted = False
        self._streak = 0
        self._high_water = 0
        self._discarded = 0
        self._processed = 0
        self._coalesced = 0
        self._dropped = 0
        self.host: tuple[Callable[[Any], Any], bool, Any] | None = None
        """While a message loop consumes this mailbox: its actor's handler, whether that is a
        coroutine function, and its context (``ActorRef.request_inline``)."""
        self.failed: BaseException | None = None
        """A handler run by ``ActorRef.request_inline`` raised this: the loop raises it when
        it wakes, so the actor fails as if it had run the handler itself."""

    # -- producers -------------------------------------------------------------------------

    def put_nowait(self, envelope: Envelope[M]) -> None:
        """Queue ``envelope`` without yielding; ``MailboxFull`` if a backpressure kind is full."""
        queue = self._queue
        depth = len(queue)
        if depth >= self._fast_limit:
            if not self._offer(envelope):
                raise MailboxFull(self.name, self.capacity)
            return
        # ``_append`` inlined: one Python call less per hop on the tick path.
        queue.append(envelope)
        if depth >= self._high_water:
            self._high_water = depth + 1
        waker = self._waker
        if waker is not None:
            self._waker = None
            waker()

    def offer_nowait(self, envelope: Envelope[M]) -> bool:
        """Queue ``envelope`` without yielding, or drop it: False when it was not queued (a
        full mailbox, a closed one; ``dropped`` counts it), True when it was (or replaced a
        queued message of its coalescing key). For messages
        whose sender must never wait nor fail because of them (alerts)."""
        dropped = self._dropped
        try:
            offered = self._offer(envelope)
        except MailboxClosed:
            offered = False
        if not offered:
            self._dropped += 1
        # A coalescing kind's drop returns True from _offer, and is counted there.
        return offered and self._dropped == dropped

    def put(self, envelope: Envelope[M]) -> Awaitable[None]:
        """Queue ``envelope``, waiting for room only when a backpressure kind finds it full.

        Not a coroutine: when there is room (nearly always) the envelope is queued at once and
        an awaitable that completes without a frame or a scheduling pass is returned.
        """
        queue = self._queue
        depth = len(queue)
        if depth < self._fast_limit:
            # ``_append`` inlined, as in ``put_nowait``: this is every hop of the tick path.
            queue.append(envelope)
            if depth >= self._high_water:
                self._high_water = depth + 1
            waker = self._waker
            if waker is not None:
                self._waker = None
                waker()
            return READY
        return self._put(envelope)

    async def _put(self, envelope: Envelope[M]) -> None:
        if self._offer(envelope):
            return
        waiter = anyio.Event()
        self._send_waiters.append(waiter)
        try:
            while True:
                await waiter.wait()
                if self._offer(envelope):
                    return
                waiter = anyio.Event()
                self._send_waiters.appendleft(waiter)
        except BaseException:
            if waiter.is_set():
                # We were handed a free slot but are leaving: pass it on.
                self._wake_one_sender()
            else:
                self._remove_waiter(waiter)
            raise

    def _offer(self, envelope: Envelope[M]) -> bool:
        """Apply the envelope's policy: queue, coalesce or drop it. False only when a
        backpressure kind meets a full mailbox (nothing was queued)."""
        if self._closed:
            raise MailboxClosed(self.name)
        key_of = self._coalesce.get(type(envelope.message)) if self._coalesce else None
        if key_of is not None and envelope.correlation_id is not None:
            # A request is never coalesced: its requester waits for the answer to that message.
            # Nor may a later message of its key jump ahead of it into an older slot.
            queued = self._pending.pop((type(envelope.message), key_of(envelope.message)), None)
            if queued is not None:
                queued.coalesce_key = None
            key_of = None
        if key_of is None:
            if len(self._queue) >= self.capacity:
                return False
        else:
            key = (type(envelope.message), key_of(envelope.message))
            queued = self._pending.get(key)
            if queued is not None:
                queued.message = envelope.message
                queued.message_id = envelope.message_id
                queued.sender = envelope.sender
                queued.correlation_id = envelope.correlation_id
                queued.ts_init_ns = envelope.ts_init_ns
                queued.trace = envelope.trace
                self._coalesced += 1
                return True
            if len(self._queue) >= self.capacity:
                self._dropped += 1
                return True
            envelope.coalesce_key = key
            self._pending[key] = envelope
        self._append(envelope)
        return True

    def _append(self, envelope: Envelope[M]) -> None:
        queue = self._queue
        queue.append(envelope)
        if len(queue) > self._high_water:
            self._high_water = len(queue)
        waker = self._waker
        if waker is not None:
            self._waker = None
            waker()

    # -- the consumer ----------------------------------------------------------------------

    def take(self) -> Envelope[M] | None:
        """Take the oldest envelope without waiting, or return None when the mailbox is empty.

        Raises ``MailboxInterrupted`` once after ``interrupt()`` (before taking anything), and
        ``MailboxClosed`` when the mailbox is closed and empty.
        """
        if self._interrupted:
            self._interrupted = False
            raise MailboxInterrupted(self.name)
        queue = self._queue
        if not queue:
            if self._closed:
                raise MailboxClosed(self.name)
            return None
        envelope = queue.popleft()
        self._processed += 1
        if envelope.coalesce_key is not None:
            del self._pending[envelope.coalesce_key]
            envelope.coalesce_key = None
        if self._send_waiters:
            self._wake_one_sender()
        return envelope

    def has_news(self) -> bool:
        """Whether the consumer has something to do: a message, an interrupt or a close."""
        return bool(self._queue) or self._interrupted or self._closed

    def wait(self) -> Awaitable[None]:
        """What the consumer awaits, after ``take()`` returned None, until there is news (a
        message, an interrupt or a close). Not a coroutine: a loop that alternates ``take()``
        and ``await wait()`` builds no frame per message.
        """
        parker = self._parker
        if parker is None:
            parker = self._parker = new_parker()
            self._unpark = parker.unpark
        awaitable = parker.park()
        self._waker = self._unpark
        return awaitable

    async def receive(self) -> Envelope[M]:
        """Take the oldest envelope, parking while the mailbox is empty.

        Yields to the scheduler once every ``FAIRNESS_BUDGET`` messages taken without parking.
        Raises ``MailboxInterrupted`` once after ``interrupt()``, and ``MailboxClosed`` once the
        mailbox is closed and empty.
        """
        # Yield before taking, never after: a cancellation at the checkpoint loses nothing.
        if self._streak >= FAIRNESS_BUDGET:
            self._streak = 0
            await anyio.lowlevel.checkpoint()
        envelope = self.take()
        if envelope is not None:
            self._streak += 1
            return envelope
        self._streak = 0
        while envelope is None:
            await self.wait()
            envelope = self.take()
        return envelope

    def take_told(self) -> list[Envelope[M]]:
        """Take every queued message that is not a request, without waiting (requests stay,
        in order, for whoever answers next): for an actor that must not lose what it was
        told when it stops (``ActorContext.drain``)."""
        taken = [e for e in self._queue if e.reply is None]
        if not taken:
            return []
        kept = [e for e in self._queue if e.reply is not None]
        self._queue.clear()
        self._queue.extend(kept)
        for envelope in taken:
            if envelope.coalesce_key is not None:
                del self._pending[envelope.coalesce_key]
                envelope.coalesce_key = None
        self._processed += len(taken)
        while self._send_waiters and len(self._queue) < self.capacity:
            self._send_waiters.popleft().set()
        return taken

    def interrupt(self) -> None:
        """Make the consumer's current or next ``receive`` raise ``MailboxInterrupted`` once."""
        self._interrupted = True
        self._wake_consumer()

    def clear_interrupt(self) -> None:
        self._interrupted = False

    def close(self) -> int:
        """Close for good: queued messages are discarded and waiting requesters told.

        Returns how many queued messages were discarded.
        """
        if self._closed:
            return 0
        self._closed = True
        self._fast_limit = 0
        discarded = len(self._queue)
        self._discarded += discarded
        for envelope in self._queue:
            if envelope.reply is not None:
                envelope.reply.fail(ActorStopped(self.name))
        self._queue.clear()
        self._pending.clear()
        while self._send_waiters:
            self._send_waiters.popleft().set()
        self._wake_consumer()
        return discarded

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            name=self.name,
            capacity=self.capacity,
            depth=len(self._queue),
            high_water_mark=self._high_water,
            enqueued=self._processed + len(self._queue) + self._discarded,
            processed=self._processed,
            coalesced=self._coalesced,
            dropped=self._dropped,
            waiting_senders=len(self._send_waiters),
            closed=self._closed,
        )

    def _wake_consumer(self) -> None:
        waker = self._waker
        if waker is not None:
            self._waker = None
            waker()

    def _wake_one_sender(self) -> None:
        if self._send_waiters and len(self._queue) < self.capacity:
            self._send_waiters.popleft().set()

    def _remove_waiter(self, waiter: anyio.Event) -> None:
        with contextlib.suppress(ValueError):
            self._send_waiters.remove(waiter)
