"""Child and supervisor specifications (Erlang/OTP ``child_spec`` and ``sup_flags``)."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Any

import attrs

from runtime import ActorCell


class Restart(enum.Enum):
    """When a child that exited is restarted."""

    PERMANENT = "permanent"
    """Always, whatever the reason it exited."""
    TRANSIENT = "transient"
    """Only after an abnormal exit (an exception, or killed)."""
    TEMPORARY = "temporary"
    """Never; the child is removed from its supervisor when it exits."""


class Strategy(enum.Enum):
    """Which siblings are restarted with a child that must be restarted."""

    ONE_FOR_ONE = "one_for_one"
    """Only that child."""
    ONE_FOR_ALL = "one_for_all"
    """Every child: the others are stopped (in reverse start order), then all are started again."""
    REST_FOR_ONE = "rest_for_one"
    """That child and every child started after it."""


class ExitReason(enum.Enum):
    """Why an incarnation ended."""

    NORMAL = "normal"
    """It stopped itself (``stop_self``) or returned."""
    SHUTDOWN = "shutdown"
    """Its supervisor stopped it, or it was cancelled from above: never a crash."""
    KILLED = "killed"
    """It was cancelled by ``Supervisor.kill`` (abnormal, like OTP's ``exit(Pid, kill)``)."""
    ERROR = "error"
    """It raised an exception (abnormal)."""

    @property
    def abnormal(self) -> bool:
        return self in (ExitReason.KILLED, ExitReason.ERROR)


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value}")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value}")


def _at_least_one(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{attribute.name} must be a finite number >= 1, got {value}")


def _none_or_at_least_one(
    _instance: object, attribute: attrs.Attribute[Any], value: int | None
) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be None or >= 1, got {value}")


@attrs.frozen(kw_only=True)
class Intensity:
    """At most ``max_restarts`` restarts within any ``period`` seconds, else escalate."""

    max_restarts: int = attrs.field(default=3, validator=_non_negative)
    period: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before restarting a child that keeps failing.

    The n-th consecutive restart waits ``min(maximum, initial * multiplier**(n-1))``, shortened
    by up to ``jitter`` of itself at random so that restarts of many clients spread out. The
    streak resets once the child has run for ``reset_after`` seconds. ``initial=0`` (the default)
    restarts at once.

    ``immediate`` restarts of a streak happen at once before the backoff starts (and the
    exponent counts from the first delayed one): a child killed once is back without delay,
    while one that keeps failing (a venue that is down) still backs off.
    """

    initial: float = attrs.field(default=0.0, validator=_non_negative)
    maximum: float = attrs.field(default=30.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    jitter: float = attrs.field(
        default=0.2, validator=attrs.validators.and_(_non_negative, attrs.validators.le(1.0))
    )
    reset_after: float = attrs.field(default=30.0, validator=_non_negative)
    immediate: int = attrs.field(default=0, validator=attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class ChildSpec:
    """One child of a supervisor: an actor cell or a nested supervisor."""

    id: str
    start: ActorCell[Any] | SupervisorSpec
    restart: Restart = Restart.PERMANENT
    shutdown: float = attrs.field(default=5.0, validator=_non_negative)
    """Seconds a graceful stop may take before the child is cancelled."""
    backoff: Backoff = Backoff()
    give_up_after: int | None = attrs.field(default=5, validator=_none_or_at_least_one)
    """Failed incarnations in a row after which its supervisor gives up on this child (and
    the service stops: ``ChildKeepsFailing``), once it has been failing for at least
    ``healthy_after`` seconds; None: never. An incarnation counts as failed when it raised
    before it had run ``healthy_after`` seconds after starting (or before it finished
    starting). It catches the crash loops too slow for the restart intensity: failures spaced
    wider than its period, such as a request timing out every 30 s."""
    healthy_after: float = attrs.field(default=60.0, validator=_non_negative)
    """Seconds an incarnation must run after starting for its failure not to count towards
    ``give_up_after`` (it ends the streak)."""


def _to_children(children: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    return tuple(children)


def _unique_ids(
    _instance: object,
    _attribute: attrs.Attribute[tuple[ChildSpec, ...]],
    value: tuple[ChildSpec, ...],
) -> None:
    seen: set[str] = set()
    for child in value:
        if child.id in seen:
            raise ValueError(f"duplicate child id {child.id!r} in supervisor spec")
        seen.add(child.id)


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """A supervisor's strategy, restart intensity and children (in start order)."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: Intensity = Intensity()
    children: tuple[ChildSpec, ...] = attrs.field(converter=_to_children, validator=_unique_ids)
