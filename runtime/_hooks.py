"""How a supervision tree tells what it does (children started; exits handled: restarts,
escalations, give-ups) to whoever listens, tracing first, without importing any of them.

Modelled on trio's ``Instrument`` (``trio/_abc.py``) and its dispatcher
(``trio/_core/_instrumentation.py``): a base class whose every method is an optional no-op, and
a dispatcher that calls only the hooks overriding a method and drops a hook that raises, with
one logged error. So ``import supervisors`` loads no exporter (the OTel-backed hook lives in
``runtime.telemetry``, which the composition root imports), and a bug in a hook never crashes
a supervisor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Final, Literal

import attrs

__all__ = ["Action", "ExitHandled", "Hooks", "SupervisorHooks"]

log = logging.getLogger("actortrade.hooks")

Action = Literal["restart", "escalate", "give_up", "unrecoverable", "none"]
"""What a supervisor did about a child's exit (see ``ExitHandled.action``)."""


@attrs.frozen(kw_only=True)
class ExitHandled:
    """A child's exit and what its supervisor did about it, as ``SupervisorHooks.exit_handled``
    receives it."""

    supervisor: str
    """The supervisor's path in the tree: ``root``, ``root/symbols``."""
    child: str
    incarnation: int
    """Which start of the child exited, 1 for the first."""
    reason: str
    """The ``supervisors.ExitReason`` value: ``normal``, ``shutdown``, ``killed`` or ``error``."""
    action: Action
    """``restart``: the children in ``restarted`` were started again (fewer than the strategy
    said when a stop came meanwhile). ``escalate``: the restart intensity was exceeded; the
    supervisor stops and its parent handles its exit. ``give_up``: the child kept failing for
    longer than its ``give_up_after``. ``unrecoverable``: it raised ``runtime.Unrecoverable``.
    ``none``: nothing to restart (a temporary child, or a transient one's normal exit)."""
    restarted: tuple[str, ...] = ()
    backoff: float = 0.0
    """Seconds waited before restarting."""
    error: BaseException | None = None
    """What the child raised (a task group's group of one unwrapped); None for a clean exit."""
    started_ns: int
    """``perf_counter_ns`` when the supervisor began handling the exit."""
    ended_ns: int
    """``perf_counter_ns`` when it was done (the restarts made, or about to give up)."""


class SupervisorHooks:
    """What a supervision tree tells about itself. Subclass it and override what you need (each
    method here is a no-op), then hand instances to ``supervisors.Supervisor(..., hooks=...)``
    or ``supervisors.service.serve(..., hooks=...)``; sub-supervisors share their parent's.

    Supervisors call the methods on the event loop's thread between their own steps: a hook
    must return at once and cannot await (note what happened and export it elsewhere, as
    ``runtime.telemetry.TracingHooks`` does). A hook that raises is dropped for the rest of the
    run (``Hooks``)."""

    __slots__ = ()

    def child_started(self, supervisor: str, child: str, incarnation: int) -> None:
        """Called by the supervisor named ``supervisor`` once its child ``child`` has started
        (an actor's ``on_start`` returned; a sub-supervisor's children all started), the first
        time and after each restart; ``incarnation`` counts from 1. Not called for a start that
        failed or was abandoned."""

    def exit_handled(self, event: ExitHandled) -> None:
        """Called by a supervisor once it has handled a child's exit: after the restarts it
        made (whose ``child_started`` calls come first), or just before it gives up (raising
        ``RestartIntensityExceeded``, ``ChildKeepsFailing`` or ``ChildUnrecoverable``). Not
        called for the exits the supervisor caused itself (stopping a child, or its siblings
        for a restart), nor for those of a tree cancelled from above."""


class Hooks:
    """The hooks of a supervision tree, called by its supervisors (one ``Hooks`` is shared by
    the whole tree).

    As trio's ``Instruments``, it keeps for each method the hooks that override it, so that a
    method nobody overrides costs the supervisor a dict lookup (``"exit_handled" in hooks``)
    and no record is built for it. A hook that raises ``Exception`` is removed from the tree,
    with one error logged, and the call returns normally: the supervisor carries on."""

    __slots__ = ("_all", "_by_method")

    METHODS: Final = ("child_started", "exit_handled")

    def __init__(self, hooks: Iterable[SupervisorHooks] = ()) -> None:
        # Lists compared by identity, not dicts: a hook need not be hashable (an attrs
        # ``define`` class is not).
        self._all: list[SupervisorHooks] = []
        self._by_method: dict[str, list[SupervisorHooks]] = {}
        for hook in hooks:
            self.add(hook)

    def add(self, hook: SupervisorHooks) -> None:
        """Call ``hook`` from now on; adding it again does nothing."""
        if any(known is hook for known in self._all):
            return
        self._all.append(hook)
        for method in self.METHODS:
            if getattr(type(hook), method, None) is not getattr(SupervisorHooks, method):
                self._by_method.setdefault(method, []).append(hook)

    def remove(self, hook: SupervisorHooks) -> None:
        """Stop calling ``hook``. Raises ``KeyError`` if it is not (or no longer) called:
        never added, or dropped after it raised."""
        if not any(known is hook for known in self._all):
            raise KeyError(hook)
        self._all = [known for known in self._all if known is not hook]
        for method, hooks in list(self._by_method.items()):
            kept = [known for known in hooks if known is not hook]
            if kept:
                self._by_method[method] = kept
            else:
                del self._by_method[method]

    def __contains__(self, method: object) -> bool:
        """Whether some hook overrides ``method`` (a name in ``METHODS``)."""
        return method in self._by_method

    def __iter__(self) -> Iterator[SupervisorHooks]:
        return iter(tuple(self._all))

    def child_started(self, supervisor: str, child: str, incarnation: int) -> None:
        """Call ``child_started`` on every hook that has it (see ``SupervisorHooks``)."""
        for hook in self._by_method.get("child_started", ()):
            try:
                hook.child_started(supervisor, child, incarnation)
            except Exception:
                self._drop(hook, "child_started")

    def exit_handled(self, event: ExitHandled) -> None:
        """Call ``exit_handled`` on every hook that has it (see ``SupervisorHooks``)."""
        for hook in self._by_method.get("exit_handled", ()):
            try:
                hook.exit_handled(event)
            except Exception:
                self._drop(hook, "exit_handled")

    def _drop(self, hook: SupervisorHooks, method: str) -> None:
        # Only Exception: a KeyboardInterrupt or a cancellation is not the hook's bug, and must
        # reach the supervisor. ``remove`` rebinds the lists, so the caller's loop is unharmed.
        self.remove(hook)
        log.exception(
            "supervisor hook %r raised in %s: it is dropped, and the supervisors carry on",
            hook,
            method,
        )
