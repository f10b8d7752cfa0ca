"""The service's signals, on both backends: a stop, a forced stop, SIGHUP ignored, and the
handlers it found put back when it returns."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType

import anyio
import pytest

from runtime import Actor, ActorCell
from supervisors import ChildSpec, Supervisor, SupervisorSpec, service
from supervisors.service import serve

from .actors import Journal, probe_cell

pytestmark = pytest.mark.anyio

WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture
def guarded() -> Iterator[list[int]]:
    """A handler for every signal the service watches, while the test runs: one that reached
    the test process outside the service's watch is recorded here instead of ending the run."""
    strays: list[int] = []

    def stray(signum: int, _frame: FrameType | None) -> None:
        strays.append(signum)

    previous = {s: signal.signal(s, stray) for s in WATCHED}
    try:
        yield strays
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class SignalsAgainWhenStopping(Actor[object]):
    """Its graceful stop would take an hour; as it begins, the signal that asked for it comes
    again (on trio, a signal repeated before the first was received would be merged into it)."""

    def __init__(self, signum: signal.Signals, journal: Journal) -> None:
        self.signum = signum
        self.journal = journal

    def handle(self, message: object) -> None:
        return None

    async def on_stop(self) -> None:
        self.journal.record("slow", "stop", self.context.incarnation)
        os.kill(os.getpid(), self.signum)
        await anyio.sleep(3600)


def slow_to_stop(signum: signal.Signals, journal: Journal) -> SupervisorSpec:
    cell: ActorCell[object] = ActorCell("slow", lambda: SignalsAgainWhenStopping(signum, journal))
    return SupervisorSpec(children=[ChildSpec(id="slow", start=cell, shutdown=7200)])


def raise_once(signum: signal.Signals) -> Callable[[Supervisor], None]:
    def on_started(_root: Supervisor) -> None:
        os.kill(os.getpid(), signum)

    return on_started


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_second_signal_while_the_tree_stops_forces_the_stop_and_it_still_exits_0(
    guarded: list[int], signum: signal.Signals
) -> None:
    """The first signal starts a graceful stop that would take an hour; the second cancels the
    tree at once: a forced stop, still exit status 0 (the stop was asked for)."""
    journal = Journal()
    with anyio.fail_after(30):
        result = await serve(
            slow_to_stop(signum, journal), stop_timeout=7200, on_started=raise_once(signum)
        )
    assert result.exit_code == service.EXIT_OK
    assert result.reason == f"stopped by {signum.name}"
    assert result.forced
    assert result.forced_by == f"by a second signal, {signum.name}"
    assert journal.of("stop") == ["slow"]
    assert guarded == []


async def test_sighup_is_ignored_and_a_sigterm_then_stops_gracefully(guarded: list[int]) -> None:
    """A closing terminal's SIGHUP does not stop the tree; the SIGTERM after it does, without
    force."""
    journal = Journal()

    def on_started(_root: Supervisor) -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)

    spec = SupervisorSpec(children=[ChildSpec(id="a", start=probe_cell("a", journal))])
    with anyio.fail_after(30):
        result = await serve(spec, on_started=on_started)
    assert result.reason == "stopped by SIGTERM"
    assert not result.forced
    assert journal.of("stop") == ["a"]
    assert guarded == []


async def test_the_handlers_found_are_put_back_when_it_returns(guarded: list[int]) -> None:
    """asyncio leaves a signal to its default action when its receiver closes (a SIGTERM
    would kill the process): after the service the handlers it found are there again."""
    before = {s: signal.getsignal(s) for s in WATCHED}
    spec = SupervisorSpec(children=[ChildSpec(id="a", start=probe_cell("a", Journal()))])

    def on_started(_root: Supervisor) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    with anyio.fail_after(30):
        await serve(spec, on_started=on_started)
    assert {s: signal.getsignal(s) for s in WATCHED} == before
    os.kill(os.getpid(), signal.SIGTERM)  # after it: the test's handler, not death
    assert guarded == [signal.SIGTERM]


async def test_a_signal_that_came_before_the_watch_stops_the_service_when_it_starts() -> None:
    """run_service records a signal that arrives while the process starts; the watch acts on
    it as soon as it opens, instead of the signal being lost or killing the process."""
    previous = signal.signal(signal.SIGTERM, service._record)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        spec = SupervisorSpec(children=[ChildSpec(id="a", start=probe_cell("a", Journal()))])
        with anyio.fail_after(30):
            result = await serve(spec)
    finally:
        signal.signal(signal.SIGTERM, previous)
        service._early.clear()
    assert result.reason == "stopped by SIGTERM"
