"""Crash loops the restart intensity cannot see: a child that keeps failing with failures spaced
wider than the intensity's period is given up on (``ChildSpec.give_up_after``), and a child
whose ``on_start`` waits on a sibling that died is restarted with it at once."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runtime import Actor, ActorCell, LifecycleState
from supervisors import (
    ChildKeepsFailing,
    ChildSpec,
    Intensity,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorSpec,
)
from supervisors.spec import ExitReason, Restart
from supervisors.strategies import (
    ChildExited,
    ChildView,
    SupervisorState,
    decide,
    mark_started,
)

pytestmark = pytest.mark.anyio


# --- the pure decision ---------------------------------------------------------------------------


def _state(give_up_after: int | None = 5, healthy_after: float = 60.0) -> SupervisorState:
    view = ChildView(
        id="c",
        restart=Restart.PERMANENT,
        give_up_after=give_up_after,
        healthy_after=healthy_after,
    )
    return SupervisorState(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=Intensity(max_restarts=1_000_000, period=1.0),
        children=(view,),
    )


# Each incarnation: (seconds it took to start or None if it never did, seconds it then ran).
lives = st.tuples(st.none() | st.floats(0.0, 40.0), st.floats(0.0, 200.0))


def _run(
    state: SupervisorState, incarnations: list[tuple[float | None, float]]
) -> tuple[list[bool], float]:
    now, gave_up = 0.0, []
    for start_took, ran in incarnations:
        state = mark_started(state, "c", now)
        up_since = None if start_took is None else now + start_took
        now += (start_took or 0.0) + ran
        exited = ChildExited(child="c", reason=ExitReason.ERROR, up_since=up_since)
        state, decision = decide(state, exited, now, 0.5)
        gave_up.append(decision.give_up)
        if decision.give_up:
            break
    return gave_up, now


@given(incarnations=st.lists(lives, min_size=1, max_size=40))
@example(
    incarnations=[
        (0.0, 60.0),
        (None, 0.0),
        (None, 0.0),
        (None, 0.0),
        (None, 97.0012),
        (39.8889, 60.0),
    ]
)
def test_a_child_that_runs_healthy_before_each_failure_is_never_given_up_on(
    incarnations: list[tuple[float | None, float]],
) -> None:
    """Whatever happens before, an error after ``healthy_after`` seconds up ends the streak:
    give up only ever follows five unhealthy failures in a row."""
    gave_up, _ = _run(_state(), incarnations)
    if any(gave_up):
        last_five = incarnations[len(gave_up) - 5 : len(gave_up)]
        assert len(last_five) == 5
        # Up exactly ``healthy_after`` may come out a hair short of it in the supervisor's float
        # arithmetic (now - up_since): the boundary is unhealthy up to a rounding.
        assert all(took is None or ran < 60.0 + 1e-6 for took, ran in last_five)
    healthy = [(took if took is not None else 0.0, max(ran, 60.001)) for took, ran in incarnations]
    assert not any(_run(_state(), healthy)[0])


@given(
    every=st.floats(min_value=15.0, max_value=59.0),
    started=st.booleans(),
)
def test_failures_spaced_wider_than_any_intensity_period_are_given_up_on_at_the_fifth(
    every: float, started: bool
) -> None:
    """Failing every ``every`` seconds (under a minute), up or not: the fifth failure gives
    up (it comes at least 60 s after the first)."""
    took = 0.0 if started else None
    gave_up, _ = _run(_state(), [(took, every)] * 10)
    assert gave_up == [False] * 4 + [True]


def test_quick_failures_are_left_to_the_restart_intensity() -> None:
    """Five failures within a second: not given up on (the streak has not lasted
    ``healthy_after``); the 61st second's failure is."""
    gave_up, now = _run(_state(), [(None, 0.1)] * 5 + [(None, 61.0)])
    assert gave_up == [False] * 5 + [True]
    assert now == pytest.approx(61.5)


def test_kills_and_normal_exits_do_not_count_and_none_never_gives_up() -> None:
    """A kill leaves the streak as it was, a normal exit ends it; ``give_up_after=None``
    restarts forever."""
    state = _state()
    for n in range(4):
        state = mark_started(state, "c", n * 20.0)
        state, _ = decide(state, ChildExited(child="c", reason=ExitReason.ERROR), n * 20.0, 0)
    state, decision = decide(state, ChildExited(child="c", reason=ExitReason.KILLED), 80.0, 0)
    assert not decision.give_up
    assert state.children[0].failures == 4
    state, _ = decide(state, ChildExited(child="c", reason=ExitReason.NORMAL), 90.0, 0)
    assert state.children[0].failures == 0
    gave_up, _ = _run(_state(give_up_after=None), [(None, 30.0)] * 50)
    assert not any(gave_up)


