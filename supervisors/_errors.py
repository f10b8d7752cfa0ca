"""Errors raised by supervisors."""

from __future__ import annotations

from runtime import Unrecoverable


class SupervisorError(Exception):
    """Base class for supervisor errors."""


class ChildUnrecoverable(SupervisorError, Unrecoverable):
    """Raised out of ``Supervisor.run`` when a child failed with ``runtime.Unrecoverable``: the
    supervisor stopped every child without restarting any and escalates. Being unrecoverable
    itself, it goes on up to the root, which stops the service. ``__cause__`` is the child's
    error."""

    def __init__(self, supervisor: str, child: str) -> None:
        super().__init__(
            f"supervisor {supervisor!r} stopped: {child!r} failed in a way a restart cannot fix"
        )
        self.supervisor = supervisor
        self.child = child


class RestartIntensityExceeded(SupervisorError):
    """Raised out of ``Supervisor.run`` when its children restarted more often than its intensity
    allows: it has stopped every child and gives up, escalating to its parent (or, at the root,
    stopping the service). ``__cause__`` is the last child's error, when it raised one."""

    def __init__(self, supervisor: str, child: str, max_restarts: int, period: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {max_restarts} restarts within "
            f"{period:g} s (last to fail: {child!r})"
        )
        self.supervisor = supervisor
        self.child = child
        self.max_restarts = max_restarts
        self.period = period
