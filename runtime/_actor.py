"""Actors, the references used to reach them, and the cell that runs their incarnations."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from time import perf_counter_ns
from typing import Any, Generic, TypeVar, overload

import anyio
import anyio.lowlevel

from ._backend_asyncio import FutureReply, expire, running_loop
from ._clock import BackendClock, Clock
from ._envelope import Envelope, next_message_id
from ._errors import ActorCrashed, ActorRuntimeError, MailboxClosed, RequestTimeout
from ._lifecycle import Lifecycle, LifecycleEvent, LifecycleState
from ._logcontext import LOG_ACTOR, LOG_TRACE
from ._mailbox import (
    FAIRNESS_BUDGET,
    READY,
    Mailbox,
    MailboxConfig,
    MailboxInterrupted,
    MailboxStatistics,
)
from ._reply import ReplySlot

M = TypeVar("M")
N = TypeVar("N")
R = TypeVar("R")

log = logging.getLogger("actortrade.runtime")

_CARRIED: Any = object()
"""``ActorContext.send``'s default: carry the current message's trace context forward."""


class Request(Generic[R]):
    """Base of a message its actor answers (``ActorRef.request``) with an ``R``: subclass it as
    ``class Describe(Request[SymbolView])``, and ``await ref.request(Describe(), ...)`` is a
    ``SymbolView`` to the type checker. Data only: it adds no field and no slot."""

    __slots__ = ()


class ActorRef(Generic[M]):
    """The only way to reach an actor: a stable address that survives its restarts.

    ``M`` is the actor's inbox type (usually a union of message classes), so a type checker
    rejects a message the actor does not handle.
    """

    __slots__ = ("name", "_mailbox")

    def __init__(self, name: str, mailbox: Mailbox[M]) -> None:
        self.name = name
        self._mailbox = mailbox

    def tell(
        self,
        message: M,
        *,
        sender: ActorRef[Any] | None = None,
        correlation_id: int | None = None,
        trace: object | None = None,
    ) -> None:
        """Queue ``message`` without waiting.

        Raises ``MailboxFull`` when a backpressure message meets a full mailbox (use ``send``).
        """
        self._mailbox.put_nowait(
            Envelope(message, next_message_id(), sender, correlation_id, perf_counter_ns(), trace)
        )

    def try_tell(self, message: M, *, sender: ActorRef[Any] | None = None) -> bool:
        """Queue ``message`` without waiting, or drop it: returns False, and the mailbox's
        ``dropped`` statistic counts it, when the mailbox is full or its actor stopped for
        good. Never waits, never raises: for messages a sender must not be held up by (an
        alert from the trading path)."""
        return self._mailbox.offer_nowait(
            Envelope(message, next_message_id(), sender, None, perf_counter_ns(), None)
        )

    def send(
        self,
        message: M,
        *,
        sender: ActorRef[Any] | None = None,
        correlation_id: int | None = None,
        trace: object | None = None,
    ) -> Awaitable[None]:
        """Queue ``message``, waiting only while a backpressure message meets a full mailbox.

        Await the result. Not a coroutine: with room in the mailbox (nearly always) the message
        is queued before this returns, and awaiting costs no frame and no scheduling pass.
        """
        envelope = Envelope(
            message, next_message_id(), sender, correlation_id, perf_counter_ns(), trace
        )
        # ``Mailbox.put``'s fast path inlined, as in ``ActorContext.send``.
        mailbox = self._mailbox
        queue = mailbox._queue
        depth = len(queue)
        if depth < mailbox._fast_limit:
            queue.append(envelope)
            if depth >= mailbox._high_water:
                mailbox._high_water = depth + 1
            waker = mailbox._waker
            if waker is not None:
                mailbox._waker = None
                waker()
            return READY
        return mailbox.put(envelope)

    @overload
    async def request(
        self,
        message: Request[R],
        *,
        timeout: float,  # noqa: ASYNC109 - a request/reply timeout is part of the contract
        sender: ActorRef[Any] | None = None,
        trace: object | None = None,
    ) -> R: ...

    @overload
    async def request(
        self,
        message: M,
        *,
        timeout: float,  # noqa: ASYNC109 - a request/reply timeout is part of the contract
        sender: ActorRef[Any] | None = None,
        trace: object | None = None,
    ) -> Any: ...

    async def request(
        self,
        message: Any,
        *,
        timeout: float,  # noqa: ASYNC109 - a request/reply timeout is part of the contract
        sender: ActorRef[Any] | None = None,
        trace: object | None = None,
    ) -> Any:
        """Send ``message`` and return the handler's return value: an ``R`` when the message is
        a ``Request[R]``.

        Raises ``RequestTimeout`` if no reply arrives within ``timeout`` seconds (time spent
        waiting for mailbox room counts), ``ActorCrashed`` if the handler raised, and
        ``ActorStopped`` if the actor stopped for good first.
        """
        mailbox = self._mailbox
        loop = running_loop()
        if loop is None:
            return await self._request(message, timeout, sender, trace)
        # On asyncio, when the mailbox takes the envelope without waiting (nearly always): the
        # reply is awaited on a bare future with a loop timer.
        future = loop.create_future()
        message_id = next_message_id()
        envelope = Envelope(
            message, message_id, sender, message_id, perf_counter_ns(), trace, FutureReply(future)
        )
        if len(mailbox._queue) < mailbox._fast_limit:
            mailbox._append(envelope)
        else:
            # A coalescing kind (which never coalesces a request) or a full mailbox: its
            # policy decides; one that would make the requester wait, or is closed, goes the
            # general way (and raises there as it would have).
            try:
                offered = mailbox._offer(envelope)
            except MailboxClosed:
                offered = False
            if not offered:
                return await self._request(message, timeout, sender, trace)
        timer = loop.call_later(timeout, expire, future, self.name, type(message).__name__, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def request_inline(
        self,
        message: Any,
        *,
        timeout: float,  # noqa: ASYNC109 - bounds the ordinary request it falls back to
    ) -> Any:
        """``request``, with the handler run by the calling task when the actor is idle (its
        loop parked, nothing queued): a lockstep harness on virtual time (a backtest's
        replay) spares itself the two task switches of a round trip, which cost more than
        most handlers. The handler runs as the actor's next message would, in its context;
        the actor's own loop stays parked meanwhile (what is sent to it queues, and is
        handled after, in order). If the handler raises, the caller gets ``ActorCrashed`` and
        the actor fails with the error, as if it had run the handler itself. When the actor
        is not idle (busy, stopping, closed): an ordinary ``request``. ``timeout`` bounds
        that request only: a handler run here is not interrupted."""
        mailbox = self._mailbox
        host = mailbox.host
        waker = mailbox._waker
        if (
            host is None
            or waker is None
            or mailbox._queue
            or mailbox._interrupted
            or mailbox._closed
            or mailbox.failed is not None
        ):
            return await self.request(message, timeout=timeout)
        handle, is_async, context = host
        mailbox._waker = None  # sends queue without waking the loop (and it is not idle)
        message_id = next_message_id()
        previous = context.envelope
        context.envelope = Envelope(
            message, message_id, None, message_id, perf_counter_ns(), None, None
        )
        mailbox._processed += 1
        try:
            result = await handle(message) if is_async else handle(message)
        except Exception as exc:
            mailbox.failed = exc
            waker()  # the loop wakes and raises it
            crashed = ActorCrashed(self.name, type(message).__name__)
            raise crashed from exc
        except BaseException:
            # The caller was cancelled: the loop takes over what is queued.
            waker()
            raise
        finally:
            context.envelope = previous
        if mailbox.has_news():  # sent, stopped or closed while the handler awaited
            waker()
        else:
            mailbox._waker = waker
        return result

    async def _request(
        self,
        message: Any,
        timeout: float,  # noqa: ASYNC109 - a request/reply timeout is part of the contract
        sender: ActorRef[Any] | None,
        trace: object | None,
    ) -> Any:
        # Any backend, any mailbox state: the wait for room and for the reply in one scope.
        reply = ReplySlot()
        message_id = next_message_id()
        envelope = Envelope(
            message, message_id, sender, message_id, perf_counter_ns(), trace, reply
        )
        try:
            with anyio.fail_after(timeout):
                await self._mailbox.put(envelope)
                return await reply.wait()
        except TimeoutError as exc:
            if isinstance(exc, ActorRuntimeError):
                raise
            raise RequestTimeout(self.name, type(message).__name__, timeout) from None

    def statistics(self) -> MailboxStatistics:
        return self._mailbox.statistics()

    @property
    def idle(self) -> bool:
        """Whether the actor is parked for want of messages, none queued: it has handled all
        that was sent to it and waits for nothing else. For a harness that steps a tree
        deterministically (``actors.replay_feed``) and must know nothing is in flight: an
        actor in the middle of a handler, or awaiting a reply, a timer or a thread, is not
        idle."""
        mailbox = self._mailbox
        return mailbox._waker is not None and not mailbox._queue

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"


def all_idle(refs: Iterable[ActorRef[Any]]) -> bool:
    """Whether every one of ``refs`` is ``idle``: the check a lockstep harness makes at every
    step, without a property call per actor."""
    for ref in refs:
        mailbox = ref._mailbox
        if mailbox._waker is None or mailbox._queue:
            return False
    return True


class ActorContext(Generic[M]):
    """What a running actor knows about itself: its ref, clock, incarnation, current envelope."""

    __slots__ = ("self_ref", "clock", "incarnation", "envelope", "_cell")

    def __init__(
        self, cell: ActorCell[M], self_ref: ActorRef[M], clock: Clock, incarnation: int
    ) -> None:
        self._cell = cell
        self.self_ref = self_ref
        self.clock = clock
        self.incarnation = incarnation
        self.envelope: Envelope[M] | None = None

    @property
    def name(self) -> str:
        return self.self_ref.name

    def tell(self, target: ActorRef[N], message: N) -> None:
        """``target.tell(message)`` with this actor as sender and the current message's
        correlation id and trace context carried forward (the causal chain of a decision)."""
        current = self.envelope
        if current is None:
            envelope = Envelope(message, next_message_id(), self.self_ref, None, perf_counter_ns())
        else:
            envelope = Envelope(
                message,
                next_message_id(),
                self.self_ref,
                current.correlation_id or current.message_id,
                perf_counter_ns(),
                current.trace,
            )
        target._mailbox.put_nowait(envelope)

    def send(
        self, target: ActorRef[N], message: N, *, trace: object | None = _CARRIED
    ) -> Awaitable[None]:
        """Like ``tell`` but waits for room in a full mailbox (backpressure): await the result.
        ``trace``, when given, replaces the trace context carried forward (a span the sender
        opened for it)."""
        current = self.envelope
        if current is None:
            envelope = Envelope(
                message,
                next_message_id(),
                self.self_ref,
                None,
                perf_counter_ns(),
                None if trace is _CARRIED else trace,
            )
        else:
            envelope = Envelope(
                message,
                next_message_id(),
                self.self_ref,
                current.correlation_id or current.message_id,
                perf_counter_ns(),
                current.trace if trace is _CARRIED else trace,
            )
        # ``Mailbox.put``'s fast path inlined (one Python call less on every actor-to-actor
        # hop); anything but "there is room and no policy to apply" goes through ``put``.
        mailbox = target._mailbox
        queue = mailbox._queue
        depth = len(queue)
        if depth < mailbox._fast_limit:
            queue.append(envelope)
            if depth >= mailbox._high_water:
                mailbox._high_water = depth + 1
            waker = mailbox._waker
            if waker is not None:
                mailbox._waker = None
                waker()
            return READY
        return mailbox.put(envelope)

    def drain(self) -> list[M]:
        """The messages told to this actor and not handled yet, taken from its mailbox without
        waiting (requests stay queued): for an ``on_stop`` that must act on them, as the
        alerts actor delivers the alerts it was told while the tree stopped."""
        return [envelope.message for envelope in self._cell.mailbox.take_told()]

    def take_next(self) -> Envelope[M] | None:
        """The next message queued for this actor, taken from its mailbox without waiting and
        without the message loop: None when there is none, or when a stop has been asked for
        (the stop is left to the message loop, so nothing is taken after it). The caller now
        owns the envelope: it handles it and, for a request, answers its ``reply`` itself. For
        an actor that handles a run of queued messages as one (the lot-keeper's transactions);
        mailbox policies, counts and backpressure stay as the message loop would leave them."""
        mailbox = self._cell.mailbox
        if not mailbox._queue or mailbox._interrupted:
            return None
        return mailbox.take()

    def stop_self(self) -> None:
        """Finish the current message, run ``on_stop`` and exit normally."""
        self._cell.request_stop()


class Actor(Generic[M]):
    """Base class for actors. Subclass, type the inbox, implement ``handle``.

    One incarnation handles one message at a time, so a handler never races itself. A fresh
    instance is built for each incarnation; durable state is rebuilt in ``on_start``.

    ``background``, when overridden, runs beside the message loop for the incarnation's lifetime
    (a feed's read loop, say); if it raises, the actor crashes; it is cancelled on stop.
    """

    context: ActorContext[M]
    """Set by the cell for the incarnation's lifetime. A plain attribute, not a property: it is
    read on every send from a handler."""

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, i.e. for ``context`` outside a cell.
        if name == "context":
            raise RuntimeError(f"{type(self).__name__} is not running in an actor cell")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def on_start(self) -> None:
        """Rebuild state before the first message. An exception here is a crash."""

    def handle(self, message: M) -> Awaitable[object] | object:
        """Handle one message; the return value is the reply when the message was a request.

        Write it as ``async def`` when it awaits, or as a plain ``def`` when it never does: a
        plain handler skips building a coroutine per message (about 0.25 us a hop).
        """
        raise NotImplementedError(f"{type(self).__name__}.handle")

    async def on_stop(self) -> None:
        """Flush and persist on a graceful stop (not called when the incarnation is killed)."""

    async def background(self) -> None:
        """Optional long-running activity beside the message loop (not run unless overridden)."""


class ActorCell(Generic[M]):
    """Owns an actor's mailbox, ref and lifecycle, and runs one incarnation at a time.

    The mailbox, and so the ref, outlive incarnations: messages queued while an actor restarts
    are handled by the next incarnation. Only the message being handled when it crashed is lost
    (its requester, if any, gets ``ActorCrashed``).
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], Actor[M]],
        *,
        mailbox: MailboxConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.mailbox: Mailbox[M] = Mailbox(name, mailbox)
        self.ref: ActorRef[M] = ActorRef(name, self.mailbox)
        self.clock: Clock = clock if clock is not None else BackendClock()
        self.lifecycle = Lifecycle(name)
        self.incarnation = 0
        self.restarts = 0
        self._stop_requested = False

    @property
    def state(self) -> LifecycleState:
        return self.lifecycle.state

    def request_stop(self) -> None:
        """Ask the running incarnation to stop after its current message."""
        self._stop_requested = True
        self.mailbox.interrupt()

    async def run(
        self, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run one incarnation until it stops (returns) or crashes (raises).

        ``task_status.started()`` is called once ``on_start`` has completed.
        """
        if self.lifecycle.state is LifecycleState.NEW:
            self.lifecycle.fire(LifecycleEvent.START)
        else:
            self.restarts += 1
            self.lifecycle.fire(LifecycleEvent.RESTART)
        self.incarnation += 1
        self._stop_requested = False
        self.mailbox.clear_interrupt()
        try:
            # A factory that raises is a crash of this incarnation like any other.
            actor = self.factory()
        except Exception:
            self.lifecycle.fire(LifecycleEvent.FAIL)
            raise
        context = ActorContext(self, self.ref, self.clock, self.incarnation)
        actor.context = context
        # Once per incarnation, in the actor's own task: every log line it writes names it.
        named = LOG_ACTOR.set(self.name)
        try:
            await actor.on_start()
            if self._stop_requested:
                self.lifecycle.fire(LifecycleEvent.STOP)
                task_status.started()
            else:
                self.lifecycle.fire(LifecycleEvent.STARTED)
                task_status.started()
                if type(actor).background is Actor.background:
                    await self._message_loop(actor, context)
                else:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._background, actor)
                        await self._message_loop(actor, context)
                        tg.cancel_scope.cancel()
                self.lifecycle.fire(LifecycleEvent.STOP)
            await actor.on_stop()
            self.lifecycle.fire(LifecycleEvent.STOPPED)
        except Exception:
            self.lifecycle.fire(LifecycleEvent.FAIL)
            raise
        except BaseException:
            # Cancelled, whoever cancelled it (a kill, a forced stop, an enclosing scope):
            # the incarnation is gone without on_stop.
            self.lifecycle.fire(LifecycleEvent.KILL)
            raise
        finally:
            context.envelope = None
            del actor.context
            LOG_ACTOR.reset(named)

    async def _background(self, actor: Actor[M]) -> None:
        await actor.background()

    async def _traced(
        self, handle: Callable[[M], Any], is_async: bool, envelope: Envelope[M]
    ) -> None:
        # The message loop's handling of one message, with its trace context current.
        token = LOG_TRACE.set(envelope.trace)
        try:
            reply = envelope.reply
            if reply is None:
                if is_async:
                    await handle(envelope.message)
                else:
                    handle(envelope.message)
                return
            try:
                result = await handle(envelope.message) if is_async else handle(envelope.message)
            except Exception as exc:
                crashed = ActorCrashed(self.name, type(envelope.message).__name__)
                crashed.__cause__ = exc
                reply.fail(crashed)
                raise
            except BaseException:
                reply.fail(ActorCrashed(self.name, type(envelope.message).__name__))
                raise
            reply.succeed(result)
        finally:
            LOG_TRACE.reset(token)

    async def _message_loop(self, actor: Actor[M], context: ActorContext[M]) -> None:
        # A drain-batch loop. While the mailbox holds messages and no interrupt is pending,
        # it pops them straight off the mailbox's deque (``Mailbox.take``'s work inlined: no
        # Python call per message), runs a sync handler with no await and awaits an async one.
        # Every FAIRNESS_BUDGET messages handled without parking it yields once, so a busy
        # actor cannot starve the others. When the mailbox is empty (or interrupted, or
        # closed) it goes through ``take()``, which raises for an interrupt or a close and
        # returns None when there is nothing to do: then it parks on the mailbox's parker,
        # awaited directly, so no coroutine is built per park. An envelope stays queued until
        # the one before it is handled: a stop, a coalescing replacement or a crash sees
        # exactly what taking one message at a time would.
        mailbox = self.mailbox
        take = mailbox.take
        wait = mailbox.wait
        queue = mailbox._queue
        pending = mailbox._pending
        handle: Callable[[M], Any] = actor.handle
        is_async = inspect.iscoroutinefunction(handle)
        name = self.name
        handled = 0
        mailbox.host = (handle, is_async, context)
        try:
            while True:
                if queue and not mailbox._interrupted:
                    if handled >= FAIRNESS_BUDGET:
                        # Before taking, never after: a cancellation here loses no message.
                        handled = 0
                        await anyio.lowlevel.checkpoint()
                        continue
                    envelope = queue.popleft()
                    mailbox._processed += 1
                    if envelope.coalesce_key is not None:
                        del pending[envelope.coalesce_key]
                        envelope.coalesce_key = None
                    if mailbox._send_waiters:
                        mailbox._wake_one_sender()
                elif not queue and not mailbox._interrupted and not mailbox._closed:
                    # Nothing to do (what take() would say with None): park until there is.
                    handled = 0
                    await wait()
                    if mailbox.failed is not None:
                        failed, mailbox.failed = mailbox.failed, None
                        raise failed
                    continue
                else:
                    # request_stop() interrupts the mailbox: take() raises MailboxInterrupted
                    # before anything else is taken (and MailboxClosed once it is closed).
                    try:
                        taken = take()
                    except MailboxInterrupted:
                        if self._stop_requested:
                            return
                        continue
                    if taken is None:
                        handled = 0
                        await wait()
                        continue
                    envelope = taken
                handled += 1
                context.envelope = envelope
                if envelope.trace is not None:
                    # Its log lines name its trace (``LOG_TRACE``); one without (a tick, nearly
                    # always) pays this test only.
                    await self._traced(handle, is_async, envelope)
                    continue
                reply = envelope.reply
                if reply is None:
                    if is_async:
                        await handle(envelope.message)
                    else:
                        handle(envelope.message)
                else:
                    try:
                        result = (
                            await handle(envelope.message) if is_async else handle(envelope.message)
                        )
                    except Exception as exc:
                        crashed = ActorCrashed(name, type(envelope.message).__name__)
                        crashed.__cause__ = exc
                        reply.fail(crashed)
                        raise
                    except BaseException:
                        reply.fail(ActorCrashed(name, type(envelope.message).__name__))
                        raise
                    reply.succeed(result)
        finally:
            mailbox.host = None
