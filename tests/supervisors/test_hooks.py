"""Supervision hooks: what supervisors tell ``runtime.SupervisorHooks``, in order; a hook that
raises is dropped and never crashes a supervisor; the tracing hook keeps the restart spans."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import attrs
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from runtime import ActorCell, ExitHandled, Hooks, SupervisorHooks
from runtime.telemetry import Telemetry, Tracer, TracingHooks
from supervisors import (
    ChildSpec,
    ChildUnrecoverable,
    Intensity,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorSpec,
)

from .actors import Crash, Journal, ProbeCrash, ProbeInbox, ProbeRefused, Quit, probe_cell

pytestmark = pytest.mark.anyio

LOTS = Intensity(max_restarts=100, period=1.0)


class Recorder(SupervisorHooks):
    """Notes every call, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, ...]] = []
        self.exits: list[ExitHandled] = []

    def child_started(self, supervisor: str, child: str, incarnation: int) -> None:
        self.heard.append(("started", supervisor, child, incarnation))

    def exit_handled(self, event: ExitHandled) -> None:
        self.exits.append(event)
        self.heard.append(
            (
                "exit",
                event.supervisor,
                event.child,
                event.incarnation,
                event.reason,
                event.action,
                event.restarted,
            )
        )


class Faulty(SupervisorHooks):
    """Has both methods; raises in ``method``."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.calls = 0

    def child_started(self, supervisor: str, child: str, incarnation: int) -> None:
        self._maybe_raise("child_started")

    def exit_handled(self, event: ExitHandled) -> None:
        self._maybe_raise("exit_handled")

    def _maybe_raise(self, method: str) -> None:
        if method == self.method:
            self.calls += 1
            raise RuntimeError(f"a bug in {method}")


class ExitsOnly(SupervisorHooks):
    def exit_handled(self, event: ExitHandled) -> None:
        pass


@attrs.define
class Unhashable(SupervisorHooks):
    """An attrs ``define`` class compares by value and so has no hash."""

    seen: int = 0

    def child_started(self, supervisor: str, child: str, incarnation: int) -> None:
        self.seen += 1


def flat(
    journal: Journal,
    strategy: Strategy,
    names: tuple[str, ...],
    intensity: Intensity = LOTS,
) -> tuple[SupervisorSpec, dict[str, ActorCell[ProbeInbox]]]:
    cells = {name: probe_cell(name, journal) for name in names}
    spec = SupervisorSpec(
        strategy=strategy,
        intensity=intensity,
        children=[ChildSpec(id=name, start=cell) for name, cell in cells.items()],
    )
    return spec, cells


async def settle_after(cell: ActorCell[ProbeInbox], message: Crash | Quit) -> None:
    cell.ref.tell(message)
    await anyio.wait_all_tasks_blocked()


# -- what supervisors tell ---------------------------------------------------------------------


async def test_hooks_hear_each_start_and_each_exit_handled_after_its_restarts_in_order() -> None:
    """rest_for_one: starts in order; an exit is told once its restarts were made; the exits the
    supervisor caused (restarting siblings, the final stop) are not told."""
    journal = Journal()
    spec, cells = flat(journal, Strategy.REST_FOR_ONE, ("a", "b", "c"))
    heard = Recorder()
    root = Supervisor("root", spec, hooks=[heard])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await settle_after(cells["b"], Crash())
            await settle_after(cells["c"], Quit())  # permanent: restarted after a normal exit
            root.stop()
    assert heard.heard == [
        ("started", "root", "a", 1),
        ("started", "root", "b", 1),
        ("started", "root", "c", 1),
        ("started", "root", "b", 2),
        ("started", "root", "c", 2),
        ("exit", "root", "b", 1, "error", "restart", ("b", "c")),
        ("started", "root", "c", 3),
        ("exit", "root", "c", 2, "normal", "restart", ("c",)),
    ]
    crash, quit_ = heard.exits
    assert isinstance(crash.error, ProbeCrash)
    assert quit_.error is None
    assert crash.started_ns <= crash.ended_ns <= quit_.started_ns <= quit_.ended_ns


async def test_hooks_hear_an_escalation_before_the_supervisor_raises() -> None:
    """Past the restart intensity: the last exit is told as ``escalate``, with the crash."""
    journal = Journal()
    spec, cells = flat(
        journal, Strategy.ONE_FOR_ONE, ("a", "b"), Intensity(max_restarts=1, period=60)
    )
    heard = Recorder()
    root = Supervisor("root", spec, hooks=[heard])
    with anyio.fail_after(10), pytest.RaisesGroup(RestartIntensityExceeded):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await settle_after(cells["a"], Crash())
            cells["a"].ref.tell(Crash())
            await anyio.sleep_forever()
    assert [(e.child, e.incarnation, e.action, e.restarted) for e in heard.exits] == [
        ("a", 1, "restart", ("a",)),
        ("a", 2, "escalate", ()),
    ]
    assert isinstance(heard.exits[-1].error, ProbeCrash)


async def test_sub_supervisors_tell_the_same_hooks_with_their_path() -> None:
    """An unrecoverable crash deep in the tree: told by the sub-supervisor, then by the root."""
    journal = Journal()
    inner, cells = flat(journal, Strategy.ONE_FOR_ONE, ("x", "y"))
    root_spec = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=LOTS,
        children=[ChildSpec(id="inner", start=inner)],
    )
    heard = Recorder()
    root = Supervisor("root", root_spec, hooks=[heard])
    with anyio.fail_after(10), pytest.RaisesGroup(ChildUnrecoverable):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            cells["x"].ref.tell(Crash(unrecoverable=True))
            await anyio.sleep_forever()
    assert heard.heard == [
        ("started", "root/inner", "x", 1),
        ("started", "root/inner", "y", 1),
        ("started", "root", "inner", 1),
        ("exit", "root/inner", "x", 1, "error", "unrecoverable", ()),
        ("exit", "root", "inner", 1, "error", "unrecoverable", ()),
    ]
    assert isinstance(heard.exits[0].error, ProbeRefused)
    assert isinstance(heard.exits[1].error, ChildUnrecoverable)


# -- a hook's failure --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["child_started", "exit_handled"])
async def test_a_raising_hook_is_dropped_with_one_error_and_the_supervisor_carries_on(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The hook raises once, is dropped from the whole tree with one error logged; the other
    hooks and the restarts go on."""
    caplog.set_level(logging.ERROR, logger="actortrade.hooks")
    journal = Journal()
    spec, cells = flat(journal, Strategy.ONE_FOR_ONE, ("a", "b"))
    faulty, heard = Faulty(method), Recorder()
    hooks = Hooks([faulty, heard])
    root = Supervisor("root", spec, hooks=hooks)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            for _ in range(2):
                await settle_after(cells["a"], Crash())
            root.stop()
    assert faulty.calls == 1
    assert list(hooks) == [heard]
    assert "child_started" in hooks
    assert [(e.child, e.incarnation, e.action) for e in heard.exits] == [
        ("a", 1, "restart"),
        ("a", 2, "restart"),
    ]
    assert cells["a"].incarnation == 3
    assert root.restarts == 2
    errors = [r for r in caplog.records if r.name == "actortrade.hooks"]
    assert [(r.levelno, r.exc_info[0] if r.exc_info else None) for r in errors] == [
        (logging.ERROR, RuntimeError)
    ]


