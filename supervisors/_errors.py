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

    def __init__(self, supervisor: str, child: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"supervisor {supervisor!r} stopped: {child!r} failed in a way a restart cannot fix"
        )
        self.supervisor = supervisor
        self.child = child


class ChildKeepsFailing(ChildUnrecoverable):
    """Raised out of ``Supervisor.run`` when a child failed ``give_up_after`` times in a row
    (``ChildSpec``), over at least ``healthy_after`` seconds, without once running that long:
    the supervisor stopped every child and gives up on it. Restarting the supervisor would
    replay the same failures, more slowly, so it is unrecoverable: every supervisor above
    passes it on unchanged and the root stops the service with it. ``__cause__`` is the
    child's last error."""

    def __init__(
        self, supervisor: str, child: str, failures: int, span: float, healthy_after: float
    ) -> None:
        super().__init__(
            supervisor,
            child,
            f"supervisor {supervisor!r} gave up on {child!r}: it failed {failures} times in a "
            f"row over {span:.0f} s without once running {healthy_after:g} s",
        )
        self.failures = failures
        self.span = span
        self.healthy_after = healthy_after


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
