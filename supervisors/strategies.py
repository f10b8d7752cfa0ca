"""Restart decisions as a pure state machine: ``decide(state, exited, now, rand)``.

The async shell (``supervisor.py``) owns tasks and timing; everything it decides comes from here,
so the OTP semantics are property-tested without an event loop (tests/supervisors).
"""

from __future__ import annotations

import attrs

from .intensity import RestartHistory, backoff_delay, record_restart
from .spec import Backoff, ExitReason, Intensity, Restart, Strategy


@attrs.frozen(kw_only=True)
class ChildView:
    """What the decision needs to know of one child."""

    id: str
    restart: Restart
    backoff: Backoff = Backoff()  # noqa: RUF009 - frozen, so one shared default is safe
    running: bool = False
    started_at: float | None = None
    streak: int = 0
    """Consecutive restarts of this child that did not run for ``backoff.reset_after``."""
    give_up_after: int | None = None
    """``ChildSpec.give_up_after`` (None here, the pure default: never give up)."""
    healthy_after: float = 60.0
    failures: int = 0
    """Failed incarnations in a row (see ``ChildSpec.give_up_after``)."""
    failing_since: float | None = None
    """When the first of those failed."""


@attrs.frozen(kw_only=True)
class SupervisorState:
    strategy: Strategy
    intensity: Intensity
    children: tuple[ChildView, ...]
    """In start order."""
    history: RestartHistory = ()


@attrs.frozen(kw_only=True)
class ChildExited:
    child: str
    reason: ExitReason
    up_since: float | None = None
    """When the incarnation finished starting; None if it never did."""


@attrs.frozen(kw_only=True)
class Decision:
    """What the shell must do, in this order: terminate, remove, wait ``delay``, start."""

    terminate: tuple[str, ...] = ()
    """Running children to stop, in this order (reverse start order)."""
    remove: tuple[str, ...] = ()
    """Temporary children to drop from the supervisor."""
    delay: float = 0.0
    """Backoff before starting."""
    start: tuple[str, ...] = ()
    """Children to start, in this order (start order)."""
    escalate: bool = False
    """Restart intensity exceeded: stop every child and fail to the parent."""
    give_up: bool = False
    """The child failed ``give_up_after`` times in a row, over at least ``healthy_after``
    seconds: stop every child and fail for good (up to the root)."""


def needs_restart(restart: Restart, reason: ExitReason) -> bool:
    """OTP: permanent always, transient after an abnormal exit, temporary never."""
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason.abnormal
    return False


def initial_state(
    strategy: Strategy, intensity: Intensity, children: tuple[ChildView, ...]
) -> SupervisorState:
    return SupervisorState(strategy=strategy, intensity=intensity, children=children)


def mark_started(state: SupervisorState, child: str, now: float) -> SupervisorState:
    """Record that the shell started ``child`` at ``now``."""
    return attrs.evolve(
        state,
        children=tuple(
            attrs.evolve(view, running=True, started_at=now) if view.id == child else view
            for view in state.children
        ),
    )


def decide(
    state: SupervisorState, exited: ChildExited, now: float, rand: float
) -> tuple[SupervisorState, Decision]:
    """Decide what follows the exit of one child. ``rand`` in [0, 1) drives backoff jitter."""
    index = _index_of(state, exited.child)
    failed = state.children[index]
    ran_for = now - failed.started_at if failed.started_at is not None else 0.0
    streak = 0 if ran_for >= failed.backoff.reset_after else failed.streak
    failures, failing_since = count_failure(failed, exited, now)
    failed = attrs.evolve(
        failed,
        running=False,
        streak=streak,
        failures=failures,
        failing_since=failing_since,
    )
    children = (*state.children[:index], failed, *state.children[index + 1 :])

    if not needs_restart(failed.restart, exited.reason):
        if failed.restart is Restart.TEMPORARY:
            remaining = tuple(view for view in children if view.id != failed.id)
            return attrs.evolve(state, children=remaining), Decision(remove=(failed.id,))
        return attrs.evolve(state, children=children), Decision()

    if keeps_failing(failed, now):
        terminate = tuple(view.id for view in reversed(children) if view.running)
        stopped = tuple(attrs.evolve(view, running=False) for view in children)
        return attrs.evolve(state, children=stopped), Decision(terminate=terminate, give_up=True)

    history, exceeded = record_restart(state.history, state.intensity, now, failed.id)
    if exceeded:
        terminate = tuple(view.id for view in reversed(children) if view.running)
        stopped = tuple(attrs.evolve(view, running=False) for view in children)
        return (
            attrs.evolve(state, children=stopped, history=history),
            Decision(terminate=terminate, escalate=True),
        )

    affected: tuple[ChildView, ...]
    if state.strategy is Strategy.ONE_FOR_ONE:
        affected = (failed,)
    elif state.strategy is Strategy.ONE_FOR_ALL:
        affected = children
    else:
        affected = children[index:]

    terminate = tuple(view.id for view in reversed(affected) if view.running)
    remove = tuple(view.id for view in affected if view.restart is Restart.TEMPORARY)
    start = tuple(view.id for view in affected if view.restart is not Restart.TEMPORARY)
    delay = backoff_delay(failed.backoff, failed.streak + 1, rand)

    updated: list[ChildView] = []
    for view in children:
        if view.id in remove:
            continue
        if view.id == failed.id:
            view = attrs.evolve(view, streak=view.streak + 1)
        if view.id in start:
            view = attrs.evolve(view, running=False)
        updated.append(view)
    new_state = attrs.evolve(state, children=tuple(updated), history=history)
    return new_state, Decision(terminate=terminate, remove=remove, delay=delay, start=start)


def count_failure(view: ChildView, exited: ChildExited, now: float) -> tuple[int, float | None]:
    """The child's failed incarnations in a row, and since when, after this exit: an error
    before it ran ``healthy_after`` seconds adds one; an incarnation that ran that long, or
    stopped itself, ends the streak; a kill leaves it as it was (it says nothing of the
    child)."""
    healthy = exited.up_since is not None and now - exited.up_since >= view.healthy_after
    if healthy or exited.reason is ExitReason.NORMAL:
        return 0, None
    if exited.reason is ExitReason.ERROR:
        since = view.failing_since if view.failures and view.failing_since is not None else now
        return view.failures + 1, since
    return view.failures, view.failing_since


def keeps_failing(view: ChildView, now: float) -> bool:
    """Whether to give up on the child: ``give_up_after`` failures in a row, over at least
    ``healthy_after`` seconds (quicker loops are the restart intensity's)."""
    return (
        view.give_up_after is not None
        and view.failures >= view.give_up_after
        and view.failing_since is not None
        and now - view.failing_since >= view.healthy_after
    )


def _index_of(state: SupervisorState, child: str) -> int:
    for index, view in enumerate(state.children):
        if view.id == child:
            return index
    raise KeyError(f"no child {child!r} in this supervisor")