def test_only_an_exception_is_a_hooks_bug() -> None:
    """A KeyboardInterrupt raised in a hook reaches the supervisor; the hook stays."""

    class Interrupted(SupervisorHooks):
        def child_started(self, supervisor: str, child: str, incarnation: int) -> None:
            raise KeyboardInterrupt

    hook = Interrupted()
    hooks = Hooks([hook])
    with pytest.raises(KeyboardInterrupt):
        hooks.child_started("root", "a", 1)
    assert list(hooks) == [hook]


# -- the dispatcher ----------------------------------------------------------------------------


def test_only_the_methods_a_hook_overrides_are_dispatched() -> None:
    """A method nobody overrides is not ``in`` the hooks: the supervisor builds nothing for it."""
    assert "child_started" not in Hooks()
    assert "exit_handled" not in Hooks()
    hooks = Hooks([ExitsOnly()])
    assert "exit_handled" in hooks
    assert "child_started" not in hooks


def test_a_hook_added_twice_is_called_once_and_can_be_removed() -> None:
    """Hooks need not be hashable; removing one that is not there is a KeyError."""
    hook = Unhashable()
    hooks = Hooks([hook, hook])
    hooks.add(hook)
    hooks.child_started("root", "a", 1)
    assert hook.seen == 1
    hooks.remove(hook)
    assert "child_started" not in hooks
    assert list(hooks) == []
    with pytest.raises(KeyError):
        hooks.remove(hook)


# -- the tracing hook --------------------------------------------------------------------------


class Capture(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


async def test_the_tracing_hook_makes_each_handled_exit_a_supervisor_span() -> None:
    """A crash under rest_for_one: one root span ``supervisor.restart`` naming the supervisor,
    the child, the reason, the children restarted and the backoff, with an ``exception`` event
    and an error status (docs/tracing.md)."""
    journal = Journal()
    spec, cells = flat(journal, Strategy.REST_FOR_ONE, ("a", "b"))
    capture = Capture()
    tracer = Tracer(exporter=capture)
    root = Supervisor("root", spec, hooks=[TracingHooks(tracer)])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await settle_after(cells["a"], Crash())
            root.stop()
    tracer.shutdown()
    (span,) = capture.spans
    assert span.name == "supervisor.restart"
    assert span.parent is None
    assert dict(span.attributes or {}) == {
        "actortrade.supervisor": "root",
        "actortrade.child": "a",
        "actortrade.exit_reason": "error",
        "actortrade.restarted": ["a", "b"],
        "actortrade.backoff_s": 0.0,
    }
    (event,) = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "ProbeCrash"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ProbeCrash: a crashed on purpose"


def test_telemetry_gives_supervisors_its_tracing_hook_only_when_tracing() -> None:
    """Disabled tracing: no hook at all, so supervisors build no record."""
    assert Telemetry().supervisor_hooks() == []
    tracer = Tracer(exporter=Capture())
    (hook,) = Telemetry(tracer).supervisor_hooks()
    assert isinstance(hook, TracingHooks)
    assert hook.tracer is tracer
    tracer.shutdown()