# --- the supervisor ------------------------------------------------------------------------------


def scale(anyio_backend: tuple[str, dict[str, Any]] | str) -> float:
    """Virtual seconds on trio (MockClock); on asyncio the same story 100 times faster."""
    name = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    return 1.0 if name == "trio" else 0.01


def default_intensity(k: float) -> Intensity:
    """The default (3 restarts in 5 s), on the test's time scale."""
    return Intensity(max_restarts=3, period=5 * k)


class FailsAfter(Actor[object]):
    """Starts (or not), runs ``after`` seconds, then raises: a child that keeps failing."""

    lives = 0

    def __init__(self, after: float, *, in_start: bool = False) -> None:
        self.after = after
        self.in_start = in_start

    async def on_start(self) -> None:
        type(self).lives += 1
        if self.in_start:  # a request to a sibling that times out, say
            await anyio.sleep(self.after)
            raise TimeoutError(f"life {type(self).lives}: no answer within {self.after:g} s")

    async def background(self) -> None:
        await anyio.sleep(self.after)
        raise ConnectionError(f"life {type(self).lives}: failed after {self.after:g} s")

    def handle(self, message: object) -> None:
        return None


@pytest.mark.parametrize("in_start", [False, True], ids=["after-starting", "while-starting"])
async def test_a_child_failing_every_30_seconds_forever_makes_the_root_give_up(
    anyio_backend: tuple[str, dict[str, Any]], in_start: bool
) -> None:
    """Every 30 s, once started or while starting: never more than one restart in the
    intensity's 5 s, so it used to loop forever. The fifth failure in a row (after 150 s)
    gives up, naming the supervisor, the child and, as the cause, its last error."""
    k = scale(anyio_backend)

    class Failing(FailsAfter):
        lives = 0

    cell: ActorCell[object] = ActorCell("broker", lambda: Failing(30 * k, in_start=in_start))
    root = Supervisor(
        "root",
        SupervisorSpec(
            intensity=default_intensity(k),
            children=[ChildSpec(id="broker", start=cell, healthy_after=60 * k)],
        ),
    )
    began = anyio.current_time()
    with anyio.fail_after(600 * k), pytest.RaisesGroup(ChildKeepsFailing) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await anyio.sleep_forever()
    (error,) = info.value.exceptions
    assert str(error) == (
        "supervisor 'root' gave up on 'broker': it failed 5 times in a row over "
        f"{120 * k:.0f} s without once running {60 * k:g} s"
    )
    assert (error.supervisor, error.child, error.failures) == ("root", "broker", 5)
    assert isinstance(error.__cause__, TimeoutError if in_start else ConnectionError)
    assert str(error.__cause__).startswith("life 5:")
    assert Failing.lives == 5
    assert root.restarts == 4
    assert anyio.current_time() - began == pytest.approx(150 * k, rel=0.2)


