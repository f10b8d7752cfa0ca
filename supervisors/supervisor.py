"""The async shell of a supervisor: starts children in task groups it owns, applies the pure
decisions of ``strategies.decide`` and reports its tree.

Stopping a child is graceful first (the actor finishes its message and runs ``on_stop``), then
bounded by the child's ``shutdown`` seconds, then forced (its cancel scope is cancelled).
Cancellation from above is never treated as a crash: the supervisor and its children just stop.

A start in progress is abandoned (the starting child cancelled, its exit not reported) when a
sibling whose restart would restart it anyway exits meanwhile (an earlier one under
rest_for_one, any under one_for_all): a child whose ``on_start`` waits on a sibling that has
died would otherwise hold the supervisor until its request timed out, with that sibling's exit
unhandled. A stop requested meanwhile is passed on to a starting sub-supervisor.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from time import perf_counter_ns
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from runtime import (
    Action,
    ActorCell,
    Envelope,
    ExitHandled,
    Hooks,
    Mailbox,
    MailboxConfig,
    MailboxStatistics,
    SupervisorHooks,
    Unrecoverable,
)

from . import strategies
from ._errors import ChildKeepsFailing, ChildUnrecoverable, RestartIntensityExceeded
from .spec import ChildSpec, ExitReason, Strategy, SupervisorSpec

log = logging.getLogger("actortrade.supervisor")


@attrs.frozen(kw_only=True)
class ChildStatus:
    """One node of the supervision tree, as ``actorctl status`` shows it."""

    id: str
    kind: str
    """``actor`` or ``supervisor``."""
    state: str
    restarts: int
    last_exit: str | None
    mailbox: MailboxStatistics | None = None
    children: tuple[ChildStatus, ...] = ()


class _Incarnation:
    __slots__ = (
        "number",
        "scope",
        "done",
        "reason",
        "error",
        "terminating",
        "killed",
        "abandoned",
        "pending",
        "up_since",
        "sub",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.reason: ExitReason | None = None
        self.error: BaseException | None = None
        self.terminating = False
        self.killed = False
        self.abandoned = False
        """Its start was abandoned (see the module doc)."""
        self.pending = False
        """Its exit waits in the supervisor's events, not handled yet."""
        self.up_since: float | None = None
        """When it finished starting; None while it has not."""
        self.sub: Supervisor | None = None


class _Child:
    __slots__ = ("spec", "incarnation", "starts", "last_exit")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.incarnation: _Incarnation | None = None
        self.starts = 0
        self.last_exit: ExitReason | None = None


@attrs.frozen
class _ChildExited:
    child: _Child
    incarnation: _Incarnation


@attrs.frozen
class _StopRequested:
    pass


class _StartedFlag:
    """Forwards ``started()`` once, remembering that it did, and when the child called it."""

    __slots__ = ("_status", "_incarnation", "called")

    def __init__(self, status: anyio.abc.TaskStatus[None], incarnation: _Incarnation) -> None:
        self._status = status
        self._incarnation = incarnation
        self.called = False

    def started(self, value: None = None) -> None:
        if not self.called:
            self._incarnation.up_since = anyio.current_time()
            self.release()

    def release(self) -> None:
        """Unblock the supervisor's start without the child having started (it exited)."""
        if not self.called:
            self.called = True
            self._status.started()


@attrs.define
class _Outcome:
    """What handling one child exit did (for the hooks)."""

    action: Action = "none"
    delay: float = 0.0
    restarted: list[str] = attrs.Factory(list)


class Supervisor:
    """Runs a ``SupervisorSpec``. ``run`` returns after ``stop``; raises
    ``RestartIntensityExceeded`` when it gives up, ``ChildUnrecoverable`` when a child failed
    with ``runtime.Unrecoverable``.

    ``hooks`` (``runtime.SupervisorHooks``) hear of every child started and every exit handled,
    in this supervisor and its sub-supervisors (tracing is one: ``runtime.telemetry``). Pass a
    ``runtime.Hooks`` to share it as it is; a hook that raises is dropped, never a crash."""

    def __init__(
        self,
        name: str,
        spec: SupervisorSpec,
        *,
        rng: random.Random | None = None,
        hooks: Hooks | Iterable[SupervisorHooks] = (),
    ) -> None:
        self.name = name
        self.spec = spec
        self._rng = rng if rng is not None else random.Random()
        self._hooks = hooks if isinstance(hooks, Hooks) else Hooks(hooks)
        self._children: dict[str, _Child] = {child.id: _Child(child) for child in spec.children}
        self._state = strategies.initial_state(
            spec.strategy,
            spec.intensity,
            tuple(
                strategies.ChildView(
                    id=child.id,
                    restart=child.restart,
                    backoff=child.backoff,
                    give_up_after=child.give_up_after,
                    healthy_after=child.healthy_after,
                )
                for child in spec.children
            ),
        )
        self._events: Mailbox[_ChildExited | _StopRequested] = Mailbox(
            f"{name}/events", MailboxConfig(capacity=4 * len(spec.children) + 16)
        )
        self._tg: anyio.abc.TaskGroup | None = None
        self._stopping = False
        self._backoff_scope: anyio.CancelScope | None = None
        self._changed = anyio.Event()
        """Set (and replaced) when a child exits or a stop is requested: wakes a start that
        may have to be abandoned."""
        self.restarts = 0
        """Restarts this supervisor has made (each child started again counts one)."""

    @property
    def running(self) -> bool:
        """Started and serving: not yet stopping, stopped, or given up (a health check's
        question; ``app.ops.health``)."""
        return self._tg is not None and not self._stopping and not self._events.closed

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask for a graceful stop: children stop in reverse start order, then ``run`` returns."""
        if self._stopping or self._events.closed:
            return
        self._stopping = True
        if self._backoff_scope is not None:
            self._backoff_scope.cancel()
        self._events.put_nowait(Envelope(_StopRequested(), 0, None, None, perf_counter_ns()))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def kill(self, child_id: str) -> None:
        """Cancel a child's running incarnation: an abnormal exit (``KILLED``) that the restart
        strategy handles like a crash. For operators and chaos tests."""
        child = self._children.get(child_id)
        if child is None:
            raise KeyError(f"supervisor {self.name!r} has no child {child_id!r}")
        incarnation = child.incarnation
        if incarnation is not None and not incarnation.done.is_set():
            incarnation.killed = True
            incarnation.scope.cancel()

    def child(self, path: str) -> Supervisor | ActorCell[Any]:
        """The running sub-supervisor or the actor cell at ``path`` (``"a/b/c"``)."""
        head, _, rest = path.partition("/")
        child = self._children.get(head)
        if child is None:
            raise KeyError(f"supervisor {self.name!r} has no child {head!r}")
        if isinstance(child.spec.start, ActorCell):
            if rest:
                raise KeyError(f"{self.name}/{head} is an actor, it has no child {rest!r}")
            return child.spec.start
        sub = child.incarnation.sub if child.incarnation is not None else None
        if sub is None:
            raise KeyError(f"supervisor {self.name}/{head} is not running")
        return sub.child(rest) if rest else sub

    def status(self) -> tuple[ChildStatus, ...]:
        nodes: list[ChildStatus] = []
        for child in self._children.values():
            incarnation = child.incarnation
            last_exit = child.last_exit.value if child.last_exit is not None else None
            restarts = max(child.starts - 1, 0)
            if isinstance(child.spec.start, ActorCell):
                cell = child.spec.start
                nodes.append(
                    ChildStatus(
                        id=child.spec.id,
                        kind="actor",
                        state=cell.state.value,
                        restarts=restarts,
                        last_exit=last_exit,
                        mailbox=cell.mailbox.statistics(),
                    )
                )
            else:
                sub = incarnation.sub if incarnation is not None else None
                running = incarnation is not None and not incarnation.done.is_set()
                nodes.append(
                    ChildStatus(
                        id=child.spec.id,
                        kind="supervisor",
                        state="running" if running else "stopped",
                        restarts=restarts,
                        last_exit=last_exit,
                        children=sub.status() if sub is not None else (),
                    )
                )
        return tuple(nodes)

    # -- the loop --------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        gave_up: RestartIntensityExceeded | ChildUnrecoverable | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for child in list(self._children.values()):
                    # Abandoned: a sibling's exit or a stop waits in the events; the rest of
                    # the children start with its restart, or not at all.
                    if self._stopping or not await self._start(child):
                        break
                task_status.started()
                while True:
                    event = (await self._events.receive()).message
                    if isinstance(event, _StopRequested):
                        break
                    child, incarnation = event.child, event.incarnation
                    incarnation.pending = False
                    if incarnation.terminating or child.incarnation is not incarnation:
                        continue
                    # On asyncio a cancellation of this supervisor can still be in flight
                    # (anyio delivers it by callbacks): let it land before restarting anything.
                    await anyio.lowlevel.checkpoint()
                    gave_up = await self._on_exit(child, incarnation)
                    if gave_up is not None:
                        break
                await self._terminate_all()
        finally:
            self._tg = None
            self._events.close()
        if gave_up is not None:
            raise gave_up

    async def _on_exit(
        self, child: _Child, incarnation: _Incarnation
    ) -> RestartIntensityExceeded | ChildUnrecoverable | None:
        started = perf_counter_ns()
        outcome = _Outcome()
        try:
            return await self._handle_exit(child, incarnation, outcome)
        finally:
            # Also when the handling was cut short (cancelled from above during a backoff or a
            # sibling's stop): what it did so far is told. The check spares building the record
            # when nobody listens.
            if "exit_handled" in self._hooks:
                self._hooks.exit_handled(
                    ExitHandled(
                        supervisor=self.name,
                        child=child.spec.id,
                        incarnation=incarnation.number,
                        reason=(incarnation.reason or ExitReason.SHUTDOWN).value,
                        action=outcome.action,
                        restarted=tuple(outcome.restarted),
                        backoff=outcome.delay,
                        error=_unwrapped(incarnation.error),
                        started_ns=started,
                        ended_ns=perf_counter_ns(),
                    )
                )

    async def _handle_exit(
        self, child: _Child, incarnation: _Incarnation, outcome: _Outcome
    ) -> RestartIntensityExceeded | ChildUnrecoverable | None:
        reason = incarnation.reason or ExitReason.SHUTDOWN
        if reason is ExitReason.ERROR:
            log.error(
                "%s/%s crashed: %r",
                self.name,
                child.spec.id,
                incarnation.error,
                exc_info=incarnation.error,
            )
        else:
            log.info("%s/%s exited: %s", self.name, child.spec.id, reason.value)
        refusal = _unrecoverable(incarnation.error)
        if isinstance(refusal, ChildKeepsFailing):
            # A sub-supervisor gave up on one of its children: it already names both.
            log.error("%s: %s", self.name, refusal)
            outcome.action = "unrecoverable"
            return refusal
        if refusal is not None:
            unrecoverable = ChildUnrecoverable(self.name, child.spec.id)
            unrecoverable.__cause__ = refusal
            log.error("%s: %s", unrecoverable, _root_cause(refusal))
            outcome.action = "unrecoverable"
            return unrecoverable
        now = anyio.current_time()
        before = next(v for v in self._state.children if v.id == child.spec.id)
        self._state, decision = strategies.decide(
            self._state,
            strategies.ChildExited(
                child=child.spec.id, reason=reason, up_since=incarnation.up_since
            ),
            now,
            self._rng.random(),
        )
        for child_id in decision.terminate:
            await self._terminate(self._children[child_id])
        if decision.give_up:
            since = before.failing_since if before.failing_since is not None else now
            gave_up = ChildKeepsFailing(
                self.name,
                child.spec.id,
                before.failures + 1,
                now - since,
                child.spec.healthy_after,
            )
            gave_up.__cause__ = _unwrapped(incarnation.error)
            log.error("%s", gave_up)
            outcome.action = "give_up"
            return gave_up
        if decision.escalate:
            intensity = self.spec.intensity
            error = RestartIntensityExceeded(
                self.name, child.spec.id, intensity.max_restarts, intensity.period
            )
            error.__cause__ = incarnation.error
            log.error("%s", error)
            outcome.action = "escalate"
            return error
        for child_id in decision.remove:
            # A temporary child leaves for good: tell its senders instead of letting them wait.
            _close_mailboxes(self._children.pop(child_id).spec.start)
        if not decision.start:
            return None
        outcome.action = "restart"
        outcome.delay = decision.delay
        if decision.delay > 0:
            log.info("%s: restarting in %.3f s (backoff)", self.name, decision.delay)
            with anyio.CancelScope() as self._backoff_scope:
                await anyio.sleep(decision.delay)
            self._backoff_scope = None
        for child_id in decision.start:
            if self._stopping:
                break
            self.restarts += 1
            outcome.restarted.append(child_id)
            if not await self._start(self._children[child_id]):
                break  # the exit that abandoned it restarts the rest (see the module doc)
        return None

    async def _start(self, child: _Child) -> bool:
        """Start ``child``, returning once it has started or exited; False if its start was
        abandoned (see the module doc)."""
        if self._tg is None:
            raise RuntimeError(f"supervisor {self.name!r} is not running")
        child.starts += 1
        incarnation = _Incarnation(child.starts)
        child.incarnation = incarnation
        self._state = strategies.mark_started(self._state, child.spec.id, anyio.current_time())
        # The watcher lives in the supervisor's task group, not in one around the start: a
        # task being started belongs to its caller's cancel scope until it has started, and
        # so would the scopes it opens meanwhile (a sub-supervisor's children).
        watcher = anyio.CancelScope()
        self._tg.start_soon(self._abandon_if_needed, child, incarnation, watcher)
        try:
            await self._tg.start(self._run_child, child, incarnation)
        finally:
            watcher.cancel()
        if incarnation.abandoned:
            return False
        if incarnation.up_since is not None and "child_started" in self._hooks:
            self._hooks.child_started(self.name, child.spec.id, incarnation.number)
        return True

    async def _abandon_if_needed(
        self, child: _Child, incarnation: _Incarnation, watcher: anyio.CancelScope
    ) -> None:
        with watcher:
            while True:
                changed = self._changed
                if self._stopping:
                    # An actor's on_start runs to its end, so that it then stops gracefully;
                    # a sub-supervisor stops starting its children.
                    if incarnation.sub is not None:
                        incarnation.terminating = True
                        incarnation.sub.stop()
                    return
                if self._restarted_by_sibling(child):
                    incarnation.abandoned = True
                    incarnation.terminating = True  # its exit is this supervisor's doing
                    incarnation.scope.cancel()
                    return
                await changed.wait()

    def _restarted_by_sibling(self, starting: _Child) -> bool:
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return False
        for sibling in self._children.values():
            if sibling is starting:
                if strategy is Strategy.REST_FOR_ONE:
                    return False  # only the siblings before it restart it
                continue
            exited = sibling.incarnation
            if (
                exited is not None
                and exited.pending
                and exited.reason is not None
                and strategies.needs_restart(sibling.spec.restart, exited.reason)
            ):
                return True
        return False

    async def _run_child(
        self,
        child: _Child,
        incarnation: _Incarnation,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        started = _StartedFlag(task_status, incarnation)
        target = child.spec.start
        try:
            try:
                await self._run_incarnation(child, incarnation, target, started)
            except Exception as exc:
                # The child failed in the moment it was being killed or stopped: its task
                # group raised the error together with a cancellation, which the incarnation's
                # scope stripped. It is this child's exit, never its supervisor's crash.
                incarnation.reason = (
                    ExitReason.SHUTDOWN if incarnation.terminating else ExitReason.ERROR
                )
                incarnation.error = exc
        finally:
            # Cancelled from above (the reason was never set): a shutdown, never a crash, and
            # not reported, since the supervisor is being cancelled too and must not react.
            from_above = incarnation.reason is None
            if from_above:
                incarnation.reason = ExitReason.SHUTDOWN
            child.last_exit = incarnation.reason
            incarnation.done.set()
            # An exit the supervisor asked for is handled where it asked; only report the others.
            if not from_above and not incarnation.terminating and not self._events.closed:
                self._events.put_nowait(
                    Envelope(_ChildExited(child, incarnation), 0, None, None, perf_counter_ns())
                )
                incarnation.pending = True
                self._notify()
            started.release()

    async def _run_incarnation(
        self,
        child: _Child,
        incarnation: _Incarnation,
        target: Supervisor | ActorCell[Any] | SupervisorSpec,
        started: _StartedFlag,
    ) -> None:
        with incarnation.scope:
            try:
                if isinstance(target, ActorCell):
                    await target.run(task_status=started)
                else:
                    assert isinstance(target, SupervisorSpec)
                    sub = Supervisor(
                        f"{self.name}/{child.spec.id}",
                        target,
                        rng=self._rng,
                        hooks=self._hooks,
                    )
                    incarnation.sub = sub
                    await sub.run(task_status=started)
                incarnation.reason = (
                    ExitReason.SHUTDOWN if incarnation.terminating else ExitReason.NORMAL
                )
            except Exception as exc:
                incarnation.reason = ExitReason.ERROR
                incarnation.error = exc
        if incarnation.scope.cancelled_caught:
            incarnation.reason = ExitReason.KILLED if incarnation.killed else ExitReason.SHUTDOWN

    async def _terminate(self, child: _Child) -> None:
        incarnation = child.incarnation
        if incarnation is None or incarnation.done.is_set():
            return
        incarnation.terminating = True
        target = child.spec.start
        if isinstance(target, ActorCell):
            target.request_stop()
        elif incarnation.sub is not None:
            incarnation.sub.stop()
        with anyio.move_on_after(child.spec.shutdown):
            await incarnation.done.wait()
        if not incarnation.done.is_set():
            log.warning(
                "%s/%s did not stop within %g s: cancelling it",
                self.name,
                child.spec.id,
                child.spec.shutdown,
            )
            incarnation.scope.cancel()
            await incarnation.done.wait()

    async def _terminate_all(self) -> None:
        for child in reversed(list(self._children.values())):
            await self._terminate(child)


def _unrecoverable(error: BaseException | None) -> Unrecoverable | None:
    # An actor's background task raises through a task group: look inside the groups.
    if isinstance(error, Unrecoverable):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _unrecoverable(inner)
            if found is not None:
                return found
    return None


def _unwrapped(error: BaseException | None) -> BaseException | None:
    # A task group's group of one (an actor's background task beside its loop): the error in it.
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _close_mailboxes(target: ActorCell[Any] | SupervisorSpec) -> None:
    if isinstance(target, ActorCell):
        target.mailbox.close()
        return
    for child in target.children:
        _close_mailboxes(child.start)