async def test_a_child_that_recovers_between_failures_is_never_given_up_on(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """Failing every 61 s, each time after running longer than ``healthy_after``: restarted
    again and again (20 times on trio's virtual clock, 6 in real time), never escalated."""
    k = scale(anyio_backend)
    failures = 20 if k == 1.0 else 6

    class Occasional(FailsAfter):
        lives = 0

    cell: ActorCell[object] = ActorCell("feed", lambda: Occasional(61 * k))
    root = Supervisor(
        "root",
        SupervisorSpec(
            intensity=default_intensity(k),
            children=[ChildSpec(id="feed", start=cell, healthy_after=60 * k)],
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        with anyio.move_on_after(failures * 61 * k + 30 * k):
            await anyio.sleep_forever()
        assert cell.state is LifecycleState.RUNNING
        root.stop()
    assert Occasional.lives == failures + 1
    assert root.restarts == failures


async def test_a_sub_supervisor_that_gives_up_stops_the_root_with_the_same_reason(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """Nested: the symbols' supervisor gives up on one symbol actor; the root passes the same
    error on instead of restarting the sub-supervisor (which would replay the failures)."""
    k = scale(anyio_backend)

    class Symbol(FailsAfter):
        lives = 0

    cell: ActorCell[object] = ActorCell("symbol.TQQQ", lambda: Symbol(30 * k, in_start=True))
    symbols = SupervisorSpec(
        intensity=default_intensity(k),
        children=[ChildSpec(id="symbol.TQQQ", start=cell, healthy_after=60 * k)],
    )
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=Intensity(max_restarts=10, period=60 * k),
            children=[ChildSpec(id="symbols", start=symbols)],
        ),
    )
    with anyio.fail_after(600 * k), pytest.RaisesGroup(ChildKeepsFailing) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await anyio.sleep_forever()
    (error,) = info.value.exceptions
    assert (error.supervisor, error.child) == ("root/symbols", "symbol.TQQQ")
    assert root.restarts == 0
    assert Symbol.lives == 5


# --- a start waiting on a sibling that died ------------------------------------------------------


class Keeper(Actor[str]):
    """Answers ``query``; dies on ``poison``."""

    def handle(self, message: str) -> str:
        if message == "poison":
            raise RuntimeError("keeper poisoned")
        return "answer"


class Dependent(Actor[str]):
    """Asks the keeper in ``on_start`` (the symbol actor loading the ledger); its first life
    poisons the keeper first, so that the question waits in a dead keeper's mailbox."""

    lives = 0

    def __init__(self, keeper: ActorCell[str]) -> None:
        self.keeper = keeper

    async def on_start(self) -> None:
        type(self).lives += 1
        if type(self).lives == 1:
            self.keeper.ref.tell("poison")
        await self.keeper.ref.request("query", timeout=30)

    def handle(self, message: str) -> None:
        return None


async def test_a_child_starting_on_a_sibling_that_died_restarts_with_it_at_once(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """rest_for_one, the dependent's on_start waiting on the keeper, which dies: the root
    abandons the dependent's start and restarts both at once. It used to wait, unable to
    handle the keeper's exit, until the dependent's request timed out (30 s), every time."""

    class Waiting(Dependent):
        lives = 0

    keeper: ActorCell[str] = ActorCell("keeper", Keeper)
    dependent: ActorCell[str] = ActorCell("dependent", lambda: Waiting(keeper))
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            intensity=Intensity(max_restarts=3, period=60),
            children=[
                ChildSpec(id="keeper", start=keeper),
                ChildSpec(id="dependent", start=dependent),
            ],
        ),
    )
    began = anyio.current_time()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            while dependent.state is not LifecycleState.RUNNING or keeper.incarnation < 2:  # noqa: ASYNC110 - polls the cells, which signal nothing
                await anyio.sleep(0.01)
            root.stop()
    assert anyio.current_time() - began < 5
    assert keeper.incarnation == 2
    assert Waiting.lives == 2
    assert root.restarts == 2


async def test_a_stop_during_a_sub_supervisors_start_stops_it_gracefully(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """A stop while a sub-supervisor is still starting its children (one waits 30 s in
    on_start): passed on, the sub stops starting the rest, and everything stops without
    being cancelled, as soon as that on_start ends."""
    k = scale(anyio_backend)

    class Slow(Actor[object]):
        async def on_start(self) -> None:
            await anyio.sleep(30 * k)

        def handle(self, message: object) -> None:
            return None

    slow: ActorCell[object] = ActorCell("slow", Slow)
    never: ActorCell[object] = ActorCell("never", Slow)
    inner = SupervisorSpec(
        children=[ChildSpec(id="slow", start=slow), ChildSpec(id="never", start=never)]
    )
    root = Supervisor("root", SupervisorSpec(children=[ChildSpec(id="inner", start=inner)]))
    with anyio.fail_after(60 * k):
        async with anyio.create_task_group() as tg:
            tg.start_soon(root.run)
            await anyio.sleep(k)
            root.stop()
    assert slow.state is LifecycleState.STOPPED
    assert never.state is LifecycleState.NEW
    assert root.restarts == 0


async def test_intensity_still_stops_a_quick_loop_first() -> None:
    """A child failing at once, again and again: the restart intensity (3 in 5 s) gives up,
    as before, not the new policy."""

    class Quick(FailsAfter):
        lives = 0

    cell: ActorCell[object] = ActorCell("quick", lambda: Quick(0.0))
    root = Supervisor("root", SupervisorSpec(children=[ChildSpec(id="quick", start=cell)]))
    with anyio.fail_after(10), pytest.RaisesGroup(RestartIntensityExceeded):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await anyio.sleep_forever()
    assert Quick.lives == 4
